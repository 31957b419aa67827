#include "dashboard/api.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "coordinator/coordinator_test_util.h"

namespace artel::dashboard {
namespace {

using coordinator_test::CoordinatorTest;

class ApiTest : public CoordinatorTest {
 protected:
  void SetUp() override {
    CoordinatorTest::SetUp();
    auto admin = coord_->CreateToken(v1::ROLE_ADMIN);
    ASSERT_TRUE(admin.ok()) << admin.status();
    admin_ = "Bearer " + admin->token();
    auto worker = coord_->CreateToken(v1::ROLE_WORKER);
    ASSERT_TRUE(worker.ok()) << worker.status();
    worker_ = "Bearer " + worker->token();
    api_ = std::make_unique<Api>(*coord_, registry_, throughput_);
  }

  HttpResponse Get(const std::string& path, std::map<std::string, std::string> query = {}) {
    return api_->Get(path, query, admin_);
  }
  nlohmann::json GetJson(const std::string& path, std::map<std::string, std::string> query = {}) {
    HttpResponse r = Get(path, query);
    EXPECT_EQ(r.status, 200) << path << ": " << r.body;
    EXPECT_EQ(r.content_type, "application/json");
    return nlohmann::json::parse(r.body, nullptr, false);
  }

  std::string admin_, worker_;
  metrics::Registry registry_;
  Throughput throughput_;
  std::unique_ptr<Api> api_;
};

TEST_F(ApiTest, RefusesMissingWrongAndWorkerTokensSayingWhatToDo) {
  HttpResponse none = api_->Get("/api/overview", {}, "");
  EXPECT_EQ(none.status, 401);
  EXPECT_NE(none.body.find("sign in with an admin or submitter token"), std::string::npos);

  HttpResponse wrong = api_->Get("/api/overview", {}, "Bearer artel_not_a_token");
  EXPECT_EQ(wrong.status, 401);
  EXPECT_EQ(nlohmann::json::parse(wrong.body)["code"], "UNAUTHENTICATED");

  HttpResponse worker = api_->Get("/metrics", {}, worker_);
  EXPECT_EQ(worker.status, 403);
  EXPECT_NE(worker.body.find("artel token create --role submitter"), std::string::npos);

  // A token with its TLS pin after '#' is accepted as the CLI accepts it.
  EXPECT_EQ(api_->Get("/api/session", {}, admin_ + "#0123abcd").status, 200);
  EXPECT_EQ(GetJson("/api/session")["role"], "admin");
}

TEST_F(ApiTest, OverviewCountsWorkersTasksByStateAndThroughput) {
  const std::string w = RegisterWorker("alpha");
  Submit({Spec(), Spec(), Spec()});
  const uint64_t replica = FetchOne(w);
  ARTEL_ASSERT_OK(ReportSuccess(w, replica));
  FetchOne(w);
  throughput_.Sample(1'000, 0);
  throughput_.Sample(6'000, 5);

  nlohmann::json j = GetJson("/api/overview");
  EXPECT_EQ(j["workers"]["online"], 1);
  EXPECT_EQ(j["workers"]["cores"], 4);
  EXPECT_EQ(j["tasks"]["pending"], 1);
  EXPECT_EQ(j["tasks"]["running"], 1);
  EXPECT_EQ(j["tasks"]["done"], 1);
  EXPECT_EQ(j["tasks"]["success"], 1);
  EXPECT_EQ(j["replicas"]["started"], 2);
  ASSERT_EQ(j["throughput"].size(), 1u);
  EXPECT_DOUBLE_EQ(j["throughput"][0]["tasks_per_s"].get<double>(), 1.0);
  EXPECT_EQ(j["now_ms"], clock_.NowMs());

  clock_.AdvanceMs(options_.worker_timeout_ms + 1);
  ARTEL_ASSERT_OK(coord_->Tick());
  j = GetJson("/api/overview");
  EXPECT_EQ(j["workers"]["online"], 0);
  EXPECT_EQ(j["workers"]["offline"], 1);
  EXPECT_EQ(j["replicas"]["lost"], 1);
}

TEST_F(ApiTest, WorkersListNamesAndHeartbeats) {
  RegisterWorker("alpha", "alice");
  nlohmann::json j = GetJson("/api/workers");
  ASSERT_EQ(j["workers"].size(), 1u);
  EXPECT_EQ(j["workers"][0]["name"], "alpha");
  EXPECT_EQ(j["workers"][0]["owner"], "alice");
  EXPECT_EQ(j["workers"][0]["alive"], true);
  EXPECT_EQ(j["now_ms"], clock_.NowMs());
}

TEST_F(ApiTest, TasksFilterByStateAndOneTaskShowsReplicasAndOutputs) {
  const std::string w = RegisterWorker("alpha");
  const std::vector<uint64_t> ids = Submit({Spec(), Spec()});
  const uint64_t replica = FetchOne(w);
  ARTEL_ASSERT_OK(ReportSuccess(w, replica, "2 3 5 7 11\n"));

  EXPECT_EQ(GetJson("/api/tasks")["tasks"].size(), 2u);
  EXPECT_EQ(GetJson("/api/tasks", {{"state", "done"}})["tasks"].size(), 1u);
  EXPECT_EQ(GetJson("/api/tasks", {{"state", "pending"}})["tasks"].size(), 1u);
  EXPECT_EQ(GetJson("/api/tasks", {{"limit", "1"}})["tasks"].size(), 1u);

  HttpResponse bad = Get("/api/tasks", {{"state", "sleeping"}});
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(bad.body.find("use pending, running or done"), std::string::npos);

  const uint64_t done_id = Task(ids[0]).state() == v1::TASK_STATE_DONE ? ids[0] : ids[1];
  nlohmann::json task = GetJson("/api/tasks/" + std::to_string(done_id));
  EXPECT_EQ(task["state"], "TASK_STATE_DONE");
  ASSERT_EQ(task["replicas"].size(), 1u);
  EXPECT_EQ(task["replicas"][0]["worker_id"], w);

  HttpResponse out = Get("/api/tasks/" + std::to_string(done_id) + "/outputs/result.txt");
  EXPECT_EQ(out.status, 200);
  EXPECT_EQ(out.content_type, "application/octet-stream");
  EXPECT_EQ(out.body, "2 3 5 7 11\n");
  EXPECT_EQ(Get("/api/tasks/" + std::to_string(done_id) + "/outputs/nope").status, 404);
}

TEST_F(ApiTest, UnknownIdsAndPathsAre404WithWhatToDo) {
  HttpResponse job = Get("/api/jobs/999");
  EXPECT_EQ(job.status, 404);
  EXPECT_FALSE(nlohmann::json::parse(job.body)["error"].get<std::string>().empty());
  HttpResponse task = Get("/api/tasks/999");
  EXPECT_EQ(task.status, 404);
  EXPECT_NE(task.body.find("artel tasks"), std::string::npos);
  HttpResponse not_number = Get("/api/jobs/abc");
  EXPECT_EQ(not_number.status, 400);
  EXPECT_NE(not_number.body.find("give a number"), std::string::npos);
  EXPECT_EQ(Get("/api/nothing").status, 404);
  EXPECT_EQ(GetJson("/api/jobs")["jobs"].size(), 0u);
}

TEST_F(ApiTest, MetricsServeTheRegistryAsPrometheusText) {
  registry_.GetCounter("artel_test_total", "A test counter.").Add(7);
  HttpResponse r = Get("/metrics");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_NE(r.body.find("artel_test_total 7\n"), std::string::npos);
}

}  // namespace
}  // namespace artel::dashboard
