// A coordinator and workers as separate local processes, in one directory:
// what `artel demo`, `artel bench` and the multi-process tests start.
#pragma once

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
};

// Not thread-safe. Destruction kills every process it started.
class LocalCluster {
 public:
  static absl::StatusOr<std::unique_ptr<LocalCluster>> Start(LocalClusterOptions options);
  ~LocalCluster();

  // Starts a worker process named `name` with extra flags; returns its index.
  absl::StatusOr<size_t> AddWorker(const std::string& name, std::vector<std::string> extra = {});
  Subprocess& worker(size_t i) { return workers_.at(i); }
  size_t worker_count() const { return workers_.size(); }

  void KillCoordinator() { coordinator_.Kill(); }
  // Starts the coordinator again on the same address and data.
  absl::Status RestartCoordinator();
  Subprocess& coordinator() { return coordinator_; }

  const std::string& address() const { return address_; }
  const std::string& admin_token() const { return admin_token_; }
  const std::string& worker_token() const { return worker_token_; }
  const std::filesystem::path& root() const { return options_.root; }
  Client& client() { return *client_; }  // holds the admin token

 private:
  explicit LocalCluster(LocalClusterOptions options) : options_(std::move(options)) {}
  absl::Status StartCoordinator(const std::string& listen);

  LocalClusterOptions options_;
  Subprocess coordinator_;
  std::vector<Subprocess> workers_;
  std::string address_, admin_token_, worker_token_;
  std::unique_ptr<Client> client_;
};

}  // namespace artel
