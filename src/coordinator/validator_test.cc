#include "coordinator/validator.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "ml/safetensors.h"

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

// A blob store in a fresh temporary directory.
class BlobsFixture {
 public:
  BlobsFixture() {
    char tmpl[] = "/tmp/artel_validator_test_XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    blobs_ = *BlobStore::Open(dir_);
  }
  ~BlobsFixture() { std::filesystem::remove_all(dir_); }
  BlobStore& blobs() { return *blobs_; }
  std::string Put(const ml::TensorMap& map) {
    return *blobs_->PutBytes(ml::SerializeSafetensors(map));
  }

 private:
  std::filesystem::path dir_;
  std::unique_ptr<BlobStore> blobs_;
};

// ---- The contract every Validator keeps, for outputs that are not tensors.

struct Implementation {
  std::string name;
  std::function<std::unique_ptr<Validator>(const BlobStore&)> make;
};

void PrintTo(const Implementation& i, std::ostream* os) { *os << i.name; }

class ValidatorContractTest : public ::testing::TestWithParam<Implementation> {
 protected:
  ValidatorContractTest() : v_(GetParam().make(fixture_.blobs())) {}
  BlobsFixture fixture_;
  std::unique_ptr<Validator> v_;
};

TEST_P(ValidatorContractTest, EqualWhenEveryOutputHasTheSameDigest) {
  const auto a = WithOutputs({{"result.txt", "d1"}, {"other.bin", "d2"}});
  const auto b = WithOutputs({{"other.bin", "d2"}, {"result.txt", "d1"}});  // order does not matter
  EXPECT_TRUE(v_->Equivalent(a, b));
  EXPECT_TRUE(v_->Equivalent(b, a));
}

TEST_P(ValidatorContractTest, DifferentWhenAnyOutputDiffers) {
  const auto a = WithOutputs({{"result.txt", "d1"}, {"other.bin", "d2"}});
  EXPECT_FALSE(v_->Equivalent(a, WithOutputs({{"result.txt", "d1"}, {"other.bin", "XX"}})));
  EXPECT_FALSE(v_->Equivalent(a, WithOutputs({{"result.txt", "d1"}})));  // one missing
  EXPECT_FALSE(v_->Equivalent(a, WithOutputs({{"result.txt", "d1"}, {"other", "d2"}})));
  EXPECT_FALSE(
      v_->Equivalent(a, WithOutputs({{"result.txt", "d1"}, {"other.bin", "d2"}, {"extra", "d3"}})));
}

TEST_P(ValidatorContractTest, IgnoresStderr) {
  EXPECT_TRUE(v_->Equivalent(WithOutputs({{"result.txt", "d1"}, {"stderr", "took 3 s"}}),
                             WithOutputs({{"result.txt", "d1"}, {"stderr", "took 5 s"}})));
  EXPECT_TRUE(v_->Equivalent(WithOutputs({{"result.txt", "d1"}, {"stderr", "warning"}}),
                             WithOutputs({{"result.txt", "d1"}})));
}

TEST_P(ValidatorContractTest, ItsNameSelectsItAgain) {
  absl::StatusOr<std::unique_ptr<Validator>> again = MakeValidator(v_->name(), fixture_.blobs());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ((*again)->name(), v_->name());
}

INSTANTIATE_TEST_SUITE_P(
    Validators, ValidatorContractTest,
    ::testing::Values(Implementation{"Exact",
                                     [](const BlobStore&) {
                                       return std::make_unique<ExactValidator>();
                                     }},
                      Implementation{"Tolerance",
                                     [](const BlobStore& blobs) {
                                       return std::make_unique<ToleranceValidator>(blobs, 1e-4,
                                                                                   1e-6);
                                     }}),
    [](const ::testing::TestParamInfo<Implementation>& info) { return info.param.name; });

// ---- ExactValidator compares stdout too.

TEST(ExactValidator, ComparesStdout) {
  ExactValidator v;
  EXPECT_FALSE(v.Equivalent(WithOutputs({{"result.txt", "d1"}, {"stdout", "a"}}),
                            WithOutputs({{"result.txt", "d1"}, {"stdout", "b"}})));
}

// ---- ToleranceValidator on safetensors outputs.

ml::TensorMap Grad(float w0, int64_t label = 3, const std::string& loss = "0.5") {
  ml::TensorMap m;
  m.tensors["w"] = ml::Tensor::F32({3}, {w0, -2.0f, 0.0f});
  m.tensors["labels"] = ml::Tensor::I64({1}, {label});
  m.metadata = {{"loss", loss}, {"samples", "64"}};
  return m;
}

class ToleranceValidatorTest : public ::testing::Test {
 protected:
  bool Same(const ml::TensorMap& a, const ml::TensorMap& b, double rtol = 1e-4,
            double atol = 1e-6) {
    ToleranceValidator v(fixture_.blobs(), rtol, atol);
    return v.Equivalent(WithOutputs({{"grad.safetensors", fixture_.Put(a)}, {"stdout", "x"}}),
                        WithOutputs({{"grad.safetensors", fixture_.Put(b)}, {"stdout", "y"}}));
  }
  BlobsFixture fixture_;
};

TEST_F(ToleranceValidatorTest, FloatsWithinTheToleranceAreEqual) {
  EXPECT_TRUE(Same(Grad(1.0f), Grad(1.00005f)));                      // rtol
  EXPECT_TRUE(Same(Grad(1.0f, 3, "0.5"), Grad(1.0f, 3, "0.50002")));  // numeric metadata
  EXPECT_TRUE(Same(Grad(1e-7f), Grad(-5e-7f)));                       // atol near zero
}

TEST_F(ToleranceValidatorTest, FloatsBeyondTheToleranceDiffer) {
  EXPECT_FALSE(Same(Grad(1.0f), Grad(1.001f)));
  EXPECT_FALSE(Same(Grad(1.0f), Grad(1.001f), 1e-4, 0));
  EXPECT_TRUE(Same(Grad(1.0f), Grad(1.001f), 1e-2, 0));  // a looser rtol accepts it
  EXPECT_FALSE(Same(Grad(1.0f, 3, "0.5"), Grad(1.0f, 3, "0.6")));
  EXPECT_FALSE(Same(Grad(std::nanf("")), Grad(1.0f)));
  EXPECT_TRUE(Same(Grad(std::nanf("")), Grad(std::nanf(""))));
}

TEST_F(ToleranceValidatorTest, IntegersShapesNamesAndTextMustMatchExactly) {
  EXPECT_FALSE(Same(Grad(1.0f, 3), Grad(1.0f, 4)));
  ml::TensorMap other_shape = Grad(1.0f);
  other_shape.tensors["w"] = ml::Tensor::F32({1, 3}, {1.0f, -2.0f, 0.0f});
  EXPECT_FALSE(Same(Grad(1.0f), other_shape));
  ml::TensorMap renamed = Grad(1.0f);
  renamed.tensors["v"] = renamed.tensors["w"];
  renamed.tensors.erase("w");
  EXPECT_FALSE(Same(Grad(1.0f), renamed));
  ml::TensorMap text = Grad(1.0f);
  text.metadata["note"] = "a";
  ml::TensorMap other_text = Grad(1.0f);
  other_text.metadata["note"] = "b";
  EXPECT_FALSE(Same(text, other_text));
  EXPECT_FALSE(Same(Grad(1.0f), text));  // a key missing on one side
}

TEST_F(ToleranceValidatorTest, AMissingOrMalformedBlobDiffers) {
  ToleranceValidator v(fixture_.blobs());
  const std::string good = fixture_.Put(Grad(1.0f));
  const std::string junk = *fixture_.blobs().PutBytes("not safetensors");
  const std::string absent(64, 'a');
  EXPECT_FALSE(v.Equivalent(WithOutputs({{"grad.safetensors", good}}),
                            WithOutputs({{"grad.safetensors", junk}})));
  EXPECT_FALSE(v.Equivalent(WithOutputs({{"grad.safetensors", good}}),
                            WithOutputs({{"grad.safetensors", absent}})));
}

TEST_F(ToleranceValidatorTest, OtherFilesNeedTheSameDigest) {
  ToleranceValidator v(fixture_.blobs());
  const std::string a = fixture_.Put(Grad(1.0f));
  const std::string b = fixture_.Put(Grad(1.00001f));
  EXPECT_FALSE(v.Equivalent(WithOutputs({{"trained.pt", a}}), WithOutputs({{"trained.pt", b}})));
}

// ---- Names.

TEST(MakeValidator, NamesSelectTheValidatorAndItsTolerances) {
  BlobsFixture fixture;
  for (const std::string name : {"", "exact"}) {
    auto v = MakeValidator(name, fixture.blobs());
    ASSERT_TRUE(v.ok()) << v.status();
    EXPECT_EQ((*v)->name(), "exact") << "for '" << name << "'";
  }
  auto v = MakeValidator("tolerance", fixture.blobs());
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ((*v)->name(), "tolerance:rtol=0.0001,atol=1e-06");
  v = MakeValidator("tolerance:atol=0.5", fixture.blobs());
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ((*v)->name(), "tolerance:rtol=0.0001,atol=0.5");
}

TEST(MakeValidator, UnknownNamesAndBadTolerancesAreErrorsSayingWhatIsAccepted) {
  BlobsFixture fixture;
  auto v = MakeValidator("fuzzy", fixture.blobs());
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(v.status().message(), HasSubstr("'fuzzy'"));
  EXPECT_THAT(v.status().message(), HasSubstr("known validators: exact, tolerance"));
  for (const std::string bad : {"tolerance:rtol=-1", "tolerance:rtol=x", "tolerance:eps=1",
                                "tolerance:", "tolerance:rtol"}) {
    v = MakeValidator(bad, fixture.blobs());
    ASSERT_FALSE(v.ok()) << bad;
    EXPECT_THAT(v.status().message(), HasSubstr("e.g. tolerance:rtol=1e-4,atol=1e-6")) << bad;
  }
}

}  // namespace
}  // namespace artel
