// Reader of IDX files, the format of MNIST and Fashion-MNIST: a big-endian
// header (two zero bytes, a type byte, a dimension count, then each
// dimension as a uint32) followed by the elements in row-major order.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "common/status.h"

namespace artel::ml {

// An unsigned-byte IDX array.
struct IdxArray {
  std::vector<int64_t> shape;
  std::string u8;  // product(shape) bytes, row-major

  int64_t numel() const;
};

// Reads `path`, gzip-compressed (e.g. "*-ubyte.gz") or plain; the format is
// detected from the content, not the name. Only the unsigned-byte type (0x08)
// is supported. Errors: NotFound when the file cannot be opened;
// InvalidArgument for a bad magic, another element type, no dimensions, or a
// data length other than exactly product(shape) bytes (truncated or trailing).
absl::StatusOr<IdxArray> ReadIdx(const std::filesystem::path& path);

}  // namespace artel::ml
