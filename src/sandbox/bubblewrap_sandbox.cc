#include "sandbox/bubblewrap_sandbox.h"

#include <sys/stat.h>
#include <unistd.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "sandbox/process_runner.h"
#include "sandbox/sandbox_spec_util.h"

namespace artel {
namespace {

constexpr char kAppDir[] = "/artel/app";
constexpr char kWorkDir[] = "/artel/work";
constexpr char kOutputDir[] = "/artel/out";
constexpr char kCheckpointDir[] = "/artel/checkpoint";
// bwrap outside and bwrap as pid 1 inside; counted in the process tree.
constexpr uint32_t kBwrapTasks = 2;
constexpr int kMaxSignal = 64;

// Secrets under /etc that a root-run app could otherwise read.
constexpr const char* kMaskedEtcFiles[] = {"/etc/shadow", "/etc/shadow-", "/etc/gshadow",
                                           "/etc/gshadow-", "/etc/sudoers"};
constexpr const char* kMaskedEtcDirs[] = {"/etc/ssh", "/etc/ssl/private", "/etc/sudoers.d",
                                          "/etc/artel"};

// Namespaces, and the host system read-only: /usr, /etc and the top-level
// /bin, /lib... as the host has them (symlinks into /usr, or directories).
std::vector<std::string> SystemArgs() {
  std::vector<std::string> args = {
      "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL", "--hostname",
      "artel",         "--ro-bind",         "/usr",          "/usr"};
  for (const char* top : {"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"}) {
    struct stat st {};
    if (::lstat(top, &st) != 0) continue;
    if (S_ISLNK(st.st_mode)) {
      std::error_code ec;
      auto target = std::filesystem::read_symlink(top, ec);
      if (!ec) args.insert(args.end(), {"--symlink", target.string(), top});
    } else if (S_ISDIR(st.st_mode)) {
      args.insert(args.end(), {"--ro-bind", top, top});
    }
  }
  args.insert(args.end(), {"--ro-bind", "/etc", "/etc"});
  for (const char* file : kMaskedEtcFiles) {
    if (::access(file, F_OK) == 0) args.insert(args.end(), {"--ro-bind", "/dev/null", file});
  }
  for (const char* dir : kMaskedEtcDirs) {
    std::error_code ec;
    if (std::filesystem::is_directory(dir, ec)) args.insert(args.end(), {"--tmpfs", dir});
  }
  args.insert(args.end(), {"--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"});
  return args;
}

}  // namespace

BubblewrapSandbox::BubblewrapSandbox(std::filesystem::path bwrap,
                                     std::vector<std::string> system_args)
    : bwrap_(std::move(bwrap)), system_args_(std::move(system_args)) {}

absl::StatusOr<std::unique_ptr<BubblewrapSandbox>> BubblewrapSandbox::Create(
    std::filesystem::path bwrap) {
  if (::access(bwrap.c_str(), X_OK) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "sandbox: bubblewrap not found at '", bwrap.string(),
        "'; install it (`apt-get install bubblewrap`) or, only if you accept running apps "
        "unisolated, start the worker with --unsandboxed"));
  }
  std::vector<std::string> system_args = SystemArgs();
  ProcessLaunch probe;
  probe.argv = {bwrap.string()};
  probe.argv.insert(probe.argv.end(), system_args.begin(), system_args.end());
  probe.argv.insert(probe.argv.end(), {"--", "/bin/true"});
  probe.env = {"PATH=/usr/bin:/bin"};
  probe.wall_time = std::chrono::seconds(30);
  CancelFlag never;
  auto outcome = RunProcess(probe, never);
  if (!outcome.ok()) return outcome.status();
  const SandboxResult& result = outcome->result;
  if (result.termination != SandboxResult::Termination::kExited || result.exit_code != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "sandbox: bubblewrap at '", bwrap.string(), "' cannot create a sandbox (exit code ",
        result.exit_code, ", signal ", result.signal, "): ", result.stderr_data,
        "; enable unprivileged user namespaces (sysctl user.max_user_namespaces=10000, and on "
        "Debian kernel.unprivileged_userns_clone=1) or, in a container, allow them (e.g. docker "
        "--security-opt seccomp=unconfined); only if you accept running apps unisolated, start the "
        "worker with --unsandboxed"));
  }
  return std::unique_ptr<BubblewrapSandbox>(
      new BubblewrapSandbox(std::move(bwrap), std::move(system_args)));
}

std::vector<std::string> BubblewrapSandbox::CommandLine(const SandboxSpec& spec) const {
  const std::string app = absl::StrCat(kAppDir, "/", spec.executable.filename().string());
  std::vector<std::string> argv = {bwrap_.string()};
  argv.insert(argv.end(), system_args_.begin(), system_args_.end());
  argv.insert(argv.end(),
              {"--ro-bind", std::filesystem::absolute(spec.executable).string(), app, "--bind",
               std::filesystem::absolute(spec.work_dir).string(), kWorkDir, "--bind",
               std::filesystem::absolute(spec.output_dir).string(), kOutputDir, "--bind",
               std::filesystem::absolute(spec.checkpoint_dir).string(), kCheckpointDir, "--chdir",
               kWorkDir, "--clearenv"});
  for (const std::string& var : SandboxEnvironment(spec, kWorkDir, kOutputDir, kCheckpointDir)) {
    const size_t eq = var.find('=');
    argv.insert(argv.end(), {"--setenv", var.substr(0, eq), var.substr(eq + 1)});
  }
  argv.insert(argv.end(), {"--json-status-fd", "3", "--", app});
  argv.insert(argv.end(), spec.args.begin(), spec.args.end());
  return argv;
}

absl::StatusOr<SandboxResult> BubblewrapSandbox::Run(const SandboxSpec& spec,
                                                     const CancelFlag& cancel) {
  RETURN_IF_ERROR(ValidateSandboxSpec(spec));
  ProcessLaunch launch;
  launch.argv = CommandLine(spec);
  launch.env = {"PATH=/usr/bin:/bin"};  // for bwrap itself; the app gets --setenv
  launch.memory_bytes = spec.memory_bytes;
  launch.max_processes = spec.max_processes;
  launch.extra_tasks = kBwrapTasks;
  launch.wall_time = spec.wall_time;
  launch.max_captured_bytes = spec.max_captured_bytes;
  launch.status_fd = true;
  ASSIGN_OR_RETURN(ProcessOutcome outcome, RunProcess(launch, cancel));
  SandboxResult& result = outcome.result;
  if (result.termination != SandboxResult::Termination::kExited) return std::move(result);
  if (!absl::StrContains(outcome.status_fd_data, "\"child-pid\"")) {
    return absl::InternalError(absl::StrCat(
        "sandbox: bubblewrap could not set up the sandbox (exit code ", result.exit_code,
        "): ", result.stderr_data, "; check that the app and its directories still exist"));
  }
  if (result.exit_code > 128 && result.exit_code <= 128 + kMaxSignal) {
    result.termination = SandboxResult::Termination::kSignaled;
    result.signal = result.exit_code - 128;
    result.exit_code = -1;
  }
  return std::move(result);
}

}  // namespace artel
