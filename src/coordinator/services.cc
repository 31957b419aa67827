#include "coordinator/services.h"

namespace artel {
namespace {

constexpr auto kSubmitter = v1::ROLE_SUBMITTER;
constexpr auto kWorker = v1::ROLE_WORKER;
constexpr auto kAdmin = v1::ROLE_ADMIN;

const char* RoleName(v1::Role role) {
  switch (role) {
    case v1::ROLE_ADMIN:
      return "admin";
    case v1::ROLE_SUBMITTER:
      return "submitter";
    case v1::ROLE_WORKER:
      return "worker";
    default:
      return "unknown";
  }
}

// Runs `body` (returning absl::Status) after authorizing `roles`.
template <typename Body>
grpc::Status Guarded(const Coordinator& c, grpc::ServerContext* ctx,
                     std::initializer_list<v1::Role> roles, Body body) {
  grpc::Status auth = Authorize(c, ctx, roles);
  if (!auth.ok()) return auth;
  return ToGrpc(body());
}

}  // namespace

grpc::Status ToGrpc(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

std::string BearerToken(const grpc::ServerContext* context) {
  const auto& md = context->client_metadata();
  auto it = md.find("authorization");
  if (it == md.end()) return "";
  std::string value(it->second.data(), it->second.size());
  constexpr std::string_view kBearer = "Bearer ";
  if (value.rfind(kBearer, 0) == 0) value = value.substr(kBearer.size());
  // A token may carry the server's TLS pin after '#' (SECRET#FINGERPRINT);
  // only the secret identifies the caller.
  return value.substr(0, value.find('#'));
}

grpc::Status Authorize(const Coordinator& coordinator, grpc::ServerContext* context,
                       std::initializer_list<v1::Role> roles) {
  absl::StatusOr<v1::Role> role = coordinator.Authenticate(BearerToken(context));
  if (!role.ok()) return ToGrpc(role.status());
  if (*role == v1::ROLE_ADMIN) return grpc::Status::OK;
  std::string wanted;
  for (v1::Role r : roles) {
    if (r == *role) return grpc::Status::OK;
    wanted += (wanted.empty() ? "" : " or ") + std::string(RoleName(r));
  }
  return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                      std::string("this call needs a ") + wanted + " token, but a " +
                          RoleName(*role) + " token was given; use a token of the right role");
}

grpc::Status ClientServiceImpl::Submit(grpc::ServerContext* ctx, const v1::SubmitRequest* req,
                                       v1::SubmitResponse* resp) {
  return Guarded(coordinator_, ctx, {kSubmitter}, [&]() -> absl::Status {
    ASSIGN_OR_RETURN(*resp, coordinator_.Submit(*req));
    return absl::OkStatus();
  });
}

grpc::Status ClientServiceImpl::GetTask(grpc::ServerContext* ctx, const v1::GetTaskRequest* req,
                                        v1::TaskInfo* resp) {
  return Guarded(coordinator_, ctx, {kSubmitter}, [&]() -> absl::Status {
    ASSIGN_OR_RETURN(*resp, coordinator_.GetTask(req->id()));
    return absl::OkStatus();
  });
}

grpc::Status ClientServiceImpl::Watch(grpc::ServerContext* ctx, const v1::WatchRequest* req,
                                      grpc::ServerWriter<v1::TaskEvent>* writer) {
  return Guarded(coordinator_, ctx, {kSubmitter}, [&]() -> absl::Status {
    if (req->ids().empty())
      return absl::InvalidArgumentError("no task ids to watch; give at least one");
    std::vector<uint64_t> ids(req->ids().begin(), req->ids().end());
    std::map<uint64_t, v1::TaskEvent> seen;
    while (!ctx->IsCancelled()) {
      ASSIGN_OR_RETURN(auto events, coordinator_.WaitForEvents(ids, &seen, 500));
      for (const auto& e : events) {
        if (!writer->Write(e)) return absl::OkStatus();
      }
      bool all_done = true;
      for (const auto& [id, e] : seen) all_done &= e.state() == v1::TASK_STATE_DONE;
      if (all_done && seen.size() == ids.size()) return absl::OkStatus();
    }
    return absl::CancelledError("the client went away");
  });
}

grpc::Status ClientServiceImpl::Cancel(grpc::ServerContext* ctx, const v1::CancelRequest* req,
                                       v1::CancelResponse* resp) {
  return Guarded(coordinator_, ctx, {kSubmitter}, [&]() -> absl::Status {
    ASSIGN_OR_RETURN(*resp->mutable_task(), coordinator_.Cancel(req->id()));
    return absl::OkStatus();
  });
}

grpc::Status ClientServiceImpl::GetJob(grpc::ServerContext* ctx, const v1::GetJobRequest* req,
                                       v1::JobStatus* resp) {
  return Guarded(coordinator_, ctx, {kSubmitter}, [&]() -> absl::Status {
    ASSIGN_OR_RETURN(*resp, coordinator_.GetJob(req->id()));
    return absl::OkStatus();
  });
}

grpc::Status ClientServiceImpl::ListTasks(grpc::ServerContext* ctx, const v1::ListTasksRequest* req,
                                          v1::ListTasksResponse* resp) {
  return Guarded(coordinator_, ctx, {kSubmitter}, [&]() -> absl::Status {
    *resp = coordinator_.ListTasks(*req);
    return absl::OkStatus();
  });
}

grpc::Status ClientServiceImpl::ListWorkers(grpc::ServerContext* ctx,
                                            const v1::ListWorkersRequest* req,
                                            v1::ListWorkersResponse* resp) {
  return Guarded(coordinator_, ctx, {kSubmitter}, [&]() -> absl::Status {
    *resp = coordinator_.ListWorkers();
    return absl::OkStatus();
  });
}

grpc::Status ClientServiceImpl::ListCredit(grpc::ServerContext* ctx,
                                           const v1::ListCreditRequest* req,
                                           v1::ListCreditResponse* resp) {
  return Guarded(coordinator_, ctx, {kSubmitter}, [&]() -> absl::Status {
    *resp = coordinator_.ListCredit();
    return absl::OkStatus();
  });
}

grpc::Status ClientServiceImpl::AddApp(grpc::ServerContext* ctx, const v1::AddAppRequest* req,
                                       v1::AddAppResponse* resp) {
  return Guarded(coordinator_, ctx, {kAdmin}, [&]() -> absl::Status {
    ASSIGN_OR_RETURN(*resp->mutable_app(), coordinator_.AddApp(req->app()));
    return absl::OkStatus();
  });
}

grpc::Status ClientServiceImpl::ListApps(grpc::ServerContext* ctx, const v1::ListAppsRequest* req,
                                         v1::ListAppsResponse* resp) {
  return Guarded(coordinator_, ctx, {kSubmitter, kWorker}, [&]() -> absl::Status {
    *resp = coordinator_.ListApps();
    return absl::OkStatus();
  });
}

grpc::Status ClientServiceImpl::CreateToken(grpc::ServerContext* ctx,
                                            const v1::CreateTokenRequest* req,
                                            v1::CreateTokenResponse* resp) {
  return Guarded(coordinator_, ctx, {kAdmin}, [&]() -> absl::Status {
    ASSIGN_OR_RETURN(*resp,
                     coordinator_.CreateToken(req->role(), req->owner(), req->expires_in_ms()));
    return absl::OkStatus();
  });
}

grpc::Status ClientServiceImpl::ListTokens(grpc::ServerContext* ctx,
                                           const v1::ListTokensRequest* /*req*/,
                                           v1::ListTokensResponse* resp) {
  return Guarded(coordinator_, ctx, {kAdmin}, [&]() -> absl::Status {
    *resp = coordinator_.ListTokens();
    return absl::OkStatus();
  });
}

grpc::Status ClientServiceImpl::RevokeToken(grpc::ServerContext* ctx,
                                            const v1::RevokeTokenRequest* req,
                                            v1::TokenInfo* resp) {
  return Guarded(coordinator_, ctx, {kAdmin}, [&]() -> absl::Status {
    ASSIGN_OR_RETURN(*resp, coordinator_.RevokeToken(req->id()));
    return absl::OkStatus();
  });
}

grpc::Status ClientServiceImpl::AddDataset(grpc::ServerContext* ctx,
                                           const v1::AddDatasetRequest* req,
                                           v1::AddDatasetResponse* resp) {
  return Guarded(coordinator_, ctx, {kSubmitter}, [&]() -> absl::Status {
    ASSIGN_OR_RETURN(*resp->mutable_dataset(), coordinator_.AddDataset(req->dataset()));
    return absl::OkStatus();
  });
}

grpc::Status ClientServiceImpl::ListDatasets(grpc::ServerContext* ctx,
                                             const v1::ListDatasetsRequest* req,
                                             v1::ListDatasetsResponse* resp) {
  return Guarded(coordinator_, ctx, {kSubmitter}, [&]() -> absl::Status {
    *resp = coordinator_.ListDatasets();
    return absl::OkStatus();
  });
}

grpc::Status ClientServiceImpl::StartTraining(grpc::ServerContext* ctx,
                                              const v1::StartTrainingRequest* req,
                                              v1::TrainingJob* resp) {
  return Guarded(coordinator_, ctx, {kSubmitter}, [&]() -> absl::Status {
    ASSIGN_OR_RETURN(*resp, coordinator_.StartTraining(req->spec()));
    return absl::OkStatus();
  });
}

grpc::Status ClientServiceImpl::GetTrainingJob(grpc::ServerContext* ctx,
                                               const v1::GetTrainingJobRequest* req,
                                               v1::TrainingJob* resp) {
  return Guarded(coordinator_, ctx, {kSubmitter}, [&]() -> absl::Status {
    ASSIGN_OR_RETURN(*resp, coordinator_.GetTrainingJob(req->id()));
    return absl::OkStatus();
  });
}

grpc::Status ClientServiceImpl::ListTrainingJobs(grpc::ServerContext* ctx,
                                                 const v1::ListTrainingJobsRequest* req,
                                                 v1::ListTrainingJobsResponse* resp) {
  return Guarded(coordinator_, ctx, {kSubmitter}, [&]() -> absl::Status {
    *resp = coordinator_.ListTrainingJobs();
    return absl::OkStatus();
  });
}

grpc::Status WorkerServiceImpl::Register(grpc::ServerContext* ctx, const v1::RegisterRequest* req,
                                         v1::RegisterResponse* resp) {
  return Guarded(coordinator_, ctx, {kWorker}, [&]() -> absl::Status {
    ASSIGN_OR_RETURN(*resp, coordinator_.Register(*req, coordinator_.OwnerOf(BearerToken(ctx))));
    return absl::OkStatus();
  });
}

grpc::Status WorkerServiceImpl::Heartbeat(grpc::ServerContext* ctx, const v1::HeartbeatRequest* req,
                                          v1::HeartbeatResponse* resp) {
  return Guarded(coordinator_, ctx, {kWorker}, [&]() -> absl::Status {
    ASSIGN_OR_RETURN(*resp, coordinator_.Heartbeat(*req));
    return absl::OkStatus();
  });
}

grpc::Status WorkerServiceImpl::FetchWork(grpc::ServerContext* ctx, const v1::FetchWorkRequest* req,
                                          v1::FetchWorkResponse* resp) {
  return Guarded(coordinator_, ctx, {kWorker}, [&]() -> absl::Status {
    ASSIGN_OR_RETURN(*resp, coordinator_.FetchWork(*req));
    return absl::OkStatus();
  });
}

grpc::Status WorkerServiceImpl::Report(grpc::ServerContext* ctx, const v1::ReportRequest* req,
                                       v1::ReportResponse* resp) {
  return Guarded(coordinator_, ctx, {kWorker}, [&]() { return coordinator_.Report(*req); });
}

}  // namespace artel
