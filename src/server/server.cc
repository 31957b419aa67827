#include "server/server.h"

#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <unistd.h>

#include <fstream>

#include "blob/blob_service.h"
#include "common/sha256.h"
#include "coordinator/services.h"
#include "coordinator/training_driver.h"
#include "sandbox/bubblewrap_sandbox.h"
#include "server/rpc_metrics.h"
#include "server/server_metrics.h"
#include "store/pg_blobs.h"
#include "store/postgres_store.h"
#include "store/sqlite_store.h"
#include "tls/tls.h"

namespace artel {
namespace {

constexpr char kMlAppName[] = "artel-ml";

// Takes the leader lease of the database, waiting (as a standby that does
// not listen yet) while another coordinator holds it.
absl::Status LeadOrStandBy(PostgresStore& pg, const ServerOptions& options) {
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  const std::string holder = std::string(host) + ":" + std::to_string(::getpid());
  bool said = false;
  for (;;) {
    absl::StatusOr<uint64_t> term =
        pg.AcquireLeadership(holder, options.listen, options.leader_lease_ms);
    if (term.ok()) {
      spdlog::info("leading the grid on {} (term {})", pg.where(), *term);
      return absl::OkStatus();
    }
    const absl::StatusCode code = term.status().code();
    if (code != absl::StatusCode::kUnavailable && code != absl::StatusCode::kAborted) {
      return term.status();
    }
    if (!said) {
      spdlog::info("standing by: {}; taking over when its lease ends",
                   std::string(term.status().message()));
      said = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
}

// Registers the ML app file `path` unless it is registered already (see
// ServerOptions::ml_app). A missing file or a signed-apps coordinator is
// logged, not an error: the grid still runs tasks.
void RegisterMlApp(Coordinator& coordinator, BlobStore& blobs, const std::filesystem::path& path,
                   bool signed_apps) {
  if (path.empty()) return;
  if (signed_apps) {
    spdlog::info(
        "{} is not registered automatically: this coordinator runs only signed apps; register "
        "it with `artel app add {} --version V {} --sign PROJECT.key`",
        kMlAppName, kMlAppName, path.string());
    return;
  }
  absl::StatusOr<std::string> digest = blobs.PutFile(path);
  if (!digest.ok()) {
    spdlog::warn("cannot register the ML app {}: {}; training needs it (--ml-app PATH)",
                 path.string(), std::string(digest.status().message()));
    return;
  }
  const v1::ListAppsResponse apps = coordinator.ListApps();
  for (const v1::AppVersion& app : apps.apps()) {
    if (app.name() == kMlAppName && app.digest() == *digest) return;
  }
  v1::AppVersion app;
  app.set_name(kMlAppName);
  app.set_version("auto-" + digest->substr(0, 12));
  app.set_digest(*digest);
  absl::StatusOr<v1::AppVersion> added = coordinator.AddApp(app);
  if (!added.ok()) {
    spdlog::warn("cannot register the ML app {}: {}", path.string(),
                 std::string(added.status().message()));
    return;
  }
  spdlog::info("registered the ML app {} as {} version {}", path.string(), kMlAppName,
               added->version());
}

}  // namespace

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
  metrics::Histogram& commit_seconds = s->metrics_.GetHistogram(
      "artel_store_commit_duration_seconds",
      "Time of one durable store transaction (a group of batches).", metrics::LatencyBuckets());
  metrics::Histogram& commit_batches = s->metrics_.GetHistogram(
      "artel_store_commit_batches", "Change batches grouped into one store transaction.",
      {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024});
  coordinator_options.on_commit = [&commit_seconds, &commit_batches](uint64_t batches,
                                                                     double seconds) {
    commit_seconds.Observe(seconds);
    commit_batches.Observe(static_cast<double>(batches));
  };
  if (!options.insecure) {
    const std::string host = options.listen.substr(0, options.listen.rfind(':'));
    ASSIGN_OR_RETURN(
        tls::Identity identity,
        tls::LoadOrCreate(options.data_dir / "tls", options.tls_cert, options.tls_key, {host}));
    ASSIGN_OR_RETURN(s->tls_fingerprint_, tls::Fingerprint(identity.cert_pem));
    coordinator_options.tls_fingerprint = s->tls_fingerprint_;
    credentials = tls::ServerCredentials(identity);
  }
  // Two coordinators on one data directory would each think they own its
  // state; the second one stops here.
  const std::filesystem::path lock_file = options.data_dir / "coordinator.lock";
  s->data_lock_fd_ = ::open(lock_file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (s->data_lock_fd_ < 0 || ::flock(s->data_lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    return absl::FailedPreconditionError(
        "another coordinator is running on data directory '" + options.data_dir.string() +
        "' (it holds " + lock_file.string() + "); stop it, or give this one another --data");
  }
  if (options.store_url.empty()) {
    ASSIGN_OR_RETURN(s->store_, SqliteStore::Open((options.data_dir / "artel.db").string()));
  } else if (options.store_url.rfind("postgres://", 0) == 0 ||
             options.store_url.rfind("postgresql://", 0) == 0) {
    ASSIGN_OR_RETURN(std::unique_ptr<PostgresStore> pg, PostgresStore::Open(options.store_url));
    RETURN_IF_ERROR(LeadOrStandBy(*pg, options));
    PostgresStore* raw_pg = pg.get();
    s->store_ = std::move(pg);
    CoordinatorServer* raw = s.get();
    const int64_t lease_ms = options.leader_lease_ms;
    s->lease_renewer_ = std::thread([raw, raw_pg, lease_ms] {
      while (!raw->stopping_.load()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(lease_ms / 5));
        if (raw->stopping_.load()) break;
        absl::Status renewed = raw_pg->RenewLeadership(lease_ms);
        if (!renewed.ok() && renewed.code() != absl::StatusCode::kUnavailable) {
          // Deposed: another coordinator leads. Stop at once; every write of
          // ours would be refused anyway (fenced by our term).
          spdlog::critical("{}; stopping", std::string(renewed.message()));
          std::_Exit(3);
        }
      }
    });
  } else {
    return absl::InvalidArgumentError(
        "--store '" + options.store_url +
        "' is not a PostgreSQL URL; give postgres://USER[:PASSWORD]@HOST[:PORT]/DB, or leave "
        "--store out for SQLite in --data");
  }
  if (!options.store_url.empty()) {
    // Blobs too live in the database, where every coordinator reads them;
    // data_dir/blobs is this coordinator's cache.
    ASSIGN_OR_RETURN(s->shared_blobs_, PgBlobs::Open(options.store_url));
  }
  ASSIGN_OR_RETURN(s->blobs_, BlobStore::Open(options.data_dir / "blobs", options.max_blob_bytes,
                                              s->shared_blobs_.get()));
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
  RegisterMlApp(*s->coordinator_, *s->blobs_, options.ml_app,
                !options.coordinator.app_public_key.empty());
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
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(std::make_unique<RpcMetricsFactory>(s->metrics_));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  s->server_ = builder.BuildAndStart();
  if (s->server_ == nullptr || s->port_ == 0) {
    return absl::UnavailableError("cannot listen on " + options.listen +
                                  "; is another coordinator running there? pick another --listen");
  }
  AddCoordinatorCollector(s->metrics_, coordinator, *s->blob_service_);
  s->throughput_ = std::make_unique<dashboard::Throughput>();
  s->api_ = std::make_unique<dashboard::Api>(coordinator, s->metrics_, *s->throughput_);
  const std::filesystem::path http_file = options.data_dir / "http.addr";
  std::filesystem::remove(http_file, ec);
  if (!options.http_listen.empty()) {
    dashboard::HttpOptions http;
    http.listen = options.http_listen;
    http.assets_dir = options.http_assets;
    if (options.http_tls) {
      if (options.insecure) {
        return absl::InvalidArgumentError(
            "--http-tls serves the gRPC certificate, but --insecure has none; drop one of them");
      }
      http.tls_cert =
          options.tls_cert.empty() ? options.data_dir / "tls" / "cert.pem" : options.tls_cert;
      http.tls_key =
          options.tls_key.empty() ? options.data_dir / "tls" / "key.pem" : options.tls_key;
    }
    absl::StatusOr<std::unique_ptr<dashboard::HttpServer>> started =
        dashboard::HttpServer::Start(http, *s->api_);
    if (started.ok()) {
      s->http_ = *std::move(started);
      std::ofstream(http_file, std::ios::trunc) << s->http_url() << "\n";
    } else if (options.http_required) {
      return started.status();
    } else {
      spdlog::warn("no dashboard: {}", std::string(started.status().message()));
    }
  }
  s->driver_ = std::make_unique<TrainingDriver>(coordinator);
  s->driver_->Start();
  const uint64_t tick_ms = options.tick_interval_ms;
  CoordinatorServer* raw = s.get();
  s->ticker_ = std::thread([raw, tick_ms] {
    int64_t last_sample_ms = 0;
    while (!raw->stopping_.load()) {
      absl::Status st = raw->coordinator_->Tick();
      if (!st.ok()) spdlog::warn("tick: {}", st.ToString());
      const int64_t now = raw->clock_.NowMs();
      if (now - last_sample_ms >= 5000) {  // the overview's tasks per second
        raw->throughput_->Sample(now, raw->coordinator_->Stats().done);
        last_sample_ms = now;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(tick_ms));
    }
  });
  return s;
}

std::string CoordinatorServer::http_url() const {
  return http_ == nullptr ? "" : http_->scheme() + "://" + http_->address();
}

void CoordinatorServer::Wait() { server_->Wait(); }

void CoordinatorServer::Shutdown() {
  if (stopping_.exchange(true)) return;
  if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
}

CoordinatorServer::~CoordinatorServer() {
  Shutdown();
  if (http_) http_->Stop();
  if (driver_) driver_->Stop();
  if (ticker_.joinable()) ticker_.join();
  if (lease_renewer_.joinable()) lease_renewer_.join();
  server_.reset();  // no RPC reaches the engine from here on
  coordinator_.reset();
  store_.reset();
  if (data_lock_fd_ >= 0) ::close(data_lock_fd_);  // releases the flock
}

}  // namespace artel
