#include "client/client.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <thread>

#include "common/signing.h"

namespace artel {

absl::Status FromGrpc(const grpc::Status& status, const std::string& doing) {
  if (status.ok()) return absl::OkStatus();
  std::string message = status.error_message();
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
    message += " (is the coordinator running? check --coordinator / ARTEL_COORDINATOR)";
  }
  // "task 7: task 7 does not exist" says it twice; the server's text suffices.
  const bool named = message.rfind(doing, 0) == 0;
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      named ? message : doing + ": " + message);
}

Client::Client(const std::string& address, std::string token)
    : Client(address, token, tls::TrustFromToken(token)) {}

Client::Client(const std::string& address, std::string token, const tls::Trust& trust)
    : token_(tls::SplitToken(token).first) {
  grpc::ChannelArguments args;
  tls::ApplyChannelArgs(trust, args);
  args.SetMaxReceiveMessageSize(256 << 20);
  args.SetMaxSendMessageSize(64 << 20);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  channel_ = grpc::CreateCustomChannel(address, tls::ChannelCredentials(trust), args);
  stub_ = v1::ClientService::NewStub(channel_);
  blobs_ = std::make_unique<BlobClient>(channel_, token_);
}

void Client::Prepare(grpc::ClientContext& ctx, int64_t timeout_ms) const {
  ctx.AddMetadata("authorization", "Bearer " + token_);
  if (timeout_ms > 0) {
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms));
  }
}

#define ARTEL_UNARY(method, req, resp, doing) \
  grpc::ClientContext ctx;                    \
  Prepare(ctx, 60'000);                       \
  RETURN_IF_ERROR(FromGrpc(stub_->method(&ctx, req, &resp), doing))

absl::StatusOr<v1::SubmitResponse> Client::Submit(const v1::SubmitRequest& request) {
  v1::SubmitResponse resp;
  ARTEL_UNARY(Submit, request, resp, "submit");
  return resp;
}

absl::StatusOr<v1::TaskInfo> Client::GetTask(uint64_t id) {
  v1::GetTaskRequest req;
  req.set_id(id);
  v1::TaskInfo resp;
  ARTEL_UNARY(GetTask, req, resp, "task " + std::to_string(id));
  return resp;
}

absl::StatusOr<v1::TaskInfo> Client::Cancel(uint64_t id) {
  v1::CancelRequest req;
  req.set_id(id);
  v1::CancelResponse resp;
  ARTEL_UNARY(Cancel, req, resp, "cancel task " + std::to_string(id));
  return resp.task();
}

absl::StatusOr<v1::JobStatus> Client::GetJob(uint64_t id) {
  v1::GetJobRequest req;
  req.set_id(id);
  v1::JobStatus resp;
  ARTEL_UNARY(GetJob, req, resp, "job " + std::to_string(id));
  return resp;
}

absl::StatusOr<v1::ListTasksResponse> Client::ListTasks(const v1::ListTasksRequest& request) {
  v1::ListTasksResponse resp;
  ARTEL_UNARY(ListTasks, request, resp, "list tasks");
  return resp;
}

absl::StatusOr<v1::ListWorkersResponse> Client::ListWorkers() {
  v1::ListWorkersResponse resp;
  ARTEL_UNARY(ListWorkers, v1::ListWorkersRequest(), resp, "list workers");
  return resp;
}

absl::StatusOr<v1::ListCreditResponse> Client::ListCredit() {
  v1::ListCreditResponse resp;
  ARTEL_UNARY(ListCredit, v1::ListCreditRequest(), resp, "list credit");
  return resp;
}

absl::StatusOr<v1::ListAppsResponse> Client::ListApps() {
  v1::ListAppsResponse resp;
  ARTEL_UNARY(ListApps, v1::ListAppsRequest(), resp, "list apps");
  return resp;
}

absl::StatusOr<std::string> Client::CreateToken(v1::Role role) {
  ASSIGN_OR_RETURN(v1::CreateTokenResponse resp, CreateTokenFull(role, "", 0));
  return resp.token();
}

absl::StatusOr<v1::CreateTokenResponse> Client::CreateTokenFull(v1::Role role,
                                                                const std::string& owner,
                                                                int64_t expires_in_ms) {
  v1::CreateTokenRequest req;
  req.set_role(role);
  req.set_owner(owner);
  req.set_expires_in_ms(expires_in_ms);
  v1::CreateTokenResponse resp;
  ARTEL_UNARY(CreateToken, req, resp, "create token");
  return resp;
}

absl::StatusOr<v1::ListTokensResponse> Client::ListTokens() {
  v1::ListTokensResponse resp;
  ARTEL_UNARY(ListTokens, v1::ListTokensRequest(), resp, "list tokens");
  return resp;
}

absl::StatusOr<v1::TokenInfo> Client::RevokeToken(const std::string& id) {
  v1::RevokeTokenRequest req;
  req.set_id(id);
  v1::TokenInfo resp;
  ARTEL_UNARY(RevokeToken, req, resp, "revoke token " + id);
  return resp;
}

absl::StatusOr<v1::Dataset> Client::AddDataset(const v1::Dataset& dataset) {
  v1::AddDatasetRequest req;
  *req.mutable_dataset() = dataset;
  v1::AddDatasetResponse resp;
  ARTEL_UNARY(AddDataset, req, resp, "add data set " + dataset.name());
  return resp.dataset();
}

absl::StatusOr<v1::ListDatasetsResponse> Client::ListDatasets() {
  v1::ListDatasetsResponse resp;
  ARTEL_UNARY(ListDatasets, v1::ListDatasetsRequest(), resp, "list data sets");
  return resp;
}

absl::StatusOr<v1::TrainingJob> Client::StartTraining(const v1::TrainingSpec& spec) {
  v1::StartTrainingRequest req;
  *req.mutable_spec() = spec;
  v1::TrainingJob resp;
  ARTEL_UNARY(StartTraining, req, resp, "start training");
  return resp;
}

absl::StatusOr<v1::TrainingJob> Client::GetTrainingJob(uint64_t id) {
  v1::GetTrainingJobRequest req;
  req.set_id(id);
  v1::TrainingJob resp;
  ARTEL_UNARY(GetTrainingJob, req, resp, "training job " + std::to_string(id));
  return resp;
}

absl::StatusOr<v1::ListTrainingJobsResponse> Client::ListTrainingJobs() {
  v1::ListTrainingJobsResponse resp;
  ARTEL_UNARY(ListTrainingJobs, v1::ListTrainingJobsRequest(), resp, "list training jobs");
  return resp;
}

absl::StatusOr<v1::AppVersion> Client::AddApp(const std::string& name, const std::string& version,
                                              const std::filesystem::path& file,
                                              const std::string& signing_key) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(file, ec)) {
    return absl::NotFoundError("'" + file.string() + "' is not a file; give the app's executable");
  }
  ASSIGN_OR_RETURN(std::string digest, blobs_->UploadFile(file));
  v1::AddAppRequest req;
  req.mutable_app()->set_name(name);
  req.mutable_app()->set_version(version);
  req.mutable_app()->set_digest(digest);
  if (!signing_key.empty()) {
    ASSIGN_OR_RETURN(std::string signature,
                     Sign(signing_key, AppSigningMessage(name, version, digest)));
    req.mutable_app()->set_signature(signature);
  }
  v1::AddAppResponse resp;
  ARTEL_UNARY(AddApp, req, resp, "add app " + name);
  return resp.app();
}

absl::Status Client::Watch(const std::vector<uint64_t>& ids,
                           const std::function<void(const v1::TaskEvent&)>& on_event,
                           uint64_t timeout_ms) {
  const auto start = std::chrono::steady_clock::now();
  std::map<uint64_t, v1::TaskEvent> last;
  while (true) {
    v1::WatchRequest req;
    for (uint64_t id : ids) {
      auto it = last.find(id);
      if (it == last.end() || it->second.state() != v1::TASK_STATE_DONE) req.add_ids(id);
    }
    if (req.ids().empty()) return absl::OkStatus();
    int64_t left = 0;
    if (timeout_ms > 0) {
      const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::steady_clock::now() - start)
                               .count();
      left = static_cast<int64_t>(timeout_ms) - elapsed;
      if (left <= 0) return absl::DeadlineExceededError("timed out waiting for tasks");
    }
    grpc::ClientContext ctx;
    Prepare(ctx, left);
    auto reader = stub_->Watch(&ctx, req);
    v1::TaskEvent e;
    while (reader->Read(&e)) {
      auto it = last.find(e.id());
      if (it == last.end() || it->second.state() != e.state()) {
        last[e.id()] = e;
        on_event(e);
      }
    }
    grpc::Status s = reader->Finish();
    if (s.ok()) continue;
    if (s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
      return absl::DeadlineExceededError("timed out waiting for tasks");
    }
    if (s.error_code() != grpc::StatusCode::UNAVAILABLE) return FromGrpc(s, "watch");
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // coordinator restarting
  }
}

absl::StatusOr<std::vector<std::string>> Client::FetchResult(uint64_t id,
                                                             const std::filesystem::path& dir) {
  ASSIGN_OR_RETURN(v1::TaskInfo task, GetTask(id));
  if (task.state() != v1::TASK_STATE_DONE) {
    return absl::FailedPreconditionError("task " + std::to_string(id) +
                                         " has not finished yet; run `artel wait " +
                                         std::to_string(id) + "` first");
  }
  if (task.outcome() == v1::OUTCOME_SYSTEM_ERROR) {
    return absl::FailedPreconditionError("task " + std::to_string(id) +
                                         " has no result: " + task.reason());
  }
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec)
    return absl::PermissionDeniedError("cannot create '" + dir.string() + "': " + ec.message());
  std::vector<std::string> names;
  for (const v1::OutputFile& f : task.outputs()) {
    RETURN_IF_ERROR(blobs_->DownloadToFile(f.digest(), dir / f.name()));
    names.push_back(f.name());
  }
  return names;
}

}  // namespace artel
