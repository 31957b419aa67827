// A coordinator and workers as separate local processes, in one directory:
// what `artel demo`, `artel bench` and the multi-process tests start.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "client/client.h"
#include "common/status.h"
#include "common/subprocess.h"

namespace artel {

struct LocalClusterOptions {
  std::filesystem::path artel_binary;         // the `artel` executable
  std::filesystem::path root;                 // created if missing; holds all data and logs
  std::vector<std::string> coordinator_args;  // extra flags, e.g. {"--worker-timeout", "3s"}
  // The host the coordinator listens on ["127.0.0.1"]. "0.0.0.0" also
  // accepts workers in other network namespaces (WorkerPlacement); address()
  // and the client still use loopback.
  std::string coordinator_host = "127.0.0.1";
  // Make a project key pair in root/project-key/ and start the coordinator
  // with its public half, so that only signed apps run (signing_key()).
  // [true]
  bool sign_apps = true;
};

// Where a worker process runs, to make it stand for a separate machine (the
// volunteer benchmark). Every field is optional; the default is the parent's
// cgroups and network, dialing address(). The worker's children (sandboxed
// apps, warm executors) inherit all of it.
struct WorkerPlacement {
  // Cgroup directories (v1 or v2, e.g. /sys/fs/cgroup/cpu/NAME) the worker
  // joins before it starts, by writing its pid to each one's cgroup.procs.
  // REQUIRES: they exist and the caller may write cgroup.procs (root). [none]
  std::vector<std::filesystem::path> cgroups;
  // A network namespace made with `ip netns add` to start the worker in
  // (through `ip netns exec`). REQUIRES: root. [empty: the caller's]
  std::string netns;
  // The host (or IP) the worker dials instead of address()'s, on the
  // coordinator's port: from a network namespace, an address that routes
  // to the coordinator, e.g. the host side of a veth pair. [empty: address()]
  std::string coordinator_host;
  // The owner of the worker token it gets (a token of its own per worker,
  // so that replicas of a task may run on two of them). [its name]
  std::string owner;
};

// Not thread-safe. Destruction kills every process it started.
class LocalCluster {
 public:
  static absl::StatusOr<std::unique_ptr<LocalCluster>> Start(LocalClusterOptions options);
  ~LocalCluster();

  // Starts a worker process named `name` with extra flags; returns its index.
  absl::StatusOr<size_t> AddWorker(const std::string& name, std::vector<std::string> extra = {});
  // The same, placed as `placement` says. Fails (and starts nothing) when a
  // cgroup's cgroup.procs is not writable or the namespace does not exist.
  // worker(i).pid() is the worker's own pid (the wrappers exec it).
  absl::StatusOr<size_t> AddWorker(const std::string& name, std::vector<std::string> extra,
                                   const WorkerPlacement& placement);
  Subprocess& worker(size_t i) { return workers_.at(i); }
  size_t worker_count() const { return workers_.size(); }

  void KillCoordinator() { coordinator_.Kill(); }
  // Starts the coordinator again on the same address and data.
  absl::Status RestartCoordinator();
  Subprocess& coordinator() { return coordinator_; }

  const std::string& address() const { return address_; }  // loopback host:port
  // The dashboard's "http://host:port" (a free port unless coordinator_args
  // pass --http); "" when it is off.
  std::string http_url() const;
  uint16_t port() const { return port_; }
  const std::string& admin_token() const { return admin_token_; }
  const std::string& worker_token() const { return worker_token_; }
  // The project's private key (PEM) and its file; empty without sign_apps.
  const std::string& signing_key() const { return signing_key_; }
  std::filesystem::path signing_key_path() const {
    return options_.root / "project-key" / "artel-app.key";
  }
  const std::filesystem::path& root() const { return options_.root; }
  Client& client() { return *client_; }  // holds the admin token

 private:
  explicit LocalCluster(LocalClusterOptions options) : options_(std::move(options)) {}
  absl::Status StartCoordinator(uint16_t port);  // 0: any free port

  LocalClusterOptions options_;
  Subprocess coordinator_;
  std::vector<Subprocess> workers_;
  std::string address_, admin_token_, worker_token_, signing_key_;
  uint16_t port_ = 0;
  std::unique_ptr<Client> client_;
};

}  // namespace artel
