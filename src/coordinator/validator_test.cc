#include "coordinator/validator.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace artel {
namespace {

using ::testing::HasSubstr;

v1::ReplicaInfo WithOutputs(const std::vector<std::pair<std::string, std::string>>& outputs) {
  v1::ReplicaInfo r;
  r.set_state(v1::REPLICA_STATE_REPORTED);
  r.set_result(v1::RESULT_KIND_SUCCESS);
  for (const auto& [name, digest] : outputs) {
    v1::OutputFile* f = r.add_outputs();
    f->set_name(name);
    f->set_digest(digest);
  }
  return r;
}

TEST(ExactValidator, EqualWhenEveryOutputHasTheSameDigest) {
  ExactValidator v;
  const auto a = WithOutputs({{"result.txt", "d1"}, {"stdout", "d2"}});
  const auto b = WithOutputs({{"stdout", "d2"}, {"result.txt", "d1"}});  // order does not matter
  EXPECT_TRUE(v.Equivalent(a, b));
  EXPECT_TRUE(v.Equivalent(b, a));
  EXPECT_EQ(v.name(), "exact");
}

TEST(ExactValidator, DifferentWhenAnyOutputDiffers) {
  ExactValidator v;
  const auto a = WithOutputs({{"result.txt", "d1"}, {"stdout", "d2"}});
  EXPECT_FALSE(v.Equivalent(a, WithOutputs({{"result.txt", "d1"}, {"stdout", "XX"}})));
  EXPECT_FALSE(v.Equivalent(a, WithOutputs({{"result.txt", "d1"}})));  // one missing
  EXPECT_FALSE(v.Equivalent(a, WithOutputs({{"result.txt", "d1"}, {"other", "d2"}})));
  EXPECT_FALSE(
      v.Equivalent(a, WithOutputs({{"result.txt", "d1"}, {"stdout", "d2"}, {"extra", "d3"}})));
}

TEST(ExactValidator, IgnoresStderr) {
  ExactValidator v;
  EXPECT_TRUE(v.Equivalent(WithOutputs({{"result.txt", "d1"}, {"stderr", "took 3 s"}}),
                           WithOutputs({{"result.txt", "d1"}, {"stderr", "took 5 s"}})));
  EXPECT_TRUE(v.Equivalent(WithOutputs({{"result.txt", "d1"}, {"stderr", "warning"}}),
                           WithOutputs({{"result.txt", "d1"}})));
}

TEST(FindValidator, EmptyNameAndExactGiveTheExactValidator) {
  for (const std::string name : {"", "exact"}) {
    absl::StatusOr<const Validator*> v = FindValidator(name);
    ASSERT_TRUE(v.ok()) << v.status();
    EXPECT_EQ((*v)->name(), "exact") << "for '" << name << "'";
  }
}

TEST(FindValidator, UnknownNameIsAnErrorListingTheKnownNames) {
  absl::StatusOr<const Validator*> v = FindValidator("fuzzy");
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(v.status().message(), HasSubstr("'fuzzy'"));
  EXPECT_THAT(v.status().message(), HasSubstr("known validators: exact"));
}

}  // namespace
}  // namespace artel
