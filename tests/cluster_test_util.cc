#include "cluster_test_util.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

extern char** environ;

namespace artel::testing {

std::filesystem::path ArtelBinary() {
  const char* dir = std::getenv("ARTEL_BINARY_DIR");
  if (dir == nullptr || *dir == '\0') return {};
  return std::filesystem::path(dir) / "bin" / "artel";
}

TempDir::TempDir() {
  char tmpl[] = "/tmp/artel-mp-XXXXXX";
  const char* made = ::mkdtemp(tmpl);
  if (made == nullptr) {
    ADD_FAILURE() << "mkdtemp failed";
    return;
  }
  path_ = made;
}

TempDir::~TempDir() {
  std::error_code ec;
  if (!path_.empty()) std::filesystem::remove_all(path_, ec);
}

CommandResult RunArtel(const std::vector<std::string>& args, const std::vector<std::string>& env,
                       std::chrono::milliseconds timeout) {
  std::vector<std::string> argv = {ArtelBinary().string()};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunProgram(argv, env, timeout);
}

CommandResult RunProgram(std::vector<std::string> argv, const std::vector<std::string>& env,
                         std::chrono::milliseconds timeout) {
  CommandResult result;
  TempDir io;
  const auto out_path = io.path() / "stdout", err_path = io.path() / "stderr";
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::string(*e).rfind("ARTEL_", 0) != 0) env_strings.emplace_back(*e);
  }
  env_strings.insert(env_strings.end(), env.begin(), env.end());
  std::vector<char*> argp, envp;
  for (auto& a : argv) argp.push_back(a.data());
  argp.push_back(nullptr);
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  const int out_fd = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  const int err_fd = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out_fd, 1);
    ::dup2(err_fd, 2);
    ::execve(argp[0], argp.data(), envp.data());
    _exit(127);
  }
  ::close(out_fd);
  ::close(err_fd);
  if (pid < 0) return result;
  int status = 0;
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (::waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > until) {
      ADD_FAILURE() << argv[0] << " " << (argv.size() > 1 ? argv[1] : "") << " did not finish in "
                    << timeout.count() << " ms; killed";
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  result.out = ReadFile(out_path);
  result.err = ReadFile(err_path);
  return result;
}

bool PollUntil(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (condition()) return true;
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

void WriteFile(const std::filesystem::path& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
  ASSERT_TRUE(out.good()) << "cannot write " << path;
}

void WriteExecutable(const std::filesystem::path& path, const std::string& body) {
  WriteFile(path, body);
  std::filesystem::permissions(
      path, std::filesystem::perms::owner_all | std::filesystem::perms::group_read |
                std::filesystem::perms::group_exec | std::filesystem::perms::others_read |
                std::filesystem::perms::others_exec);
}

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

std::string UniqueMarker() {
  static int counter = 0;
  return "marker-" + std::to_string(::getpid()) + "-" + std::to_string(++counter);
}

bool ProcessWithArgumentExists(const std::string& marker) {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmdline = ReadFile(e.path() / "cmdline");
    std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
    if (cmdline.find(marker) != std::string::npos) return true;
  }
  return false;
}

std::vector<std::string> FastFailureDetection() {
  return {"--heartbeat-interval", "200ms", "--worker-timeout", "1s"};
}

void ClusterTest::StartCluster(std::vector<std::string> extra_args, bool sign_apps) {
  ASSERT_FALSE(ArtelBinary().empty()) << "ARTEL_BINARY_DIR is not set; run the tests with ctest";
  ASSERT_TRUE(std::filesystem::exists(ArtelBinary())) << ArtelBinary() << " is missing";
  LocalClusterOptions options;
  options.artel_binary = ArtelBinary();
  options.root = dir() / "cluster";
  options.sign_apps = sign_apps;
  options.coordinator_args = FastFailureDetection();
  options.coordinator_args.insert(options.coordinator_args.end(), extra_args.begin(),
                                  extra_args.end());
  absl::StatusOr<std::unique_ptr<LocalCluster>> c = LocalCluster::Start(options);
  ASSERT_TRUE(c.ok()) << c.status();
  cluster_ = *std::move(c);
}

void ClusterTest::AddScriptApp(const std::string& name, const std::string& script) {
  const auto path = dir() / (name + ".sh");
  WriteExecutable(path, script);
  absl::StatusOr<v1::AppVersion> app = client().AddApp(name, "1", path, cluster().signing_key());
  ASSERT_TRUE(app.ok()) << app.status();
}

std::string ClusterTest::AddWorker(const std::string& name, std::vector<std::string> extra,
                                   const std::string& owner) {
  WorkerPlacement placement;
  placement.owner = owner;
  absl::StatusOr<size_t> index = cluster_->AddWorker(name, std::move(extra), placement);
  EXPECT_TRUE(index.ok()) << index.status();
  std::string id;
  PollUntil(
      [&] {
        absl::StatusOr<v1::ListWorkersResponse> workers = client().ListWorkers();
        if (!workers.ok()) return false;
        for (const auto& w : workers->workers()) {
          if (w.name() == name && w.alive()) id = w.id();
        }
        return !id.empty();
      },
      std::chrono::seconds(20));
  EXPECT_FALSE(id.empty()) << "worker " << name << " did not register within 20 s";
  return id;
}

std::optional<v1::TaskInfo> ClusterTest::WaitTask(
    uint64_t id, const std::function<bool(const v1::TaskInfo&)>& condition,
    std::chrono::milliseconds timeout) {
  std::optional<v1::TaskInfo> found;
  PollUntil(
      [&] {
        absl::StatusOr<v1::TaskInfo> t = client().GetTask(id);  // errors: coordinator restarting
        if (t.ok() && condition(*t)) found = *t;
        return found.has_value();
      },
      timeout);
  return found;
}

v1::TaskInfo ClusterTest::WaitDone(uint64_t id, std::chrono::milliseconds timeout) {
  std::optional<v1::TaskInfo> t = WaitTask(
      id, [](const v1::TaskInfo& t) { return t.state() == v1::TASK_STATE_DONE; }, timeout);
  if (t.has_value()) return *t;
  ADD_FAILURE() << "task " << id << " did not finish within " << timeout.count() << " ms";
  absl::StatusOr<v1::TaskInfo> last = client().GetTask(id);
  return last.ok() ? *last : v1::TaskInfo();
}

std::string ClusterTest::Output(uint64_t id, const std::string& name) {
  const auto out = dir() / "results" / std::to_string(id);
  absl::StatusOr<std::vector<std::string>> files = client().FetchResult(id, out);
  EXPECT_TRUE(files.ok()) << files.status();
  EXPECT_TRUE(std::filesystem::exists(out / name)) << "task " << id << " has no output " << name;
  return ReadFile(out / name);
}

v1::SubmitRequest ClusterTest::OneTask(const std::string& app, std::vector<std::string> args) {
  v1::SubmitRequest req;
  v1::TaskSpec* t = req.add_tasks();
  t->set_app(app);
  for (auto& a : args) t->add_args(std::move(a));
  return req;
}

void ClusterTest::TearDown() {
  if (!HasFailure() || cluster_ == nullptr) return;
  for (const auto& e : std::filesystem::directory_iterator(cluster_->root())) {
    if (e.path().extension() != ".log") continue;
    const std::vector<std::string> lines = Lines(ReadFile(e.path()));
    std::cerr << "---- last lines of " << e.path().filename().string() << "\n";
    for (size_t i = lines.size() > 25 ? lines.size() - 25 : 0; i < lines.size(); ++i) {
      std::cerr << lines[i] << "\n";
    }
  }
}

}  // namespace artel::testing
