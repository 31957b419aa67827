// What an operator sees of a running grid: Prometheus metrics (checked by
// promtool, counting what the test did), the dashboard's HTTP side, JSON
// logs, and the ML app the coordinator registers by itself.
#include <httplib.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cluster_test_util.h"
#include "common/sha256.h"

namespace artel::testing {
namespace {

constexpr char kEchoApp[] = "#!/bin/sh\necho \"hello $1\"\n";

class Observability : public ClusterTest {
 protected:
  // GET `path` from the dashboard with `token` ("" sends none).
  httplib::Result Get(const std::string& path, const std::string& token) {
    const std::string url = cluster().http_url();
    EXPECT_FALSE(url.empty()) << "the coordinator wrote no http.addr";
    httplib::Client http(url);
    http.set_read_timeout(10, 0);
    httplib::Headers headers;
    if (!token.empty()) headers.emplace("Authorization", "Bearer " + token);
    return http.Get(path, headers);
  }
  std::string Metrics() {
    httplib::Result r = Get("/metrics", cluster().admin_token());
    EXPECT_TRUE(r) << "GET /metrics failed";
    if (!r) return "";
    EXPECT_EQ(r->status, 200) << r->body;
    return r->body;
  }
};

// The value of the sample `series` (name with its labels exactly as
// rendered); NaN if absent.
double Sample(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return std::nan("");
}

TEST_F(Observability, MetricsPassPromtoolAndCountTheTasksAndReplicasSubmitted) {
  StartCluster();
  AddScriptApp("echo", kEchoApp);
  AddWorker("w1");
  AddWorker("w2");
  const std::string before = Metrics();

  constexpr int kTasks = 6;
  v1::SubmitRequest req;
  for (int i = 0; i < kTasks; ++i) {
    *req.add_tasks() = OneTask("echo", {std::to_string(i)}).tasks(0);
    req.mutable_tasks(i)->mutable_policy()->set_min_quorum(2);
  }
  absl::StatusOr<v1::SubmitResponse> resp = client().Submit(req);
  ASSERT_TRUE(resp.ok()) << resp.status();
  for (uint64_t id : resp->task_ids()) {
    ASSERT_EQ(WaitDone(id).outcome(), v1::OUTCOME_SUCCESS);
  }
  const std::string after = Metrics();

  auto delta = [&](const std::string& series) {
    const double was = Sample(before, series);
    return Sample(after, series) - (std::isnan(was) ? 0 : was);  // absent before: none yet
  };
  EXPECT_EQ(delta("artel_tasks_submitted_total"), kTasks);
  EXPECT_EQ(delta("artel_replicas_started_total"), 2 * kTasks);  // quorum 2, no faults
  EXPECT_EQ(delta("artel_replicas_lost_total"), 0);
  EXPECT_EQ(delta("artel_replicas_invalid_total"), 0);
  EXPECT_EQ(delta("artel_tasks{state=\"done\"}"), kTasks);
  EXPECT_EQ(Sample(after, "artel_tasks{state=\"pending\"}"), 0);
  EXPECT_EQ(Sample(after, "artel_workers{state=\"online\"}"), 2);
  EXPECT_GE(delta("artel_rpc_duration_seconds_count{service=\"ClientService\",method=\"Submit\"}"),
            1);
  EXPECT_GE(delta("artel_rpc_duration_seconds_count{service=\"WorkerService\",method=\"Report\"}"),
            1);
  EXPECT_GT(delta("artel_blob_received_bytes_total"), 0);  // the outputs workers uploaded
  EXPECT_GT(delta("artel_store_commit_duration_seconds_count"), 0);

  // Debian's prometheus package ships promtool; scripts/setup.sh installs it.
  const auto file = dir() / "metrics.txt";
  WriteFile(file, after);
  CommandResult check = RunProgram({"/bin/sh", "-c", "promtool check metrics < " + file.string()});
  EXPECT_EQ(check.exit_code, 0) << "promtool check metrics:\n" << check.out << check.err;
}

TEST_F(Observability, DashboardServesItsPageAndItsApiOnlyWithAToken) {
  StartCluster();
  AddWorker("w1");
  httplib::Result page = Get("/", "");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
  EXPECT_NE(page->get_header_value("Content-Type").find("text/html"), std::string::npos);

  httplib::Result anonymous = Get("/api/overview", "");
  ASSERT_TRUE(anonymous);
  EXPECT_EQ(anonymous->status, 401);
  EXPECT_NE(anonymous->body.find("sign in with an admin or submitter token"), std::string::npos);

  httplib::Result wrong = Get("/metrics", "artel_0000");
  ASSERT_TRUE(wrong);
  EXPECT_EQ(wrong->status, 401);

  httplib::Result overview = Get("/api/overview", cluster().admin_token());
  ASSERT_TRUE(overview);
  ASSERT_EQ(overview->status, 200) << overview->body;
  EXPECT_EQ(nlohmann::json::parse(overview->body)["workers"]["online"], 1);

  httplib::Result job = Get("/api/jobs/77", cluster().admin_token());
  ASSERT_TRUE(job);
  EXPECT_EQ(job->status, 404);
}

TEST_F(Observability, JsonLogsAreOneObjectPerLine) {
  StartCluster({"--log-format", "json"});
  AddScriptApp("echo", kEchoApp);
  AddWorker("w1", {"--log-format", "json"});
  ASSERT_EQ(WaitDone(client().Submit(OneTask("echo", {"x"}))->task_ids(0)).outcome(),
            v1::OUTCOME_SUCCESS);
  for (const std::string log : {"coordinator.log", "w1.log"}) {
    const std::vector<std::string> lines = Lines(ReadFile(cluster().root() / log));
    ASSERT_FALSE(lines.empty()) << log;
    for (const std::string& line : lines) {
      nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
      ASSERT_FALSE(j.is_discarded()) << log << ": not JSON: " << line;
      EXPECT_TRUE(j.contains("time") && j.contains("level") && j.contains("msg")) << line;
    }
  }
  const std::string coordinator_log = ReadFile(cluster().root() / "coordinator.log");
  EXPECT_NE(coordinator_log.find("\"msg\":\"artel coordinator listening on"), std::string::npos);
}

TEST_F(Observability, TheCoordinatorRegistersTheMlAppBesideItsBinaryOnce) {
  const auto ml = ArtelBinary().parent_path() / "artel-ml";
  if (!std::filesystem::exists(ml)) GTEST_SKIP() << ml << " is not built (no libtorch)";
  StartCluster({}, /*sign_apps=*/false);
  absl::StatusOr<std::string> digest = Sha256File(ml);
  ASSERT_TRUE(digest.ok());
  auto ml_versions = [&] {
    std::vector<v1::AppVersion> out;
    absl::StatusOr<v1::ListAppsResponse> apps = client().ListApps();
    EXPECT_TRUE(apps.ok()) << apps.status();
    if (!apps.ok()) return out;
    for (const v1::AppVersion& a : apps->apps()) {
      if (a.name() == "artel-ml") out.push_back(a);
    }
    return out;
  };
  std::vector<v1::AppVersion> versions = ml_versions();
  ASSERT_EQ(versions.size(), 1u);
  EXPECT_EQ(versions[0].digest(), *digest);
  EXPECT_EQ(versions[0].version(), "auto-" + digest->substr(0, 12));

  ASSERT_TRUE(cluster().RestartCoordinator().ok());
  ASSERT_TRUE(PollUntil([&] { return client().ListApps().ok(); }, std::chrono::seconds(10)));
  EXPECT_EQ(ml_versions().size(), 1u);
}

TEST_F(Observability, ASignedAppsCoordinatorSaysHowToRegisterTheMlApp) {
  StartCluster();  // with a project key: it cannot sign artel-ml itself
  absl::StatusOr<v1::ListAppsResponse> apps = client().ListApps();
  ASSERT_TRUE(apps.ok());
  for (const v1::AppVersion& a : apps->apps()) EXPECT_NE(a.name(), "artel-ml");
  if (std::filesystem::exists(ArtelBinary().parent_path() / "artel-ml")) {
    EXPECT_NE(ReadFile(cluster().root() / "coordinator.log")
                  .find("artel-ml is not registered automatically: this coordinator runs only "
                        "signed apps"),
              std::string::npos);
  }
}

}  // namespace
}  // namespace artel::testing
