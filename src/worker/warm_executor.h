// One persistent app process kept warm across tasks (DESIGN.md §4, the
// protocol in docs/EXECUTORS.md).
//
// The worker starts the app once in the sandbox, with the same rules as a
// plain task (no network, read-only system, private directory, memory and
// process limits), and hands it task after task over two FIFOs in its work
// directory: one JSON request line per task in, one JSON response line per
// task out. Each task's inputs lie in a private sub-directory of the
// executor's work directory; the app writes the task's outputs into
// another. A crash, a hang past the task's wall time or a cancellation
// ends the process: only the task in hand is lost, and the owner (an
// ExecutorPool) starts a new one for the next task.
//
// Thread safety: Run() and LinkInput() are called by one thread at a time
// (one task at a time per executor); alive() and Kill() may be called from
// any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"
#include "sandbox/sandbox.h"

namespace artel {

struct ExecutorOptions {
  // The app's executable on the host; it appears in the sandbox as a task's
  // would. Required.
  std::filesystem::path executable;
  // The executor's private directory (created here): app/, work/ (its cwd,
  // holding .executor/ and tasks/), out/, checkpoint/. Required.
  std::filesystem::path root;
  uint64_t memory_bytes = 2ull << 30;  // address-space limit [2 GiB]
  // Most bytes of shared inputs (LinkInput) kept while no task links them
  // [256 MiB].
  uint64_t input_budget_bytes = 256ull << 20;
  uint32_t max_processes = 256;  // tasks of the process tree [256]
  // How long the app may take to say it is ready before it is taken for a
  // plain (non-persistent) app [60 s].
  std::chrono::milliseconds startup_timeout{60'000};
  size_t max_captured_bytes = 1 << 20;     // per task stream [1 MiB]
  std::map<std::string, std::string> env;  // extra environment
};

// One task for the executor. Paths are relative to the executor's work
// directory (the app's initial working directory).
struct ExecutorTask {
  uint64_t id = 0;
  std::vector<std::string> args;
  std::string dir;  // holds the inputs, e.g. "tasks/17"
  std::string out;  // the app writes outputs here, e.g. "tasks/17/out"
  // Input file name -> content digest (SHA-256 hex): equal digests mean
  // equal bytes, so the app may cache what it parsed by digest.
  std::vector<std::pair<std::string, std::string>> inputs;
  std::chrono::milliseconds wall_time{0};  // 0: no limit
};

struct ExecutorOutcome {
  enum class Kind {
    kDone,       // the app answered; see exit_code
    kCrashed,    // the process ended while the task ran; see termination
    kTimedOut,   // the task passed its wall time; the process was killed
    kCancelled,  // cancelled; the process was killed
  };
  Kind kind = Kind::kDone;
  int exit_code = 0;  // kDone: the app's answer (0: success)
  std::string stdout_data, stderr_data;
  uint64_t compute_ms = 0;  // the app's own measure of its work
  // kCrashed: how the process ended (kExited with its code, or kSignaled).
  SandboxResult termination;
};

class WarmExecutor {
 public:
  // Starts the app and waits until it says it is ready. Errors:
  // FailedPrecondition when the app exits or stays silent past the startup
  // timeout (it is not a persistent app; the message tells how it ended),
  // Internal for host faults (directories, FIFOs, the sandbox).
  // `sandbox` is borrowed and must outlive the executor.
  static absl::StatusOr<std::unique_ptr<WarmExecutor>> Start(Sandbox& sandbox,
                                                             ExecutorOptions options);
  ~WarmExecutor();  // kills the process and waits for it
  WarmExecutor(const WarmExecutor&) = delete;
  WarmExecutor& operator=(const WarmExecutor&) = delete;

  // The host path of the executor's work directory (where tasks/ lives).
  const std::filesystem::path& work_dir() const { return work_dir_; }

  // Hands `task` to the app and waits for its answer, the task's wall time,
  // `cancel`, or the process's end. Anything but kDone leaves the executor
  // dead. Errors: Internal when the request cannot be written or the answer
  // is not valid JSON (the process is then killed).
  absl::StatusOr<ExecutorOutcome> Run(const ExecutorTask& task, const CancelFlag& cancel);

  // Puts the input `digest` at `dest` (inside a task's directory) as a hard
  // link to one copy shared by this executor's tasks, in work/.inputs/, so
  // that an input every task reads (a data shard) is written once, not once
  // per task. `place` writes a digest's bytes to the path it is given; it
  // runs only for a digest not already shared. Copies not linked from any
  // task beyond input_budget_bytes are removed, least recently used first.
  // A task that changes an input in place changes it for this executor's
  // later tasks (docs/EXECUTORS.md: inputs are read-only). Errors: those of
  // `place`; Internal when the file cannot be linked or copied.
  absl::Status LinkInput(const std::string& digest, const std::filesystem::path& dest,
                         const std::function<absl::Status(const std::filesystem::path&)>& place);
  // Bytes of shared inputs now on disk (for tests).
  uint64_t shared_input_bytes() const { return shared_bytes_; }

  bool alive() const { return !exited_.load(); }
  void Kill() { kill_.Cancel(); }

 private:
  WarmExecutor(Sandbox& sandbox, ExecutorOptions options);
  absl::Status Launch();
  // Reads one line from the response FIFO, polling `stop` every 20 ms.
  // Returns nullopt-equivalent status codes: DeadlineExceeded at `deadline`,
  // Cancelled when `cancel` is set, Aborted when the process ended.
  absl::StatusOr<std::string> ReadLine(std::chrono::steady_clock::time_point deadline,
                                       const CancelFlag* cancel);
  void KillAndWait();

  Sandbox& sandbox_;
  const ExecutorOptions options_;
  std::filesystem::path work_dir_;
  int requests_fd_ = -1;
  int responses_fd_ = -1;
  std::string pending_;  // bytes read past the last line
  CancelFlag kill_;
  std::thread process_;
  std::atomic<bool> exited_{false};
  SandboxResult ended_;  // written by process_ before exited_ is set
  absl::Status launch_error_;
  // Shared inputs, most recently used first, with their sizes.
  std::list<std::string> shared_lru_;
  std::map<std::string, std::pair<std::list<std::string>::iterator, uint64_t>> shared_;
  uint64_t shared_bytes_ = 0;
};

}  // namespace artel
