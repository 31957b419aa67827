#include "coordinator/server.h"

#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include <fstream>

#include "blob/blob_service.h"
#include "coordinator/services.h"
#include "coordinator/training_driver.h"
#include "sandbox/bubblewrap_sandbox.h"
#include "store/sqlite_store.h"
#include "tls/tls.h"

namespace artel {

absl::StatusOr<std::unique_ptr<CoordinatorServer>> CoordinatorServer::Start(
    const ServerOptions& options) {
  std::error_code ec;
  std::filesystem::create_directories(options.data_dir, ec);
  if (ec) {
    return absl::PermissionDeniedError("cannot create data directory '" +
                                       options.data_dir.string() + "': " + ec.message() +
                                       "; pass a writable --data");
  }
  std::unique_ptr<CoordinatorServer> s(new CoordinatorServer());
  std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
  CoordinatorOptions coordinator_options = options.coordinator;
  if (!options.insecure) {
    const std::string host = options.listen.substr(0, options.listen.rfind(':'));
    ASSIGN_OR_RETURN(
        tls::Identity identity,
        tls::LoadOrCreate(options.data_dir / "tls", options.tls_cert, options.tls_key, {host}));
    ASSIGN_OR_RETURN(s->tls_fingerprint_, tls::Fingerprint(identity.cert_pem));
    coordinator_options.tls_fingerprint = s->tls_fingerprint_;
    credentials = tls::ServerCredentials(identity);
  }
  ASSIGN_OR_RETURN(s->store_, SqliteStore::Open((options.data_dir / "artel.db").string()));
  ASSIGN_OR_RETURN(s->blobs_, BlobStore::Open(options.data_dir / "blobs", options.max_blob_bytes));
  // Validator apps run in the same sandbox as any app, on this host.
  if (auto sandbox = BubblewrapSandbox::Create(); sandbox.ok()) {
    s->validator_sandbox_ = *std::move(sandbox);
  } else {
    spdlog::warn("no sandbox for validator apps ({}); tasks cannot name one",
                 std::string(sandbox.status().message()));
  }
  s->coordinator_ = std::make_unique<Coordinator>(*s->store_, *s->blobs_, s->clock_,
                                                  coordinator_options, s->validator_sandbox_.get());
  RETURN_IF_ERROR(s->coordinator_->Load());
  ASSIGN_OR_RETURN(std::optional<std::string> admin, s->coordinator_->EnsureAdminToken());
  const std::filesystem::path token_file = options.data_dir / "admin.token";
  if (admin.has_value()) {
    s->new_admin_token_ = *admin;  // it carries the TLS pin, as every new token does
    {
      std::ofstream out(token_file, std::ios::trunc);
      out << s->new_admin_token_ << "\n";
      if (!out) {
        return absl::PermissionDeniedError("cannot write '" + token_file.string() + "'");
      }
    }
    std::filesystem::permissions(
        token_file, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  }

  Coordinator& coordinator = *s->coordinator_;
  s->client_service_ = std::make_unique<ClientServiceImpl>(coordinator);
  s->worker_service_ = std::make_unique<WorkerServiceImpl>(coordinator);
  s->blob_service_ =
      std::make_unique<BlobServiceImpl>(*s->blobs_, [&coordinator](grpc::ServerContext* ctx) {
        return Authorize(coordinator, ctx, {v1::ROLE_SUBMITTER, v1::ROLE_WORKER});
      });
  grpc::ServerBuilder builder;
  // Two coordinators must never share one address: a second one fails to
  // start instead of splitting the requests with the first.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(options.listen, credentials, &s->port_);
  builder.SetMaxReceiveMessageSize(64 << 20);
  builder.SetMaxSendMessageSize(64 << 20);
  builder.RegisterService(s->client_service_.get());
  builder.RegisterService(s->worker_service_.get());
  builder.RegisterService(s->blob_service_.get());
  s->server_ = builder.BuildAndStart();
  if (s->server_ == nullptr || s->port_ == 0) {
    return absl::UnavailableError("cannot listen on " + options.listen +
                                  "; is another coordinator running there? pick another --listen");
  }
  s->driver_ = std::make_unique<TrainingDriver>(coordinator);
  s->driver_->Start();
  const uint64_t tick_ms = options.tick_interval_ms;
  CoordinatorServer* raw = s.get();
  s->ticker_ = std::thread([raw, tick_ms] {
    while (!raw->stopping_.load()) {
      absl::Status st = raw->coordinator_->Tick();
      if (!st.ok()) spdlog::warn("tick: {}", st.ToString());
      std::this_thread::sleep_for(std::chrono::milliseconds(tick_ms));
    }
  });
  return s;
}

void CoordinatorServer::Wait() { server_->Wait(); }

void CoordinatorServer::Shutdown() {
  if (stopping_.exchange(true)) return;
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
}

CoordinatorServer::~CoordinatorServer() {
  Shutdown();
  if (driver_) driver_->Stop();
  if (ticker_.joinable()) ticker_.join();
}

}  // namespace artel
