// Counting the tasks (processes and threads) of a process tree by scanning
// /proc. Used to enforce SandboxSpec::max_processes where RLIMIT_NPROC does
// not hold (see process_runner.h).
#pragma once

#include <sys/types.h>

namespace artel {

// Number of tasks (threads, counting each process's main thread) of `root`
// and all its descendants, following parent links in /proc/<pid>/stat.
// Processes reparented away from the tree (orphans of a dead parent, outside
// a pid namespace) are not seen. Returns 0 if `root` is gone.
// Cost: one read of /proc/<pid>/stat per process on the host.
// Thread-safe.
int CountTasksInTree(pid_t root);

}  // namespace artel
