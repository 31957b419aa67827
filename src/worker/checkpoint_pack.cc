#include "worker/checkpoint_pack.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

namespace artel {
namespace {

constexpr std::string_view kMagic = "ARTELCK1";

void PutU64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

bool GetU64(std::string_view& in, uint64_t* v) {
  if (in.size() < 8) return false;
  *v = 0;
  for (int i = 0; i < 8; ++i)
    *v |= static_cast<uint64_t>(static_cast<unsigned char>(in[i])) << (8 * i);
  in.remove_prefix(8);
  return true;
}

std::vector<std::filesystem::path> RegularFiles(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> files;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    if (e.is_regular_file(ec)) files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace

absl::StatusOr<std::string> PackCheckpoint(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> files = RegularFiles(dir);
  if (files.empty()) return std::string();
  std::string out(kMagic);
  PutU64(out, files.size());
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    if (!in) return absl::InternalError("cannot read checkpoint file " + f.string());
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string name = f.filename().string();
    const std::string data = ss.str();
    PutU64(out, name.size());
    out += name;
    PutU64(out, data.size());
    out += data;
  }
  return out;
}

absl::Status UnpackCheckpoint(std::string_view in, const std::filesystem::path& dir) {
  auto bad = [](const std::string& why) {
    return absl::DataLossError("checkpoint blob is malformed: " + why);
  };
  if (in.substr(0, kMagic.size()) != kMagic) return bad("wrong magic");
  in.remove_prefix(kMagic.size());
  uint64_t count = 0;
  if (!GetU64(in, &count)) return bad("truncated header");
  for (uint64_t i = 0; i < count; ++i) {
    uint64_t name_len = 0, size = 0;
    if (!GetU64(in, &name_len) || name_len > 255 || in.size() < name_len) return bad("bad name");
    std::string name(in.substr(0, name_len));
    in.remove_prefix(name_len);
    if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos) {
      return bad("unsafe file name '" + name + "'");
    }
    if (!GetU64(in, &size) || in.size() < size) return bad("truncated file '" + name + "'");
    std::ofstream out(dir / name, std::ios::binary | std::ios::trunc);
    out.write(in.data(), static_cast<std::streamsize>(size));
    if (!out) return absl::InternalError("cannot write checkpoint file " + (dir / name).string());
    in.remove_prefix(size);
  }
  if (!in.empty()) return bad("trailing bytes");
  return absl::OkStatus();
}

std::string CheckpointFingerprint(const std::filesystem::path& dir) {
  std::string fp;
  std::error_code ec;
  for (const auto& f : RegularFiles(dir)) {
    fp += f.filename().string();
    fp += ':' + std::to_string(std::filesystem::file_size(f, ec));
    fp += ':' + std::to_string(std::filesystem::last_write_time(f, ec).time_since_epoch().count());
    fp += ';';
  }
  return fp;
}

}  // namespace artel
