// Decides whether two successful replicas of a task gave the same answer.
//
// Implementations: ExactValidator (same output digests) and
// ToleranceValidator (safetensors outputs equal within rtol/atol, for
// floating-point results such as gradients that differ in their last bits
// from one CPU to another). Both pass the contract tests in
// validator_test.cc.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "artel/v1/artel.pb.h"
#include "blob/blob_store.h"
#include "common/status.h"

namespace artel {

// Thread-safe (stateless, or reading an immutable blob store).
class Validator {
 public:
  virtual ~Validator() = default;
  // REQUIRES: both replicas reported RESULT_KIND_SUCCESS.
  virtual bool Equivalent(const v1::ReplicaInfo& a, const v1::ReplicaInfo& b) const = 0;
  // False while the verdict on (a, b) is still being computed elsewhere
  // (AppVerdictValidator); Equivalent must then not be relied on.
  virtual bool Ready(const v1::ReplicaInfo& /*a*/, const v1::ReplicaInfo& /*b*/) const {
    return true;
  }
  // The name a task spec gives to select this validator.
  virtual std::string name() const = 0;
};

// Equal when every output except `stderr` has the same name and digest.
// stderr is kept for the user but not compared: it often holds timings.
class ExactValidator final : public Validator {
 public:
  bool Equivalent(const v1::ReplicaInfo& a, const v1::ReplicaInfo& b) const override;
  std::string name() const override { return "exact"; }
};

// Equal when both replicas wrote outputs of the same names (stderr and stdout
// are not compared: they hold timings and printed numbers) and each pair is
// equal: the same digest, or, for "*.safetensors" outputs, the same tensor
// names, dtypes and shapes with float values within
// |a - b| <= atol + rtol * max(|a|, |b|), NaN only against NaN, integer and
// bool values identical, and the same metadata keys whose values are equal
// or, when both are numbers, within the same tolerance. Other outputs need the
// same digest. A blob missing from `blobs` or not parsing makes the pair differ.
// `blobs` must outlive the validator.
class ToleranceValidator final : public Validator {
 public:
  static constexpr double kDefaultRtol = 1e-4;
  static constexpr double kDefaultAtol = 1e-6;

  // REQUIRES: rtol >= 0, atol >= 0.
  ToleranceValidator(const BlobStore& blobs, double rtol = kDefaultRtol, double atol = kDefaultAtol)
      : blobs_(blobs), rtol_(rtol), atol_(atol) {}
  bool Equivalent(const v1::ReplicaInfo& a, const v1::ReplicaInfo& b) const override;
  // "tolerance:rtol=R,atol=A", which MakeValidator parses back.
  std::string name() const override;

 private:
  bool SameSafetensors(const std::string& digest_a, const std::string& digest_b) const;

  const BlobStore& blobs_;
  const double rtol_;
  const double atol_;
};

// Verdicts of a validator app, by replica pair (smaller id first): true when
// the app judged the two replicas' outputs equivalent.
using Verdicts = std::map<std::pair<uint64_t, uint64_t>, bool>;

// A registered app judges equivalence ("app:NAME@VERSION"); the coordinator
// runs it in the sandbox on its own host (never on a worker, so that a liar
// cannot judge itself) and records its verdicts. Outputs with identical
// digests (stderr and stdout aside) are equivalent without asking the app;
// any other pair is Ready once its verdict is recorded. `verdicts` must
// outlive the validator and not change while it is used.
class AppVerdictValidator final : public Validator {
 public:
  AppVerdictValidator(std::string name, const Verdicts& verdicts)
      : name_(std::move(name)), verdicts_(verdicts) {}
  bool Equivalent(const v1::ReplicaInfo& a, const v1::ReplicaInfo& b) const override;
  bool Ready(const v1::ReplicaInfo& a, const v1::ReplicaInfo& b) const override;
  std::string name() const override { return name_; }

 private:
  const std::string name_;
  const Verdicts& verdicts_;
};

// The key of a replica pair in Verdicts.
std::pair<uint64_t, uint64_t> VerdictKey(uint64_t a, uint64_t b);
// "app:NAME" or "app:NAME@VERSION" split into name and version ("" for the
// newest); nullopt for any other validator name.
std::optional<std::pair<std::string, std::string>> ParseAppValidator(const std::string& name);

// The validator a task spec names: "" or "exact"; "tolerance" (rtol 1e-4,
// atol 1e-6) or "tolerance:rtol=R,atol=A" (either part may be left out).
// `blobs` is what a ToleranceValidator reads; it must outlive the result.
// Errors: InvalidArgument naming the known validators, or what is wrong in
// the tolerance settings.
// "app:NAME@VERSION" needs `verdicts` (else FailedPrecondition).
absl::StatusOr<std::unique_ptr<Validator>> MakeValidator(const std::string& name,
                                                         const BlobStore& blobs,
                                                         const Verdicts* verdicts = nullptr);

}  // namespace artel
