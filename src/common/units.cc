#include "common/units.h"

#include <cctype>
#include <charconv>
#include <cstdio>

namespace artel {
namespace {

// Splits "12.5ms" into 12.5 and "ms". Returns false when no number leads.
bool SplitNumber(std::string_view text, double* number, std::string_view* suffix) {
  size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.'))
    ++i;
  if (i == 0) return false;
  std::string num(text.substr(0, i));
  char* end = nullptr;
  *number = std::strtod(num.c_str(), &end);
  if (end != num.c_str() + num.size()) return false;
  *suffix = text.substr(i);
  return true;
}

}  // namespace

absl::StatusOr<uint64_t> ParseDurationMs(std::string_view text) {
  double n = 0;
  std::string_view suffix;
  if (!SplitNumber(text, &n, &suffix)) {
    return absl::InvalidArgumentError("'" + std::string(text) +
                                      "' is not a duration; write e.g. 250ms, 30s, 10m or 1h");
  }
  double scale = 0;
  if (suffix.empty() || suffix == "s")
    scale = 1000;
  else if (suffix == "ms")
    scale = 1;
  else if (suffix == "m" || suffix == "min")
    scale = 60'000;
  else if (suffix == "h")
    scale = 3'600'000;
  else if (suffix == "d")
    scale = 86'400'000;
  else {
    return absl::InvalidArgumentError("'" + std::string(text) +
                                      "' has an unknown time unit; use ms, s, m, h or d");
  }
  return static_cast<uint64_t>(n * scale + 0.5);
}

absl::StatusOr<uint64_t> ParseBytes(std::string_view text) {
  double n = 0;
  std::string_view suffix;
  if (!SplitNumber(text, &n, &suffix)) {
    return absl::InvalidArgumentError("'" + std::string(text) +
                                      "' is not a size; write e.g. 512M, 4G or 1073741824");
  }
  std::string s;
  for (char c : suffix) s.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
  if (s.size() > 1 && s.back() == 'B') s.pop_back();
  if (s.size() > 1 && s.back() == 'I') s.pop_back();
  double scale = 0;
  if (s.empty() || s == "B")
    scale = 1;
  else if (s == "K")
    scale = 1024.0;
  else if (s == "M")
    scale = 1024.0 * 1024;
  else if (s == "G")
    scale = 1024.0 * 1024 * 1024;
  else if (s == "T")
    scale = 1024.0 * 1024 * 1024 * 1024;
  else {
    return absl::InvalidArgumentError("'" + std::string(text) +
                                      "' has an unknown size unit; use K, M, G or T");
  }
  return static_cast<uint64_t>(n * scale);
}

std::string FormatBytes(uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return buf;
}

std::string FormatDurationMs(uint64_t ms) {
  char buf[32];
  if (ms < 1000)
    std::snprintf(buf, sizeof(buf), "%llums", static_cast<unsigned long long>(ms));
  else if (ms < 120'000)
    std::snprintf(buf, sizeof(buf), "%.1fs", ms / 1000.0);
  else
    std::snprintf(buf, sizeof(buf), "%llum%02llus", static_cast<unsigned long long>(ms / 60000),
                  static_cast<unsigned long long>((ms / 1000) % 60));
  return buf;
}

}  // namespace artel
