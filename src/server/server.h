// A running coordinator: store, blobs, engine, gRPC server and the ticker
// that expires leases. What `artel coordinator` starts.
#pragma once

#include <atomic>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>

#include "common/clock.h"
#include "common/status.h"
#include "coordinator/coordinator.h"
#include "dashboard/http_server.h"
#include "metrics/metrics.h"

namespace grpc {
class Server;
}

namespace artel {

class BlobServiceImpl;
class ClientServiceImpl;
class WorkerServiceImpl;
class PgBlobs;
class Store;
class TrainingDriver;

struct ServerOptions {
  // Holds artel.db (SQLite), blobs/ and admin.token. Created if missing.
  // One coordinator per directory (a lock file says so).
  std::filesystem::path data_dir;
  // Where the durable state lives: "" for SQLite in data_dir, or a
  // PostgreSQL URL (postgres://USER[:PASSWORD]@HOST[:PORT]/DB), which then
  // holds the blobs too (data_dir/blobs is a cache).
  std::string store_url;
  // host:port to listen on; port 0 picks a free one (see port()).
  std::string listen = "127.0.0.1:7700";
  uint64_t max_blob_bytes = 4ull << 30;  // largest accepted blob [4 GiB]
  uint64_t tick_interval_ms = 200;       // how often leases are checked [200 ms]
  // With a PostgreSQL store, coordinators sharing it elect one leader: the
  // others stand by (not listening) until its lease of this long ends, and
  // the leader renews it every leader_lease_ms / 5. [5 s]
  int64_t leader_lease_ms = 5000;
  CoordinatorOptions coordinator;
  // Plain TCP instead of TLS. [false]
  bool insecure = false;
  // The TLS certificate and key to serve; both empty: a self-signed pair
  // kept in data_dir/tls/, made on first start.
  std::filesystem::path tls_cert, tls_key;
  // The dashboard and /metrics: host:port ("" = off; port 0 picks a free
  // one). The address bound is written to data_dir/http.addr.
  std::string http_listen = "127.0.0.1:7780";
  // Fail to start if http_listen cannot be served; otherwise that is logged
  // and the coordinator runs without a dashboard. [false]
  bool http_required = false;
  // Serve the dashboard over HTTPS with the gRPC certificate. [false]
  bool http_tls = false;
  // The dashboard's page files from this directory instead of the built-in
  // ones. [built-in]
  std::filesystem::path http_assets;
  // The ML app (artel-ml) registered at start as app "artel-ml", version
  // "auto-" + the first 12 hex digits of its SHA-256, unless that file is
  // already registered under that name. Empty: none. With a project key
  // (coordinator.app_public_key) it is not registered: the coordinator
  // holds no private key to sign it.
  std::filesystem::path ml_app;
};

// Thread-safe. Destruction shuts the server down.
class CoordinatorServer {
 public:
  // Opens the data dir, resumes its state and starts serving.
  static absl::StatusOr<std::unique_ptr<CoordinatorServer>> Start(const ServerOptions& options);
  ~CoordinatorServer();

  int port() const { return port_; }
  // The admin token, if this start created it (first start of a data dir).
  const std::string& new_admin_token() const { return new_admin_token_; }
  // SHA-256 of the served certificate ("" with plain TCP).
  const std::string& tls_fingerprint() const { return tls_fingerprint_; }
  // "http://host:port" of the dashboard ("" when off).
  std::string http_url() const;
  Coordinator& coordinator() { return *coordinator_; }
  // Blocks until Shutdown() is called from another thread.
  void Wait();
  void Shutdown();

 private:
  CoordinatorServer() = default;

  RealClock clock_;
  metrics::Registry metrics_;
  int data_lock_fd_ = -1;  // flock on data_dir/coordinator.lock
  std::unique_ptr<Store> store_;
  std::unique_ptr<PgBlobs> shared_blobs_;  // with a PostgreSQL store; outlives blobs_
  std::unique_ptr<BlobStore> blobs_;
  std::unique_ptr<Sandbox> validator_sandbox_;
  std::unique_ptr<Coordinator> coordinator_;
  std::unique_ptr<ClientServiceImpl> client_service_;
  std::unique_ptr<WorkerServiceImpl> worker_service_;
  std::unique_ptr<BlobServiceImpl> blob_service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<TrainingDriver> driver_;
  std::unique_ptr<dashboard::Throughput> throughput_;
  std::unique_ptr<dashboard::Api> api_;
  std::unique_ptr<dashboard::HttpServer> http_;
  std::atomic<bool> stopping_{false};
  std::thread ticker_;
  std::thread lease_renewer_;  // with a PostgreSQL store
  int port_ = 0;
  std::string new_admin_token_;
  std::string tls_fingerprint_;
};

}  // namespace artel
