#include "cli/local_cluster.h"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <fstream>
#include <thread>

#include "common/signing.h"

namespace artel {
namespace {

std::string ReadLine(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::string s;
  std::getline(in, s);
  return s;
}

// The first `ip` found in the usual places, or empty.
std::string IpBinary() {
  for (const char* p : {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"}) {
    if (::access(p, X_OK) == 0) return p;
  }
  return "";
}

// A wildcard listen host means "every interface"; the local client dials
// loopback instead.
std::string DialHost(const std::string& listen_host) {
  if (listen_host == "0.0.0.0") return "127.0.0.1";
  if (listen_host == "[::]" || listen_host == "::") return "[::1]";
  return listen_host;
}

// `argv` prefixed so that it runs as `placement` says: a shell that writes
// its pid into each cgroup and then execs `ip netns exec NS` or the program.
absl::StatusOr<std::vector<std::string>> Placed(const WorkerPlacement& placement,
                                                std::vector<std::string> argv) {
  if (!placement.netns.empty()) {
    const std::string ip = IpBinary();
    if (ip.empty()) {
      return absl::FailedPreconditionError(
          "a worker in a network namespace needs `ip` (apt-get install iproute2)");
    }
    if (::access(("/run/netns/" + placement.netns).c_str(), F_OK) != 0) {
      return absl::FailedPreconditionError("network namespace '" + placement.netns +
                                           "' does not exist; create it with `ip netns add " +
                                           placement.netns + "` (as root)");
    }
    argv.insert(argv.begin(), {ip, "netns", "exec", placement.netns});
  }
  if (placement.cgroups.empty()) return argv;
  std::vector<std::string> wrapped = {
      "/bin/sh", "-c",
      "n=$1; shift; while [ \"$n\" -gt 0 ]; do echo $$ > \"$1/cgroup.procs\" || exit 126; "
      "shift; n=$((n - 1)); done; exec \"$@\"",
      "artel-placement", std::to_string(placement.cgroups.size())};
  for (const auto& cg : placement.cgroups) {
    const std::filesystem::path procs = cg / "cgroup.procs";
    if (::access(procs.c_str(), W_OK) != 0) {
      return absl::FailedPreconditionError(
          "cannot join cgroup " + cg.string() + ": " + procs.string() +
          " is missing or not writable; create the cgroup first, as root");
    }
    wrapped.push_back(cg.string());
  }
  wrapped.insert(wrapped.end(), argv.begin(), argv.end());
  return wrapped;
}

}  // namespace

absl::StatusOr<std::unique_ptr<LocalCluster>> LocalCluster::Start(LocalClusterOptions options) {
  std::error_code ec;
  std::filesystem::create_directories(options.root, ec);
  if (ec)
    return absl::InternalError("cannot create " + options.root.string() + ": " + ec.message());
  std::unique_ptr<LocalCluster> c(new LocalCluster(std::move(options)));
  if (c->options_.sign_apps) {
    ASSIGN_OR_RETURN(SigningKeyPair pair, GenerateSigningKey());
    const std::filesystem::path dir = c->options_.root / "project-key";
    std::filesystem::create_directories(dir, ec);
    std::ofstream(dir / "artel-app.key", std::ios::binary) << pair.private_pem;
    std::ofstream(dir / "artel-app.pub", std::ios::binary) << pair.public_pem;
    c->signing_key_ = pair.private_pem;
    c->options_.coordinator_args.insert(c->options_.coordinator_args.end(),
                                        {"--app-key", (dir / "artel-app.pub").string()});
  }
  RETURN_IF_ERROR(c->StartCoordinator(0));
  c->admin_token_ = ReadLine(c->options_.root / "coordinator" / "admin.token");
  c->client_ = std::make_unique<Client>(c->address_, c->admin_token_);
  ASSIGN_OR_RETURN(c->worker_token_, c->client_->CreateToken(v1::ROLE_WORKER));
  return c;
}

absl::Status LocalCluster::StartCoordinator(uint16_t port) {
  const std::string listen = options_.coordinator_host + ":" + std::to_string(port);
  const auto data = options_.root / "coordinator";
  std::error_code ec;
  std::filesystem::remove(data / "coordinator.addr", ec);
  std::vector<std::string> argv = {
      options_.artel_binary.string(), "coordinator", "--data", data.string(), "--listen", listen};
  argv.insert(argv.end(), options_.coordinator_args.begin(), options_.coordinator_args.end());
  if (std::find(argv.begin(), argv.end(), "--http") == argv.end()) {
    // Clusters side by side must not fight over the default dashboard port.
    argv.insert(argv.end(), {"--http", options_.coordinator_host + ":0"});
  }
  ASSIGN_OR_RETURN(coordinator_, Subprocess::Start(argv, options_.root / "coordinator.log"));
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < until) {
    if (!coordinator_.running()) {
      return absl::InternalError("the coordinator exited at start; see " +
                                 (options_.root / "coordinator.log").string());
    }
    // "HOST:PORT", HOST as given to --listen.
    const std::string addr = ReadLine(data / "coordinator.addr");
    const size_t colon = addr.rfind(':');
    uint16_t port_read = 0;
    if (colon != std::string::npos &&
        std::from_chars(addr.data() + colon + 1, addr.data() + addr.size(), port_read).ec ==
            std::errc() &&
        port_read != 0) {
      port_ = port_read;
      address_ = DialHost(options_.coordinator_host) + ":" + std::to_string(port_);
      return absl::OkStatus();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return absl::DeadlineExceededError("the coordinator did not start within 30 s; see " +
                                     (options_.root / "coordinator.log").string());
}

std::string LocalCluster::http_url() const {
  return ReadLine(options_.root / "coordinator" / "http.addr");
}

absl::Status LocalCluster::RestartCoordinator() {
  coordinator_.Kill();
  return StartCoordinator(port_);
}

absl::StatusOr<size_t> LocalCluster::AddWorker(const std::string& name,
                                               std::vector<std::string> extra) {
  return AddWorker(name, std::move(extra), WorkerPlacement{});
}

absl::StatusOr<size_t> LocalCluster::AddWorker(const std::string& name,
                                               std::vector<std::string> extra,
                                               const WorkerPlacement& placement) {
  const std::string coordinator = placement.coordinator_host.empty()
                                      ? address_
                                      : placement.coordinator_host + ":" + std::to_string(port_);
  std::vector<std::string> argv = {options_.artel_binary.string(),
                                   "worker",
                                   "--coordinator",
                                   coordinator,
                                   "--data",
                                   (options_.root / name).string(),
                                   "--name",
                                   name};
  argv.insert(argv.end(), extra.begin(), extra.end());
  ASSIGN_OR_RETURN(argv, Placed(placement, std::move(argv)));
  // A coordinator just restarted may refuse the first call or two.
  absl::StatusOr<v1::CreateTokenResponse> token;
  for (int attempt = 0; attempt < 100; ++attempt) {
    token = client_->CreateTokenFull(v1::ROLE_WORKER,
                                     placement.owner.empty() ? name : placement.owner, 0);
    if (!absl::IsUnavailable(token.status())) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (!token.ok()) return token.status();
  // A token without a TLS pin comes from a coordinator started --insecure.
  if (token->token().find('#') == std::string::npos) argv.push_back("--insecure");
  ASSIGN_OR_RETURN(Subprocess p, Subprocess::Start(argv, options_.root / (name + ".log"),
                                                   {"ARTEL_TOKEN=" + token->token()}));
  workers_.push_back(std::move(p));
  return workers_.size() - 1;
}

LocalCluster::~LocalCluster() {
  for (auto& w : workers_) w.Kill();
  coordinator_.Kill();
}

}  // namespace artel
