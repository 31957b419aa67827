// Test helpers shared by the store tests: records with every field set,
// snapshot comparison and a temporary directory.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <string>
#include <vector>

#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "store/store.h"

namespace artel::store_test {

// A fresh directory under the test temp dir, removed with its contents.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = ::testing::TempDir() + "/artel_store_XXXXXX";
    char* made = mkdtemp(tmpl.data());
    EXPECT_NE(made, nullptr) << "mkdtemp " << tmpl;
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Records with every field set; `version` changes every non-key field.
inline v1::ReplicaInfo FullReplica(uint64_t id, uint64_t task_id, int version = 1) {
  v1::ReplicaInfo r;
  r.set_id(id);
  r.set_worker_id("worker-" + std::to_string(version));
  r.set_state(v1::REPLICA_STATE_REPORTED);
  r.set_result(v1::RESULT_KIND_APP_ERROR);
  r.set_validity(v1::VALIDITY_INVALID);
  r.set_exit_code(-3 - version);
  r.set_error("exit code 3, version " + std::to_string(version));
  v1::OutputFile* out = r.add_outputs();
  out->set_name("out.txt");
  out->set_digest(std::string(64, 'b'));
  out->set_size(4096 + version);
  r.set_created_at_ms(1'700'000'000'000 + version);
  r.set_finished_at_ms(1'700'000'100'000 + version);
  r.set_checkpoint_digest(std::string(64, 'c'));
  r.set_lease_expiry_ms(1'700'000'200'000 + version);
  r.set_task_id(task_id);
  r.set_runtime_ms(900 + version);
  return r;
}

inline v1::TaskInfo FullTask(uint64_t id, int version = 1) {
  v1::TaskInfo t;
  t.set_id(id);
  t.set_job_id(70 + version);
  v1::TaskSpec* spec = t.mutable_spec();
  spec->set_app("primes");
  spec->set_version(std::to_string(version));
  spec->add_args("--limit");
  spec->add_args(std::to_string(1000 * version));
  v1::InputFile* in = spec->add_inputs();
  in->set_name("range.txt");
  in->set_digest(std::string(64, 'a'));
  in->set_size(12 + version);
  v1::RedundancyPolicy* policy = spec->mutable_policy();
  policy->set_min_quorum(2);
  policy->set_target_replicas(3);
  policy->set_max_error_replicas(4);
  policy->set_max_total_replicas(9);
  policy->set_lease_ms(30'000 + version);
  policy->set_deadline_ms(600'000);
  v1::Resources* res = spec->mutable_resources();
  res->set_cores(2);
  res->set_memory_bytes(1ull << 30);
  res->set_gpu_memory_bytes(8ull << 30);
  res->set_wall_time_ms(60'000);
  spec->set_validator("exact");
  t.set_state(version == 1 ? v1::TASK_STATE_RUNNING : v1::TASK_STATE_DONE);
  t.set_outcome(v1::OUTCOME_SUCCESS);
  t.set_reason("quorum of 2, version " + std::to_string(version));
  t.set_canonical_replica(5);
  v1::OutputFile* out = t.add_outputs();
  out->set_name("primes.txt");
  out->set_digest(std::string(64, 'd'));
  out->set_size(777);
  t.set_created_at_ms(1'700'000'000'000);
  t.set_finished_at_ms(1'700'000'500'000 + version);
  t.set_resolved_version(std::to_string(version));
  t.set_resume_checkpoint(std::string(64, 'e'));
  return t;
}

inline v1::WorkerInfo FullWorker(const std::string& id, int version = 1) {
  v1::WorkerInfo w;
  w.set_id(id);
  w.set_name("host-" + std::to_string(version));
  w.set_cores(16);
  w.set_memory_bytes(64ull << 30);
  w.set_disk_bytes(1ull << 40);
  w.set_gpus(1);
  w.set_gpu_memory_bytes(80ull << 30);
  w.set_alive(version % 2 == 1);
  w.set_last_heartbeat_ms(1'700'000'000'000 + version);
  w.set_running(3);
  w.set_completed(100 + version);
  w.set_invalid(2);
  w.set_errors(1);
  w.set_sandboxed(true);
  return w;
}

inline v1::JobInfo FullJob(uint64_t id, int version = 1) {
  v1::JobInfo j;
  j.set_id(id);
  j.set_name("sweep-" + std::to_string(version));
  j.set_created_at_ms(1'700'000'000'000 + version);
  j.set_task_count(40 + version);
  return j;
}

inline v1::AppVersion FullApp(const std::string& name, const std::string& version,
                              int revision = 1) {
  v1::AppVersion a;
  a.set_name(name);
  a.set_version(version);
  a.set_digest(std::string(63, 'f') + std::to_string(revision % 10));
  a.set_size(1 << 20 | revision);
  a.set_created_at_ms(1'700'000'000'000 + revision);
  return a;
}

inline v1::Dataset FullDataset(const std::string& name, int version = 1) {
  v1::Dataset d;
  d.set_name(name);
  v1::ShardRef* shard = d.add_train();
  shard->set_digest(std::string(63, 'a') + std::to_string(version % 10));
  shard->set_samples(2000 + version);
  shard->set_size(1 << 22);
  *d.add_test() = *shard;
  d.add_sample_shape(1);
  d.add_sample_shape(28);
  d.add_sample_shape(28);
  d.set_train_samples(2000 + version);
  d.set_test_samples(2000 + version);
  d.set_created_at_ms(1'700'000'000'000 + version);
  return d;
}

inline v1::TrainingJob FullTrainingJob(uint64_t id, int version = 1) {
  v1::TrainingJob j;
  j.set_id(id);
  j.mutable_spec()->set_dataset("fmnist");
  j.mutable_spec()->set_mode(v1::TRAIN_MODE_LOCAL);
  j.mutable_spec()->set_lr(0.05 * version);
  j.set_state(v1::TRAINING_STATE_RUNNING);
  j.set_round(7 + version);
  j.set_params_digest(std::string(64, 'b'));
  j.add_round_tasks(11);
  v1::RoundRecord* r = j.add_history();
  r->set_round(1);
  r->set_loss(0.5);
  r->set_accuracy(0.8);
  (*j.mutable_task_base_round())[11] = 3;
  j.set_accuracy(0.8 + version / 100.0);
  return j;
}

inline TokenRecord FullToken(const std::string& hash, int version = 1) {
  return TokenRecord{hash,
                     version == 1 ? v1::ROLE_SUBMITTER : v1::ROLE_ADMIN,
                     1'700'000'000'000 + version,
                     "owner-" + std::to_string(version),
                     1'800'000'000'000 + version,
                     version == 1 ? 0 : 1'750'000'000'000 + version};
}

// One record of every kind, keys derived from `id`.
inline WriteBatch OneOfEach(uint64_t id, int version = 1) {
  WriteBatch b;
  b.tasks.push_back(FullTask(id, version));
  b.replicas.push_back(FullReplica(id, id, version));
  b.workers.push_back(FullWorker("w" + std::to_string(id), version));
  b.jobs.push_back(FullJob(id, version));
  b.apps.push_back(FullApp("app" + std::to_string(id), "1.0", version));
  std::string digits = std::to_string(id);
  b.tokens.push_back(FullToken(std::string(64 - digits.size(), '0') + digits, version));
  b.datasets.push_back(FullDataset("data" + std::to_string(id), version));
  b.training_jobs.push_back(FullTrainingJob(id, version));
  return b;
}

template <typename Msg>
void ExpectProtosEq(const std::vector<Msg>& got, const std::vector<Msg>& want) {
  ASSERT_EQ(got.size(), want.size()) << Msg::descriptor()->full_name();
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(got[i], want[i]))
        << "#" << i << "\n got: " << got[i].ShortDebugString()
        << "\nwant: " << want[i].ShortDebugString();
  }
}

inline void ExpectSnapshotEq(const StoreSnapshot& got, const StoreSnapshot& want) {
  ExpectProtosEq(got.tasks, want.tasks);
  ExpectProtosEq(got.replicas, want.replicas);
  ExpectProtosEq(got.workers, want.workers);
  ExpectProtosEq(got.jobs, want.jobs);
  ExpectProtosEq(got.apps, want.apps);
  ExpectProtosEq(got.datasets, want.datasets);
  ExpectProtosEq(got.training_jobs, want.training_jobs);
  ASSERT_EQ(got.tokens.size(), want.tokens.size());
  for (size_t i = 0; i < got.tokens.size(); ++i) {
    EXPECT_EQ(got.tokens[i].token_hash, want.tokens[i].token_hash);
    EXPECT_EQ(got.tokens[i].role, want.tokens[i].role);
    EXPECT_EQ(got.tokens[i].created_at_ms, want.tokens[i].created_at_ms);
    EXPECT_EQ(got.tokens[i].owner, want.tokens[i].owner);
    EXPECT_EQ(got.tokens[i].expires_at_ms, want.tokens[i].expires_at_ms);
    EXPECT_EQ(got.tokens[i].revoked_at_ms, want.tokens[i].revoked_at_ms);
  }
}

// What Load returns after applying `batch` alone to an empty store, when
// `batch` has no duplicate keys and its records are already sorted by key.
inline StoreSnapshot AsSnapshot(const WriteBatch& batch) {
  StoreSnapshot s{batch.tasks, batch.replicas, batch.workers,  batch.jobs,
                  batch.apps,  batch.tokens,   batch.datasets, batch.training_jobs};
  for (v1::TaskInfo& t : s.tasks) t.clear_replicas();
  return s;
}

}  // namespace artel::store_test
