#include "worker/warm_executor.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

namespace artel {
namespace {

using SteadyClock = std::chrono::steady_clock;
using json = nlohmann::json;

constexpr char kExecutorDir[] = ".executor";
constexpr std::chrono::milliseconds kPollPeriod{20};

absl::Status Errno(const std::string& what) {
  return absl::InternalError(what + ": " + std::strerror(errno));
}

absl::Status WriteAll(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Errno("writing to the executor");
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

std::string Truncated(std::string s, size_t max) {
  if (s.size() > max) s.resize(max);
  return s;
}

std::string HowItEnded(const SandboxResult& r) {
  using T = SandboxResult::Termination;
  switch (r.termination) {
    case T::kExited:
      return "exited with code " + std::to_string(r.exit_code);
    case T::kSignaled:
      return "was killed by signal " + std::to_string(r.signal);
    case T::kTimedOut:
      return "timed out";
    case T::kCancelled:
      return "was stopped";
  }
  return "ended";
}

}  // namespace

WarmExecutor::WarmExecutor(Sandbox& sandbox, ExecutorOptions options)
    : sandbox_(sandbox), options_(std::move(options)), work_dir_(options_.root / "work") {}

absl::StatusOr<std::unique_ptr<WarmExecutor>> WarmExecutor::Start(Sandbox& sandbox,
                                                                  ExecutorOptions options) {
  std::unique_ptr<WarmExecutor> e(new WarmExecutor(sandbox, std::move(options)));
  RETURN_IF_ERROR(e->Launch());
  return e;
}

absl::Status WarmExecutor::Launch() {
  std::error_code ec;
  const std::filesystem::path fifo_dir = work_dir_ / kExecutorDir;
  for (const auto& d :
       {options_.root / "out", options_.root / "checkpoint", fifo_dir, work_dir_ / "tasks"}) {
    std::filesystem::create_directories(d, ec);
    if (ec) return absl::InternalError("cannot create " + d.string() + ": " + ec.message());
  }
  const std::filesystem::path requests = fifo_dir / "requests";
  const std::filesystem::path responses = fifo_dir / "responses";
  for (const auto& p : {requests, responses}) {
    if (::mkfifo(p.c_str(), 0600) != 0 && errno != EEXIST) return Errno("mkfifo " + p.string());
  }
  // O_RDWR: opening never blocks, and neither side sees EOF while we hold it.
  requests_fd_ = ::open(requests.c_str(), O_RDWR | O_CLOEXEC);
  if (requests_fd_ < 0) return Errno("open " + requests.string());
  responses_fd_ = ::open(responses.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (responses_fd_ < 0) return Errno("open " + responses.string());

  SandboxSpec spec;
  spec.executable = options_.executable;
  spec.work_dir = work_dir_;
  spec.output_dir = options_.root / "out";
  spec.checkpoint_dir = options_.root / "checkpoint";
  spec.env = options_.env;
  spec.env["ARTEL_EXECUTOR_REQUESTS"] = std::string(kExecutorDir) + "/requests";
  spec.env["ARTEL_EXECUTOR_RESPONSES"] = std::string(kExecutorDir) + "/responses";
  spec.memory_bytes = options_.memory_bytes;
  spec.max_processes = options_.max_processes;
  spec.max_captured_bytes = 64 << 10;  // the process's own log; tasks answer in JSON
  process_ = std::thread([this, spec] {
    absl::StatusOr<SandboxResult> r = sandbox_.Run(spec, kill_);
    if (r.ok()) {
      ended_ = std::move(*r);
    } else {
      launch_error_ = r.status();
      ended_.termination = SandboxResult::Termination::kExited;
      ended_.stderr_data = std::string(r.status().message());
    }
    exited_.store(true);
  });

  absl::StatusOr<std::string> hello =
      ReadLine(SteadyClock::now() + options_.startup_timeout, nullptr);
  if (!hello.ok()) {
    KillAndWait();
    if (!launch_error_.ok()) return launch_error_;
    std::string how =
        absl::IsDeadlineExceeded(hello.status())
            ? "said nothing within " + std::to_string(options_.startup_timeout.count()) + " ms"
            : HowItEnded(ended_);
    return absl::FailedPreconditionError(
        "the app is not a persistent app: started as an "
        "executor, it " +
        how + "; stderr: " + Truncated(ended_.stderr_data, 400));
  }
  json j = json::parse(*hello, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.value("ready", false)) {
    KillAndWait();
    return absl::FailedPreconditionError(
        "the app is not a persistent app: its first line was not {\"ready\": true} but " +
        Truncated(*hello, 200));
  }
  return absl::OkStatus();
}

absl::Status WarmExecutor::LinkInput(
    const std::string& digest, const std::filesystem::path& dest,
    const std::function<absl::Status(const std::filesystem::path&)>& place) {
  namespace fs = std::filesystem;
  const fs::path dir = work_dir_ / ".inputs";
  const fs::path shared = dir / digest;
  std::error_code ec;
  auto it = shared_.find(digest);
  if (it != shared_.end() && !fs::is_regular_file(shared, ec)) {
    // Removed from under us (by the app): forget it and place it anew.
    shared_bytes_ -= it->second.second;
    shared_lru_.erase(it->second.first);
    shared_.erase(it);
    it = shared_.end();
  }
  if (it == shared_.end()) {
    fs::create_directories(dir, ec);
    if (ec) return absl::InternalError("cannot create " + dir.string() + ": " + ec.message());
    const fs::path tmp = dir / (digest + ".tmp");
    RETURN_IF_ERROR(place(tmp));
    fs::rename(tmp, shared, ec);
    if (ec) return absl::InternalError("cannot place " + shared.string() + ": " + ec.message());
    const uint64_t bytes = fs::file_size(shared, ec);
    shared_lru_.push_front(digest);
    it = shared_.emplace(digest, std::make_pair(shared_lru_.begin(), ec ? 0 : bytes)).first;
    shared_bytes_ += it->second.second;
  } else {
    shared_lru_.splice(shared_lru_.begin(), shared_lru_, it->second.first);
  }
  fs::create_hard_link(shared, dest, ec);
  if (ec) {  // e.g. a file system without hard links: a private copy
    fs::copy_file(shared, dest, fs::copy_options::overwrite_existing, ec);
    if (ec) return absl::InternalError("cannot copy " + shared.string() + ": " + ec.message());
  }
  // Drop the least recently used copies that no task links, over budget.
  for (auto lru = shared_lru_.end();
       shared_bytes_ > options_.input_budget_bytes && lru != shared_lru_.begin();) {
    --lru;
    const fs::path old = dir / *lru;
    if (*lru == digest || fs::hard_link_count(old, ec) > 1) continue;
    fs::remove(old, ec);
    auto entry = shared_.find(*lru);
    shared_bytes_ -= entry->second.second;
    shared_.erase(entry);
    lru = shared_lru_.erase(lru);
  }
  return absl::OkStatus();
}

WarmExecutor::~WarmExecutor() {
  KillAndWait();
  if (requests_fd_ >= 0) ::close(requests_fd_);
  if (responses_fd_ >= 0) ::close(responses_fd_);
  std::error_code ec;
  std::filesystem::remove_all(options_.root, ec);
}

void WarmExecutor::KillAndWait() {
  kill_.Cancel();
  if (process_.joinable()) process_.join();
}

absl::StatusOr<std::string> WarmExecutor::ReadLine(SteadyClock::time_point deadline,
                                                   const CancelFlag* cancel) {
  while (true) {
    const size_t nl = pending_.find('\n');
    if (nl != std::string::npos) {
      std::string line = pending_.substr(0, nl);
      pending_.erase(0, nl + 1);
      return line;
    }
    if (cancel != nullptr && cancel->cancelled()) return absl::CancelledError("cancelled");
    if (exited_.load()) {
      // Drain what the process wrote before it ended.
      char buf[65536];
      const ssize_t n = ::read(responses_fd_, buf, sizeof(buf));
      if (n > 0) {
        pending_.append(buf, static_cast<size_t>(n));
        continue;
      }
      return absl::AbortedError("the executor ended");
    }
    if (SteadyClock::now() >= deadline) return absl::DeadlineExceededError("no answer");
    pollfd p{responses_fd_, POLLIN, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(kPollPeriod.count()));
    if (ready < 0 && errno != EINTR) return Errno("poll");
    if (ready <= 0) continue;
    char buf[65536];
    const ssize_t n = ::read(responses_fd_, buf, sizeof(buf));
    if (n > 0) pending_.append(buf, static_cast<size_t>(n));
  }
}

absl::StatusOr<ExecutorOutcome> WarmExecutor::Run(const ExecutorTask& task,
                                                  const CancelFlag& cancel) {
  ExecutorOutcome outcome;
  if (exited_.load()) {
    outcome.kind = ExecutorOutcome::Kind::kCrashed;
    outcome.termination = ended_;
    return outcome;
  }
  json request = {{"id", task.id}, {"args", task.args}, {"dir", task.dir}, {"out", task.out}};
  json inputs = json::array();
  for (const auto& [name, digest] : task.inputs) {
    inputs.push_back({{"name", name}, {"digest", digest}});
  }
  request["inputs"] = std::move(inputs);
  if (absl::Status s = WriteAll(
          requests_fd_, request.dump(-1, ' ', false, json::error_handler_t::replace) + "\n");
      !s.ok()) {
    KillAndWait();
    return s;
  }
  const auto deadline = task.wall_time.count() > 0 ? SteadyClock::now() + task.wall_time
                                                   : SteadyClock::time_point::max();
  while (true) {
    absl::StatusOr<std::string> line = ReadLine(deadline, &cancel);
    if (!line.ok()) {
      KillAndWait();
      if (absl::IsCancelled(line.status())) {
        outcome.kind = ExecutorOutcome::Kind::kCancelled;
      } else if (absl::IsDeadlineExceeded(line.status())) {
        outcome.kind = ExecutorOutcome::Kind::kTimedOut;
      } else if (absl::IsAborted(line.status())) {
        outcome.kind = ExecutorOutcome::Kind::kCrashed;
        outcome.termination = ended_;
      } else {
        return line.status();
      }
      return outcome;
    }
    json j = json::parse(*line, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object() || !j.contains("id") || !j["id"].is_number_unsigned()) {
      KillAndWait();
      return absl::InternalError("the executor answered with a line that is not a response: " +
                                 Truncated(*line, 200));
    }
    if (j["id"].get<uint64_t>() != task.id) continue;  // a stale answer
    try {
      outcome.exit_code = j.value("exit_code", 0);
      outcome.stdout_data = Truncated(j.value("stdout", ""), options_.max_captured_bytes);
      outcome.stderr_data = Truncated(j.value("stderr", ""), options_.max_captured_bytes);
      outcome.compute_ms = j.value("compute_ms", uint64_t{0});
    } catch (const json::exception& e) {
      KillAndWait();
      return absl::InternalError(std::string("the executor's response is malformed: ") + e.what());
    }
    return outcome;
  }
}

}  // namespace artel
