#include "ml/safetensors.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

namespace artel::ml {
namespace {

using ::testing::HasSubstr;

// A safetensors file from its parts: 8-byte little-endian length, header, data.
std::string File(std::string_view header, std::string_view data = "") {
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  out += header;
  out += data;
  return out;
}

std::string ErrorOf(std::string_view bytes) {
  auto parsed = ParseSafetensors(bytes);
  EXPECT_FALSE(parsed.ok());
  if (parsed.ok()) return "";
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(parsed.status().message());
}

void ExpectSameTensor(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.dtype, b.dtype);
  EXPECT_EQ(a.shape, b.shape);
  EXPECT_EQ(a.data, b.data);
}

TEST(Safetensors, EveryDTypeRoundTrips) {
  const DType all[] = {DType::kF32, DType::kF64, DType::kF16, DType::kBF16, DType::kI64,
                       DType::kI32, DType::kI16, DType::kI8,  DType::kU8,   DType::kBool};
  TensorMap map;
  int k = 0;
  for (DType dtype : all) {
    Tensor t{dtype, {2, 3}, {}};
    for (size_t i = 0; i < 6 * DTypeSize(dtype); ++i) t.data.push_back(static_cast<char>(k++ * 37));
    if (dtype == DType::kBool) t.data = std::string("\x01\x00\x01\x01\x00\x00", 6);
    map.tensors[std::string("t_") + std::string(DTypeName(dtype))] = t;
  }
  map.tensors["scalar"] = Tensor::F32({}, {2.5f});
  map.tensors["empty"] = Tensor::I64({0, 4}, {});
  map.metadata = {{"framework", "pt"}, {"note", "quote \" and \\ and \n and é"}};

  std::string bytes = SerializeSafetensors(map);
  EXPECT_EQ(static_cast<unsigned char>(bytes[0]) % 8, 0u);  // header padded to 8 bytes
  auto parsed = ParseSafetensors(bytes);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->tensors.size(), map.tensors.size());
  for (const auto& [name, tensor] : map.tensors) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(parsed->tensors.count(name));
    ExpectSameTensor(parsed->tensors.at(name), tensor);
  }
  EXPECT_EQ(parsed->metadata, map.metadata);
  EXPECT_EQ(SerializeSafetensors(*parsed), bytes);
}

TEST(Safetensors, TypedConstructorsAndViews) {
  Tensor t = Tensor::F32({2, 2}, {1, 2, 3, 4});
  EXPECT_EQ(t.numel(), 4);
  EXPECT_EQ(t.f32()[3], 4.0f);
  t.mutable_f32()[0] = 9;
  EXPECT_EQ(t.f32()[0], 9.0f);
  EXPECT_EQ(Tensor::I64({3}, {1, 2, 3}).data.size(), 24u);
  EXPECT_EQ(DTypeName(DType::kBF16), "BF16");
  EXPECT_EQ(DTypeSize(DType::kF64), 8u);
}

// Byte strings written out by hand from the format and the reference
// implementation's layout rules (huggingface/safetensors): compact JSON,
// "__metadata__" first, 8-byte space padding, dtype-descending data order.
TEST(Safetensors, MatchesReferenceBytesForOneTensor) {
  std::string data;
  for (float f : {0.f, 1.f, 2.f, 3.f, 4.f, 5.f}) data.append(reinterpret_cast<char*>(&f), 4);
  const std::string reference = File(
      "{\"attn0\":{\"dtype\":\"F32\",\"shape\":[1,1,2,3],\"data_offsets\":[0,24]}}       ", data);
  ASSERT_EQ(reference.substr(0, 8), std::string("\x48\0\0\0\0\0\0\0", 8));  // 72

  auto parsed = ParseSafetensors(reference);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ExpectSameTensor(parsed->tensors.at("attn0"), Tensor::F32({1, 1, 2, 3}, {0, 1, 2, 3, 4, 5}));

  TensorMap map;
  map.tensors["attn0"] = Tensor::F32({1, 1, 2, 3}, {0, 1, 2, 3, 4, 5});
  EXPECT_EQ(SerializeSafetensors(map), reference);
}

TEST(Safetensors, MatchesReferenceBytesForEmptyAndMetadataOnly) {
  EXPECT_EQ(SerializeSafetensors(TensorMap{}), File("{}      "));
  TensorMap meta;
  meta.metadata["framework"] = "pt";
  EXPECT_EQ(SerializeSafetensors(meta), File("{\"__metadata__\":{\"framework\":\"pt\"}}     "));
  auto parsed = ParseSafetensors(File("{\"__metadata__\":{\"framework\":\"pt\"}}     "));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->metadata.at("framework"), "pt");
  EXPECT_TRUE(parsed->tensors.empty());
}

TEST(Safetensors, MatchesReferenceLayoutWidestDTypeFirst) {
  TensorMap map;
  map.tensors["a"] = Tensor{DType::kU8, {2}, std::string("\x07\x08", 2)};
  map.tensors["b"] = Tensor::I64({1}, {5});
  map.metadata["k"] = "v";
  const std::string expected = File(
      "{\"__metadata__\":{\"k\":\"v\"},\"b\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,"
      "8]},"
      "\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[8,10]}}    ",
      std::string("\x05\0\0\0\0\0\0\0\x07\x08", 10));
  EXPECT_EQ(SerializeSafetensors(map), expected);
}

TEST(Safetensors, ParsesTensorsListedInAnyOrderWithWhitespace) {
  auto parsed =
      ParseSafetensors(File(" { \"y\" : {\"data_offsets\":[1,2],\"shape\":[1],\"dtype\":\"U8\"},\n"
                            "   \"x\" : {\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]} }",
                            "AB"));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->tensors.at("x").data, "A");
  EXPECT_EQ(parsed->tensors.at("y").data, "B");
}

TEST(Safetensors, RejectsTruncatedFile) {
  EXPECT_THAT(ErrorOf(std::string("\x08\0\0", 3)), HasSubstr("truncated"));
}

TEST(Safetensors, RejectsHeaderLengthBeyondFile) {
  std::string bytes = File("{}      ");
  bytes[0] = 100;
  EXPECT_THAT(ErrorOf(bytes), HasSubstr("runs past the end"));
}

TEST(Safetensors, RejectsHugeHeaderLength) {
  std::string bytes = File("{}      ");
  bytes[7] = 1;
  EXPECT_THAT(ErrorOf(bytes), HasSubstr("exceeds the limit"));
}

TEST(Safetensors, RejectsHeaderThatIsNotJson) {
  EXPECT_THAT(ErrorOf(File("{\"x\": nope}")), HasSubstr("not valid JSON"));
}

TEST(Safetensors, RejectsHeaderThatIsNotAnObject) {
  EXPECT_THAT(ErrorOf(File("[1, 2]  ")), HasSubstr("must be a JSON object, got array"));
}

TEST(Safetensors, RejectsUnknownDType) {
  EXPECT_THAT(ErrorOf(File("{\"w\":{\"dtype\":\"F8\",\"shape\":[1],\"data_offsets\":[0,1]}}", "a")),
              HasSubstr("tensor 'w': unknown dtype 'F8'"));
}

TEST(Safetensors, RejectsNegativeShape) {
  EXPECT_THAT(ErrorOf(File("{\"w\":{\"dtype\":\"U8\",\"shape\":[-1],\"data_offsets\":[0,0]}}")),
              HasSubstr("tensor 'w': shape must hold non-negative integers, got -1"));
}

TEST(Safetensors, RejectsOffsetsOutOfRange) {
  EXPECT_THAT(
      ErrorOf(File("{\"w\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}", "ab")),
      HasSubstr("tensor 'w': data_offsets [0, 4] are out of range"));
}

TEST(Safetensors, RejectsSizeNotMatchingShape) {
  EXPECT_THAT(
      ErrorOf(File("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", "abcd")),
      HasSubstr("tensor 'w': data_offsets [0, 4] span 4 bytes but dtype F32 and shape [2] "
                "need 8"));
}

TEST(Safetensors, RejectsShapeWhoseSizeOverflows) {
  EXPECT_THAT(ErrorOf(File("{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],"
                           "\"data_offsets\":[0,0]}}")),
              HasSubstr("need more than 2^64"));
}

TEST(Safetensors, RejectsGapBetweenTensors) {
  EXPECT_THAT(ErrorOf(File("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                           "\"b\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[2,3]}}",
                           "abc")),
              HasSubstr("tensor 'b' begins at 2 but tensor 'a' ends at 1: gap"));
}

TEST(Safetensors, RejectsOverlapBetweenTensors) {
  EXPECT_THAT(ErrorOf(File("{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]},"
                           "\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[1,3]}}",
                           "abc")),
              HasSubstr("tensor 'b' begins at 1 but tensor 'a' ends at 2: overlap"));
}

TEST(Safetensors, RejectsDataSectionLongerThanTensors) {
  EXPECT_THAT(
      ErrorOf(File("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", "ab")),
      HasSubstr("data section has 2 bytes but the tensors cover 1"));
}

TEST(Safetensors, RejectsDuplicateTensorNames) {
  EXPECT_THAT(ErrorOf(File("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                           "\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}",
                           "ab")),
              HasSubstr("names tensor 'a' more than once"));
}

TEST(Safetensors, RejectsRepeatedKeyInsideEntry) {
  EXPECT_THAT(ErrorOf(File("{\"a\":{\"dtype\":\"U8\",\"dtype\":\"I8\",\"shape\":[1],"
                           "\"data_offsets\":[0,1]}}",
                           "a")),
              HasSubstr("repeats the key 'dtype'"));
}

TEST(Safetensors, RejectsMetadataValuesThatAreNotStrings) {
  EXPECT_THAT(ErrorOf(File("{\"__metadata__\":{\"epoch\":3}}")),
              HasSubstr("__metadata__ value of 'epoch' must be a string, got 3"));
}

TEST(Safetensors, RejectsUnexpectedEntryKey) {
  EXPECT_THAT(ErrorOf(File("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1],"
                           "\"extra\":1}}",
                           "a")),
              HasSubstr("tensor 'a': unexpected key 'extra'"));
}

TEST(Safetensors, WritesAndReadsFiles) {
  std::filesystem::path path = std::filesystem::path(::testing::TempDir()) / "w.safetensors";
  TensorMap map;
  map.tensors["w"] = Tensor::F32({3}, {1, 2, 3});
  ASSERT_TRUE(WriteSafetensors(map, path).ok());
  auto read = ReadSafetensors(path);
  ASSERT_TRUE(read.ok()) << read.status();
  ExpectSameTensor(read->tensors.at("w"), map.tensors["w"]);
  EXPECT_FALSE(std::filesystem::exists(path.string() + ".tmp"));
  std::filesystem::remove(path);
  EXPECT_EQ(ReadSafetensors(path).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace artel::ml
