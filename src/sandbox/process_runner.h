// Runs one process tree with limits, output capture, a wall-time limit and
// cancellation. The mechanism shared by BubblewrapSandbox (which runs bwrap
// here) and PlainProcessSandbox (which runs the app itself here).
//
// Limits, as they actually behave (verified on Linux 6.x, Debian 12):
//  - RLIMIT_AS = memory_bytes, per process (virtual address space, so a
//    program reserving large mappings fails even if it would not touch them).
//    bwrap itself starts fine under 64 MiB.
//  - RLIMIT_CORE = 0, RLIMIT_FSIZE = kMaxFileBytes per file.
//  - max_processes is NOT enforced with RLIMIT_NPROC: as root the kernel
//    ignores it (also inside bwrap's user namespace, whose uid 0 is the host's
//    root), and as any other user it counts every task of that host user -
//    the worker's own threads and all other sandboxes included - so a limit
//    sized for one app would keep bwrap from starting. Instead the runner
//    counts the tasks (processes + threads) of the tree every
//    kTaskCheckPeriod and kills the tree when there are more than
//    max_processes + extra_tasks. A fork bomb thus runs for up to one period.
//    Cost: a scan reads /proc/<pid>/stat of every host process, about 12 us
//    each (1 ms per scan with 90 processes, ~1% of a core per running app).
//  - The tree is the child's process group (the child calls setpgid(0, 0)):
//    on timeout, cancel, limit or exit every process of the group gets
//    SIGKILL. Members that left the group (setsid) are only reached when the
//    child is bwrap with --unshare-pid (killing it kills its pid namespace).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "common/status.h"
#include "sandbox/sandbox.h"

namespace artel {

inline constexpr uint64_t kMaxFileBytes = 16ull << 30;  // RLIMIT_FSIZE [16 GiB]
inline constexpr std::chrono::milliseconds kCancelCheckPeriod{20};
inline constexpr std::chrono::milliseconds kTaskCheckPeriod{100};
// After the child ends, how long to keep reading its pipes for EOF (a process
// that escaped the kill may hold them).
inline constexpr std::chrono::milliseconds kDrainGrace{500};

struct ProcessLaunch {
  // argv[0] is the absolute path that is executed (no PATH search).
  std::vector<std::string> argv;
  // The complete environment, "NAME=value" each.
  std::vector<std::string> env;
  // Working directory of the child; empty = the caller's.
  std::filesystem::path cwd;
  uint64_t memory_bytes = 256ull << 20;    // RLIMIT_AS [256 MiB]
  uint32_t max_processes = 64;             // tasks in the tree, see above [64]
  uint32_t extra_tasks = 0;                // tasks of the launcher itself (bwrap: 2) [0]
  std::chrono::milliseconds wall_time{0};  // 0 = no limit [0]
  size_t max_captured_bytes = 1 << 20;     // per stream [1 MiB]
  // If true the child gets the write end of an extra pipe as fd 3 and its
  // content is returned in ProcessOutcome::status_fd_data [false].
  bool status_fd = false;
};

struct ProcessOutcome {
  SandboxResult result;
  // Set when the tree was killed for having more than max_processes tasks;
  // result is then kSignaled with SIGKILL.
  bool process_limit_exceeded = false;
  std::string status_fd_data;  // at most 64 KiB; see ProcessLaunch::status_fd
};

// Runs `launch` to completion, timeout or cancellation. stdin is /dev/null.
// Returns an error only if the process could not be started (pipe/fork
// failure, exec failure - with errno in the message).
// Thread-safe; blocks the calling thread, which must not exit before Run
// returns.
absl::StatusOr<ProcessOutcome> RunProcess(const ProcessLaunch& launch, const CancelFlag& cancel);

}  // namespace artel
