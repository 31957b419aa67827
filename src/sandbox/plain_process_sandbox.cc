#include "sandbox/plain_process_sandbox.h"

#include "sandbox/process_runner.h"
#include "sandbox/sandbox_spec_util.h"
#include "spdlog/spdlog.h"

namespace artel {

PlainProcessSandbox::PlainProcessSandbox() {
  spdlog::warn(
      "sandbox: running apps WITHOUT isolation (plain processes): an app can read and write "
      "anything this user can and use the network. Install bubblewrap to sandbox apps.");
}

absl::StatusOr<SandboxResult> PlainProcessSandbox::Run(const SandboxSpec& spec,
                                                       const CancelFlag& cancel) {
  RETURN_IF_ERROR(ValidateSandboxSpec(spec));
  const auto work = std::filesystem::absolute(spec.work_dir).lexically_normal();
  const auto output = std::filesystem::absolute(spec.output_dir).lexically_normal();
  const auto checkpoint = std::filesystem::absolute(spec.checkpoint_dir).lexically_normal();

  ProcessLaunch launch;
  launch.argv.push_back(std::filesystem::absolute(spec.executable).string());
  launch.argv.insert(launch.argv.end(), spec.args.begin(), spec.args.end());
  launch.env = SandboxEnvironment(spec, work.string(), output.string(), checkpoint.string());
  launch.cwd = work;
  launch.memory_bytes = spec.memory_bytes;
  launch.max_processes = spec.max_processes;
  launch.wall_time = spec.wall_time;
  launch.max_captured_bytes = spec.max_captured_bytes;
  ASSIGN_OR_RETURN(ProcessOutcome outcome, RunProcess(launch, cancel));
  return std::move(outcome.result);
}

}  // namespace artel
