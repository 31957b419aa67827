#include "ml/safetensors.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>
#include <system_error>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"

namespace artel::ml {
namespace {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; a big-endian host needs byte swapping");

using Json = nlohmann::json;

// This absl's string_view is its own type, not std::string_view.
absl::string_view Sv(std::string_view s) { return {s.data(), s.size()}; }

constexpr uint64_t kMaxHeaderBytes = uint64_t{100} << 20;  // 100 MiB
constexpr std::string_view kMetadataKey = "__metadata__";

struct DTypeInfo {
  DType dtype;
  std::string_view name;
  size_t size;
  int rank;  // the reference implementation's alignment order (Rust enum order)
};

constexpr std::array<DTypeInfo, 10> kDTypes = {{
    {DType::kBool, "BOOL", 1, 0},
    {DType::kU8, "U8", 1, 1},
    {DType::kI8, "I8", 1, 2},
    {DType::kI16, "I16", 2, 5},
    {DType::kF16, "F16", 2, 7},
    {DType::kBF16, "BF16", 2, 8},
    {DType::kI32, "I32", 4, 9},
    {DType::kF32, "F32", 4, 11},
    {DType::kF64, "F64", 8, 12},
    {DType::kI64, "I64", 8, 13},
}};

const DTypeInfo& Info(DType dtype) {
  for (const DTypeInfo& info : kDTypes) {
    if (info.dtype == dtype) return info;
  }
  ARTEL_CHECK(false, "DType value outside the enum");
}

absl::StatusOr<DType> DTypeFromName(std::string_view name) {
  for (const DTypeInfo& info : kDTypes) {
    if (info.name == name) return info.dtype;
  }
  std::vector<std::string> known;
  for (const DTypeInfo& info : kDTypes) known.emplace_back(info.name);
  return absl::InvalidArgumentError(
      absl::StrCat("unknown dtype '", Sv(name), "'; artel supports ", absl::StrJoin(known, ", ")));
}

// A JSON string literal, escaped the way the reference (serde_json) does.
std::string Quote(const std::string& s) {
  return Json(s).dump(-1, ' ', false, Json::error_handler_t::replace);
}

// Parses the header and reports repeated keys in any object, which nlohmann
// would otherwise silently collapse into one.
absl::StatusOr<Json> ParseHeaderJson(std::string_view text) {
  std::vector<std::set<std::string>> keys_per_object;
  std::string duplicate;
  bool duplicate_at_top = false;
  Json::parser_callback_t callback = [&](int depth, Json::parse_event_t event, Json& parsed) {
    switch (event) {
      case Json::parse_event_t::object_start:
        keys_per_object.emplace_back();
        break;
      case Json::parse_event_t::object_end:
        if (!keys_per_object.empty()) keys_per_object.pop_back();
        break;
      case Json::parse_event_t::key:
        if (!keys_per_object.empty() &&
            !keys_per_object.back().insert(parsed.get<std::string>()).second && duplicate.empty()) {
          duplicate = parsed.get<std::string>();
          duplicate_at_top = keys_per_object.size() == 1;
        }
        break;
      default:
        break;
    }
    return true;
  };
  Json json;
  try {
    json = Json::parse(text.begin(), text.end(), callback);
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("safetensors header is not valid JSON: ", e.what()));
  }
  if (!duplicate.empty()) {
    if (duplicate_at_top) {
      return absl::InvalidArgumentError(absl::StrCat("safetensors header names tensor '", duplicate,
                                                     "' more than once; names must be unique"));
    }
    return absl::InvalidArgumentError(
        absl::StrCat("safetensors header repeats the key '", duplicate, "' inside an entry"));
  }
  return json;
}

absl::StatusOr<uint64_t> NonNegative(const Json& value, const std::string& name,
                                     absl::string_view field) {
  if (!value.is_number_integer() || (!value.is_number_unsigned() && value.get<int64_t>() < 0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tensor '", name, "': ", field, " must hold non-negative integers, got ", value.dump()));
  }
  return value.get<uint64_t>();
}

struct Entry {
  std::string name;
  Tensor tensor;
  uint64_t begin = 0;
  uint64_t end = 0;
};

// Validates one tensor's header entry against a data section of `data_size`.
absl::StatusOr<Entry> ParseEntry(const std::string& name, const Json& info, uint64_t data_size) {
  auto bad = [&](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "': ", what));
  };
  if (!info.is_object()) return bad("header entry must be an object");
  for (const auto& [key, unused] : info.items()) {
    if (key != "dtype" && key != "shape" && key != "data_offsets") {
      return bad(absl::StrCat("unexpected key '", key,
                              "'; an entry holds only dtype, shape and data_offsets"));
    }
  }
  if (!info.contains("dtype") || !info.contains("shape") || !info.contains("data_offsets")) {
    return bad("entry needs dtype, shape and data_offsets");
  }
  Entry entry;
  entry.name = name;
  if (!info["dtype"].is_string()) return bad("dtype must be a string");
  auto dtype = DTypeFromName(info["dtype"].get<std::string>());
  if (!dtype.ok()) return bad(dtype.status().message());
  entry.tensor.dtype = *dtype;

  const Json& shape = info["shape"];
  if (!shape.is_array()) return bad("shape must be an array");
  // Overflow-checked byte count: numel * dtype size.
  uint64_t bytes = DTypeSize(*dtype);
  bool overflow = false;
  for (const Json& dim : shape) {
    ASSIGN_OR_RETURN(uint64_t d, NonNegative(dim, name, "shape"));
    if (d > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) overflow = true;
    if (d != 0 && bytes > std::numeric_limits<uint64_t>::max() / d) overflow = true;
    bytes *= d;
    entry.tensor.shape.push_back(static_cast<int64_t>(d));
  }

  const Json& offsets = info["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2) {
    return bad("data_offsets must be an array [begin, end]");
  }
  ASSIGN_OR_RETURN(entry.begin, NonNegative(offsets[0], name, "data_offsets"));
  ASSIGN_OR_RETURN(entry.end, NonNegative(offsets[1], name, "data_offsets"));
  if (entry.begin > entry.end) {
    return bad(absl::StrCat("data_offsets [", entry.begin, ", ", entry.end, "] end before begin"));
  }
  if (entry.end > data_size) {
    return bad(absl::StrCat("data_offsets [", entry.begin, ", ", entry.end,
                            "] are out of range: the data section has ", data_size, " bytes"));
  }
  if (overflow || bytes != entry.end - entry.begin) {
    return bad(absl::StrCat("data_offsets [", entry.begin, ", ", entry.end, "] span ",
                            entry.end - entry.begin, " bytes but dtype ", Sv(DTypeName(*dtype)),
                            " and shape ", shape.dump(), " need ",
                            overflow ? "more than 2^64" : absl::StrCat(bytes)));
  }
  return entry;
}

absl::StatusOr<std::map<std::string, std::string>> ParseMetadata(const Json& value) {
  if (!value.is_object()) {
    return absl::InvalidArgumentError("safetensors __metadata__ must be an object of strings");
  }
  std::map<std::string, std::string> metadata;
  for (const auto& [key, v] : value.items()) {
    if (!v.is_string()) {
      return absl::InvalidArgumentError(absl::StrCat("safetensors __metadata__ value of '", key,
                                                     "' must be a string, got ", v.dump()));
    }
    metadata[key] = v.get<std::string>();
  }
  return metadata;
}

}  // namespace

std::string_view DTypeName(DType dtype) { return Info(dtype).name; }
size_t DTypeSize(DType dtype) { return Info(dtype).size; }

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

Tensor Tensor::F32(std::vector<int64_t> shape, const std::vector<float>& values) {
  Tensor t{DType::kF32, std::move(shape), {}};
  ARTEL_CHECK(t.numel() == static_cast<int64_t>(values.size()), "F32 values do not fill shape");
  t.data.assign(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
  return t;
}

Tensor Tensor::I64(std::vector<int64_t> shape, const std::vector<int64_t>& values) {
  Tensor t{DType::kI64, std::move(shape), {}};
  ARTEL_CHECK(t.numel() == static_cast<int64_t>(values.size()), "I64 values do not fill shape");
  t.data.assign(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(int64_t));
  return t;
}

absl::StatusOr<TensorMap> ParseSafetensors(std::string_view bytes) {
  if (bytes.size() < 8) {
    return absl::InvalidArgumentError(
        absl::StrCat("safetensors data is truncated: ", bytes.size(),
                     " bytes, but it starts with an 8-byte header length"));
  }
  uint64_t header_len = 0;
  std::memcpy(&header_len, bytes.data(), 8);
  if (header_len > kMaxHeaderBytes) {
    return absl::InvalidArgumentError(absl::StrCat("safetensors header length ", header_len,
                                                   " exceeds the limit of ", kMaxHeaderBytes));
  }
  if (header_len > bytes.size() - 8) {
    return absl::InvalidArgumentError(
        absl::StrCat("safetensors header length ", header_len, " runs past the end of the ",
                     bytes.size(), "-byte file; the file is truncated or not safetensors"));
  }
  ASSIGN_OR_RETURN(Json header, ParseHeaderJson(bytes.substr(8, header_len)));
  if (!header.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("safetensors header must be a JSON object, got ", header.type_name()));
  }
  std::string_view data = bytes.substr(8 + header_len);
  TensorMap map;
  std::vector<Entry> entries;
  for (const auto& [name, info] : header.items()) {
    if (name == kMetadataKey) {
      ASSIGN_OR_RETURN(map.metadata, ParseMetadata(info));
      continue;
    }
    ASSIGN_OR_RETURN(Entry entry, ParseEntry(name, info, data.size()));
    entries.push_back(std::move(entry));
  }
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.begin, a.end) < std::tie(b.begin, b.end);
  });
  uint64_t covered = 0;
  const Entry* previous = nullptr;
  for (Entry& entry : entries) {
    if (entry.begin != covered) {
      std::string after = previous ? absl::StrCat("tensor '", previous->name, "' ends at ", covered)
                                   : std::string("the data section starts at 0");
      return absl::InvalidArgumentError(
          absl::StrCat("tensor '", entry.name, "' begins at ", entry.begin, " but ", after, ": ",
                       entry.begin > covered ? "gap" : "overlap", " between tensors"));
    }
    covered = entry.end;
    entry.tensor.data.assign(data.substr(entry.begin, entry.end - entry.begin));
    previous = &entry;
  }
  if (covered != data.size()) {
    return absl::InvalidArgumentError(absl::StrCat("safetensors data section has ", data.size(),
                                                   " bytes but the tensors cover ", covered,
                                                   "; trailing bytes are not allowed"));
  }
  for (Entry& entry : entries) map.tensors.emplace(entry.name, std::move(entry.tensor));
  return map;
}

absl::StatusOr<TensorMap> ReadSafetensors(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(
        absl::StrCat("cannot open safetensors file ", path.string(), ": ", std::strerror(errno)));
  }
  std::ostringstream contents;
  contents << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat("cannot read ", path.string()));
  auto map = ParseSafetensors(contents.view());
  if (!map.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path.string(), ": ", map.status().message()));
  }
  return map;
}

std::string SerializeSafetensors(const TensorMap& map) {
  // The reference implementation's layout: data ordered by descending dtype
  // alignment, then by name, so every tensor is aligned when the header is.
  std::vector<const std::pair<const std::string, Tensor>*> order;
  for (const auto& entry : map.tensors) {
    ARTEL_CHECK(entry.first != kMetadataKey, "a tensor may not be named __metadata__");
    ARTEL_CHECK(entry.second.data.size() ==
                    static_cast<size_t>(entry.second.numel()) * DTypeSize(entry.second.dtype),
                absl::StrCat("tensor '", entry.first, "' data size does not match its shape"));
    order.push_back(&entry);
  }
  std::stable_sort(order.begin(), order.end(), [](const auto* a, const auto* b) {
    return Info(a->second.dtype).rank > Info(b->second.dtype).rank;
  });

  std::string header = "{";
  if (!map.metadata.empty()) {
    absl::StrAppend(&header, "\"", Sv(kMetadataKey), "\":{");
    bool first = true;
    for (const auto& [key, value] : map.metadata) {
      absl::StrAppend(&header, first ? "" : ",", Quote(key), ":", Quote(value));
      first = false;
    }
    header += "}";
  }
  uint64_t offset = 0;
  for (const auto* entry : order) {
    const Tensor& t = entry->second;
    if (header.size() > 1) header += ",";
    absl::StrAppend(&header, Quote(entry->first), ":{\"dtype\":\"", Sv(DTypeName(t.dtype)),
                    "\",\"shape\":[", absl::StrJoin(t.shape, ","), "],\"data_offsets\":[", offset,
                    ",", offset + t.data.size(), "]}");
    offset += t.data.size();
  }
  header += "}";
  header.append((8 - header.size() % 8) % 8, ' ');

  std::string out;
  out.reserve(8 + header.size() + offset);
  uint64_t header_len = header.size();
  out.append(reinterpret_cast<const char*>(&header_len), 8);
  out += header;
  for (const auto* entry : order) out += entry->second.data;
  return out;
}

absl::Status WriteSafetensors(const TensorMap& map, const std::filesystem::path& path) {
  std::filesystem::path tmp = path;
  tmp += ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) {
      return absl::PermissionDeniedError(
          absl::StrCat("cannot create ", tmp.string(), ": ", std::strerror(errno)));
    }
    std::string bytes = SerializeSafetensors(map);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.close();
    if (!out) return absl::DataLossError(absl::StrCat("cannot write ", tmp.string()));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot rename ", tmp.string(), " to ", path.string(), ": ", ec.message()));
  }
  return absl::OkStatus();
}

}  // namespace artel::ml
