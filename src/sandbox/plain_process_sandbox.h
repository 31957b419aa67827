// A Sandbox without isolation: the app runs as a plain child process of the
// worker, with the worker's user, filesystem and network. Only for hosts
// without bubblewrap, and only when the operator asks for it
// (`artel worker --unsandboxed`); construction logs a loud warning.
//
// What still holds: cwd = work_dir; the environment is only PATH, HOME and
// the ARTEL_* variables (host paths) plus spec.env; the limits, capture,
// timeout and cancellation of process_runner.h. The whole process group is
// killed at the end; a process that calls setsid() or is orphaned escapes
// the kill and the process count.
#pragma once

#include <string>

#include "sandbox/sandbox.h"

namespace artel {

// Thread-safe, stateless.
class PlainProcessSandbox final : public Sandbox {
 public:
  PlainProcessSandbox();

  absl::StatusOr<SandboxResult> Run(const SandboxSpec& spec, const CancelFlag& cancel) override;
  bool isolated() const override { return false; }
  std::string name() const override { return "plain-process"; }
};

}  // namespace artel
