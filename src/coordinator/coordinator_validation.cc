// Validator apps (`--validator app:NAME[@VERSION]`): the coordinator runs a
// registered app in the sandbox on its own host to judge whether two
// replicas' outputs are equivalent, outside its lock, and feeds the verdicts
// back to the transitioner.
#include <spdlog/spdlog.h>
#include <stdlib.h>

#include <set>

#include "coordinator/coordinator.h"

namespace artel {
namespace {

constexpr std::chrono::milliseconds kValidatorWallTime{60'000};
constexpr uint64_t kValidatorMemory = 512ull << 20;

bool PlainName(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos;
}

}  // namespace

absl::Status Coordinator::RunValidations() {
  struct Job {
    std::pair<uint64_t, uint64_t> key;
    uint64_t task = 0;
    std::string app_digest;
    std::vector<v1::OutputFile> a, b;
    bool verdict = false;
  };
  std::vector<Job> jobs;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [key, task_id] : pending_validations_) {
      if (verdicts_.count(key) > 0) continue;
      auto task = tasks_.find(task_id);
      auto ra = replicas_.find(key.first), rb = replicas_.find(key.second);
      if (task == tasks_.end() || ra == replicas_.end() || rb == replicas_.end()) continue;
      auto parsed = ParseAppValidator(task->second.info.spec().validator());
      const v1::AppVersion* app =
          parsed.has_value() ? FindAppLocked(parsed->first, parsed->second) : nullptr;
      Job j;
      j.key = key;
      j.task = task_id;
      j.app_digest = app == nullptr ? "" : app->digest();
      j.a.assign(ra->second.outputs().begin(), ra->second.outputs().end());
      j.b.assign(rb->second.outputs().begin(), rb->second.outputs().end());
      jobs.push_back(std::move(j));
    }
    pending_validations_.clear();
  }
  if (jobs.empty()) return absl::OkStatus();
  for (Job& j : jobs) j.verdict = !j.app_digest.empty() && JudgeWithApp(j.app_digest, j.a, j.b);
  uint64_t seq;
  {
    absl::MutexLock lock(&mu_);
    WriteBatch batch;
    std::set<uint64_t> tasks;
    for (const Job& j : jobs) {
      verdicts_[j.key] = j.verdict;
      tasks.insert(j.task);
    }
    for (uint64_t id : tasks) TransitLocked(tasks_.at(id), batch);
    seq = EnqueueLocked(std::move(batch));
  }
  AwaitDurable(seq);
  return absl::OkStatus();
}

bool Coordinator::JudgeWithApp(const std::string& app_digest, const std::vector<v1::OutputFile>& a,
                               const std::vector<v1::OutputFile>& b) {
  if (validator_sandbox_ == nullptr) {
    spdlog::error("a task names a validator app, but this coordinator has no sandbox to run it");
    return false;
  }
  char tmpl[] = "/tmp/artel-validator-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) {
    spdlog::error("cannot create a directory for a validator app under /tmp");
    return false;
  }
  const std::filesystem::path dir = tmpl;
  std::error_code ec;
  auto copy = [&](const std::string& digest, const std::filesystem::path& dest) {
    std::filesystem::copy_file(blobs_.PathOf(digest), dest,
                               std::filesystem::copy_options::overwrite_existing, ec);
    return !ec;
  };
  bool ok = true;
  for (const char* d : {"app", "work/a", "work/b", "out", "checkpoint"}) {
    std::filesystem::create_directories(dir / d, ec);
    ok &= !ec;
  }
  ok &= copy(app_digest, dir / "app" / "validator");
  std::filesystem::permissions(
      dir / "app" / "validator",
      std::filesystem::perms::owner_all | std::filesystem::perms::group_read |
          std::filesystem::perms::group_exec | std::filesystem::perms::others_read |
          std::filesystem::perms::others_exec,
      ec);
  for (const auto& [side, outputs] : {std::pair{"a", &a}, std::pair{"b", &b}}) {
    for (const v1::OutputFile& f : *outputs) {
      if (PlainName(f.name())) ok &= copy(f.digest(), dir / "work" / side / f.name());
    }
  }
  bool verdict = false;
  if (!ok) {
    spdlog::error("cannot lay out the files of a validator app in {}", dir.string());
  } else {
    SandboxSpec spec;
    spec.executable = dir / "app" / "validator";
    spec.args = {"a", "b"};
    spec.work_dir = dir / "work";
    spec.output_dir = dir / "out";
    spec.checkpoint_dir = dir / "checkpoint";
    spec.wall_time = kValidatorWallTime;
    spec.memory_bytes = kValidatorMemory;
    CancelFlag cancel;
    absl::StatusOr<SandboxResult> r = validator_sandbox_->Run(spec, cancel);
    if (!r.ok()) {
      spdlog::error("validator app {} could not run: {}", app_digest.substr(0, 12),
                    std::string(r.status().message()));
    } else if (r->termination == SandboxResult::Termination::kExited &&
               (r->exit_code == 0 || r->exit_code == 1)) {
      verdict = r->exit_code == 0;
    } else {
      spdlog::warn(
          "validator app {} neither said equivalent (exit 0) nor different (exit 1); "
          "counted as different. stderr: {}",
          app_digest.substr(0, 12), r->stderr_data.substr(0, 400));
    }
  }
  std::filesystem::remove_all(dir, ec);
  return verdict;
}

}  // namespace artel
