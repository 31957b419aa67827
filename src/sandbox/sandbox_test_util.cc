#include "sandbox/sandbox_test_util.h"

#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

namespace artel::testing {

TempDir::TempDir() {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern =
      std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/artel_sandbox_test_XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) std::abort();
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::filesystem::path WriteScript(const std::filesystem::path& dir, const std::string& name,
                                  const std::string& body, const std::string& interpreter) {
  const auto path = dir / name;
  {
    std::ofstream file(path);
    file << "#!" << interpreter << "\n" << body << "\n";
  }
  std::filesystem::permissions(path, std::filesystem::perms(0755));
  return path;
}

SandboxSpec MakeSpec(const std::filesystem::path& dir, const std::filesystem::path& executable) {
  SandboxSpec spec;
  spec.executable = executable;
  spec.work_dir = dir / "work";
  spec.output_dir = dir / "out";
  spec.checkpoint_dir = dir / "checkpoint";
  for (const auto& d : {spec.work_dir, spec.output_dir, spec.checkpoint_dir}) {
    std::filesystem::create_directories(d);
  }
  spec.wall_time = std::chrono::seconds(10);  // a hung test fails instead of hanging
  return spec;
}

std::string UniqueSleepToken() {
  static std::atomic<int> counter{0};
  return "1000." + std::to_string(::getpid()) + std::to_string(counter++);
}

namespace {

bool ProcessWithArgumentExistsNow(const std::string& token) {
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename();
    if (name.empty() || name[0] < '0' || name[0] > '9') continue;
    std::ifstream file(entry.path() / "cmdline", std::ios::binary);
    std::stringstream content;
    content << file.rdbuf();  // empty for zombies
    std::string cmdline = content.str();
    for (char& c : cmdline) c = (c == '\0' ? ' ' : c);
    if ((" " + cmdline).find(" " + token + " ") != std::string::npos) return true;
  }
  return false;
}

}  // namespace

bool ProcessWithArgumentExists(const std::string& token, int grace_ms) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(grace_ms);
  while (ProcessWithArgumentExistsNow(token)) {
    if (std::chrono::steady_clock::now() >= until) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream file(path, std::ios::binary);
  std::stringstream content;
  content << file.rdbuf();
  return content.str();
}

}  // namespace artel::testing
