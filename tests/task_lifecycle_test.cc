// A task's way through real processes: submit -> place -> sandboxed run ->
// result, through the C++ client and through the `artel` command line.
#include <nlohmann/json.hpp>

#include "cluster_test_util.h"
#include "common/sha256.h"

namespace artel::testing {
namespace {

// Reads the input file `in.txt` from the work dir, writes it upper-cased with
// the arguments into $ARTEL_OUTPUT_DIR/out.txt, and prints a line.
constexpr char kUpperApp[] = R"(#!/bin/sh
set -e
tr a-z A-Z < in.txt > "$ARTEL_OUTPUT_DIR/out.txt"
echo "args: $*" >> "$ARTEL_OUTPUT_DIR/out.txt"
echo "done $1"
)";

constexpr char kFailingApp[] = R"(#!/bin/sh
echo "about to fail" >&2
exit 3
)";

// Runs for a minute unless stopped.
constexpr char kEndlessApp[] = R"(#!/bin/sh
i=0
while [ $i -lt 300 ]; do sleep 0.2; i=$((i+1)); done
)";

class TaskLifecycle : public ClusterTest {};

TEST_F(TaskLifecycle, HappyPathThroughClientReturnsOutputsOfTheApp) {
  StartCluster();
  AddScriptApp("upper", kUpperApp);
  AddWorker("w1");
  const auto input = dir() / "input.txt";
  WriteFile(input, "hello grid\n");
  absl::StatusOr<std::string> digest = client().blobs().UploadFile(input);
  ASSERT_TRUE(digest.ok()) << digest.status();

  v1::SubmitRequest req = OneTask("upper", {"alpha", "beta"});
  v1::InputFile* in = req.mutable_tasks(0)->add_inputs();
  in->set_name("in.txt");
  in->set_digest(*digest);
  in->set_size(11);
  absl::StatusOr<v1::SubmitResponse> resp = client().Submit(req);
  ASSERT_TRUE(resp.ok()) << resp.status();
  ASSERT_EQ(resp->task_ids_size(), 1);
  const uint64_t id = resp->task_ids(0);

  v1::TaskInfo t = WaitDone(id);
  ASSERT_EQ(t.outcome(), v1::OUTCOME_SUCCESS) << t.reason();
  EXPECT_EQ(t.resolved_version(), "1");
  ASSERT_EQ(t.replicas_size(), 1);
  EXPECT_EQ(t.replicas(0).state(), v1::REPLICA_STATE_REPORTED);
  EXPECT_EQ(t.replicas(0).validity(), v1::VALIDITY_VALID);
  EXPECT_EQ(Output(id, "out.txt"), "HELLO GRID\nargs: alpha beta\n");
  EXPECT_EQ(Output(id, "stdout"), "done alpha\n");
  // The digests the coordinator reports are the digests of the bytes.
  for (const auto& f : t.outputs()) {
    EXPECT_EQ(f.digest(), Sha256Hex(ReadFile(dir() / "results" / std::to_string(id) / f.name())))
        << f.name();
  }
}

TEST_F(TaskLifecycle, HappyPathThroughCommandLineWritesResultFiles) {
  StartCluster();
  AddWorker("w1");
  const auto app = dir() / "upper.sh";
  WriteExecutable(app, kUpperApp);
  const std::vector<std::string> conn = {"--coordinator", cluster().address(), "--token",
                                         cluster().admin_token()};
  auto with_conn = [&](std::vector<std::string> args) {
    args.insert(args.end(), conn.begin(), conn.end());
    return args;
  };
  CommandResult add = RunArtel(with_conn({"app", "add", "upper", "--version", "7", app.string(),
                                          "--sign", cluster().signing_key_path().string()}));
  ASSERT_EQ(add.exit_code, 0) << add.err;
  EXPECT_NE(add.out.find("registered app upper version 7"), std::string::npos) << add.out;
  CommandResult list = RunArtel(with_conn({"app", "list", "--json"}));
  ASSERT_EQ(list.exit_code, 0) << list.err;
  EXPECT_NE(list.out.find("\"name\":\"upper\""), std::string::npos) << list.out;

  const auto input = dir() / "local-input.txt";
  WriteFile(input, "from the cli\n");
  CommandResult submit =
      RunArtel(with_conn({"submit", "--app", "upper", "--arg", "x{i}", "--input",
                          "in.txt=" + input.string(), "--count", "2", "--wait", "--json"}));
  ASSERT_EQ(submit.exit_code, 0) << submit.out << submit.err;
  // One {"id": N} line per task, then one line per finished task.
  std::vector<uint64_t> ids;
  for (const std::string& line : Lines(submit.out)) {
    nlohmann::json j = nlohmann::json::parse(line);
    if (j.size() == 1)
      ids.push_back(j.at("id").get<uint64_t>());
    else
      EXPECT_EQ(j.at("outcome"), "success") << line;
  }
  ASSERT_EQ(ids.size(), 2u) << submit.out;

  for (size_t i = 0; i < ids.size(); ++i) {
    const auto out = dir() / ("out-" + std::to_string(i));
    CommandResult result =
        RunArtel(with_conn({"result", std::to_string(ids[i]), "--out", out.string()}));
    ASSERT_EQ(result.exit_code, 0) << result.err;
    EXPECT_NE(result.out.find((out / "out.txt").string()), std::string::npos) << result.out;
    EXPECT_EQ(ReadFile(out / "out.txt"), "FROM THE CLI\nargs: x" + std::to_string(i) + "\n");
    EXPECT_EQ(ReadFile(out / "stdout"), "done x" + std::to_string(i) + "\n");
  }
}

TEST_F(TaskLifecycle, CommandLineWaitStatusAndEnvironment) {
  StartCluster();
  AddScriptApp("upper", kUpperApp);
  AddScriptApp("fails", kFailingApp);
  AddWorker("w1");
  const auto input = dir() / "input.txt";
  WriteFile(input, "abc\n");
  // Connection through ARTEL_COORDINATOR / ARTEL_TOKEN only.
  const std::vector<std::string> env = {"ARTEL_COORDINATOR=" + cluster().address(),
                                        "ARTEL_TOKEN=" + cluster().admin_token()};
  CommandResult ok =
      RunArtel({"submit", "--app", "upper", "--input", "in.txt=" + input.string(), "--json"}, env);
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  const std::string ok_id =
      std::to_string(nlohmann::json::parse(Lines(ok.out).at(0)).at("id").get<uint64_t>());
  CommandResult bad = RunArtel({"submit", "--app", "fails", "--json"}, env);
  ASSERT_EQ(bad.exit_code, 0) << bad.err;
  const std::string bad_id =
      std::to_string(nlohmann::json::parse(Lines(bad.out).at(0)).at("id").get<uint64_t>());

  CommandResult wait_ok = RunArtel({"wait", ok_id, "--timeout", "60s"}, env);
  EXPECT_EQ(wait_ok.exit_code, 0) << wait_ok.out << wait_ok.err;
  EXPECT_NE(wait_ok.out.find("1 succeeded"), std::string::npos) << wait_ok.out;

  CommandResult wait_bad = RunArtel({"wait", bad_id, "--timeout", "60s"}, env);
  EXPECT_NE(wait_bad.exit_code, 0) << wait_bad.out;
  EXPECT_NE(wait_bad.out.find("app_error"), std::string::npos) << wait_bad.out;
  EXPECT_NE(wait_bad.out.find("exit code 3"), std::string::npos) << wait_bad.out;

  // Both at once: one failure makes the whole wait fail.
  CommandResult wait_both = RunArtel({"wait", ok_id, bad_id}, env);
  EXPECT_NE(wait_both.exit_code, 0);
  EXPECT_NE(wait_both.out.find("1 succeeded, 1 failed"), std::string::npos) << wait_both.out;

  CommandResult status = RunArtel({"status", ok_id, "--json"}, env);
  ASSERT_EQ(status.exit_code, 0) << status.err;
  nlohmann::json s = nlohmann::json::parse(status.out);
  EXPECT_EQ(s.at("state"), "done");
  EXPECT_EQ(s.at("outcome"), "success");
  CommandResult bad_status = RunArtel({"status", bad_id, "--json"}, env);
  ASSERT_EQ(bad_status.exit_code, 0) << bad_status.err;
  s = nlohmann::json::parse(bad_status.out);
  EXPECT_EQ(s.at("state"), "done");
  EXPECT_EQ(s.at("outcome"), "app_error");
  EXPECT_NE(s.at("reason").get<std::string>().find("exit code 3"), std::string::npos);

  // The app error's stderr is part of its result.
  const auto out = dir() / "bad-out";
  CommandResult result = RunArtel({"result", bad_id, "--out", out.string()}, env);
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(ReadFile(out / "stderr"), "about to fail\n");

  CommandResult tasks = RunArtel({"tasks", "--json"}, env);
  ASSERT_EQ(tasks.exit_code, 0) << tasks.err;
  EXPECT_EQ(Lines(tasks.out).size(), 2u) << tasks.out;

  // Without a token the command says how to give one.
  CommandResult no_token = RunArtel({"tasks"}, {"ARTEL_COORDINATOR=" + cluster().address()});
  EXPECT_NE(no_token.exit_code, 0);
  EXPECT_NE(no_token.err.find("ARTEL_TOKEN"), std::string::npos) << no_token.err;
  // A wrong address in the environment is used (and fails), proving it is read.
  CommandResult wrong = RunArtel(
      {"tasks"}, {"ARTEL_COORDINATOR=127.0.0.1:1", "ARTEL_TOKEN=" + cluster().admin_token()});
  EXPECT_NE(wrong.exit_code, 0);
  EXPECT_NE(wrong.err.find("coordinator"), std::string::npos) << wrong.err;
}

TEST_F(TaskLifecycle, CancelEndsTheTaskAndKillsItsRunningApp) {
  StartCluster();
  AddScriptApp("endless", kEndlessApp);
  AddWorker("w1");
  const std::string marker = UniqueMarker();
  absl::StatusOr<v1::SubmitResponse> resp = client().Submit(OneTask("endless", {marker}));
  ASSERT_TRUE(resp.ok()) << resp.status();
  const std::string id = std::to_string(resp->task_ids(0));
  ASSERT_TRUE(
      PollUntil([&] { return ProcessWithArgumentExists(marker); }, std::chrono::seconds(20)))
      << "the app never started";
  const std::vector<std::string> conn = {"--coordinator", cluster().address(), "--token",
                                         cluster().admin_token()};
  auto with_conn = [&](std::vector<std::string> args) {
    args.insert(args.end(), conn.begin(), conn.end());
    return args;
  };
  CommandResult cancel = RunArtel(with_conn({"cancel", id}));
  ASSERT_EQ(cancel.exit_code, 0) << cancel.err;
  EXPECT_NE(cancel.out.find("task " + id + " cancelled"), std::string::npos) << cancel.out;

  // The worker learns it with its next heartbeat and kills the whole tree.
  EXPECT_TRUE(
      PollUntil([&] { return !ProcessWithArgumentExists(marker); }, std::chrono::seconds(5)))
      << "the cancelled app kept running";
  absl::StatusOr<v1::TaskInfo> t = client().GetTask(resp->task_ids(0));
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->outcome(), v1::OUTCOME_SYSTEM_ERROR);
  EXPECT_NE(t->reason().find("cancelled"), std::string::npos) << t->reason();
  ASSERT_EQ(t->replicas_size(), 1);
  EXPECT_EQ(t->replicas(0).state(), v1::REPLICA_STATE_CANCELLED);

  CommandResult wait = RunArtel(with_conn({"wait", id}));
  EXPECT_NE(wait.exit_code, 0);
  EXPECT_NE(wait.out.find("system_error (cancelled"), std::string::npos) << wait.out;
  CommandResult again = RunArtel(with_conn({"cancel", id}));
  EXPECT_NE(again.exit_code, 0);
  EXPECT_NE(again.err.find("already finished"), std::string::npos) << again.err;
  CommandResult result = RunArtel(with_conn({"result", id, "--out", (dir() / "r").string()}));
  EXPECT_NE(result.exit_code, 0);
  EXPECT_NE(result.err.find("no result"), std::string::npos) << result.err;
  CommandResult unknown = RunArtel(with_conn({"wait", "999"}));
  EXPECT_NE(unknown.exit_code, 0);
  EXPECT_NE(unknown.err.find("999"), std::string::npos) << unknown.err;
}

// A validator app, registered like any app, judges two workers' results
// that differ in their bytes but agree within its rule; the coordinator runs
// it in its own sandbox.
TEST_F(TaskLifecycle, ValidatorAppAcceptsResultsThatAgreeByItsRule) {
  StartCluster();
  AddScriptApp("jitter", R"(#!/bin/sh
echo $((100 + ARTEL_REPLICA_ID % 4)) > "$ARTEL_OUTPUT_DIR/result.txt"
)");
  AddScriptApp("close", R"(#!/bin/sh
a=$(cat "$1/result.txt"); b=$(cat "$2/result.txt")
d=$((a - b)); [ "$d" -lt 0 ] && d=$((0 - d))
[ "$d" -le 5 ] && exit 0
exit 1
)");
  AddWorker("w1", {}, "alice");
  AddWorker("w2", {}, "bob");
  const std::vector<std::string> args = {"submit",
                                         "--app",
                                         "jitter",
                                         "--count",
                                         "4",
                                         "--quorum",
                                         "2",
                                         "--validator",
                                         "app:close",
                                         "--wait",
                                         "--json",
                                         "--coordinator",
                                         cluster().address(),
                                         "--token",
                                         cluster().admin_token()};
  CommandResult submit = RunArtel(args);
  ASSERT_EQ(submit.exit_code, 0) << submit.out << submit.err;
  int finished = 0;
  for (const std::string& line : Lines(submit.out)) {
    nlohmann::json j = nlohmann::json::parse(line);
    if (j.size() == 1) continue;
    ++finished;
    EXPECT_EQ(j.at("outcome"), "success") << line;
    const v1::TaskInfo t = WaitDone(j.at("id").get<uint64_t>());
    EXPECT_EQ(t.spec().validator(), "app:close@1");
    int valid = 0;
    for (const auto& r : t.replicas()) valid += r.validity() == v1::VALIDITY_VALID;
    EXPECT_EQ(valid, 2) << "task " << t.id();
  }
  EXPECT_EQ(finished, 4);
}

}  // namespace
}  // namespace artel::testing
