// Durable state of the coordinator.
//
// The coordinator keeps its working state in memory and writes every change
// through a Store. A Store is a durable table of records keyed by id; Apply
// writes one WriteBatch atomically (one transaction), Load reads everything
// back after a restart. Records are the public protobuf messages, so a task
// row is a TaskInfo (its `replicas` field is not stored; replicas are rows of
// their own).
//
// Implementations: SqliteStore (embedded default) and PostgresStore; both
// pass the same contract suite (store_contract_test.cc).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "artel/v1/artel.pb.h"
#include "common/status.h"

namespace artel {

// An access token, stored only as the SHA-256 of its secret.
struct TokenRecord {
  std::string token_hash;  // Sha256Hex(token)
  v1::Role role = v1::ROLE_UNSPECIFIED;
  int64_t created_at_ms = 0;
  std::string owner;          // who holds it ("" for tokens made before owners)
  int64_t expires_at_ms = 0;  // 0: never
  int64_t revoked_at_ms = 0;  // 0: not revoked
};

// Upserts, by primary key, applied together or not at all.
//   tasks: key id          replicas: key id       workers: key id
//   jobs: key id           apps: key (name, version)
//   tokens: key token_hash      datasets: key name      training_jobs: key id
struct WriteBatch {
  std::vector<v1::TaskInfo> tasks;  // `replicas` field ignored
  std::vector<v1::ReplicaInfo> replicas;
  std::vector<v1::WorkerInfo> workers;
  std::vector<v1::JobInfo> jobs;
  std::vector<v1::AppVersion> apps;
  std::vector<TokenRecord> tokens;
  std::vector<v1::Dataset> datasets;
  std::vector<v1::TrainingJob> training_jobs;

  bool empty() const;
  size_t size() const;  // number of records
  // Moves every record of `other` to the end of this batch. A later upsert
  // of the same key wins when applied.
  void Append(WriteBatch&& other);
};

// Everything a Store holds, as loaded on start-up. Vectors are sorted by key.
struct StoreSnapshot {
  std::vector<v1::TaskInfo> tasks;
  std::vector<v1::ReplicaInfo> replicas;
  std::vector<v1::WorkerInfo> workers;
  std::vector<v1::JobInfo> jobs;
  std::vector<v1::AppVersion> apps;
  std::vector<TokenRecord> tokens;
  std::vector<v1::Dataset> datasets;
  std::vector<v1::TrainingJob> training_jobs;
};

// Thread safety: implementations are safe to call from several threads, but
// the coordinator calls Apply from one committer thread (see CommitQueue).
class Store {
 public:
  virtual ~Store() = default;
  // Writes the whole batch in one transaction. On error nothing is written.
  virtual absl::Status Apply(const WriteBatch& batch) = 0;
  // Reads every record.
  virtual absl::StatusOr<StoreSnapshot> Load() = 0;
};

}  // namespace artel
