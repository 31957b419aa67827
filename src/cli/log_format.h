// `--log-format text|json` for the long-running processes: text is
// spdlog's readable default; json writes one object per line for log
// shippers: {"time": ISO-8601 UTC, "level", "msg", "thread", "logger"?}.
#pragma once

#include <string>

#include "common/status.h"

namespace artel::cli {

// Sets the format of every spdlog logger. InvalidArgument for an unknown name.
absl::Status SetLogFormat(const std::string& format);

// True once SetLogFormat("json") succeeded.
bool JsonLogs();

// One line for the operator: to stdout as is with text logs, as an info log
// record with JSON logs (so that stdout stays one JSON object per line).
void Announce(const std::string& line);

}  // namespace artel::cli
