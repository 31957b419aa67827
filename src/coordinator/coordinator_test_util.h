// Test fixture for the Coordinator engine with its real parts: a SqliteStore
// on a temporary file, a BlobStore in a temporary directory and a FakeClock.
// Restart() destroys the coordinator and the store and opens both again on
// the same files, as a process restart would.
#pragma once

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "blob/blob_store.h"
#include "common/clock.h"
#include "coordinator/coordinator.h"
#include "store/sqlite_store.h"

#define ARTEL_ASSERT_OK(expr)                                \
  do {                                                       \
    const ::absl::Status artel_s_ = (expr);                  \
    ASSERT_TRUE(artel_s_.ok()) << #expr << ": " << artel_s_; \
  } while (false)

namespace artel::coordinator_test {

inline constexpr uint64_t kGiB = 1ull << 30;

class CoordinatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "/artel_coord_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr) << "mkdtemp " << tmpl;
    dir_ = tmpl;
    auto blobs = BlobStore::Open(dir_ / "blobs");
    ASSERT_TRUE(blobs.ok()) << blobs.status();
    blobs_ = std::move(*blobs);
    options_.worker_timeout_ms = 5'000;
    ASSERT_NO_FATAL_FAILURE(Restart());
    auto exe = blobs_->PutBytes("#!/bin/sh\necho primes\n");
    ASSERT_TRUE(exe.ok()) << exe.status();
    v1::AppVersion app;
    app.set_name("primes");
    app.set_version("1");
    app.set_digest(*exe);
    ARTEL_ASSERT_OK(coord_->AddApp(app).status());
  }
  void TearDown() override {
    coord_.reset();
    store_.reset();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  // Destroys the coordinator and the store; opens both again and loads.
  void Restart() {
    coord_.reset();
    store_.reset();
    auto store = SqliteStore::Open((dir_ / "artel.db").string());
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    coord_ = std::make_unique<Coordinator>(*store_, *blobs_, clock_, options_, sandbox_);
    ARTEL_ASSERT_OK(coord_->Load());
  }

  std::string Put(const std::string& data) {
    auto digest = blobs_->PutBytes(data);
    EXPECT_TRUE(digest.ok()) << digest.status();
    return digest.ok() ? *digest : std::string();
  }

  // A task of the registered app "primes" with one uploaded input.
  v1::TaskSpec Spec(uint32_t quorum = 1, uint64_t lease_ms = 0) {
    v1::TaskSpec spec;
    spec.set_app("primes");
    spec.add_args("--limit=100");
    v1::InputFile* in = spec.add_inputs();
    in->set_name("range.txt");
    in->set_digest(Put("1 100\n"));
    spec.mutable_policy()->set_min_quorum(quorum);
    spec.mutable_policy()->set_lease_ms(lease_ms);
    return spec;
  }

  // Submits `specs` as one job; returns the task ids (empty on error).
  std::vector<uint64_t> Submit(const std::vector<v1::TaskSpec>& specs) {
    v1::SubmitRequest request;
    request.set_job_name("test");
    for (const v1::TaskSpec& s : specs) *request.add_tasks() = s;
    auto response = coord_->Submit(request);
    EXPECT_TRUE(response.ok()) << response.status();
    if (!response.ok()) return {};
    last_job_id_ = response->job_id();
    return {response->task_ids().begin(), response->task_ids().end()};
  }
  uint64_t SubmitOne(const v1::TaskSpec& spec) {
    std::vector<uint64_t> ids = Submit({spec});
    return ids.empty() ? 0 : ids[0];
  }

  // `owner`: its token's owner ("": the worker is its own owner).
  std::string RegisterWorker(const std::string& name, const std::string& owner = "") {
    v1::RegisterRequest request;
    request.set_name(name);
    request.set_cores(4);
    request.set_memory_bytes(8 * kGiB);
    auto response = coord_->Register(request, owner);
    EXPECT_TRUE(response.ok()) << response.status();
    return response.ok() ? response->worker_id() : std::string();
  }

  std::vector<v1::Assignment> Fetch(const std::string& worker, uint32_t max_tasks = 1) {
    v1::FetchWorkRequest request;
    request.set_worker_id(worker);
    request.set_max_tasks(max_tasks);
    request.set_free_cores(4);
    request.set_free_memory_bytes(8 * kGiB);
    auto response = coord_->FetchWork(request);
    EXPECT_TRUE(response.ok()) << response.status();
    if (!response.ok()) return {};
    return {response->assignments().begin(), response->assignments().end()};
  }
  // Fetches and expects exactly one assignment; returns its replica id.
  uint64_t FetchOne(const std::string& worker) {
    std::vector<v1::Assignment> got = Fetch(worker);
    EXPECT_EQ(got.size(), 1u) << "worker " << worker << " got no work";
    return got.empty() ? 0 : got[0].replica_id();
  }

  absl::StatusOr<v1::HeartbeatResponse> Heartbeat(const std::string& worker,
                                                  const std::vector<uint64_t>& running,
                                                  const std::string& checkpoint = "") {
    v1::HeartbeatRequest request;
    request.set_worker_id(worker);
    for (uint64_t id : running) {
      v1::RunningReplica* r = request.add_running();
      r->set_replica_id(id);
      r->set_checkpoint_digest(checkpoint);
    }
    return coord_->Heartbeat(request);
  }

  // Uploads `content` as the output "result.txt" and reports success.
  absl::Status ReportSuccess(const std::string& worker, uint64_t replica,
                             const std::string& content = "2 3 5 7\n") {
    v1::ReportRequest request;
    request.set_worker_id(worker);
    v1::ReplicaReport* report = request.add_reports();
    report->set_replica_id(replica);
    report->set_result(v1::RESULT_KIND_SUCCESS);
    report->set_runtime_ms(10);
    v1::OutputFile* out = report->add_outputs();
    out->set_name("result.txt");
    out->set_digest(Put(content));
    out->set_size(content.size());
    return coord_->Report(request);
  }

  v1::TaskInfo Task(uint64_t id) {
    auto task = coord_->GetTask(id);
    EXPECT_TRUE(task.ok()) << task.status();
    return task.ok() ? *task : v1::TaskInfo();
  }
  v1::ReplicaInfo Replica(uint64_t task_id, uint64_t replica_id) {
    const v1::TaskInfo task = Task(task_id);
    for (const v1::ReplicaInfo& r : task.replicas()) {
      if (r.id() == replica_id) return r;
    }
    ADD_FAILURE() << "task " << task_id << " has no replica " << replica_id;
    return v1::ReplicaInfo();
  }
  v1::WorkerInfo Worker(const std::string& id) {
    const v1::ListWorkersResponse workers = coord_->ListWorkers();
    for (const v1::WorkerInfo& w : workers.workers()) {
      if (w.id() == id) return w;
    }
    ADD_FAILURE() << "no worker " << id;
    return v1::WorkerInfo();
  }
  size_t TaskCount() { return coord_->ListTasks(v1::ListTasksRequest()).tasks_size(); }

  std::filesystem::path dir_;
  FakeClock clock_;
  CoordinatorOptions options_;
  Sandbox* sandbox_ = nullptr;  // for validator apps; set before Restart()
  std::unique_ptr<BlobStore> blobs_;
  std::unique_ptr<SqliteStore> store_;
  std::unique_ptr<Coordinator> coord_;
  uint64_t last_job_id_ = 0;
};

}  // namespace artel::coordinator_test
