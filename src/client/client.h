// The C++ client of a coordinator, used by the CLI: submit, watch, fetch
// results, manage apps and tokens. Wraps ClientService and BlobService.
//
// Errors keep the server's code and message (which say what to fix).
// Thread-safe.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "artel/v1/artel.grpc.pb.h"
#include "blob/blob_client.h"
#include "common/status.h"
#include "tls/tls.h"

namespace artel {

absl::Status FromGrpc(const grpc::Status& status, const std::string& doing);

class Client {
 public:
  // Does not connect yet; the first call does.
  // Verifies the coordinator as `trust` says. `token` may carry the
  // coordinator's TLS pin after a '#'; only the part before it is sent.
  Client(const std::string& address, std::string token, const tls::Trust& trust);
  // Trusts the pin `token` carries (SECRET#FINGERPRINT); a token without one
  // connects over plain TCP (a coordinator started with --insecure).
  Client(const std::string& address, std::string token);

  absl::StatusOr<v1::SubmitResponse> Submit(const v1::SubmitRequest& request);
  absl::StatusOr<v1::TaskInfo> GetTask(uint64_t id);
  // Calls `on_event` for the current state of every task, then for every
  // change, until all are done. DEADLINE_EXCEEDED after `timeout_ms`
  // (0 = no limit). Reconnects if the coordinator restarts.
  absl::Status Watch(const std::vector<uint64_t>& ids,
                     const std::function<void(const v1::TaskEvent&)>& on_event,
                     uint64_t timeout_ms);
  absl::StatusOr<v1::TaskInfo> Cancel(uint64_t id);
  absl::StatusOr<v1::JobStatus> GetJob(uint64_t id);
  absl::StatusOr<v1::ListTasksResponse> ListTasks(const v1::ListTasksRequest& request);
  absl::StatusOr<v1::ListWorkersResponse> ListWorkers();
  absl::StatusOr<v1::ListCreditResponse> ListCredit();
  // Uploads `file` and registers it as app `name` `version`, signed with
  // `signing_key` (an Ed25519 private key in PEM) when given.
  absl::StatusOr<v1::AppVersion> AddApp(const std::string& name, const std::string& version,
                                        const std::filesystem::path& file,
                                        const std::string& signing_key = "");
  absl::StatusOr<v1::ListAppsResponse> ListApps();
  // A new token's secret (owner "" and no expiry: the coordinator's
  // defaults); CreateTokenFull also returns how it is listed.
  absl::StatusOr<std::string> CreateToken(v1::Role role);
  absl::StatusOr<v1::CreateTokenResponse> CreateTokenFull(v1::Role role, const std::string& owner,
                                                          int64_t expires_in_ms);
  absl::StatusOr<v1::ListTokensResponse> ListTokens();
  absl::StatusOr<v1::TokenInfo> RevokeToken(const std::string& id);
  // Writes the canonical result's outputs of a finished task into `dir`.
  // Returns the file names written.
  absl::StatusOr<std::vector<std::string>> FetchResult(uint64_t id,
                                                       const std::filesystem::path& dir);

  // Training (DESIGN.md §6). The data set's shards must be uploaded as
  // blobs first (blobs().UploadBytes); AddDataset registers their digests.
  // Returns the data set as stored (with created_at_ms).
  absl::StatusOr<v1::Dataset> AddDataset(const v1::Dataset& dataset);
  absl::StatusOr<v1::ListDatasetsResponse> ListDatasets();
  // Starts a training job; zero fields of `spec` take the server's defaults.
  // The model (spec.model_digest) must be uploaded first.
  absl::StatusOr<v1::TrainingJob> StartTraining(const v1::TrainingSpec& spec);
  absl::StatusOr<v1::TrainingJob> GetTrainingJob(uint64_t id);
  absl::StatusOr<v1::ListTrainingJobsResponse> ListTrainingJobs();

  BlobClient& blobs() { return *blobs_; }

 private:
  void Prepare(grpc::ClientContext& ctx, int64_t timeout_ms) const;

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::ClientService::Stub> stub_;
  std::unique_ptr<BlobClient> blobs_;
  const std::string token_;
};

}  // namespace artel
