// Runs an app's process tree isolated from the host, with limits.
//
// Implementations:
//   BubblewrapSandbox  - bwrap: no network, read-only system, private
//                        writable dirs, limits; the default.
//   PlainProcessSandbox - no isolation at all; only for hosts without
//                        bubblewrap, and only when the operator says so
//                        (`artel worker --unsandboxed`). Warns loudly.
// Both pass the contract suite in sandbox_contract_test.cc where it applies.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace artel {

// Set from any thread to stop a running sandbox; Run() then kills the whole
// process tree and returns with Termination::kCancelled.
class CancelFlag {
 public:
  void Cancel() { cancelled_.store(true); }
  bool cancelled() const { return cancelled_.load(); }

 private:
  std::atomic<bool> cancelled_{false};
};

struct SandboxSpec {
  // Executable on the host. Run as `<executable> args...`; in the sandbox
  // it appears read-only at /artel/app/<file name>.
  std::filesystem::path executable;
  std::vector<std::string> args;
  // Host directories, created by the caller. Inside the sandbox:
  //   work_dir       -> /artel/work (cwd; inputs are here; writable)
  //   output_dir     -> /artel/out, also $ARTEL_OUTPUT_DIR (writable)
  //   checkpoint_dir -> /artel/checkpoint, also $ARTEL_CHECKPOINT_DIR
  std::filesystem::path work_dir;
  std::filesystem::path output_dir;
  std::filesystem::path checkpoint_dir;
  // Extra environment. The sandbox starts from an empty environment plus
  // PATH, HOME=/artel/work, the ARTEL_* dirs above and these.
  std::map<std::string, std::string> env;
  uint64_t memory_bytes = 256ull << 20;    // address-space limit per process [256 MiB]
  uint32_t max_processes = 64;             // processes/threads [64]
  std::chrono::milliseconds wall_time{0};  // 0 = no limit [0]
  size_t max_captured_bytes = 1 << 20;     // per stream, stdout and stderr [1 MiB]
};

struct SandboxResult {
  enum class Termination {
    kExited,     // exited by itself; see exit_code
    kSignaled,   // killed by a signal it did not get from us; see signal
    kTimedOut,   // wall_time passed; tree killed
    kCancelled,  // CancelFlag set; tree killed
  };
  Termination termination = Termination::kExited;
  int exit_code = -1;       // valid when kExited
  int signal = 0;           // valid when kSignaled
  std::string stdout_data;  // at most max_captured_bytes
  std::string stderr_data;  // at most max_captured_bytes
  bool stdout_truncated = false;
  bool stderr_truncated = false;
  std::chrono::milliseconds runtime{0};
};

// Thread-safe: Run may be called concurrently for different specs.
class Sandbox {
 public:
  virtual ~Sandbox() = default;
  // Runs to completion, timeout or cancellation. An error Status means the
  // host could not run the app at all (a host fault, never the app's
  // answer): e.g. bwrap missing, fork failed, directories missing.
  virtual absl::StatusOr<SandboxResult> Run(const SandboxSpec& spec, const CancelFlag& cancel) = 0;
  // True if the app cannot reach the network or write outside its dirs.
  virtual bool isolated() const = 0;
  virtual std::string name() const = 0;
};

}  // namespace artel
