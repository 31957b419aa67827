// The warm executors of one worker, keyed by (executor key, app digest):
// tasks of one job share a process that keeps its model, parameters and
// cached shards in memory (DESIGN.md §4).
//
// A task takes an idle executor of its key, or starts one; gives it back
// when done. Executors end when their key is retired (the job ended), after
// an idle time, when the app turns out not to be persistent, or when a task
// kills them (crash, hang, cancel). An app that fails to start as an
// executor is remembered as plain: its tasks then run as plain processes.
//
// Thread-safe. Starting an executor happens outside the lock, in the
// calling thread.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "worker/warm_executor.h"

namespace artel {

struct ExecutorPoolOptions {
  std::filesystem::path root;  // one sub-directory per executor. Required.
  // Idle executors kept beyond those in use; the least recently used idle
  // one ends first [2].
  size_t max_idle = 2;
  int64_t idle_timeout_ms = 120'000;                  // an idle executor ends after this [2 min]
  uint32_t max_processes = 256;                       // per executor [256]
  std::chrono::milliseconds startup_timeout{60'000};  // see ExecutorOptions [60 s]
  std::map<std::string, std::string> env;             // extra environment of every executor
};

class ExecutorPool {
 public:
  // Writes the app's executable to the given path.
  using InstallApp = std::function<absl::Status(const std::filesystem::path&)>;

  // `sandbox` and `clock` are borrowed and must outlive the pool.
  ExecutorPool(Sandbox& sandbox, const Clock& clock, ExecutorPoolOptions options);
  ~ExecutorPool();

  // An idle executor of (key, app_digest), or a new one started with the
  // app that `install` writes (app_name is its file name). The caller owns
  // it until Release. Errors: FailedPrecondition when the app is not
  // persistent (remembered: later calls for that digest fail at once);
  // Internal for host faults.
  absl::StatusOr<std::unique_ptr<WarmExecutor>> Acquire(const std::string& key,
                                                        const std::string& app_digest,
                                                        const std::string& app_name,
                                                        uint64_t memory_bytes,
                                                        const InstallApp& install);
  // Gives an executor back: kept idle if it is alive and its key is not
  // retired, else ended.
  void Release(const std::string& key, const std::string& app_digest,
               std::unique_ptr<WarmExecutor> executor);

  // True when `app_digest` failed to start as an executor before.
  bool IsPlain(const std::string& app_digest) const;
  // Ends the idle executors of `key` now and those in use when released.
  void Retire(const std::string& key);
  // Ends executors idle for longer than the idle timeout.
  void ReapIdle();
  // Keys with at least one idle executor.
  std::vector<std::string> IdleKeys() const;
  size_t idle_count() const;

 private:
  struct Idle {
    std::string key, app_digest;
    int64_t since_ms;
    std::unique_ptr<WarmExecutor> executor;
  };

  Sandbox& sandbox_;
  const Clock& clock_;
  const ExecutorPoolOptions options_;
  mutable absl::Mutex mu_;
  std::vector<Idle> idle_ ABSL_GUARDED_BY(mu_);  // oldest first
  std::set<std::string> plain_apps_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> retired_ ABSL_GUARDED_BY(mu_);
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace artel
