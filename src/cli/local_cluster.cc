#include "cli/local_cluster.h"

#include <chrono>
#include <fstream>
#include <thread>

namespace artel {
namespace {

std::string ReadLine(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::string s;
  std::getline(in, s);
  return s;
}

}  // namespace

absl::StatusOr<std::unique_ptr<LocalCluster>> LocalCluster::Start(LocalClusterOptions options) {
  std::error_code ec;
  std::filesystem::create_directories(options.root, ec);
  if (ec)
    return absl::InternalError("cannot create " + options.root.string() + ": " + ec.message());
  std::unique_ptr<LocalCluster> c(new LocalCluster(std::move(options)));
  RETURN_IF_ERROR(c->StartCoordinator("127.0.0.1:0"));
  c->admin_token_ = ReadLine(c->options_.root / "coordinator" / "admin.token");
  c->client_ = std::make_unique<Client>(c->address_, c->admin_token_);
  ASSIGN_OR_RETURN(c->worker_token_, c->client_->CreateToken(v1::ROLE_WORKER));
  return c;
}

absl::Status LocalCluster::StartCoordinator(const std::string& listen) {
  const auto data = options_.root / "coordinator";
  std::error_code ec;
  std::filesystem::remove(data / "coordinator.addr", ec);
  std::vector<std::string> argv = {
      options_.artel_binary.string(), "coordinator", "--data", data.string(), "--listen", listen};
  argv.insert(argv.end(), options_.coordinator_args.begin(), options_.coordinator_args.end());
  ASSIGN_OR_RETURN(coordinator_, Subprocess::Start(argv, options_.root / "coordinator.log"));
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < until) {
    if (!coordinator_.running()) {
      return absl::InternalError("the coordinator exited at start; see " +
                                 (options_.root / "coordinator.log").string());
    }
    std::string addr = ReadLine(data / "coordinator.addr");
    if (!addr.empty()) {
      address_ = addr;
      return absl::OkStatus();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return absl::DeadlineExceededError("the coordinator did not start within 30 s; see " +
                                     (options_.root / "coordinator.log").string());
}

absl::Status LocalCluster::RestartCoordinator() {
  coordinator_.Kill();
  return StartCoordinator(address_);
}

absl::StatusOr<size_t> LocalCluster::AddWorker(const std::string& name,
                                               std::vector<std::string> extra) {
  std::vector<std::string> argv = {options_.artel_binary.string(),
                                   "worker",
                                   "--coordinator",
                                   address_,
                                   "--data",
                                   (options_.root / name).string(),
                                   "--name",
                                   name};
  argv.insert(argv.end(), extra.begin(), extra.end());
  ASSIGN_OR_RETURN(Subprocess p, Subprocess::Start(argv, options_.root / (name + ".log"),
                                                   {"ARTEL_TOKEN=" + worker_token_}));
  workers_.push_back(std::move(p));
  return workers_.size() - 1;
}

LocalCluster::~LocalCluster() {
  for (auto& w : workers_) w.Kill();
  coordinator_.Kill();
}

}  // namespace artel
