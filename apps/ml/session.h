// What one artel-ml process keeps between the tasks it runs. A plain run
// (one task per process) loads everything afresh; a warm executor
// (serve.cc, docs/EXECUTORS.md) names each input's content digest, and the
// session then keeps loaded models and parsed shards by digest, so the
// next task of the same job skips reading, parsing and loading them.
//
// Not thread-safe; one per process.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "common/status.h"
#include "ml/safetensors.h"
#include "model.h"

namespace artel::ml {

class Session {
 public:
  // `cache_bytes`: the most parsed shard bytes kept [512 MiB].
  explicit Session(uint64_t cache_bytes = 512ull << 20) : cache_bytes_(cache_bytes) {}

  // The current task's input files: path as the task names it -> content
  // digest. Files not listed (and every file when this is empty) are read
  // afresh.
  void SetInputs(std::map<std::string, std::string> digests) { digests_ = std::move(digests); }

  // The model in `path`, loaded once per digest. `fresh` loads it anew
  // (e.g. to read its initial parameters). The session owns the model; the
  // pointer stays valid until the next LoadModel call. Errors as
  // Model::Load.
  absl::StatusOr<Model*> LoadModel(const std::string& path, bool fresh = false);

  // The safetensors file in `path`, parsed once per digest. Valid until the
  // next ReadTensors call. Errors as ReadSafetensors.
  absl::StatusOr<const TensorMap*> ReadTensors(const std::string& path);

  // The error-feedback residual of compressed updates (ml/compress.h) for
  // the stream `key` (e.g. the model file's digest and the command); empty
  // at first. Lives as long as the session: in a warm executor across the
  // tasks of a job, in a plain run for one task only.
  TensorMap& Residual(const std::string& key) { return residuals_[key]; }
  // The content digest the current task gave `path`, or "".
  std::string DigestOf(const std::string& path) const;

 private:
  struct Cached {
    TensorMap tensors;
    uint64_t bytes = 0;
    uint64_t last_use = 0;
  };
  const uint64_t cache_bytes_;
  std::map<std::string, std::string> digests_;
  std::map<std::string, std::unique_ptr<Model>> models_;  // by digest
  std::unique_ptr<Model> scratch_model_;                  // an uncached model
  std::map<std::string, Cached> tensors_;                 // by digest
  TensorMap scratch_tensors_;                             // an uncached file
  std::map<std::string, TensorMap> residuals_;
  uint64_t cached_bytes_ = 0;
  uint64_t uses_ = 0;
};

}  // namespace artel::ml
