#include "session.h"

#include <utility>

namespace artel::ml {
namespace {

constexpr size_t kMaxModels = 2;

uint64_t BytesOf(const TensorMap& m) {
  uint64_t n = 0;
  for (const auto& [name, t] : m.tensors) n += t.data.size();
  return n;
}

}  // namespace

std::string Session::DigestOf(const std::string& path) const {
  auto it = digests_.find(path);
  return it == digests_.end() ? "" : it->second;
}

absl::StatusOr<Model*> Session::LoadModel(const std::string& path, bool fresh) {
  const std::string digest = fresh ? "" : DigestOf(path);
  if (digest.empty()) {
    ASSIGN_OR_RETURN(scratch_model_, Model::Load(path));
    return scratch_model_.get();
  }
  auto it = models_.find(digest);
  if (it != models_.end()) return it->second.get();
  ASSIGN_OR_RETURN(std::unique_ptr<Model> model, Model::Load(path));
  if (models_.size() >= kMaxModels) models_.erase(models_.begin());
  return (models_[digest] = std::move(model)).get();
}

absl::StatusOr<const TensorMap*> Session::ReadTensors(const std::string& path) {
  const std::string digest = DigestOf(path);
  if (digest.empty()) {
    ASSIGN_OR_RETURN(scratch_tensors_, ReadSafetensors(path));
    return &scratch_tensors_;
  }
  auto it = tensors_.find(digest);
  if (it != tensors_.end()) {
    it->second.last_use = ++uses_;
    return &it->second.tensors;
  }
  ASSIGN_OR_RETURN(TensorMap tensors, ReadSafetensors(path));
  const uint64_t bytes = BytesOf(tensors);
  // Least recently used first, until the new file fits.
  while (!tensors_.empty() && cached_bytes_ + bytes > cache_bytes_) {
    auto oldest = tensors_.begin();
    for (auto c = tensors_.begin(); c != tensors_.end(); ++c) {
      if (c->second.last_use < oldest->second.last_use) oldest = c;
    }
    cached_bytes_ -= oldest->second.bytes;
    tensors_.erase(oldest);
  }
  if (bytes > cache_bytes_) {
    scratch_tensors_ = std::move(tensors);
    return &scratch_tensors_;
  }
  cached_bytes_ += bytes;
  Cached& c = tensors_[digest];
  c.tensors = std::move(tensors);
  c.bytes = bytes;
  c.last_use = ++uses_;
  return &c.tensors;
}

}  // namespace artel::ml
