// `artel`: one binary for the coordinator, the worker agent and the client.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>

#include "absl/synchronization/mutex.h"
#include "cli/cli_common.h"

int main(int argc, char** argv) {
  // Debian's Abseil is built with deadlock detection on, which records a
  // lock graph on every Mutex acquisition. Lock order is a property of the
  // code: the unit tests, which do not come through here, keep it checked.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  CLI::App app{"artel: a volunteer compute grid for machine learning"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "show help for every command");
  artel::cli::AddServerCommands(app);
  artel::cli::AddAdminCommands(app);
  artel::cli::AddTaskCommands(app);
  artel::cli::AddDataCommands(app);
  artel::cli::AddTrainCommands(app);
  artel::cli::AddDemoCommand(app);
  artel::cli::AddBenchCommands(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::RuntimeError& e) {
    return e.get_exit_code();
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return 0;
}
