// The default Sandbox: runs each app with bubblewrap (bwrap).
//
// Inside the sandbox (all namespaces unshared, capabilities dropped):
//  - no network: a new network namespace with only an unconfigured loopback,
//    so neither the internet nor the host's 127.0.0.1 is reachable;
//  - a new pid namespace: killing bwrap kills every process of the app;
//  - read-only /usr, /etc (with /etc/shadow, /etc/ssh, ... masked) and the
//    host's /bin, /lib, ... (symlinks into /usr on Debian 12), fresh /proc,
//    /dev and an empty tmpfs /tmp;
//  - the app read-only at /artel/app/<file name>; writable only
//    /artel/work (cwd, = work_dir), /artel/out (= output_dir) and
//    /artel/checkpoint (= checkpoint_dir). Nothing else of the host is
//    visible (no /home, /root, /work, /var ...).
//  - environment: see SandboxEnvironment() in sandbox_spec_util.h, with the
//    /artel/... paths.
// Limits, capture, timeout and cancellation: see process_runner.h (notably
// how max_processes is enforced).
//
// Exit status: bwrap reports an app killed by signal N as exit code 128+N,
// so exit codes 129..192 are reported as kSignaled with signal N. An app
// that itself exits with such a code (or a shell whose child was killed)
// reads the same.
//
// Files the app creates belong to the worker's user on the host. As root,
// the app's uid 0 is the host's root without capabilities: it can read what
// root-owned 0600-style files are bound (hence the masks in /etc).
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "sandbox/sandbox.h"

namespace artel {

// Thread-safe: immutable after Create.
class BubblewrapSandbox final : public Sandbox {
 public:
  // Checks that `bwrap` exists and can create the namespaces (by running
  // `bwrap ... /bin/true` once); the error says what to do if not.
  static absl::StatusOr<std::unique_ptr<BubblewrapSandbox>> Create(
      std::filesystem::path bwrap = "/usr/bin/bwrap");

  // An error Status also when bwrap could not set up the sandbox (a host
  // fault, e.g. a bind source vanished); the app's own failures are results.
  absl::StatusOr<SandboxResult> Run(const SandboxSpec& spec, const CancelFlag& cancel) override;
  bool isolated() const override { return true; }
  std::string name() const override { return "bubblewrap"; }

  // The full command line Run would execute for `spec` (for logs and tests).
  std::vector<std::string> CommandLine(const SandboxSpec& spec) const;

 private:
  BubblewrapSandbox(std::filesystem::path bwrap, std::vector<std::string> system_args);

  const std::filesystem::path bwrap_;
  // Namespace options and the system mounts, shared by every run.
  const std::vector<std::string> system_args_;
};

}  // namespace artel
