// Helpers for the sandbox tests: a temporary directory tree, test scripts
// and a way to see whether a process started by a test is still alive.
#pragma once

#include <filesystem>
#include <string>

#include "sandbox/sandbox.h"

namespace artel::testing {

// A fresh directory (mkdtemp under $TMPDIR or /tmp), removed with its content
// on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// Writes `body` after a "#!<interpreter>" line to dir/name, mode 0755.
std::filesystem::path WriteScript(const std::filesystem::path& dir, const std::string& name,
                                  const std::string& body,
                                  const std::string& interpreter = "/bin/sh");

// Creates dir/{work,out,checkpoint} and a spec for `executable` using them.
SandboxSpec MakeSpec(const std::filesystem::path& dir, const std::filesystem::path& executable);

// A number unique to this test process and call, e.g. "1000.4242017": use it
// as `sleep <token>` to find that sleep among the host's processes.
std::string UniqueSleepToken();

// True if some live (non-zombie) process on the host has `token` as an
// argument. Waits up to `grace_ms` for such processes to go away.
bool ProcessWithArgumentExists(const std::string& token, int grace_ms = 2000);

std::string ReadFile(const std::filesystem::path& path);

}  // namespace artel::testing
