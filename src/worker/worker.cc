#include "worker/worker.h"

#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "common/signing.h"
#include "worker/checkpoint_pack.h"

namespace artel {
namespace {

constexpr char kBuiltinNoop[] = "builtin:noop";
// Placement hints: cached blobs of at least 1 MiB, at most 256 of them.
constexpr uint64_t kPlacementHintMinBytes = 1 << 20;
constexpr size_t kMaxPlacementHints = 256;

bool Retryable(const grpc::Status& s) {
  return s.error_code() == grpc::StatusCode::UNAVAILABLE ||
         s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED ||
         s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED ||
         s.error_code() == grpc::StatusCode::INTERNAL;
}

std::string HostName() {
  char buf[256] = {};
  gethostname(buf, sizeof(buf) - 1);
  return buf;
}

}  // namespace

Worker::Worker(WorkerOptions options, Sandbox& sandbox)
    : options_(std::move(options)), sandbox_(sandbox) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  const tls::Trust trust =
      tls::Chosen(options_.trust) ? options_.trust : tls::TrustFromToken(options_.token);
  tls::ApplyChannelArgs(trust, args);
  options_.token = tls::SplitToken(options_.token).first;  // the pin is not sent
  channel_ = grpc::CreateCustomChannel(options_.coordinator, tls::ChannelCredentials(trust), args);
  stub_ = v1::WorkerService::NewStub(channel_);
  blobs_ = std::make_unique<BlobClient>(channel_, options_.token);
  if (options_.name.empty()) options_.name = HostName();
}

Worker::~Worker() {
  Stop();
  absl::MutexLock lock(&mu_);
  for (auto& [id, r] : running_) {
    if (r->thread.joinable()) r->thread.join();
  }
}

void Worker::Stop() {
  stop_.store(true);
  absl::MutexLock lock(&mu_);
  for (auto& [id, r] : running_) r->cancel.Cancel();
  reports_cv_.SignalAll();
}

grpc::ClientContext* Worker::Prepare(grpc::ClientContext& ctx, int timeout_ms) const {
  ctx.AddMetadata("authorization", "Bearer " + options_.token);
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms));
  return &ctx;
}

absl::Status Worker::Register() {
  v1::RegisterRequest req;
  {
    absl::MutexLock lock(&mu_);
    req.set_worker_id(worker_id_);
  }
  req.set_name(options_.name);
  req.set_cores(options_.cores);
  req.set_memory_bytes(options_.memory_bytes);
  req.set_disk_bytes(options_.disk_bytes);
  req.set_gpus(options_.gpus);
  req.set_gpu_memory_bytes(options_.gpu_memory_bytes);
  req.set_sandboxed(sandbox_.isolated());
  int backoff_ms = 100;
  while (!stop_.load()) {
    v1::RegisterResponse resp;
    grpc::ClientContext ctx;
    grpc::Status s = stub_->Register(Prepare(ctx, 10'000), req, &resp);
    if (s.ok()) {
      absl::MutexLock lock(&mu_);
      worker_id_ = resp.worker_id();
      heartbeat_interval_ms_ = std::max<uint64_t>(100, resp.heartbeat_interval_ms());
      PinAppKeyLocked(resp.app_public_key());
      std::ofstream(options_.data_dir / "worker.id", std::ios::trunc) << worker_id_ << "\n";
      spdlog::info("registered with {} as {}", options_.coordinator, worker_id_);
      return absl::OkStatus();
    }
    if (!Retryable(s)) {
      return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                          "the coordinator refused registration: " + s.error_message());
    }
    spdlog::warn("coordinator {} unreachable ({}); retrying", options_.coordinator,
                 s.error_message());
    std::this_thread::sleep_for(std::chrono::milliseconds(backoff_ms));
    backoff_ms = std::min(backoff_ms * 2, 2000);
  }
  return absl::CancelledError("stopped");
}

void Worker::PinAppKeyLocked(const std::string& offered) {
  if (offered.empty() || offered == app_key_) return;
  if (!app_key_.empty()) {
    spdlog::warn(
        "the coordinator offers project key {}, but this worker keeps {}: apps signed by "
        "the new key will be refused. Delete {} to accept it",
        KeyFingerprint(offered).value_or("(malformed)"), KeyFingerprint(app_key_).value_or("?"),
        (options_.data_dir / "app-key.pub").string());
    return;
  }
  if (!KeyFingerprint(offered).ok()) {
    spdlog::warn("the coordinator offers a malformed project key; ignored");
    return;
  }
  app_key_ = offered;
  std::ofstream(options_.data_dir / "app-key.pub", std::ios::trunc) << offered;
  spdlog::info("pinned project key {}: only apps it signed will run", *KeyFingerprint(app_key_));
}

std::optional<v1::ReplicaReport> Worker::RefuseUnsigned(const v1::Assignment& a) {
  std::string key;
  {
    absl::MutexLock lock(&mu_);
    key = app_key_;
  }
  if (key.empty() || a.app_digest().rfind("builtin:", 0) == 0) return std::nullopt;
  const absl::Status s =
      a.app_signature().empty()
          ? absl::PermissionDeniedError("it is unsigned")
          : Verify(key, AppSigningMessage(a.app(), a.version(), a.app_digest()), a.app_signature());
  if (s.ok()) return std::nullopt;
  v1::ReplicaReport report;
  report.set_replica_id(a.replica_id());
  report.set_result(v1::RESULT_KIND_HOST_ERROR);
  report.set_error("refused to run app '" + a.app() + "' version " + a.version() +
                   ": not signed by the project key " + KeyFingerprint(key).value_or("?") + " (" +
                   std::string(s.message()) + "); sign it with `artel app add --sign`");
  spdlog::error("{}", report.error());
  return report;
}

absl::Status Worker::Run() {
  std::error_code ec;
  std::filesystem::create_directories(options_.data_dir / "run", ec);
  if (ec) {
    return absl::PermissionDeniedError("cannot create '" + options_.data_dir.string() +
                                       "': " + ec.message() + "; pass a writable --data");
  }
  // Run dirs left by a previous process belong to replicas that are gone.
  std::filesystem::remove_all(options_.data_dir / "run", ec);
  std::filesystem::create_directories(options_.data_dir / "run", ec);
  ASSIGN_OR_RETURN(auto store, BlobStore::Open(options_.data_dir / "cache"));
  cache_ = std::make_unique<BlobCache>(std::move(store), options_.disk_bytes);
  if (options_.warm_executors) {
    ExecutorPoolOptions pool;
    pool.root = options_.data_dir / "executors";
    pool.idle_timeout_ms = options_.executor_idle_ms;
    pool.max_idle = options_.cores + options_.side_slots;
    pool.max_processes = options_.runner.max_processes;
    if (!options_.runner.app_fault.empty()) {
      pool.env["ARTEL_INJECT_FAULT"] = options_.runner.app_fault;
    }
    executors_ = std::make_unique<ExecutorPool>(sandbox_, clock_, pool);
  }
  {
    absl::MutexLock lock(&mu_);
    app_key_ = options_.app_public_key;
    if (app_key_.empty()) {
      std::ifstream in(options_.data_dir / "app-key.pub", std::ios::binary);
      std::stringstream ss;
      ss << in.rdbuf();
      app_key_ = ss.str();
    }
    if (!app_key_.empty() && !KeyFingerprint(app_key_).ok()) {
      return absl::InvalidArgumentError("the pinned project key " +
                                        (options_.data_dir / "app-key.pub").string() +
                                        " is malformed; delete it to pin the coordinator's again");
    }
  }
  runner_ = std::make_unique<ReplicaRunner>(*cache_, *blobs_, sandbox_, options_.runner,
                                            executors_.get());
  {
    std::ifstream in(options_.data_dir / "worker.id");
    std::string id;
    if (in >> id) {
      absl::MutexLock lock(&mu_);
      worker_id_ = id;
    }
  }
  RETURN_IF_ERROR(Register());
  std::thread heartbeats([this] { HeartbeatLoop(); });
  std::thread reporter([this] { ReportLoop(); });

  absl::Status result;
  while (!stop_.load()) {
    ReapFinished();
    v1::FetchWorkRequest req;
    {
      absl::MutexLock lock(&mu_);
      req.set_worker_id(worker_id_);
      req.set_free_cores(options_.cores - used_cores_);
      req.set_free_side_slots(options_.side_slots - used_side_slots_);
      req.set_free_memory_bytes(options_.memory_bytes - used_memory_);
    }
    if (req.free_cores() == 0 && req.free_side_slots() == 0) {
      absl::MutexLock lock(&mu_);
      slot_freed_.WaitWithTimeout(&mu_, absl::Milliseconds(options_.idle_poll_ms));
      continue;
    }
    req.set_max_tasks(req.free_cores() + req.free_side_slots());
    // With every core busy only side tasks fit: ask without waiting, so that
    // a freed core is offered again at once.
    const bool side_only = req.free_cores() == 0;
    req.set_wait_ms(side_only ? 0 : static_cast<uint32_t>(options_.fetch_wait_ms));
    // Hints for data-aware placement: the big inputs held here (shards,
    // apps), not every per-round parameter file, so that the request stays
    // small even when polled for side tasks many times a second.
    for (auto& d : cache_->PlacementHints(kPlacementHintMinBytes, kMaxPlacementHints)) {
      req.add_cached_digests(std::move(d));
    }
    v1::FetchWorkResponse resp;
    grpc::ClientContext ctx;
    grpc::Status s = stub_->FetchWork(
        Prepare(ctx, static_cast<int>(10'000 + options_.fetch_wait_ms)), req, &resp);
    if (!s.ok()) {
      if (s.error_code() == grpc::StatusCode::FAILED_PRECONDITION) {
        if (absl::Status r = Register(); !r.ok() && !stop_.load()) {
          result = r;
          break;
        }
      } else if (!Retryable(s)) {
        result = absl::PermissionDeniedError("fetching work failed: " + s.error_message());
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      continue;
    }
    if (side_only && resp.assignments().empty()) {
      absl::MutexLock lock(&mu_);
      slot_freed_.WaitWithTimeout(&mu_, absl::Milliseconds(options_.idle_poll_ms));
      continue;
    }
    for (const v1::Assignment& a : resp.assignments()) {
      if (a.app_digest() == kBuiltinNoop) {
        v1::ReplicaReport report;
        report.set_replica_id(a.replica_id());
        report.set_result(v1::RESULT_KIND_SUCCESS);
        QueueReport(std::move(report));
        continue;
      }
      absl::MutexLock lock(&mu_);
      auto r = std::make_unique<Running>();
      r->assignment = a;
      r->received = std::chrono::steady_clock::now();
      received_[a.replica_id()] = r->received;
      if (a.resources().side()) {
        ++used_side_slots_;
      } else {
        used_cores_ += a.resources().cores();
      }
      used_memory_ += a.resources().memory_bytes();
      Running* raw = r.get();
      running_[a.replica_id()] = std::move(r);
      raw->thread = std::thread([this, id = a.replica_id()] { Execute(id); });
    }
  }
  Stop();
  {
    // Replicas still running are abandoned: the coordinator re-places them.
    absl::MutexLock lock(&mu_);
    for (auto& [id, r] : running_) {
      if (r->thread.joinable()) {
        mu_.Unlock();
        r->thread.join();
        mu_.Lock();
      }
    }
    running_.clear();
  }
  heartbeats.join();
  reporter.join();
  return result;
}

void Worker::Execute(uint64_t replica_id) {
  Running* r;
  {
    absl::MutexLock lock(&mu_);
    r = running_.at(replica_id).get();
  }
  const RunDirs dirs(options_.data_dir / "run" / std::to_string(replica_id));
  std::optional<v1::ReplicaReport> report = RefuseUnsigned(r->assignment);
  if (!report.has_value()) report = runner_->Run(r->assignment, dirs, r->cancel);
  if (report.has_value() && !stop_.load()) {
    QueueReport(std::move(*report));
  } else {
    absl::MutexLock lock(&mu_);
    received_.erase(replica_id);
  }
  std::error_code ec;
  std::filesystem::remove_all(dirs.root, ec);
  absl::MutexLock lock(&mu_);
  r->finished = true;
  slot_freed_.Signal();
}

void Worker::ReapFinished() {
  std::vector<std::unique_ptr<Running>> done;
  {
    absl::MutexLock lock(&mu_);
    for (auto it = running_.begin(); it != running_.end();) {
      if (!it->second->finished) {
        ++it;
        continue;
      }
      if (it->second->assignment.resources().side()) {
        --used_side_slots_;
      } else {
        used_cores_ -= it->second->assignment.resources().cores();
      }
      used_memory_ -= it->second->assignment.resources().memory_bytes();
      done.push_back(std::move(it->second));
      it = running_.erase(it);
    }
  }
  for (auto& r : done) r->thread.join();
}

void Worker::QueueReport(v1::ReplicaReport report) {
  absl::MutexLock lock(&mu_);
  reports_.push_back(std::move(report));
  reports_cv_.Signal();
}

void Worker::ReportLoop() {
  while (true) {
    v1::ReportRequest req;
    {
      absl::MutexLock lock(&mu_);
      while (reports_.empty() && !stop_.load()) reports_cv_.WaitWithTimeout(&mu_, absl::Seconds(1));
      if (reports_.empty() && stop_.load()) return;
      req.set_worker_id(worker_id_);
      for (size_t i = 0; i < reports_.size() && i < 2000; ++i) *req.add_reports() = reports_[i];
    }
    v1::ReportResponse resp;
    grpc::ClientContext ctx;
    grpc::Status s = stub_->Report(Prepare(ctx, 30'000), req, &resp);
    if (!s.ok() && Retryable(s)) {
      if (stop_.load()) return;  // undelivered reports: the leases will expire
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      continue;
    }
    if (!s.ok()) spdlog::warn("coordinator rejected a report: {}", s.error_message());
    if (s.ok()) RecordOverhead(req);
    absl::MutexLock lock(&mu_);
    reports_.erase(reports_.begin(), reports_.begin() + req.reports_size());
  }
}

void Worker::RecordOverhead(const v1::ReportRequest& acked) {
  constexpr size_t kOverheadWindow = 50;
  const auto now = std::chrono::steady_clock::now();
  std::vector<double> window;
  {
    absl::MutexLock lock(&mu_);
    for (const v1::ReplicaReport& r : acked.reports()) {
      auto it = received_.find(r.replica_id());
      if (it == received_.end()) continue;
      const double total = std::chrono::duration<double, std::milli>(now - it->second).count();
      received_.erase(it);
      if (r.compute_ms() == 0) continue;  // no measure of the app's own work
      overhead_ms_.push_back(total - static_cast<double>(r.compute_ms()));
    }
    if (overhead_ms_.size() < kOverheadWindow) return;
    window.swap(overhead_ms_);
  }
  std::sort(window.begin(), window.end());
  spdlog::info(
      "task overhead over the last {} tasks (assignment received to report committed, "
      "minus compute): p50 {:.1f} ms, p90 {:.1f} ms, max {:.1f} ms",
      window.size(), window[window.size() / 2], window[window.size() * 9 / 10], window.back());
}

void Worker::UploadCheckpoints() {
  std::vector<std::pair<uint64_t, std::string>> fingerprints;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [id, r] : running_) {
      if (!r->finished) fingerprints.emplace_back(id, r->checkpoint_fingerprint);
    }
  }
  for (auto& [id, old_fp] : fingerprints) {
    const auto dir = options_.data_dir / "run" / std::to_string(id) / "checkpoint";
    const std::string fp = CheckpointFingerprint(dir);
    if (fp.empty() || fp == old_fp) continue;
    absl::StatusOr<std::string> packed = PackCheckpoint(dir);
    if (!packed.ok() || packed->empty()) continue;
    absl::StatusOr<std::string> digest = blobs_->UploadBytes(*packed);
    if (!digest.ok()) {
      spdlog::warn("checkpoint upload of replica {} failed: {}", id, digest.status().ToString());
      continue;
    }
    absl::MutexLock lock(&mu_);
    auto it = running_.find(id);
    if (it == running_.end()) continue;
    it->second->checkpoint_fingerprint = fp;
    it->second->checkpoint_digest = *digest;
  }
}

void Worker::HeartbeatLoop() {
  while (!stop_.load()) {
    UploadCheckpoints();
    if (executors_ != nullptr) executors_->ReapIdle();
    v1::HeartbeatRequest req;
    if (executors_ != nullptr) {
      for (const std::string& key : executors_->IdleKeys()) req.add_executors(key);
    }
    uint64_t interval;
    {
      absl::MutexLock lock(&mu_);
      req.set_worker_id(worker_id_);
      for (auto& [id, r] : running_) {
        if (r->finished) continue;
        v1::RunningReplica* rr = req.add_running();
        rr->set_replica_id(id);
        rr->set_checkpoint_digest(r->checkpoint_digest);
      }
      interval = heartbeat_interval_ms_;
    }
    v1::HeartbeatResponse resp;
    grpc::ClientContext ctx;
    grpc::Status s = stub_->Heartbeat(Prepare(ctx, 5'000), req, &resp);
    if (s.ok()) {
      if (resp.reregister()) (void)Register();
      for (const std::string& key : resp.retire_executors()) executors_->Retire(key);
      absl::MutexLock lock(&mu_);
      for (uint64_t id : resp.cancel()) {
        auto it = running_.find(id);
        if (it != running_.end()) it->second->cancel.Cancel();
      }
    }
    for (uint64_t waited = 0; waited < interval && !stop_.load(); waited += 50) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
}

}  // namespace artel
