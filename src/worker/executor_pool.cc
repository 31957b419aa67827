#include "worker/executor_pool.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace artel {

ExecutorPool::ExecutorPool(Sandbox& sandbox, const Clock& clock, ExecutorPoolOptions options)
    : sandbox_(sandbox), clock_(clock), options_(std::move(options)) {
  std::error_code ec;
  std::filesystem::remove_all(options_.root, ec);  // left by an earlier process
}

ExecutorPool::~ExecutorPool() {
  std::vector<Idle> idle;
  {
    absl::MutexLock lock(&mu_);
    idle.swap(idle_);
  }
  idle.clear();  // each executor kills its process
}

absl::StatusOr<std::unique_ptr<WarmExecutor>> ExecutorPool::Acquire(const std::string& key,
                                                                    const std::string& app_digest,
                                                                    const std::string& app_name,
                                                                    uint64_t memory_bytes,
                                                                    const InstallApp& install) {
  std::filesystem::path root;
  std::vector<std::unique_ptr<WarmExecutor>> dead;  // destroyed outside the lock
  {
    absl::MutexLock lock(&mu_);
    if (plain_apps_.count(app_digest)) {
      return absl::FailedPreconditionError("app " + app_name + " is not persistent");
    }
    retired_.erase(key);  // tasks of the key still come
    for (auto it = idle_.rbegin(); it != idle_.rend(); ++it) {
      if (it->key != key || it->app_digest != app_digest) continue;
      std::unique_ptr<WarmExecutor> e = std::move(it->executor);
      idle_.erase(std::next(it).base());
      if (e->alive()) return e;
      dead.push_back(std::move(e));
      break;
    }
    root = options_.root / std::to_string(next_id_++);
  }
  dead.clear();
  ExecutorOptions o;
  o.root = root;
  o.executable = root / "app" / app_name;
  o.memory_bytes = memory_bytes;
  o.max_processes = options_.max_processes;
  o.startup_timeout = options_.startup_timeout;
  o.env = options_.env;
  std::error_code ec;
  std::filesystem::create_directories(root / "app", ec);
  if (ec) return absl::InternalError("cannot create " + root.string() + ": " + ec.message());
  RETURN_IF_ERROR(install(o.executable));
  const int64_t started = clock_.NowMs();
  absl::StatusOr<std::unique_ptr<WarmExecutor>> e = WarmExecutor::Start(sandbox_, std::move(o));
  if (!e.ok()) {
    std::filesystem::remove_all(root, ec);
    if (absl::IsFailedPrecondition(e.status())) {
      spdlog::info("app {} runs as plain processes: {}", app_name,
                   std::string(e.status().message()));
      absl::MutexLock lock(&mu_);
      plain_apps_.insert(app_digest);
    }
    return e.status();
  }
  spdlog::info("warm executor for {} ({}) started in {} ms", key, app_name,
               clock_.NowMs() - started);
  return e;
}

void ExecutorPool::Release(const std::string& key, const std::string& app_digest,
                           std::unique_ptr<WarmExecutor> executor) {
  std::vector<std::unique_ptr<WarmExecutor>> ended;
  {
    absl::MutexLock lock(&mu_);
    if (executor->alive() && !retired_.count(key)) {
      idle_.push_back(Idle{key, app_digest, clock_.NowMs(), std::move(executor)});
    } else {
      ended.push_back(std::move(executor));
    }
    while (idle_.size() > options_.max_idle) {
      ended.push_back(std::move(idle_.front().executor));
      idle_.erase(idle_.begin());
    }
  }
}

bool ExecutorPool::IsPlain(const std::string& app_digest) const {
  absl::MutexLock lock(&mu_);
  return plain_apps_.count(app_digest) > 0;
}

void ExecutorPool::Retire(const std::string& key) {
  std::vector<std::unique_ptr<WarmExecutor>> ended;
  {
    absl::MutexLock lock(&mu_);
    retired_.insert(key);
    for (auto it = idle_.begin(); it != idle_.end();) {
      if (it->key != key) {
        ++it;
        continue;
      }
      ended.push_back(std::move(it->executor));
      it = idle_.erase(it);
    }
  }
  if (!ended.empty()) spdlog::info("ended {} warm executor(s) of {}", ended.size(), key);
}

void ExecutorPool::ReapIdle() {
  std::vector<std::unique_ptr<WarmExecutor>> ended;
  {
    absl::MutexLock lock(&mu_);
    const int64_t now = clock_.NowMs();
    for (auto it = idle_.begin(); it != idle_.end();) {
      if (now - it->since_ms < options_.idle_timeout_ms && it->executor->alive()) {
        ++it;
        continue;
      }
      ended.push_back(std::move(it->executor));
      it = idle_.erase(it);
    }
  }
}

std::vector<std::string> ExecutorPool::IdleKeys() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> keys;
  for (const Idle& i : idle_) {
    if (std::find(keys.begin(), keys.end(), i.key) == keys.end()) keys.push_back(i.key);
  }
  return keys;
}

size_t ExecutorPool::idle_count() const {
  absl::MutexLock lock(&mu_);
  return idle_.size();
}

}  // namespace artel
