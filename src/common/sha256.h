// SHA-256 digests as lower-case hex strings (64 characters).
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"

namespace artel {

// Incremental hasher. Not thread-safe; one per stream.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void Update(std::string_view data);
  // Returns the hex digest. REQUIRES: called once.
  std::string FinishHex();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

std::string Sha256Hex(std::string_view data);
absl::StatusOr<std::string> Sha256File(const std::filesystem::path& path);
// True if `digest` is 64 lower-case hex characters.
bool IsSha256Hex(std::string_view digest);

}  // namespace artel
