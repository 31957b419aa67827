// The contract every Sandbox implementation keeps, run against each.
#include <csignal>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include "gtest/gtest.h"
#include "sandbox/bubblewrap_sandbox.h"
#include "sandbox/plain_process_sandbox.h"
#include "sandbox/sandbox_test_util.h"

namespace artel {
namespace {

using testing::MakeSpec;
using testing::ProcessWithArgumentExists;
using testing::ReadFile;
using testing::TempDir;
using testing::UniqueSleepToken;
using testing::WriteScript;
using Termination = SandboxResult::Termination;

struct Implementation {
  std::string name;
  std::function<std::unique_ptr<Sandbox>()> make;
};

void PrintTo(const Implementation& implementation, std::ostream* os) { *os << implementation.name; }

class SandboxContractTest : public ::testing::TestWithParam<Implementation> {
 protected:
  void SetUp() override {
    sandbox_ = GetParam().make();
    ASSERT_NE(sandbox_, nullptr);
  }

  // Runs `body` as a /bin/sh script; `adjust` may change the spec first.
  SandboxResult RunScript(const std::string& body,
                          const std::function<void(SandboxSpec&)>& adjust = {},
                          const CancelFlag& cancel = CancelFlag()) {
    SandboxSpec spec = MakeSpec(dir_.path(), WriteScript(dir_.path(), "app.sh", body));
    if (adjust) adjust(spec);
    auto result = sandbox_->Run(spec, cancel);
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *std::move(result) : SandboxResult{};
  }

  TempDir dir_;
  std::unique_ptr<Sandbox> sandbox_;
};

TEST_P(SandboxContractTest, ExitCodePassesThrough) {
  SandboxResult result = RunScript("exit 7");
  EXPECT_EQ(result.termination, Termination::kExited);
  EXPECT_EQ(result.exit_code, 7);
}

TEST_P(SandboxContractTest, ArgumentsPassThrough) {
  SandboxResult result = RunScript("printf '%s|' \"$@\"", [](SandboxSpec& s) {
    s.args = {"a b", "--c"};
  });
  EXPECT_EQ(result.stdout_data, "a b|--c|");
}

TEST_P(SandboxContractTest, DeathBySignalIsReportedAsSignal) {
  SandboxResult result = RunScript("kill -SEGV $$");
  EXPECT_EQ(result.termination, Termination::kSignaled);
  EXPECT_EQ(result.signal, SIGSEGV);
}

TEST_P(SandboxContractTest, StdoutAndStderrAreCapturedSeparately) {
  SandboxResult result = RunScript("echo out; echo err >&2");
  EXPECT_EQ(result.stdout_data, "out\n");
  EXPECT_EQ(result.stderr_data, "err\n");
  EXPECT_FALSE(result.stdout_truncated);
  EXPECT_FALSE(result.stderr_truncated);
}

TEST_P(SandboxContractTest, LargeOutputIsTruncatedAndTheAppNeverBlocks) {
  SandboxResult result =
      RunScript("head -c 10000000 /dev/zero; head -c 10000000 /dev/zero >&2; exit 3",
                [](SandboxSpec& s) { s.max_captured_bytes = 4096; });
  EXPECT_EQ(result.termination, Termination::kExited);
  EXPECT_EQ(result.exit_code, 3);
  EXPECT_EQ(result.stdout_data.size(), 4096u);
  EXPECT_EQ(result.stderr_data.size(), 4096u);
  EXPECT_TRUE(result.stdout_truncated);
  EXPECT_TRUE(result.stderr_truncated);
}

TEST_P(SandboxContractTest, WallTimeExceededKillsTheWholeTree) {
  const std::string token = UniqueSleepToken();
  SandboxResult result = RunScript("sleep " + token + " & sleep 100", [](SandboxSpec& s) {
    s.wall_time = std::chrono::milliseconds(300);
  });
  EXPECT_EQ(result.termination, Termination::kTimedOut);
  EXPECT_GE(result.runtime.count(), 300);
  EXPECT_LT(result.runtime.count(), 3000);
  EXPECT_FALSE(ProcessWithArgumentExists(token)) << "background grandchild survived the timeout";
}

TEST_P(SandboxContractTest, BackgroundProcessesDieWhenTheAppExits) {
  const std::string token = UniqueSleepToken();
  SandboxResult result = RunScript("sleep " + token + " & exit 0");
  EXPECT_EQ(result.termination, Termination::kExited);
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_FALSE(ProcessWithArgumentExists(token)) << "background process outlived the app";
}

TEST_P(SandboxContractTest, CancelKillsTheTreeQuickly) {
  const std::string token = UniqueSleepToken();
  CancelFlag cancel;
  std::chrono::steady_clock::time_point cancelled_at;
  const auto started = dir_.path() / "out" / "started";
  std::thread canceller([&] {
    while (!std::filesystem::exists(started))
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    cancelled_at = std::chrono::steady_clock::now();
    cancel.Cancel();
  });
  SandboxResult result =
      RunScript("sleep " + token + " & touch \"$ARTEL_OUTPUT_DIR/started\"; sleep 100", {}, cancel);
  const auto returned_at = std::chrono::steady_clock::now();
  canceller.join();
  EXPECT_EQ(result.termination, Termination::kCancelled);
  EXPECT_LT(returned_at - cancelled_at, std::chrono::milliseconds(1000));
  EXPECT_FALSE(ProcessWithArgumentExists(token)) << "background grandchild survived the cancel";
}

TEST_P(SandboxContractTest, CancelBeforeRunReturnsCancelled) {
  CancelFlag cancel;
  cancel.Cancel();
  SandboxResult result = RunScript("sleep 100", {}, cancel);
  EXPECT_EQ(result.termination, Termination::kCancelled);
}

TEST_P(SandboxContractTest, OutputsAndCheckpointsAppearOnTheHost) {
  SandboxResult result = RunScript(
      "echo result > \"$ARTEL_OUTPUT_DIR/out.txt\" && echo step > \"$ARTEL_CHECKPOINT_DIR/ckpt\" "
      "&& "
      "echo scratch > scratch.txt");
  EXPECT_EQ(result.exit_code, 0) << result.stderr_data;
  EXPECT_EQ(ReadFile(dir_.path() / "out" / "out.txt"), "result\n");
  EXPECT_EQ(ReadFile(dir_.path() / "checkpoint" / "ckpt"), "step\n");
  EXPECT_EQ(ReadFile(dir_.path() / "work" / "scratch.txt"), "scratch\n");
}

TEST_P(SandboxContractTest, InputsInWorkDirAreReadableByRelativePath) {
  std::filesystem::create_directories(dir_.path() / "work" / "in");
  std::ofstream(dir_.path() / "work" / "in" / "data.txt") << "hello";
  SandboxResult result = RunScript("cat in/data.txt");
  EXPECT_EQ(result.exit_code, 0) << result.stderr_data;
  EXPECT_EQ(result.stdout_data, "hello");
}

TEST_P(SandboxContractTest, EnvironmentHoldsSpecEnvAndArtelDirsOnly) {
  ::setenv("ARTEL_TEST_WORKER_SECRET", "leak", 1);
  SandboxResult result = RunScript(
      "printf '%s|%s|%s|' \"$FOO\" \"$ARTEL_TEST_WORKER_SECRET\" \"$PATH\"\n"
      "[ \"$(pwd -P)\" = \"$(cd \"$ARTEL_WORK_DIR\" && pwd -P)\" ] && [ \"$HOME\" = "
      "\"$ARTEL_WORK_DIR\" ] "
      "&& [ -d \"$ARTEL_OUTPUT_DIR\" ] && [ -d \"$ARTEL_CHECKPOINT_DIR\" ] && echo dirs-ok",
      [](SandboxSpec& s) {
        s.env = {{"FOO", "bar baz"}};
      });
  ::unsetenv("ARTEL_TEST_WORKER_SECRET");
  EXPECT_EQ(result.stdout_data, "bar baz||/usr/bin:/bin|dirs-ok\n") << result.stderr_data;
}

TEST_P(SandboxContractTest, MemoryLimitStopsAnAllocationFarBeyondIt) {
  // `tail -c N` of a pipe keeps N bytes in memory.
  auto limit = [](SandboxSpec& s) { s.memory_bytes = 64ull << 20; };
  SandboxResult small =
      RunScript("head -c 300000000 /dev/zero | tail -c 1000000 >/dev/null", limit);
  EXPECT_EQ(small.exit_code, 0) << "control run failed: " << small.stderr_data;
  SandboxResult large =
      RunScript("head -c 300000000 /dev/zero | tail -c 250000000 >/dev/null", limit);
  EXPECT_FALSE(large.termination == Termination::kExited && large.exit_code == 0)
      << "allocated 250 MB under a 64 MiB limit";
}

TEST_P(SandboxContractTest, ProcessLimitStopsTooManyProcesses) {
  auto limit = [](SandboxSpec& s) { s.max_processes = 16; };
  SandboxResult few = RunScript("for i in 1 2 3 4 5; do sleep 0.2 & done; wait", limit);
  EXPECT_EQ(few.exit_code, 0) << "control run failed: " << few.stderr_data;
  SandboxResult many =
      RunScript("i=0; while [ $i -lt 100 ]; do sleep 5 & i=$((i+1)); done; wait; exit 0", limit);
  EXPECT_FALSE(many.termination == Termination::kExited && many.exit_code == 0);
  EXPECT_LT(many.runtime.count(), 4000);
}

TEST_P(SandboxContractTest, MissingExecutableIsAnError) {
  SandboxSpec spec = MakeSpec(dir_.path(), dir_.path() / "no-such-app");
  EXPECT_FALSE(sandbox_->Run(spec, CancelFlag()).ok());
}

TEST_P(SandboxContractTest, MissingWorkDirIsAnError) {
  SandboxSpec spec = MakeSpec(dir_.path(), WriteScript(dir_.path(), "app.sh", "exit 0"));
  spec.work_dir = dir_.path() / "missing";
  EXPECT_FALSE(sandbox_->Run(spec, CancelFlag()).ok());
}

INSTANTIATE_TEST_SUITE_P(
    AllSandboxes, SandboxContractTest,
    ::testing::Values(Implementation{"Bubblewrap",
                                     []() -> std::unique_ptr<Sandbox> {
                                       auto sandbox = BubblewrapSandbox::Create();
                                       EXPECT_TRUE(sandbox.ok()) << sandbox.status();
                                       return sandbox.ok() ? *std::move(sandbox) : nullptr;
                                     }},
                      Implementation{"PlainProcess",
                                     [] { return std::make_unique<PlainProcessSandbox>(); }}),
    [](const ::testing::TestParamInfo<Implementation>& info) { return info.param.name; });

}  // namespace
}  // namespace artel
