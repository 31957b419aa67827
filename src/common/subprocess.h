// Child processes for the demo, the benchmarks and multi-process tests:
// start a program with arguments, send it signals, wait for it.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>
#include <vector>

#include "common/status.h"

namespace artel {

// Owns one child. Its destructor kills it (SIGKILL) and reaps it.
// Not thread-safe.
class Subprocess {
 public:
  // Starts `argv[0]` with `argv`; stdout and stderr go to `log` (appended),
  // or are inherited when `log` is empty. `env` entries ("K=V") are added.
  static absl::StatusOr<Subprocess> Start(const std::vector<std::string>& argv,
                                          const std::filesystem::path& log = {},
                                          const std::vector<std::string>& env = {});
  Subprocess() = default;
  Subprocess(Subprocess&& other) noexcept;
  Subprocess& operator=(Subprocess&& other) noexcept;
  ~Subprocess();

  pid_t pid() const { return pid_; }
  bool running();
  void Signal(int sig);
  // Sends SIGKILL and reaps.
  void Kill();
  // Waits for exit; returns the exit code, or 128+signal.
  int Wait();

 private:
  pid_t pid_ = -1;
};

// The directory holding the running executable (for sibling binaries).
std::filesystem::path SelfDirectory();

}  // namespace artel
