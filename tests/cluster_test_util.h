// Helpers of the multi-process tests: a temporary directory, running the
// `artel` binary as a subprocess, polling with deadlines, writing app scripts,
// and a fixture that starts a LocalCluster (real coordinator and worker
// processes on loopback) in a temporary directory.
//
// The `artel` binary is found through $ARTEL_BINARY_DIR (set by ctest) as
// $ARTEL_BINARY_DIR/bin/artel. Not thread-safe.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "artel/v1/artel.pb.h"
#include "cli/local_cluster.h"
#include "client/client.h"

namespace artel::testing {

// $ARTEL_BINARY_DIR/bin/artel; empty if the variable is unset.
std::filesystem::path ArtelBinary();

// A directory made by mkdtemp under /tmp; removed with its contents on
// destruction.
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

struct CommandResult {
  int exit_code = -1;  // 128+signal if killed; -1 if it could not start
  std::string out;     // stdout
  std::string err;     // stderr
};

// Runs `argv` (argv[0] is the program's path) and waits up to `timeout`
// (then SIGKILL). The child sees this process's environment without any
// ARTEL_* variable, plus `env` ("K=V").
CommandResult RunProgram(std::vector<std::string> argv, const std::vector<std::string>& env = {},
                         std::chrono::milliseconds timeout = std::chrono::seconds(60));

// RunProgram of `artel args...`.
CommandResult RunArtel(const std::vector<std::string>& args,
                       const std::vector<std::string>& env = {},
                       std::chrono::milliseconds timeout = std::chrono::seconds(60));

// Calls `condition` every 50 ms until it returns true (returns true) or
// `timeout` passes (returns false).
bool PollUntil(const std::function<bool()>& condition, std::chrono::milliseconds timeout);

// Writes `body` to `path` with mode 0755.
void WriteExecutable(const std::filesystem::path& path, const std::string& body);
void WriteFile(const std::filesystem::path& path, const std::string& data);
std::string ReadFile(const std::filesystem::path& path);

// Splits `text` into lines, dropping empty ones.
std::vector<std::string> Lines(const std::string& text);

// A string unique to this call, for finding an app's processes.
std::string UniqueMarker();
// True if some process on this machine has `marker` in its command line.
bool ProcessWithArgumentExists(const std::string& marker);

// Coordinator flags that make worker loss quick to detect.
std::vector<std::string> FastFailureDetection();

// A test that runs a LocalCluster in a temporary directory.
class ClusterTest : public ::testing::Test {
 protected:
  // Starts the coordinator with FastFailureDetection() plus `extra_args`.
  // Fails the test (fatally) if it does not come up.
  // `sign_apps`: LocalClusterOptions::sign_apps (AddScriptApp signs with
  // the cluster's key).
  void StartCluster(std::vector<std::string> extra_args = {}, bool sign_apps = true);
  LocalCluster& cluster() { return *cluster_; }
  Client& client() { return cluster_->client(); }
  const std::filesystem::path& dir() const { return dir_.path(); }

  // Writes `script` to the temp dir and registers it as app `name` version 1.
  void AddScriptApp(const std::string& name, const std::string& script);
  // Starts a worker and waits until the coordinator lists it alive; returns
  // its worker id (empty, with a test failure, if it never shows up).
  // `owner`: the owner of its token [its name].
  std::string AddWorker(const std::string& name, std::vector<std::string> extra = {},
                        const std::string& owner = "");
  // Polls GetTask until the task is done; fails the test on timeout.
  v1::TaskInfo WaitDone(uint64_t id, std::chrono::milliseconds timeout = std::chrono::seconds(60));
  // Polls GetTask until `condition(task)`; returns the task, or nullopt on timeout.
  std::optional<v1::TaskInfo> WaitTask(uint64_t id,
                                       const std::function<bool(const v1::TaskInfo&)>& condition,
                                       std::chrono::milliseconds timeout);
  // Downloads output `name` of a finished task.
  std::string Output(uint64_t id, const std::string& name);
  // A one-task submission of app `app` with `args`.
  v1::SubmitRequest OneTask(const std::string& app, std::vector<std::string> args = {});
  // Shows the tail of the process logs when a test failed.
  void TearDown() override;

  TempDir dir_;
  std::unique_ptr<LocalCluster> cluster_;
};

}  // namespace artel::testing
