// Decides whether two successful replicas of a task gave the same answer.
//
// Implementations: ExactValidator (same output digests). A numeric-tolerance
// validator for safetensors outputs joins it with the training work.
#pragma once

#include <memory>
#include <string>

#include "artel/v1/artel.pb.h"
#include "common/status.h"

namespace artel {

// Thread-safe (stateless).
class Validator {
 public:
  virtual ~Validator() = default;
  // REQUIRES: both replicas reported RESULT_KIND_SUCCESS.
  virtual bool Equivalent(const v1::ReplicaInfo& a, const v1::ReplicaInfo& b) const = 0;
  virtual std::string name() const = 0;
};

// Equal when every output except `stderr` has the same name and digest.
// stderr is kept for the user but not compared: it often holds timings.
class ExactValidator final : public Validator {
 public:
  bool Equivalent(const v1::ReplicaInfo& a, const v1::ReplicaInfo& b) const override;
  std::string name() const override { return "exact"; }
};

// Returns the validator called `name` ("" means "exact"); the error lists
// the known names.
absl::StatusOr<const Validator*> FindValidator(const std::string& name);

}  // namespace artel
