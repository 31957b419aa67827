// The entry points of artel-ml shared by a plain run (main) and a warm
// executor (serve.cc).
#pragma once

#include <string>

#include "session.h"

namespace artel::ml {

struct CommandOptions {
  // Inside a warm executor: libtorch's threads are set once for the process
  // and `serve` is refused [false].
  bool in_executor = false;
  // Output directory when the command gives no --out; empty: the command's
  // default ($ARTEL_OUTPUT_DIR) [empty].
  std::string out_dir;
};

// Parses argv (argv[0] is the program name) and runs one command with the
// models and shards of `session`. Returns the process exit code: 0 done;
// 2 bad input or usage (message on stderr); 1 any other failure.
int RunCommand(int argc, const char* const* argv, Session& session, const CommandOptions& options);

// Runs as a warm executor until the requests FIFO ends (docs/EXECUTORS.md).
// Empty paths: $ARTEL_EXECUTOR_REQUESTS and $ARTEL_EXECUTOR_RESPONSES.
// Returns the exit code.
int Serve(const std::string& requests, const std::string& responses, int threads);

}  // namespace artel::ml
