#include "ml/idx.h"

#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <limits>
#include <memory>

#include "absl/strings/str_cat.h"

namespace artel::ml {
namespace {

constexpr uint8_t kTypeU8 = 0x08;
constexpr size_t kChunk = 1 << 16;

struct GzCloser {
  void operator()(gzFile_s* f) const { gzclose(f); }
};
using GzFile = std::unique_ptr<gzFile_s, GzCloser>;

// Reads up to `n` bytes; returns how many were read, or -1 on a read error.
int64_t ReadUpTo(gzFile file, char* out, size_t n) {
  size_t total = 0;
  while (total < n) {
    unsigned want = static_cast<unsigned>(std::min(n - total, kChunk));
    int got = gzread(file, out + total, want);
    if (got < 0) return -1;
    if (got == 0) break;
    total += static_cast<size_t>(got);
  }
  return static_cast<int64_t>(total);
}

std::string TypeName(uint8_t type) {
  switch (type) {
    case 0x09:
      return "signed byte (0x09)";
    case 0x0B:
      return "int16 (0x0B)";
    case 0x0C:
      return "int32 (0x0C)";
    case 0x0D:
      return "float32 (0x0D)";
    case 0x0E:
      return "float64 (0x0E)";
    default:
      return absl::StrCat("unknown (0x", absl::Hex(type), ")");
  }
}

}  // namespace

int64_t IdxArray::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

absl::StatusOr<IdxArray> ReadIdx(const std::filesystem::path& path) {
  const std::string name = path.string();
  GzFile file(gzopen(name.c_str(), "rb"));
  if (!file) {
    return absl::NotFoundError(
        absl::StrCat("cannot open IDX file ", name, ": ", std::strerror(errno)));
  }
  auto bad = [&](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat("IDX file ", name, ": ", what));
  };
  auto read_error = [&] {
    int code = 0;
    const char* msg = gzerror(file.get(), &code);
    return absl::DataLossError(absl::StrCat("cannot read IDX file ", name, ": ", msg));
  };

  unsigned char magic[4];
  int64_t got = ReadUpTo(file.get(), reinterpret_cast<char*>(magic), 4);
  if (got < 0) return read_error();
  if (got < 4 || magic[0] != 0 || magic[1] != 0) {
    return bad(
        "bad magic number; expected an IDX file (bytes 00 00 <type> <dims>), "
        "plain or gzip-compressed");
  }
  if (magic[2] != kTypeU8) {
    return bad(absl::StrCat("element type ", TypeName(magic[2]),
                            " is not supported; only unsigned byte (0x08) is"));
  }
  if (magic[3] == 0) return bad("has zero dimensions");

  IdxArray array;
  uint64_t expected = 1;
  for (int i = 0; i < magic[3]; ++i) {
    unsigned char dim[4];
    got = ReadUpTo(file.get(), reinterpret_cast<char*>(dim), 4);
    if (got < 0) return read_error();
    if (got < 4) return bad(absl::StrCat("truncated in the header (dimension ", i, ")"));
    uint64_t d = (uint64_t{dim[0]} << 24) | (uint64_t{dim[1]} << 16) | (uint64_t{dim[2]} << 8) |
                 uint64_t{dim[3]};
    if (d != 0 && expected > (uint64_t{1} << 62) / d) return bad("dimensions are too large");
    expected *= d;
    array.shape.push_back(static_cast<int64_t>(d));
  }

  // Grow as data arrives so a lying header cannot make us allocate.
  while (array.u8.size() < expected) {
    size_t old = array.u8.size();
    size_t want = static_cast<size_t>(std::min<uint64_t>(expected - old, 1 << 24));
    array.u8.resize(old + want);
    got = ReadUpTo(file.get(), array.u8.data() + old, want);
    if (got < 0) return read_error();
    if (static_cast<size_t>(got) < want) {
      return bad(absl::StrCat("data is truncated: the header promises ", expected,
                              " bytes but only ", old + got, " follow"));
    }
  }
  char extra;
  got = ReadUpTo(file.get(), &extra, 1);
  if (got < 0) return read_error();
  if (got != 0) return bad(absl::StrCat("has bytes after the ", expected, " the header promises"));
  return array;
}

}  // namespace artel::ml
