// gRPC adapters over Coordinator: check the caller's token and role, call
// the engine, translate absl::Status into grpc::Status (code and message
// kept, so the user reads what to fix).
#pragma once

#include <initializer_list>

#include "artel/v1/artel.grpc.pb.h"
#include "coordinator/coordinator.h"

namespace artel {

grpc::Status ToGrpc(const absl::Status& status);

// OK if the call carries a token with one of `roles` (admin always passes).
// The token of a call: its "authorization" metadata without "Bearer "
// ("" when absent).
std::string BearerToken(const grpc::ServerContext* context);
grpc::Status Authorize(const Coordinator& coordinator, grpc::ServerContext* context,
                       std::initializer_list<v1::Role> roles);

class ClientServiceImpl final : public v1::ClientService::Service {
 public:
  explicit ClientServiceImpl(Coordinator& coordinator) : coordinator_(coordinator) {}
  grpc::Status Submit(grpc::ServerContext* ctx, const v1::SubmitRequest* req,
                      v1::SubmitResponse* resp) override;
  grpc::Status GetTask(grpc::ServerContext* ctx, const v1::GetTaskRequest* req,
                       v1::TaskInfo* resp) override;
  grpc::Status Watch(grpc::ServerContext* ctx, const v1::WatchRequest* req,
                     grpc::ServerWriter<v1::TaskEvent>* writer) override;
  grpc::Status Cancel(grpc::ServerContext* ctx, const v1::CancelRequest* req,
                      v1::CancelResponse* resp) override;
  grpc::Status GetJob(grpc::ServerContext* ctx, const v1::GetJobRequest* req,
                      v1::JobStatus* resp) override;
  grpc::Status ListTasks(grpc::ServerContext* ctx, const v1::ListTasksRequest* req,
                         v1::ListTasksResponse* resp) override;
  grpc::Status ListWorkers(grpc::ServerContext* ctx, const v1::ListWorkersRequest* req,
                           v1::ListWorkersResponse* resp) override;
  grpc::Status ListCredit(grpc::ServerContext* ctx, const v1::ListCreditRequest* req,
                          v1::ListCreditResponse* resp) override;
  grpc::Status AddApp(grpc::ServerContext* ctx, const v1::AddAppRequest* req,
                      v1::AddAppResponse* resp) override;
  grpc::Status ListApps(grpc::ServerContext* ctx, const v1::ListAppsRequest* req,
                        v1::ListAppsResponse* resp) override;
  grpc::Status CreateToken(grpc::ServerContext* ctx, const v1::CreateTokenRequest* req,
                           v1::CreateTokenResponse* resp) override;
  grpc::Status ListTokens(grpc::ServerContext* ctx, const v1::ListTokensRequest* req,
                          v1::ListTokensResponse* resp) override;
  grpc::Status RevokeToken(grpc::ServerContext* ctx, const v1::RevokeTokenRequest* req,
                           v1::TokenInfo* resp) override;
  grpc::Status AddDataset(grpc::ServerContext* ctx, const v1::AddDatasetRequest* req,
                          v1::AddDatasetResponse* resp) override;
  grpc::Status ListDatasets(grpc::ServerContext* ctx, const v1::ListDatasetsRequest* req,
                            v1::ListDatasetsResponse* resp) override;
  grpc::Status StartTraining(grpc::ServerContext* ctx, const v1::StartTrainingRequest* req,
                             v1::TrainingJob* resp) override;
  grpc::Status GetTrainingJob(grpc::ServerContext* ctx, const v1::GetTrainingJobRequest* req,
                              v1::TrainingJob* resp) override;
  grpc::Status ListTrainingJobs(grpc::ServerContext* ctx, const v1::ListTrainingJobsRequest* req,
                                v1::ListTrainingJobsResponse* resp) override;

 private:
  Coordinator& coordinator_;
};

class WorkerServiceImpl final : public v1::WorkerService::Service {
 public:
  explicit WorkerServiceImpl(Coordinator& coordinator) : coordinator_(coordinator) {}
  grpc::Status Register(grpc::ServerContext* ctx, const v1::RegisterRequest* req,
                        v1::RegisterResponse* resp) override;
  grpc::Status Heartbeat(grpc::ServerContext* ctx, const v1::HeartbeatRequest* req,
                         v1::HeartbeatResponse* resp) override;
  grpc::Status FetchWork(grpc::ServerContext* ctx, const v1::FetchWorkRequest* req,
                         v1::FetchWorkResponse* resp) override;
  grpc::Status Report(grpc::ServerContext* ctx, const v1::ReportRequest* req,
                      v1::ReportResponse* resp) override;

 private:
  Coordinator& coordinator_;
};

}  // namespace artel
