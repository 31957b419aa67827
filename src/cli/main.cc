// `artel`: one binary for the coordinator, the worker agent and the client.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>

#include "cli/cli_common.h"

int main(int argc, char** argv) {
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
