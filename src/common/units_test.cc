#include "common/units.h"

#include <gtest/gtest.h>

namespace artel {
namespace {

TEST(Units, ParsesDurationsWithUnits) {
  EXPECT_EQ(*ParseDurationMs("250ms"), 250u);
  EXPECT_EQ(*ParseDurationMs("30s"), 30'000u);
  EXPECT_EQ(*ParseDurationMs("10m"), 600'000u);
  EXPECT_EQ(*ParseDurationMs("1h"), 3'600'000u);
  EXPECT_EQ(*ParseDurationMs("2"), 2'000u);
}

TEST(Units, RejectsMalformedDurationWithHint) {
  auto r = ParseDurationMs("soon");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("30s"), std::string::npos);
  EXPECT_FALSE(ParseDurationMs("5 weeks").ok());
}

TEST(Units, ParsesSizes) {
  EXPECT_EQ(*ParseBytes("4G"), 4ull << 30);
  EXPECT_EQ(*ParseBytes("512MiB"), 512ull << 20);
  EXPECT_EQ(*ParseBytes("100"), 100u);
  EXPECT_FALSE(ParseBytes("4X").ok());
}

}  // namespace
}  // namespace artel
