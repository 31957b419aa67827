// A real PostgreSQL server for tests and benchmarks: initdb and pg_ctl from
// Debian's postgresql package, in a temporary directory, on a free loopback
// port, run as an unprivileged user (PostgreSQL refuses root: as root the
// server runs as the `postgres` system user, which the package creates).
// Stopped (immediate shutdown) and removed on destruction.
//
// Not thread-safe.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "common/status.h"

namespace artel {

class PgTestServer {
 public:
  // Starts a fresh server. FailedPrecondition, saying what to install, when
  // PostgreSQL's binaries are missing.
  static absl::StatusOr<std::unique_ptr<PgTestServer>> Start();
  ~PgTestServer();

  // postgres://artel@127.0.0.1:PORT/DB for a database `db` made with
  // CreateDatabase (or "postgres", which always exists).
  std::string Url(const std::string& db = "postgres") const;
  // Creates an empty database; returns its URL.
  absl::StatusOr<std::string> CreateDatabase(const std::string& db);
  int port() const { return port_; }
  const std::filesystem::path& dir() const { return dir_; }

  // pg_ctl stop -m immediate / start again on the same data and port.
  absl::Status Stop();
  absl::Status Restart();

 private:
  PgTestServer() = default;
  absl::Status RunPgCtl(const std::string& action);
  // Runs a PostgreSQL tool (by name, from bin_) as the server's user.
  absl::Status Run(const std::vector<std::string>& args, const std::string& what);

  std::filesystem::path dir_, bin_;
  std::string user_;  // "" when not root: the current user
  int port_ = 0;
  bool running_ = false;
};

}  // namespace artel
