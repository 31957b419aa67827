// Warm executors and their pool, with persistent apps written as shell
// scripts that speak the protocol of docs/EXECUTORS.md, in bubblewrap.
#include "worker/warm_executor.h"

#include <filesystem>
#include <fstream>
#include <map>

#include "gtest/gtest.h"
#include "sandbox/bubblewrap_sandbox.h"
#include "sandbox/sandbox_test_util.h"
#include "worker/executor_pool.h"

namespace artel {
namespace {

using testing::ReadFile;
using testing::TempDir;
using testing::WriteScript;

// Answers each request with its own pid on stdout and writes out/result
// holding the first argument and the content of the input file "in".
// Arguments "crash" and "hang" make it exit or sleep instead.
constexpr char kPersistentApp[] = R"sh(
exec 3>"$ARTEL_EXECUTOR_RESPONSES"
echo '{"ready": true, "protocol": 1}' >&3
while read -r line; do
  id=$(echo "$line" | sed 's/.*"id":\([0-9]*\).*/\1/')
  out=$(echo "$line" | sed 's/.*"out":"\([^"]*\)".*/\1/')
  dir=$(echo "$line" | sed 's/.*"dir":"\([^"]*\)".*/\1/')
  arg=$(echo "$line" | sed 's/.*"args":\["\([^"]*\)".*/\1/')
  case "$arg" in
    crash) exit 3 ;;
    hang) sleep 600 ;;
  esac
  printf '%s:%s' "$arg" "$(cat "$dir/in")" > "$out/result"
  echo "{\"id\": $id, \"exit_code\": 0, \"stdout\": \"pid $$\", \"compute_ms\": 7}" >&3
done < "$ARTEL_EXECUTOR_REQUESTS"
)sh";

class WarmExecutorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto sandbox = BubblewrapSandbox::Create();
    ASSERT_TRUE(sandbox.ok()) << sandbox.status();
    sandbox_ = *std::move(sandbox);
  }

  absl::StatusOr<std::unique_ptr<WarmExecutor>> Start(const std::string& body,
                                                      const std::string& name = "e") {
    ExecutorOptions o;
    o.root = dir_.path() / name;
    o.executable = WriteScript(dir_.path(), name + ".sh", body);
    o.memory_bytes = 256 << 20;
    o.startup_timeout = std::chrono::milliseconds(5000);
    return WarmExecutor::Start(*sandbox_, o);
  }

  // Lays out task `id` with input "in" = `input` and returns it.
  ExecutorTask Task(WarmExecutor& e, uint64_t id, const std::string& arg,
                    const std::string& input = "x") {
    ExecutorTask t;
    t.id = id;
    t.args = {arg};
    t.dir = "tasks/" + std::to_string(id);
    t.out = t.dir + "/out";
    std::filesystem::create_directories(e.work_dir() / t.out);
    std::ofstream(e.work_dir() / t.dir / "in") << input;
    t.inputs = {{"in", "digest-of-" + input}};
    return t;
  }

  TempDir dir_;
  std::unique_ptr<BubblewrapSandbox> sandbox_;
};

TEST_F(WarmExecutorTest, OneProcessRunsTaskAfterTask) {
  auto e = Start(kPersistentApp);
  ASSERT_TRUE(e.ok()) << e.status();
  std::string first_pid;
  for (uint64_t id = 1; id <= 3; ++id) {
    ExecutorTask t = Task(**e, id, "task" + std::to_string(id), "input" + std::to_string(id));
    auto outcome = (*e)->Run(t, CancelFlag());
    ASSERT_TRUE(outcome.ok()) << outcome.status();
    EXPECT_EQ(outcome->kind, ExecutorOutcome::Kind::kDone);
    EXPECT_EQ(outcome->exit_code, 0);
    EXPECT_EQ(outcome->compute_ms, 7u);
    EXPECT_EQ(ReadFile((*e)->work_dir() / t.out / "result"),
              "task" + std::to_string(id) + ":input" + std::to_string(id));
    if (id == 1) first_pid = outcome->stdout_data;
    EXPECT_EQ(outcome->stdout_data, first_pid) << "every task ran in the same process";
  }
  EXPECT_TRUE((*e)->alive());
}

// Each digest is written once and linked into every task that names it;
// copies no task links are dropped, least recently used first, past the
// budget; the app reads linked inputs like any file.
TEST_F(WarmExecutorTest, SharedInputsAreWrittenOncePerDigestAndKeptWithinTheBudget) {
  ExecutorOptions o;
  o.root = dir_.path() / "shared";
  o.executable = WriteScript(dir_.path(), "shared.sh", kPersistentApp);
  o.memory_bytes = 256 << 20;
  o.startup_timeout = std::chrono::milliseconds(5000);
  o.input_budget_bytes = 25;  // two 10-byte inputs fit, three do not
  auto e = WarmExecutor::Start(*sandbox_, o);
  ASSERT_TRUE(e.ok()) << e.status();
  std::map<std::string, int> placed;
  auto link = [&](const std::string& digest, uint64_t task) {
    const auto dir = (*e)->work_dir() / "tasks" / std::to_string(task);
    std::filesystem::create_directories(dir / "out");
    return (*e)->LinkInput(digest, dir / "in", [&](const std::filesystem::path& path) {
      ++placed[digest];
      std::ofstream(path) << digest << "-bytes";  // 10 bytes for "aaaa"...
      return absl::OkStatus();
    });
  };
  const auto shared = [&](const std::string& digest) {
    return (*e)->work_dir() / ".inputs" / digest;
  };
  ASSERT_TRUE(link("aaaa", 1).ok());
  ExecutorTask t;
  t.id = 1;
  t.args = {"first"};
  t.dir = "tasks/1";
  t.out = "tasks/1/out";
  t.inputs = {{"in", "aaaa"}};
  auto outcome = (*e)->Run(t, CancelFlag());
  ASSERT_TRUE(outcome.ok()) << outcome.status();
  EXPECT_EQ(ReadFile((*e)->work_dir() / t.out / "result"), "first:aaaa-bytes");
  std::filesystem::remove_all((*e)->work_dir() / "tasks" / "1");

  ASSERT_TRUE(link("aaaa", 2).ok());
  EXPECT_EQ(placed["aaaa"], 1) << "a digest already shared is linked, not written again";
  EXPECT_EQ(std::filesystem::hard_link_count(shared("aaaa")), 2u);
  ASSERT_TRUE(link("bbbb", 3).ok());
  EXPECT_EQ((*e)->shared_input_bytes(), 20u);
  // Over budget with a third, but tasks 2, 3 and 4 still link all three
  // copies: nothing can go.
  ASSERT_TRUE(link("cccc", 4).ok());
  EXPECT_EQ((*e)->shared_input_bytes(), 30u);
  // Once the tasks are gone, the next link drops the oldest unlinked copies.
  std::filesystem::remove_all((*e)->work_dir() / "tasks" / "2");
  std::filesystem::remove_all((*e)->work_dir() / "tasks" / "3");
  ASSERT_TRUE(link("cccc", 5).ok());
  EXPECT_FALSE(std::filesystem::exists(shared("aaaa")));
  EXPECT_TRUE(std::filesystem::exists(shared("bbbb")));
  EXPECT_TRUE(std::filesystem::exists(shared("cccc")));
  EXPECT_EQ((*e)->shared_input_bytes(), 20u);
  // A dropped digest is written again when a task names it.
  ASSERT_TRUE(link("aaaa", 6).ok());
  EXPECT_EQ(placed["aaaa"], 2);
  EXPECT_EQ(ReadFile((*e)->work_dir() / "tasks" / "6" / "in"), "aaaa-bytes");
}

TEST_F(WarmExecutorTest, PlainAppIsNotTakenForAnExecutor) {
  auto e = Start("echo 'usage: app ARGS' >&2; exit 2");
  ASSERT_FALSE(e.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(e.status())) << e.status();
  EXPECT_NE(e.status().message().find("exited with code 2"), std::string::npos) << e.status();
  EXPECT_NE(e.status().message().find("usage: app"), std::string::npos) << e.status();
}

TEST_F(WarmExecutorTest, CrashCostsTheTaskInHandOnly) {
  auto e = Start(kPersistentApp);
  ASSERT_TRUE(e.ok()) << e.status();
  auto crashed = (*e)->Run(Task(**e, 1, "crash"), CancelFlag());
  ASSERT_TRUE(crashed.ok()) << crashed.status();
  EXPECT_EQ(crashed->kind, ExecutorOutcome::Kind::kCrashed);
  EXPECT_EQ(crashed->termination.exit_code, 3);
  EXPECT_FALSE((*e)->alive());
}

TEST_F(WarmExecutorTest, TaskPastItsWallTimeKillsTheProcess) {
  auto e = Start(kPersistentApp);
  ASSERT_TRUE(e.ok()) << e.status();
  ExecutorTask t = Task(**e, 1, "hang");
  t.wall_time = std::chrono::milliseconds(300);
  auto outcome = (*e)->Run(t, CancelFlag());
  ASSERT_TRUE(outcome.ok()) << outcome.status();
  EXPECT_EQ(outcome->kind, ExecutorOutcome::Kind::kTimedOut);
  EXPECT_FALSE((*e)->alive());
}

TEST_F(WarmExecutorTest, CancelEndsTheTask) {
  auto e = Start(kPersistentApp);
  ASSERT_TRUE(e.ok()) << e.status();
  CancelFlag cancel;
  cancel.Cancel();
  auto outcome = (*e)->Run(Task(**e, 1, "hang"), cancel);
  ASSERT_TRUE(outcome.ok()) << outcome.status();
  EXPECT_EQ(outcome->kind, ExecutorOutcome::Kind::kCancelled);
}

class ExecutorPoolTest : public WarmExecutorTest {
 protected:
  void SetUp() override {
    WarmExecutorTest::SetUp();
    ExecutorPoolOptions o;
    o.root = dir_.path() / "pool";
    o.idle_timeout_ms = 1000;
    o.startup_timeout = std::chrono::milliseconds(5000);
    pool_ = std::make_unique<ExecutorPool>(*sandbox_, clock_, o);
  }
  absl::StatusOr<std::unique_ptr<WarmExecutor>> Acquire(const std::string& key,
                                                        const std::string& body) {
    return pool_->Acquire(
        key, "digest:" + body, "app.sh", 256 << 20, [&](const std::filesystem::path& dest) {
          std::filesystem::copy_file(WriteScript(dir_.path(), "src.sh", body), dest);
          return absl::OkStatus();
        });
  }

  FakeClock clock_{1000};
  std::unique_ptr<ExecutorPool> pool_;
};

TEST_F(ExecutorPoolTest, ReleasedExecutorIsReusedForTheSameKey) {
  auto e = Acquire("job-1", kPersistentApp);
  ASSERT_TRUE(e.ok()) << e.status();
  WarmExecutor* first = e->get();
  pool_->Release("job-1", "digest:" + std::string(kPersistentApp), std::move(*e));
  auto again = Acquire("job-1", kPersistentApp);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->get(), first);
  auto other = Acquire("job-2", kPersistentApp);
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_NE(other->get(), first) << "another job gets its own process";
}

TEST_F(ExecutorPoolTest, RetiredAndIdleExecutorsEnd) {
  const std::string digest = "digest:" + std::string(kPersistentApp);
  auto a = Acquire("job-1", kPersistentApp);
  auto b = Acquire("job-2", kPersistentApp);
  ASSERT_TRUE(a.ok() && b.ok());
  pool_->Release("job-1", digest, std::move(*a));
  pool_->Release("job-2", digest, std::move(*b));
  EXPECT_EQ(pool_->idle_count(), 2u);
  pool_->Retire("job-1");
  EXPECT_EQ(pool_->IdleKeys(), std::vector<std::string>{"job-2"});
  clock_.AdvanceMs(999);
  pool_->ReapIdle();
  EXPECT_EQ(pool_->idle_count(), 1u);
  clock_.AdvanceMs(1);
  pool_->ReapIdle();
  EXPECT_EQ(pool_->idle_count(), 0u);
}

TEST_F(ExecutorPoolTest, DeadExecutorIsReplacedOnTheNextAcquire) {
  const std::string digest = "digest:" + std::string(kPersistentApp);
  auto e = Acquire("job-1", kPersistentApp);
  ASSERT_TRUE(e.ok()) << e.status();
  auto crashed = (*e)->Run(Task(**e, 1, "crash"), CancelFlag());
  ASSERT_TRUE(crashed.ok());
  pool_->Release("job-1", digest, std::move(*e));
  EXPECT_EQ(pool_->idle_count(), 0u) << "a dead executor is not kept";
  auto next = Acquire("job-1", kPersistentApp);
  ASSERT_TRUE(next.ok()) << next.status();
  auto outcome = (*next)->Run(Task(**next, 2, "after"), CancelFlag());
  ASSERT_TRUE(outcome.ok());
  EXPECT_EQ(outcome->kind, ExecutorOutcome::Kind::kDone);
}

TEST_F(ExecutorPoolTest, PlainAppIsRememberedAndRefusedAtOnce) {
  const std::string plain = "exit 0";
  auto e = Acquire("job-1", plain);
  ASSERT_FALSE(e.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(e.status()));
  EXPECT_TRUE(pool_->IsPlain("digest:" + plain));
  auto again = Acquire("job-1", plain);
  EXPECT_TRUE(absl::IsFailedPrecondition(again.status()));
}

}  // namespace
}  // namespace artel
