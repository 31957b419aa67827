// Parsing of human-written durations ("30s", "10m", "1h", "250ms") and sizes
// ("4G", "512M", "10GiB", "1000").
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace artel {

// Returns milliseconds. A bare number means seconds.
absl::StatusOr<uint64_t> ParseDurationMs(std::string_view text);
// Returns bytes. Suffixes K, M, G, T (powers of 1024, optional "i"/"iB"/"B").
absl::StatusOr<uint64_t> ParseBytes(std::string_view text);
std::string FormatBytes(uint64_t bytes);
std::string FormatDurationMs(uint64_t ms);

}  // namespace artel
