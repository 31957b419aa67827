// What both sandboxes derive from a SandboxSpec: its checks and the app's
// environment.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"
#include "sandbox/sandbox.h"

namespace artel {

// The environment both sandboxes give an app: PATH=/usr/bin:/bin, then
// spec.env, then HOME=work, ARTEL_WORK_DIR=work, ARTEL_OUTPUT_DIR=output,
// ARTEL_CHECKPOINT_DIR=checkpoint (these win over spec.env), as "NAME=value".
std::vector<std::string> SandboxEnvironment(const SandboxSpec& spec, const std::string& work,
                                            const std::string& output,
                                            const std::string& checkpoint);

// Checks what both sandboxes need before they start: the executable is an
// executable regular file, the three directories exist and the names in
// spec.env are non-empty without '='. The errors say what to fix.
absl::Status ValidateSandboxSpec(const SandboxSpec& spec);

}  // namespace artel
