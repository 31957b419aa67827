#include "worker/replica_runner.h"

#include <algorithm>
#include <csignal>
#include <fstream>
#include <sstream>

#include "worker/checkpoint_pack.h"

namespace artel {
namespace {

std::string Corrupt(std::string data) {
  if (data.empty()) return "corrupted";
  for (char& c : data) c = static_cast<char>(c ^ 0x5a);
  return data;
}

absl::StatusOr<std::string> ReadAll(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) return absl::InternalError("cannot read " + p.string());
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

RunDirs::RunDirs(const std::filesystem::path& r)
    : root(r), app(r / "app"), work(r / "work"), out(r / "out"), checkpoint(r / "checkpoint") {}

absl::Status ReplicaRunner::Materialize(const std::string& digest,
                                        const std::filesystem::path& dest, bool executable) {
  ASSIGN_OR_RETURN(std::filesystem::path cached, cache_.Acquire(digest, [&](BlobWriter& w) {
    return blobs_.Download(digest, w);
  }));
  std::error_code ec;
  std::filesystem::copy_file(cached, dest, std::filesystem::copy_options::overwrite_existing, ec);
  cache_.Release(digest);
  if (ec) return absl::InternalError("cannot copy blob " + digest + ": " + ec.message());
  using std::filesystem::perms;
  std::filesystem::permissions(
      dest,
      executable ? perms::owner_all | perms::group_read | perms::group_exec | perms::others_read |
                       perms::others_exec
                 : perms::owner_read | perms::owner_write | perms::group_read | perms::others_read,
      ec);
  return absl::OkStatus();
}

absl::Status ReplicaRunner::Prepare(const v1::Assignment& a, const RunDirs& dirs) {
  std::error_code ec;
  for (const auto* d : {&dirs.app, &dirs.work, &dirs.out, &dirs.checkpoint}) {
    std::filesystem::create_directories(*d, ec);
    if (ec) return absl::InternalError("cannot create " + d->string() + ": " + ec.message());
  }
  RETURN_IF_ERROR(Materialize(a.app_digest(), dirs.app / a.app(), /*executable=*/true));
  for (const v1::InputFile& in : a.inputs()) {
    RETURN_IF_ERROR(Materialize(in.digest(), dirs.work / in.name(), /*executable=*/false));
  }
  if (!a.checkpoint_digest().empty()) {
    const std::filesystem::path packed = dirs.root / "checkpoint.pack";
    RETURN_IF_ERROR(blobs_.DownloadToFile(a.checkpoint_digest(), packed));
    ASSIGN_OR_RETURN(std::string data, ReadAll(packed));
    RETURN_IF_ERROR(UnpackCheckpoint(data, dirs.checkpoint));
  }
  return absl::OkStatus();
}

bool ReplicaRunner::DrawCorrupt() {
  if (options_.corrupt_rate <= 0) return false;
  if (options_.corrupt_rate >= 1) return true;
  absl::MutexLock lock(&rng_mu_);
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng_) < options_.corrupt_rate;
}

absl::Status ReplicaRunner::CollectOutputs(const std::filesystem::path& out_dir,
                                           const SandboxResult& result, v1::ReplicaReport& report) {
  const bool corrupt = DrawCorrupt();
  auto add = [&](const std::string& name, std::string data) -> absl::Status {
    if (corrupt && name != "stderr") data = Corrupt(std::move(data));
    ASSIGN_OR_RETURN(std::string digest, blobs_.UploadBytes(data));
    v1::OutputFile* f = report.add_outputs();
    f->set_name(name);
    f->set_digest(digest);
    f->set_size(data.size());
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(add("stdout", result.stdout_data));
  RETURN_IF_ERROR(add("stderr", result.stderr_data));
  std::error_code ec;
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(out_dir, ec)) {
    if (e.is_regular_file(ec)) files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    const std::string name = f.filename().string();
    if (name == "stdout" || name == "stderr") continue;  // reserved for the captured streams
    if (corrupt) {
      ASSIGN_OR_RETURN(std::string data, ReadAll(f));
      RETURN_IF_ERROR(add(name, std::move(data)));
      continue;
    }
    ASSIGN_OR_RETURN(std::string digest, blobs_.UploadFile(f));
    v1::OutputFile* out = report.add_outputs();
    out->set_name(name);
    out->set_digest(digest);
    out->set_size(std::filesystem::file_size(f, ec));
  }
  return absl::OkStatus();
}

std::optional<v1::ReplicaReport> ReplicaRunner::RunWarm(const v1::Assignment& a,
                                                        std::unique_ptr<WarmExecutor> executor,
                                                        const CancelFlag& cancel) {
  v1::ReplicaReport report;
  report.set_replica_id(a.replica_id());
  const std::string dir = "tasks/" + std::to_string(a.replica_id());
  const std::filesystem::path host_dir = executor->work_dir() / dir;
  auto finish = [&](std::optional<v1::ReplicaReport> r) {
    std::error_code ec;
    std::filesystem::remove_all(host_dir, ec);
    executors_->Release(a.executor(), a.app_digest(), std::move(executor));
    return r;
  };
  auto host_error = [&](const absl::Status& s) {
    report.set_result(v1::RESULT_KIND_HOST_ERROR);
    report.set_error(std::string(s.message()));
    return finish(report);
  };
  std::error_code ec;
  std::filesystem::create_directories(host_dir / "out", ec);
  if (ec) return host_error(absl::InternalError("cannot create " + host_dir.string()));
  ExecutorTask task;
  task.id = a.replica_id();
  task.args.assign(a.args().begin(), a.args().end());
  task.dir = dir;
  task.out = dir + "/out";
  task.wall_time = std::chrono::milliseconds(a.resources().wall_time_ms());
  for (const v1::InputFile& in : a.inputs()) {
    absl::Status s = executor->LinkInput(
        in.digest(), host_dir / in.name(), [&](const std::filesystem::path& path) {
          return Materialize(in.digest(), path, /*executable=*/false);
        });
    if (!s.ok()) return host_error(s);
    task.inputs.emplace_back(in.name(), in.digest());
  }
  const auto started = std::chrono::steady_clock::now();
  absl::StatusOr<ExecutorOutcome> outcome = executor->Run(task, cancel);
  report.set_runtime_ms(static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                  std::chrono::steady_clock::now() - started)
                                                  .count()));
  if (!outcome.ok()) return host_error(outcome.status());
  using K = ExecutorOutcome::Kind;
  SandboxResult streams;
  switch (outcome->kind) {
    case K::kCancelled:
      return finish(std::nullopt);
    case K::kDone:
      report.set_exit_code(outcome->exit_code);
      report.set_result(outcome->exit_code == 0 ? v1::RESULT_KIND_SUCCESS
                                                : v1::RESULT_KIND_APP_ERROR);
      if (outcome->exit_code != 0)
        report.set_error("exited with code " + std::to_string(outcome->exit_code));
      report.set_compute_ms(outcome->compute_ms);
      streams.stdout_data = std::move(outcome->stdout_data);
      streams.stderr_data = std::move(outcome->stderr_data);
      break;
    case K::kTimedOut:
      report.set_result(v1::RESULT_KIND_APP_ERROR);
      report.set_exit_code(-1);
      report.set_error("killed after its wall-time limit of " +
                       std::to_string(a.resources().wall_time_ms()) + " ms");
      break;
    case K::kCrashed: {
      const SandboxResult& t = outcome->termination;
      if (t.termination == SandboxResult::Termination::kSignaled && t.signal != SIGKILL) {
        report.set_result(v1::RESULT_KIND_APP_ERROR);
        report.set_exit_code(128 + t.signal);
        report.set_error("the executor was killed by signal " + std::to_string(t.signal));
        streams.stderr_data = t.stderr_data;
        break;
      }
      // SIGKILL (the OOM killer, the host) or an exit without answering:
      // costs a replica, as a host fault does for a plain process.
      return host_error(absl::InternalError(
          t.termination == SandboxResult::Termination::kSignaled
              ? "the executor was killed by SIGKILL on the host"
              : "the executor exited with code " + std::to_string(t.exit_code) +
                    " without answering; stderr: " + t.stderr_data.substr(0, 400)));
    }
  }
  if (absl::Status s = CollectOutputs(host_dir / "out", streams, report); !s.ok()) {
    return host_error(s);
  }
  return finish(report);
}

std::optional<v1::ReplicaReport> ReplicaRunner::Run(const v1::Assignment& a, const RunDirs& dirs,
                                                    const CancelFlag& cancel) {
  v1::ReplicaReport report;
  report.set_replica_id(a.replica_id());
  auto host_error = [&](const absl::Status& s) {
    report.set_result(v1::RESULT_KIND_HOST_ERROR);
    report.set_error(std::string(s.message()));
    return report;
  };
  // Tasks resuming from a checkpoint run as plain processes: executors
  // have no per-task checkpoint directory.
  if (executors_ != nullptr && !a.executor().empty() && a.checkpoint_digest().empty() &&
      !executors_->IsPlain(a.app_digest())) {
    absl::StatusOr<std::unique_ptr<WarmExecutor>> executor =
        executors_->Acquire(a.executor(), a.app_digest(), a.app(), a.resources().memory_bytes(),
                            [&](const std::filesystem::path& dest) {
                              return Materialize(a.app_digest(), dest, /*executable=*/true);
                            });
    if (executor.ok()) return RunWarm(a, std::move(*executor), cancel);
    if (!absl::IsFailedPrecondition(executor.status())) return host_error(executor.status());
  }
  if (absl::Status s = Prepare(a, dirs); !s.ok()) return host_error(s);

  SandboxSpec spec;
  spec.executable = dirs.app / a.app();
  spec.args.assign(a.args().begin(), a.args().end());
  spec.work_dir = dirs.work;
  spec.output_dir = dirs.out;
  spec.checkpoint_dir = dirs.checkpoint;
  spec.env["ARTEL_TASK_ID"] = std::to_string(a.task_id());
  if (!options_.app_fault.empty()) spec.env["ARTEL_INJECT_FAULT"] = options_.app_fault;
  spec.env["ARTEL_REPLICA_ID"] = std::to_string(a.replica_id());
  spec.memory_bytes = a.resources().memory_bytes();
  spec.max_processes = options_.max_processes;
  spec.wall_time = std::chrono::milliseconds(a.resources().wall_time_ms());
  spec.max_captured_bytes = options_.max_captured_bytes;
  absl::StatusOr<SandboxResult> result = sandbox_.Run(spec, cancel);
  if (!result.ok()) return host_error(result.status());
  report.set_runtime_ms(static_cast<uint64_t>(result->runtime.count()));

  using T = SandboxResult::Termination;
  switch (result->termination) {
    case T::kCancelled:
      return std::nullopt;
    case T::kExited:
      report.set_exit_code(result->exit_code);
      report.set_result(result->exit_code == 0 ? v1::RESULT_KIND_SUCCESS
                                               : v1::RESULT_KIND_APP_ERROR);
      if (result->exit_code != 0)
        report.set_error("exited with code " + std::to_string(result->exit_code));
      break;
    case T::kTimedOut:
      report.set_result(v1::RESULT_KIND_APP_ERROR);
      report.set_exit_code(-1);
      report.set_error("killed after its wall-time limit of " +
                       std::to_string(a.resources().wall_time_ms()) + " ms");
      break;
    case T::kSignaled:
      if (result->signal == SIGKILL) {
        // Not from us: the kernel's OOM killer or the host. Costs a replica.
        return host_error(absl::InternalError("the app was killed by SIGKILL on the host"));
      }
      report.set_result(v1::RESULT_KIND_APP_ERROR);
      report.set_exit_code(128 + result->signal);
      report.set_error("killed by signal " + std::to_string(result->signal));
      break;
  }
  if (absl::Status s = CollectOutputs(dirs.out, *result, report); !s.ok()) return host_error(s);
  return report;
}

}  // namespace artel
