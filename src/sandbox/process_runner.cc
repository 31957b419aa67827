#include "sandbox/process_runner.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "sandbox/process_tree.h"

namespace artel {
namespace {

using SteadyClock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr size_t kMaxStatusBytes = 64 << 10;

// Closes the descriptor when it goes out of scope.
class UniqueFd {
 public:
  explicit UniqueFd(int fd = -1) : fd_(fd) {}
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { Reset(); }
  int get() const { return fd_; }
  void Reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_;
};

struct Pipe {
  UniqueFd read, write;
};

absl::Status MakePipe(Pipe& pipe) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "sandbox: pipe2 failed: ", std::strerror(errno), "; check the open-file limit"));
  }
  pipe.read.Reset(fds[0]);
  pipe.write.Reset(fds[1]);
  return absl::OkStatus();
}

// What the child reports through the exec-error pipe when it cannot exec.
struct ChildFailure {
  int step;  // index into kChildSteps
  int err;   // errno
};
constexpr const char* kChildSteps[] = {"dup", "setrlimit", "chdir", "execve"};

struct ChildSetup {
  pid_t parent;
  int stdin_fd, stdout_fd, stderr_fd, status_fd, failure_fd;  // status_fd may be -1
  const char* cwd;                                            // nullptr = inherit
  char* const* argv;
  char* const* envp;
  uint64_t memory_bytes;
};

// Runs in the forked child of a possibly multi-threaded parent: only
// async-signal-safe calls, no allocation.
[[noreturn]] void ExecChild(ChildSetup s) {
  ::setpgid(0, 0);
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != s.parent) ::_exit(127);
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) ::sigaction(sig, &dfl, nullptr);  // undo SIG_IGN
  sigset_t none;
  ::sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);

  auto fail = [&](int step, int err) {
    ChildFailure failure{step, err};
    ssize_t ignored = ::write(s.failure_fd, &failure, sizeof(failure));
    (void)ignored;
    ::_exit(127);
  };
  // Move every source above the targets first so no dup2 clobbers another.
  int in = ::fcntl(s.stdin_fd, F_DUPFD_CLOEXEC, 10);
  int out = ::fcntl(s.stdout_fd, F_DUPFD_CLOEXEC, 10);
  int err = ::fcntl(s.stderr_fd, F_DUPFD_CLOEXEC, 10);
  int status = s.status_fd >= 0 ? ::fcntl(s.status_fd, F_DUPFD_CLOEXEC, 10) : -1;
  int failure_fd = ::fcntl(s.failure_fd, F_DUPFD_CLOEXEC, 10);
  if (failure_fd < 0) ::_exit(127);
  s.failure_fd = failure_fd;
  if (in < 0 || out < 0 || err < 0 || (s.status_fd >= 0 && status < 0)) fail(0, errno);
  if (::dup2(in, 0) < 0 || ::dup2(out, 1) < 0 || ::dup2(err, 2) < 0) fail(0, errno);
  if (status >= 0 && ::dup2(status, 3) < 0) fail(0, errno);
  unsigned first_free = status >= 0 ? 4 : 3;
  if (static_cast<unsigned>(failure_fd) > first_free) ::close_range(first_free, failure_fd - 1, 0);
  ::close_range(failure_fd + 1, ~0U, 0);

  struct rlimit as {
    s.memory_bytes, s.memory_bytes
  };
  struct rlimit core {
    0, 0
  };
  struct rlimit fsize {
    kMaxFileBytes, kMaxFileBytes
  };
  if (::setrlimit(RLIMIT_AS, &as) != 0 || ::setrlimit(RLIMIT_CORE, &core) != 0 ||
      ::setrlimit(RLIMIT_FSIZE, &fsize) != 0) {
    fail(1, errno);
  }
  if (s.cwd != nullptr && ::chdir(s.cwd) != 0) fail(2, errno);
  ::execve(s.argv[0], s.argv, s.envp);
  fail(3, errno);
  ::_exit(127);  // not reached
}

// Keeps up to `limit` bytes read from one pipe; reads and drops the rest.
struct Capture {
  Capture(int fd, size_t limit) : fd(fd), limit(limit) {}
  int fd;
  size_t limit;
  std::string data;
  bool truncated = false;
  bool open = true;

  void ReadAvailable() {
    char buf[64 << 10];
    while (open) {
      ssize_t n = ::read(fd, buf, sizeof(buf));
      if (n > 0) {
        size_t keep = std::min(static_cast<size_t>(n), limit - data.size());
        data.append(buf, keep);
        if (keep < static_cast<size_t>(n)) truncated = true;
      } else if (n == 0) {
        open = false;
      } else if (errno == EINTR) {
        continue;
      } else {
        if (errno != EAGAIN) open = false;
        return;
      }
    }
  }
};

// Waits up to `timeout` for any open capture to become readable, then reads.
void PollCaptures(std::vector<Capture*>& captures, milliseconds timeout) {
  std::vector<pollfd> fds;
  std::vector<Capture*> polled;
  for (Capture* c : captures) {
    if (!c->open) continue;
    fds.push_back({c->fd, POLLIN, 0});
    polled.push_back(c);
  }
  int ready = ::poll(fds.data(), fds.size(), static_cast<int>(timeout.count()));
  if (ready <= 0) return;
  for (size_t i = 0; i < fds.size(); ++i) {
    if (fds[i].revents != 0) polled[i]->ReadAvailable();
  }
}

void SetNonBlocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

void KillGroup(pid_t pid) {
  ::kill(-pid, SIGKILL);
  ::kill(pid, SIGKILL);  // in case it had not reached setpgid yet
}

int WaitBlocking(pid_t pid) {
  int wstatus = 0;
  while (::waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
  }
  return wstatus;
}

}  // namespace

absl::StatusOr<ProcessOutcome> RunProcess(const ProcessLaunch& launch, const CancelFlag& cancel) {
  if (launch.argv.empty()) return absl::InvalidArgumentError("sandbox: empty argv");
  // Everything the child touches is prepared before fork.
  std::vector<char*> argv, envp;
  for (const std::string& arg : launch.argv) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  for (const std::string& var : launch.env) envp.push_back(const_cast<char*>(var.c_str()));
  envp.push_back(nullptr);
  const std::string cwd = launch.cwd.string();

  Pipe out, err, status, failure;
  RETURN_IF_ERROR(MakePipe(out));
  RETURN_IF_ERROR(MakePipe(err));
  RETURN_IF_ERROR(MakePipe(failure));
  if (launch.status_fd) RETURN_IF_ERROR(MakePipe(status));
  UniqueFd dev_null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (dev_null.get() < 0) {
    return absl::InternalError(
        absl::StrCat("sandbox: cannot open /dev/null: ", std::strerror(errno)));
  }
  ChildSetup setup{::getpid(),
                   dev_null.get(),
                   out.write.get(),
                   err.write.get(),
                   status.write.get(),
                   failure.write.get(),
                   cwd.empty() ? nullptr : cwd.c_str(),
                   argv.data(),
                   envp.data(),
                   launch.memory_bytes};

  const auto start = SteadyClock::now();
  const pid_t pid = ::fork();
  if (pid < 0) {
    return absl::ResourceExhaustedError(absl::StrCat("sandbox: fork failed: ", std::strerror(errno),
                                                     "; the host is out of processes or memory"));
  }
  if (pid == 0) ExecChild(setup);
  ::setpgid(pid, pid);  // also done by the child; whichever runs first wins
  out.write.Reset();
  err.write.Reset();
  status.write.Reset();
  failure.write.Reset();

  // EOF here means execve succeeded (the pipe is close-on-exec).
  ChildFailure child_failure{};
  ssize_t n;
  while ((n = ::read(failure.read.get(), &child_failure, sizeof(child_failure))) < 0 &&
         errno == EINTR) {
  }
  if (n == static_cast<ssize_t>(sizeof(child_failure))) {
    WaitBlocking(pid);
    return absl::FailedPreconditionError(absl::StrCat(
        "sandbox: cannot start ", launch.argv[0], ": ", kChildSteps[child_failure.step],
        " failed: ", std::strerror(child_failure.err)));
  }

  Capture out_capture(out.read.get(), launch.max_captured_bytes);
  Capture err_capture(err.read.get(), launch.max_captured_bytes);
  Capture status_capture(status.read.get(), kMaxStatusBytes);
  std::vector<Capture*> captures{&out_capture, &err_capture};
  if (launch.status_fd) captures.push_back(&status_capture);
  for (Capture* c : captures) SetNonBlocking(c->fd);

  enum class KillReason { kNone, kTimeout, kCancel, kProcessLimit };
  KillReason reason = KillReason::kNone;
  const bool has_deadline = launch.wall_time.count() > 0;
  const auto deadline = start + launch.wall_time;
  auto next_task_check = start + kTaskCheckPeriod;
  int wstatus = 0;
  while (true) {
    // WNOWAIT keeps the exited child a zombie, so its pid - which names the
    // process group - cannot be reused before the group is killed below.
    siginfo_t info{};
    if (::waitid(P_PID, pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == pid) break;
    const auto now = SteadyClock::now();
    if (cancel.cancelled()) {
      reason = KillReason::kCancel;
    } else if (has_deadline && now >= deadline) {
      reason = KillReason::kTimeout;
    } else if (now >= next_task_check) {
      next_task_check = now + kTaskCheckPeriod;
      if (CountTasksInTree(pid) > static_cast<int>(launch.max_processes + launch.extra_tasks)) {
        reason = KillReason::kProcessLimit;
      }
    }
    if (reason != KillReason::kNone) break;
    auto wait = kCancelCheckPeriod;
    if (has_deadline) {
      wait = std::min(wait,
                      std::chrono::duration_cast<milliseconds>(deadline - now) + milliseconds(1));
    }
    PollCaptures(captures, wait);
  }
  // Whatever is left of the tree (background processes included) goes too.
  KillGroup(pid);
  wstatus = WaitBlocking(pid);
  const auto end = SteadyClock::now();

  const auto drain_until = end + kDrainGrace;
  for (auto now = end; now < drain_until; now = SteadyClock::now()) {
    bool any_open = false;
    for (Capture* c : captures) any_open |= c->open;
    if (!any_open) break;
    PollCaptures(captures,
                 std::chrono::duration_cast<milliseconds>(drain_until - now) + milliseconds(1));
  }

  ProcessOutcome outcome;
  SandboxResult& result = outcome.result;
  result.runtime = std::chrono::duration_cast<milliseconds>(end - start);
  result.stdout_data = std::move(out_capture.data);
  result.stderr_data = std::move(err_capture.data);
  result.stdout_truncated = out_capture.truncated;
  result.stderr_truncated = err_capture.truncated;
  outcome.status_fd_data = std::move(status_capture.data);
  switch (reason) {
    case KillReason::kTimeout:
      result.termination = SandboxResult::Termination::kTimedOut;
      break;
    case KillReason::kCancel:
      result.termination = SandboxResult::Termination::kCancelled;
      break;
    case KillReason::kProcessLimit:
      result.termination = SandboxResult::Termination::kSignaled;
      result.signal = SIGKILL;
      outcome.process_limit_exceeded = true;
      absl::StrAppend(&result.stderr_data, "\n[artel sandbox] killed: more than ",
                      launch.max_processes, " processes and threads\n");
      break;
    case KillReason::kNone:
      if (WIFEXITED(wstatus)) {
        result.termination = SandboxResult::Termination::kExited;
        result.exit_code = WEXITSTATUS(wstatus);
      } else {
        result.termination = SandboxResult::Termination::kSignaled;
        result.signal = WIFSIGNALED(wstatus) ? WTERMSIG(wstatus) : SIGKILL;
      }
      break;
  }
  return outcome;
}

}  // namespace artel
