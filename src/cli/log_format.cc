#include "cli/log_format.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <ctime>
#include <iostream>
#include <nlohmann/json.hpp>

namespace artel::cli {
namespace {

std::atomic<bool> json_logs{false};

class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const auto since_epoch = msg.time.time_since_epoch();
    const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(since_epoch);
    const auto millis =
        std::chrono::duration_cast<std::chrono::milliseconds>(since_epoch - seconds).count();
    const std::time_t t = static_cast<std::time_t>(seconds.count());
    std::tm tm{};
    gmtime_r(&t, &tm);
    char stamp[40];
    std::snprintf(stamp, sizeof(stamp), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                  static_cast<int>(millis));
    const auto level = spdlog::level::to_string_view(msg.level);
    nlohmann::json j = {{"time", stamp},
                        {"level", std::string(level.data(), level.size())},
                        {"msg", std::string(msg.payload.data(), msg.payload.size())},
                        {"thread", msg.thread_id}};
    if (msg.logger_name.size() > 0) {
      j["logger"] = std::string(msg.logger_name.data(), msg.logger_name.size());
    }
    // Invalid UTF-8 in a message must not break the line for the shipper.
    const std::string line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    dest.append(line.data(), line.data() + line.size());
    dest.push_back('\n');
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>();
  }
};

}  // namespace

absl::Status SetLogFormat(const std::string& format) {
  if (format == "text") {
    json_logs = false;
    return absl::OkStatus();
  }
  if (format == "json") {
    spdlog::set_formatter(std::make_unique<JsonFormatter>());
    json_logs = true;
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError("--log-format '" + format + "' is unknown; use text or json");
}

bool JsonLogs() { return json_logs.load(); }

void Announce(const std::string& line) {
  if (JsonLogs()) {
    spdlog::info("{}", line);
  } else {
    std::cout << line << std::endl;
  }
}

}  // namespace artel::cli
