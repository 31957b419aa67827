// A checkpoint directory packed into one blob, and back.
//
// Format (all integers little-endian u64): "ARTELCK1", file count, then per
// regular file at the top of the directory: name length, name, size, bytes.
// Subdirectories and other file kinds are not packed.
#pragma once

#include <filesystem>
#include <string>

#include "common/status.h"

namespace artel {

// Packs the regular files directly under `dir` (sorted by name). Returns
// an empty string when the directory holds no files.
absl::StatusOr<std::string> PackCheckpoint(const std::filesystem::path& dir);

// Recreates the files of `packed` under `dir` (which must exist). Rejects
// malformed data and names with '/' or "..".
absl::Status UnpackCheckpoint(std::string_view packed, const std::filesystem::path& dir);

// A cheap fingerprint of the files under `dir` (names, sizes, mtimes), to
// tell whether the checkpoint changed since the last upload.
std::string CheckpointFingerprint(const std::filesystem::path& dir);

}  // namespace artel
