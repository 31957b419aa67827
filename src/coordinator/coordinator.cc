#include "coordinator/coordinator.h"

#include <openssl/rand.h>

#include <algorithm>
#include <cctype>
#include <cstdio>

#include "common/sha256.h"
#include "common/signing.h"
#include "coordinator/policy.h"
#include "coordinator/reliability.h"
#include "coordinator/transitioner.h"
#include "coordinator/validator.h"

namespace artel {
namespace {

std::string RandomHex(size_t bytes) {
  std::string raw(bytes, '\0');
  ARTEL_CHECK(
      RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(bytes)) == 1,
      "no randomness available");
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : raw) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

bool ValidFileName(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.size() <= 255 &&
         name.find('/') == std::string::npos && name.find('\0') == std::string::npos;
}

v1::TaskEvent EventOf(const v1::TaskInfo& t) {
  v1::TaskEvent e;
  e.set_id(t.id());
  e.set_state(t.state());
  e.set_outcome(t.outcome());
  e.set_reason(t.reason());
  return e;
}

}  // namespace

Coordinator::Coordinator(Store& store, BlobStore& blobs, const Clock& clock,
                         CoordinatorOptions options, Sandbox* validator_sandbox)
    : store_(store),
      blobs_(blobs),
      clock_(clock),
      options_(options),
      commits_(store, options.on_commit),
      validator_sandbox_(validator_sandbox) {
  uint64_t seed = options.random_seed;
  if (seed == 0) {
    ARTEL_CHECK(RAND_bytes(reinterpret_cast<unsigned char*>(&seed), sizeof(seed)) == 1,
                "no randomness available");
  }
  rng_.seed(seed);
}

Coordinator::~Coordinator() = default;

uint64_t Coordinator::EnqueueLocked(WriteBatch batch) {
  if (batch.empty()) return last_seq_;
  last_seq_ = commits_.Enqueue(std::move(batch));
  return last_seq_;
}

void Coordinator::AwaitDurable(uint64_t seq) {
  if (seq == 0) return;  // nothing was ever queued
  absl::Status s = commits_.WaitCommitted(seq);
  ARTEL_CHECK(s.ok(), "writing to the store failed (" + s.ToString() +
                          "); stopping so that memory never disagrees with the database. Fix the "
                          "cause (e.g. free disk space) and restart the coordinator: it resumes "
                          "from the last commit");
}

absl::Status Coordinator::Load() {
  ASSIGN_OR_RETURN(StoreSnapshot snap, store_.Load());
  absl::MutexLock lock(&mu_);
  const int64_t now = clock_.NowMs();
  for (const TokenRecord& t : snap.tokens) tokens_[t.token_hash] = t;
  for (const v1::AppVersion& a : snap.apps) apps_[{a.name(), a.version()}] = a;
  for (const v1::Dataset& d : snap.datasets) datasets_[d.name()] = d;
  for (const v1::TrainingJob& j : snap.training_jobs) {
    training_jobs_[j.id()] = j;
    next_training_job_id_ = std::max(next_training_job_id_, j.id() + 1);
  }
  for (const v1::JobInfo& j : snap.jobs) {
    next_job_id_ = std::max(next_job_id_, j.id() + 1);
    *jobs_[j.id()].mutable_job() = j;
  }
  for (const v1::WorkerInfo& w : snap.workers) {
    // Give every known worker one timeout to heartbeat the new process.
    workers_[w.id()] = WorkerEntry{w, now};
  }
  for (v1::TaskInfo& t : snap.tasks) {
    TaskEntry entry;
    entry.info = std::move(t);
    const v1::Resources& r = entry.info.spec().resources();
    entry.needs = TaskNeeds{r.cores(), r.memory_bytes(), r.gpu_memory_bytes(), {}, r.side()};
    for (const auto& in : entry.info.spec().inputs())
      entry.needs.input_digests.push_back(in.digest());
    if (const v1::AppVersion* app =
            FindAppLocked(entry.info.spec().app(), entry.info.resolved_version())) {
      entry.app_digest = app->digest();
    }
    next_task_id_ = std::max(next_task_id_, entry.info.id() + 1);
    ++stats_.tasks;
    CountLocked(entry.info, v1::TASK_STATE_UNSPECIFIED, 0);
    tasks_.emplace(entry.info.id(), std::move(entry));
  }
  for (v1::ReplicaInfo& r : snap.replicas) {
    next_replica_id_ = std::max(next_replica_id_, r.id() + 1);
    auto task = tasks_.find(r.task_id());
    if (task == tasks_.end()) continue;
    task->second.replica_ids.push_back(r.id());
    if (r.state() == v1::REPLICA_STATE_IN_PROGRESS) {
      // Leases restart with the coordinator: the worker had no one to heartbeat.
      r.set_lease_expiry_ms(now +
                            static_cast<int64_t>(task->second.info.spec().policy().lease_ms()));
      in_progress_.insert(r.id());
    }
    ++stats_.replicas;
    replicas_.emplace(r.id(), std::move(r));
  }
  WriteBatch batch;
  for (auto& [id, task] : tasks_) {
    if (task.info.state() == v1::TASK_STATE_DONE) {
      ++stats_.done;
      if (task.info.outcome() == v1::OUTCOME_SUCCESS) ++stats_.success;
      if (task.info.outcome() == v1::OUTCOME_APP_ERROR) ++stats_.app_error;
      if (task.info.outcome() == v1::OUTCOME_SYSTEM_ERROR) ++stats_.system_error;
      // A spot check still owed asks for its replica again.
      if (task.info.unverified() && task.info.spot_check()) TransitLocked(task, batch);
      continue;
    }
    if (task.info.spec().policy().deadline_ms() > 0) with_deadline_.insert(id);
    TransitLocked(task, batch);
  }
  AwaitDurable(EnqueueLocked(std::move(batch)));
  return absl::OkStatus();
}

namespace {

// A token's public id: the start of its hash, enough to name it.
std::string TokenId(const std::string& hash) { return hash.substr(0, 12); }

v1::TokenInfo ToInfo(const TokenRecord& t) {
  v1::TokenInfo info;
  info.set_id(TokenId(t.token_hash));
  info.set_role(t.role);
  info.set_owner(t.owner);
  info.set_created_at_ms(t.created_at_ms);
  info.set_expires_at_ms(t.expires_at_ms);
  info.set_revoked_at_ms(t.revoked_at_ms);
  return info;
}

bool ValidOwner(const std::string& owner) {
  if (owner.size() > 64) return false;
  return std::all_of(owner.begin(), owner.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-' ||
           c == '@';
  });
}

}  // namespace

absl::StatusOr<std::optional<std::string>> Coordinator::EnsureAdminToken() {
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [hash, t] : tokens_) {
      if (t.role == v1::ROLE_ADMIN && t.revoked_at_ms == 0 &&
          (t.expires_at_ms == 0 || t.expires_at_ms > clock_.NowMs())) {
        return std::optional<std::string>();
      }
    }
  }
  ASSIGN_OR_RETURN(v1::CreateTokenResponse created, CreateToken(v1::ROLE_ADMIN, "admin"));
  return std::optional<std::string>(created.token());
}

absl::StatusOr<v1::Role> Coordinator::Authenticate(const std::string& token) const {
  if (token.empty()) {
    return absl::UnauthenticatedError(
        "no token given; pass --token or set ARTEL_TOKEN (an admin makes one with `artel token "
        "create`)");
  }
  const std::string hash = Sha256Hex(token);
  absl::ReaderMutexLock lock(&mu_);
  auto it = tokens_.find(hash);
  if (it == tokens_.end()) {
    return absl::UnauthenticatedError(
        "the token is not valid on this coordinator; check --token / ARTEL_TOKEN");
  }
  const TokenRecord& t = it->second;
  if (t.revoked_at_ms != 0) {
    return absl::UnauthenticatedError("token " + TokenId(hash) +
                                      " was revoked; ask an admin for a new one (`artel token "
                                      "create`)");
  }
  if (t.expires_at_ms != 0 && clock_.NowMs() >= t.expires_at_ms) {
    return absl::UnauthenticatedError("token " + TokenId(hash) +
                                      " has expired; ask an admin for a new one (`artel token "
                                      "create`)");
  }
  return t.role;
}

absl::StatusOr<v1::CreateTokenResponse> Coordinator::CreateToken(v1::Role role,
                                                                 const std::string& owner,
                                                                 int64_t expires_in_ms) {
  if (role != v1::ROLE_ADMIN && role != v1::ROLE_SUBMITTER && role != v1::ROLE_WORKER) {
    return absl::InvalidArgumentError("unknown role; use submitter, worker or admin");
  }
  if (!ValidOwner(owner)) {
    return absl::InvalidArgumentError(
        "owner '" + owner +
        "' is not a valid name; use at most 64 letters, digits, '.', '_', '-' or '@'");
  }
  if (expires_in_ms < 0) {
    return absl::InvalidArgumentError("a token's expiry must be in the future");
  }
  const std::string token = "artel_" + RandomHex(24);
  TokenRecord record;
  record.token_hash = Sha256Hex(token);
  record.role = role;
  record.created_at_ms = clock_.NowMs();
  record.owner = owner.empty() ? TokenId(record.token_hash) : owner;
  record.expires_at_ms = expires_in_ms == 0 ? 0 : record.created_at_ms + expires_in_ms;
  WriteBatch batch;
  batch.tokens.push_back(record);
  uint64_t seq;
  {
    absl::MutexLock lock(&mu_);
    tokens_[record.token_hash] = record;
    seq = EnqueueLocked(std::move(batch));
  }
  AwaitDurable(seq);
  v1::CreateTokenResponse response;
  response.set_token(options_.tls_fingerprint.empty() ? token
                                                      : token + "#" + options_.tls_fingerprint);
  *response.mutable_info() = ToInfo(record);
  return response;
}

std::string Coordinator::OwnerOf(const std::string& token) const {
  absl::ReaderMutexLock lock(&mu_);
  auto it = tokens_.find(Sha256Hex(token));
  return it == tokens_.end() ? "" : it->second.owner;
}

v1::ListTokensResponse Coordinator::ListTokens() const {
  v1::ListTokensResponse response;
  absl::ReaderMutexLock lock(&mu_);
  for (const auto& [hash, t] : tokens_) *response.add_tokens() = ToInfo(t);
  std::sort(response.mutable_tokens()->begin(), response.mutable_tokens()->end(),
            [](const v1::TokenInfo& a, const v1::TokenInfo& b) {
              return a.created_at_ms() != b.created_at_ms() ? a.created_at_ms() > b.created_at_ms()
                                                            : a.id() < b.id();
            });
  return response;
}

absl::StatusOr<v1::TokenInfo> Coordinator::RevokeToken(const std::string& id) {
  if (id.size() != 12) {
    return absl::InvalidArgumentError("token id '" + id +
                                      "' is not 12 hex digits; see `artel token list`");
  }
  uint64_t seq;
  v1::TokenInfo info;
  {
    absl::MutexLock lock(&mu_);
    TokenRecord* found = nullptr;
    for (auto& [hash, t] : tokens_) {
      if (TokenId(hash) == id) found = &t;
    }
    if (found == nullptr) {
      return absl::NotFoundError("no token with id " + id + "; see `artel token list`");
    }
    if (found->revoked_at_ms != 0) return ToInfo(*found);
    const int64_t now = clock_.NowMs();
    if (found->role == v1::ROLE_ADMIN) {
      bool other_admin = false;
      for (const auto& [hash, t] : tokens_) {
        other_admin |= &t != found && t.role == v1::ROLE_ADMIN && t.revoked_at_ms == 0 &&
                       (t.expires_at_ms == 0 || t.expires_at_ms > now);
      }
      if (!other_admin) {
        return absl::FailedPreconditionError(
            "token " + id +
            " is the last valid admin token; create another admin token first (`artel token "
            "create --role admin`)");
      }
    }
    found->revoked_at_ms = now;
    WriteBatch batch;
    batch.tokens.push_back(*found);
    info = ToInfo(*found);
    seq = EnqueueLocked(std::move(batch));
  }
  AwaitDurable(seq);
  return info;
}

const v1::AppVersion* Coordinator::FindAppLocked(const std::string& name,
                                                 const std::string& version) const {
  if (version.empty()) {
    const v1::AppVersion* newest = nullptr;
    for (auto it = apps_.lower_bound({name, ""}); it != apps_.end() && it->first.first == name;
         ++it) {
      if (newest == nullptr || it->second.created_at_ms() >= newest->created_at_ms()) {
        newest = &it->second;
      }
    }
    return newest;
  }
  auto it = apps_.find({name, version});
  return it == apps_.end() ? nullptr : &it->second;
}

absl::StatusOr<v1::AppVersion> Coordinator::AddApp(const v1::AppVersion& app) {
  if (!ValidFileName(app.name()) || app.name().rfind("builtin", 0) == 0) {
    return absl::InvalidArgumentError("app name '" + app.name() +
                                      "' is not allowed; use letters, digits, '-', '_' or '.', "
                                      "not starting with 'builtin'");
  }
  if (app.version().empty()) {
    return absl::InvalidArgumentError("app '" + app.name() + "' needs a version; pass --version");
  }
  if (!IsSha256Hex(app.digest()) || !blobs_.Has(app.digest())) {
    return absl::FailedPreconditionError("the executable of app '" + app.name() +
                                         "' has not been uploaded; upload the file first");
  }
  v1::AppVersion stored = app;
  if (!options_.app_public_key.empty()) {
    const std::string fingerprint = *KeyFingerprint(options_.app_public_key);
    if (app.signature().empty()) {
      return absl::PermissionDeniedError("this coordinator runs only signed apps (project key " +
                                         fingerprint + "); sign it: artel app add " + app.name() +
                                         " --version " + app.version() +
                                         " FILE --sign PROJECT.key");
    }
    if (absl::Status s =
            Verify(options_.app_public_key,
                   AppSigningMessage(app.name(), app.version(), app.digest()), app.signature());
        !s.ok()) {
      return absl::PermissionDeniedError(
          "the signature of app '" + app.name() + "' version " + app.version() +
          " does not verify with the project key " + fingerprint +
          ": it was made by another key or for other content; sign this file with the project's "
          "private key");
    }
    stored.set_key_fingerprint(fingerprint);
  } else if (!app.signature().empty()) {
    stored.clear_key_fingerprint();  // nothing to check it against here; workers check it
  }
  ASSIGN_OR_RETURN(uint64_t size, blobs_.SizeOf(app.digest()));
  stored.set_size(size);
  stored.set_created_at_ms(clock_.NowMs());
  uint64_t seq;
  {
    absl::MutexLock lock(&mu_);
    if (const v1::AppVersion* old = FindAppLocked(app.name(), app.version())) {
      if (old->digest() == app.digest()) return *old;
      return absl::AlreadyExistsError("app '" + app.name() + "' version " + app.version() +
                                      " is already registered with a different file; register "
                                      "the new file under a new --version");
    }
    apps_[{app.name(), app.version()}] = stored;
    WriteBatch batch;
    batch.apps.push_back(stored);
    seq = EnqueueLocked(std::move(batch));
  }
  AwaitDurable(seq);
  return stored;
}

v1::ListAppsResponse Coordinator::ListApps() const {
  v1::ListAppsResponse out;
  v1::AppVersion* noop = out.add_apps();
  noop->set_name(kNoopApp);
  noop->set_version("builtin");
  noop->set_digest(std::string(kBuiltinDigestPrefix) + "noop");
  absl::ReaderMutexLock lock(&mu_);
  for (const auto& [key, app] : apps_) *out.add_apps() = app;
  return out;
}

absl::Status Coordinator::ValidateSpecLocked(v1::TaskSpec& spec, std::string* app_digest) const {
  if (spec.app() == kNoopApp) {
    *app_digest = std::string(kBuiltinDigestPrefix) + "noop";
    spec.set_version("builtin");
  } else {
    const v1::AppVersion* app = FindAppLocked(spec.app(), spec.version());
    if (app == nullptr) {
      if (spec.version().empty() || FindAppLocked(spec.app(), "") == nullptr) {
        return absl::NotFoundError("app '" + spec.app() +
                                   "' is not registered; run `artel app list` to see the apps, "
                                   "or `artel app add` to register it");
      }
      return absl::NotFoundError("app '" + spec.app() + "' version " + spec.version() +
                                 " is not registered; run `artel app list` to see its versions");
    }
    *app_digest = app->digest();
    spec.set_version(app->version());
  }
  std::set<std::string> names;
  for (const v1::InputFile& in : spec.inputs()) {
    if (!ValidFileName(in.name()) || in.name() == "stdout" || in.name() == "stderr") {
      return absl::InvalidArgumentError("input name '" + in.name() +
                                        "' is not a plain file name; use NAME=FILE with no '/'");
    }
    if (!names.insert(in.name()).second) {
      return absl::InvalidArgumentError("input '" + in.name() + "' is given twice; give each once");
    }
    if (!IsSha256Hex(in.digest()) || !blobs_.Has(in.digest())) {
      return absl::FailedPreconditionError("input '" + in.name() + "' (blob " + in.digest() +
                                           ") has not been uploaded; upload it before submitting");
    }
  }
  if (auto validator_app = ParseAppValidator(spec.validator())) {
    const v1::AppVersion* app = FindAppLocked(validator_app->first, validator_app->second);
    if (app == nullptr) {
      return absl::NotFoundError("validator app '" + spec.validator().substr(4) +
                                 "' is not registered; register it with `artel app add`, or see "
                                 "`artel app list`");
    }
    if (validator_sandbox_ == nullptr) {
      return absl::FailedPreconditionError(
          "this coordinator cannot run validator apps: it has no sandbox (install bubblewrap on "
          "its host and restart it)");
    }
    spec.set_validator("app:" + app->name() + "@" + app->version());  // pinned now
  }
  RETURN_IF_ERROR(MakeValidator(spec.validator(), blobs_, &verdicts_).status());
  *spec.mutable_policy() = WithDefaults(spec.policy());
  *spec.mutable_resources() = WithDefaults(spec.resources());
  return CheckPolicy(spec.policy());
}

absl::StatusOr<v1::SubmitResponse> Coordinator::Submit(const v1::SubmitRequest& request) {
  if (request.tasks().empty()) {
    return absl::InvalidArgumentError("the request holds no tasks; give at least one");
  }
  if (request.tasks_size() > static_cast<int>(options_.max_tasks_per_submit)) {
    return absl::InvalidArgumentError("the request holds " + std::to_string(request.tasks_size()) +
                                      " tasks, above the limit of " +
                                      std::to_string(options_.max_tasks_per_submit) +
                                      " per call; submit in smaller batches");
  }
  v1::SubmitResponse response;
  uint64_t seq;
  {
    absl::MutexLock lock(&mu_);
    // Check everything first: a bad task rejects the whole request.
    std::vector<v1::TaskSpec> specs(request.tasks().begin(), request.tasks().end());
    std::vector<std::string> digests(specs.size());
    for (size_t i = 0; i < specs.size(); ++i) {
      absl::Status s = ValidateSpecLocked(specs[i], &digests[i]);
      if (!s.ok()) {
        return absl::Status(s.code(), "task " + std::to_string(i + 1) + " of " +
                                          std::to_string(specs.size()) + ": " +
                                          std::string(s.message()));
      }
    }
    const int64_t now = clock_.NowMs();
    WriteBatch batch;
    v1::JobInfo job;
    job.set_id(next_job_id_++);
    job.set_name(request.job_name());
    job.set_created_at_ms(now);
    job.set_task_count(static_cast<uint32_t>(specs.size()));
    batch.jobs.push_back(job);
    *jobs_[job.id()].mutable_job() = job;
    response.set_job_id(job.id());
    for (size_t i = 0; i < specs.size(); ++i) {
      TaskEntry entry;
      entry.info.set_id(next_task_id_++);
      entry.info.set_job_id(job.id());
      entry.info.set_state(v1::TASK_STATE_PENDING);
      entry.info.set_created_at_ms(now);
      entry.info.set_resolved_version(specs[i].version());
      const v1::Resources& r = specs[i].resources();
      entry.needs = TaskNeeds{r.cores(), r.memory_bytes(), r.gpu_memory_bytes(), {}, r.side()};
      for (const auto& in : specs[i].inputs()) entry.needs.input_digests.push_back(in.digest());
      entry.app_digest = digests[i];
      *entry.info.mutable_spec() = std::move(specs[i]);
      const uint64_t id = entry.info.id();
      response.add_task_ids(id);
      auto [it, inserted] = tasks_.emplace(id, std::move(entry));
      if (it->second.info.spec().policy().deadline_ms() > 0) with_deadline_.insert(id);
      ++stats_.tasks;
      CountLocked(it->second.info, v1::TASK_STATE_UNSPECIFIED, 0);
      TransitLocked(it->second, batch);
      batch.tasks.push_back(it->second.info);
    }
    seq = EnqueueLocked(std::move(batch));
  }
  AwaitDurable(seq);
  return response;
}

std::vector<v1::ReplicaInfo*> Coordinator::ReplicasOfLocked(const TaskEntry& task) {
  std::vector<v1::ReplicaInfo*> out;
  out.reserve(task.replica_ids.size());
  for (uint64_t id : task.replica_ids) out.push_back(&replicas_.at(id));
  return out;
}

void Coordinator::TransitLocked(TaskEntry& task, WriteBatch& batch) {
  const v1::TaskState old_state = task.info.state();
  const v1::Outcome old_outcome = task.info.outcome();
  // Checked at submit, so the name is valid; a tolerance validator reads the
  // replicas' outputs from the blob store.
  const std::unique_ptr<Validator> validator =
      *MakeValidator(task.info.spec().validator(), blobs_, &verdicts_);
  TransitionResult r = Transit(task.info, ReplicasOfLocked(task), *validator, clock_.NowMs());
  ApplyTransitionLocked(task, r, old_state, old_outcome, batch);
}

void Coordinator::ApplyTransitionLocked(TaskEntry& task, const TransitionResult& r,
                                        v1::TaskState old_state, v1::Outcome old_outcome,
                                        WriteBatch& batch) {
  for (uint64_t id : r.changed_replicas) batch.replicas.push_back(replicas_.at(id));
  for (uint64_t id : r.cancelled_replicas) in_progress_.erase(id);
  for (const auto& pair : r.pending_validations) pending_validations_[pair] = task.info.id();
  const std::string app = AppKey(task.info);
  std::vector<std::string> caught;
  for (const std::string& w : r.invalid_workers) {
    auto it = workers_.find(w);
    ++stats_.invalid;
    if (it == workers_.end()) continue;
    it->second.info.set_invalid(it->second.info.invalid() + 1);
    RecordInvalid(it->second.info, app);
    batch.workers.push_back(it->second.info);
    caught.push_back(w);
  }
  for (const std::string& w : r.confirmed_workers) {
    auto it = workers_.find(w);
    if (it == workers_.end()) continue;
    RecordConfirmed(it->second.info, app);
    batch.workers.push_back(it->second.info);
  }
  scheduler_.SetNeeded(task.info.id(), r.replicas_needed);
  if (r.replicas_needed > 0) work_.SignalAll();
  if (r.task_changed) batch.tasks.push_back(task.info);
  const bool was_done = old_state == v1::TASK_STATE_DONE;
  const bool is_done = task.info.state() == v1::TASK_STATE_DONE;
  auto count_outcome = [this](v1::Outcome o, int delta) {
    if (o == v1::OUTCOME_SUCCESS) stats_.success += delta;
    if (o == v1::OUTCOME_APP_ERROR) stats_.app_error += delta;
    if (o == v1::OUTCOME_SYSTEM_ERROR) stats_.system_error += delta;
  };
  if (!was_done && is_done) {
    ++stats_.done;
    with_deadline_.erase(task.info.id());
    count_outcome(task.info.outcome(), 1);
  } else if (was_done && !is_done) {  // re-opened
    --stats_.done;
    count_outcome(old_outcome, -1);
    if (task.info.spec().policy().deadline_ms() > 0) with_deadline_.insert(task.info.id());
  }
  if (old_state != task.info.state()) {
    CountLocked(task.info, old_state, -1);
    ++task_changes_;
    changed_.SignalAll();
  }
  for (const std::string& w : caught) ReopenResultsOfLocked(w, batch);
}

void Coordinator::ReopenResultsOfLocked(const std::string& worker_id, WriteBatch& batch) {
  auto wit = workers_.find(worker_id);
  const std::string who =
      "worker " + worker_id +
      (wit == workers_.end() ? "" : " (owner " + wit->second.info.owner() + ")");
  for (auto& [id, task] : tasks_) {
    const v1::TaskInfo& t = task.info;
    if (t.state() == v1::TASK_STATE_DONE && t.unverified()) {
      if (replicas_.at(t.canonical_replica()).worker_id() != worker_id) continue;
      const v1::TaskState old_state = t.state();
      const v1::Outcome old_outcome = t.outcome();
      const std::unique_ptr<Validator> validator =
          *MakeValidator(t.spec().validator(), blobs_, &verdicts_);
      TransitionResult r = Reopen(
          task.info, ReplicasOfLocked(task), *validator,
          "re-validating: its result came from " + who + ", since caught returning a wrong result",
          clock_.NowMs());
      ApplyTransitionLocked(task, r, old_state, old_outcome, batch);
    } else if (t.state() != v1::TASK_STATE_DONE && t.spec().policy().adaptive() &&
               !t.replicated() && t.solo_replica() != 0 &&
               replicas_.at(t.solo_replica()).worker_id() == worker_id) {
      task.info.set_replicated(true);
      task.info.set_spot_check(false);
      batch.tasks.push_back(task.info);
      TransitLocked(task, batch);
    }
  }
}

bool Coordinator::DecideAdaptiveLocked(TaskEntry& task, const v1::ReplicaInfo& replica,
                                       const v1::WorkerInfo& worker) {
  v1::TaskInfo& t = task.info;
  if (!t.spec().policy().adaptive() || t.replicated() || t.solo_replica() != 0 ||
      t.state() == v1::TASK_STATE_DONE) {
    return false;
  }
  if (Trusted(worker, AppKey(t))) {
    t.set_solo_replica(replica.id());
    t.set_spot_check(std::uniform_real_distribution<double>(0.0, 1.0)(rng_) <
                     t.spec().policy().spot_check_rate());
  } else {
    t.set_replicated(true);
  }
  return true;
}

void Coordinator::RetireExecutor(const std::string& key) {
  absl::MutexLock lock(&mu_);
  retired_executors_.insert(key);
}

uint64_t Coordinator::TaskChanges() const {
  absl::MutexLock lock(&mu_);
  return task_changes_;
}

uint64_t Coordinator::WaitForTaskChange(uint64_t seen, int64_t timeout_ms) const {
  absl::MutexLock lock(&mu_);
  const absl::Time until = absl::Now() + absl::Milliseconds(timeout_ms);
  while (task_changes_ == seen) {
    if (changed_.WaitWithDeadline(&mu_, until)) break;
  }
  return task_changes_;
}

void Coordinator::CountLocked(const v1::TaskInfo& task, v1::TaskState old_state, int delta_old) {
  auto count_state = [this](v1::TaskState state, int delta) {
    if (state == v1::TASK_STATE_PENDING) stats_.pending += delta;
    if (state == v1::TASK_STATE_RUNNING) stats_.running += delta;
  };
  if (delta_old != 0) count_state(old_state, delta_old);
  count_state(task.state(), 1);
  auto it = jobs_.find(task.job_id());
  if (it == jobs_.end()) return;
  v1::JobStatus& j = it->second;
  auto bump = [&j](v1::TaskState state, int delta) {
    switch (state) {
      case v1::TASK_STATE_PENDING:
        j.set_pending(j.pending() + delta);
        break;
      case v1::TASK_STATE_RUNNING:
        j.set_running(j.running() + delta);
        break;
      case v1::TASK_STATE_DONE:
        j.set_done(j.done() + delta);
        break;
      default:
        break;
    }
  };
  if (delta_old != 0) bump(old_state, delta_old);
  bump(task.state(), 1);
  if (task.state() == v1::TASK_STATE_DONE) {
    if (task.outcome() == v1::OUTCOME_SUCCESS) j.set_success(j.success() + 1);
    if (task.outcome() == v1::OUTCOME_APP_ERROR) j.set_app_error(j.app_error() + 1);
    if (task.outcome() == v1::OUTCOME_SYSTEM_ERROR) j.set_system_error(j.system_error() + 1);
  }
}

absl::StatusOr<v1::JobStatus> Coordinator::GetJob(uint64_t id) const {
  absl::ReaderMutexLock lock(&mu_);
  auto it = jobs_.find(id);
  if (it == jobs_.end()) {
    return absl::NotFoundError("job " + std::to_string(id) + " does not exist");
  }
  return it->second;
}

v1::TaskInfo Coordinator::FullTaskLocked(const TaskEntry& task) const {
  v1::TaskInfo info = task.info;
  for (uint64_t id : task.replica_ids) *info.add_replicas() = replicas_.at(id);
  return info;
}

absl::StatusOr<v1::TaskInfo> Coordinator::GetTask(uint64_t id) const {
  absl::ReaderMutexLock lock(&mu_);
  auto it = tasks_.find(id);
  if (it == tasks_.end()) {
    return absl::NotFoundError("task " + std::to_string(id) +
                               " does not exist; run `artel tasks` to list tasks");
  }
  return FullTaskLocked(it->second);
}

absl::StatusOr<v1::TaskInfo> Coordinator::Cancel(uint64_t id) {
  uint64_t seq;
  v1::TaskInfo info;
  {
    absl::MutexLock lock(&mu_);
    auto it = tasks_.find(id);
    if (it == tasks_.end()) {
      return absl::NotFoundError("task " + std::to_string(id) +
                                 " does not exist; run `artel tasks` to list tasks");
    }
    TaskEntry& task = it->second;
    if (task.info.state() == v1::TASK_STATE_DONE) {
      return absl::FailedPreconditionError("task " + std::to_string(id) +
                                           " has already finished; nothing to cancel");
    }
    WriteBatch batch;
    const v1::TaskState old_state = task.info.state();
    TransitionResult r = EndAsSystemError(task.info, ReplicasOfLocked(task),
                                          "cancelled by the user", clock_.NowMs());
    CountLocked(task.info, old_state, -1);
    for (uint64_t rid : r.changed_replicas) batch.replicas.push_back(replicas_.at(rid));
    for (uint64_t rid : r.cancelled_replicas) in_progress_.erase(rid);
    batch.tasks.push_back(task.info);
    scheduler_.SetNeeded(id, 0);
    with_deadline_.erase(id);
    ++stats_.done;
    ++stats_.system_error;
    changed_.SignalAll();
    info = FullTaskLocked(task);
    seq = EnqueueLocked(std::move(batch));
  }
  AwaitDurable(seq);
  return info;
}

v1::ListTasksResponse Coordinator::ListTasks(const v1::ListTasksRequest& request) const {
  const uint32_t limit = request.limit() == 0 ? 1000 : request.limit();
  v1::ListTasksResponse out;
  absl::ReaderMutexLock lock(&mu_);
  std::vector<const TaskEntry*> picked;
  for (auto it = tasks_.rbegin(); it != tasks_.rend() && picked.size() < limit; ++it) {
    if (request.state() == v1::TASK_STATE_UNSPECIFIED ||
        it->second.info.state() == request.state()) {
      picked.push_back(&it->second);
    }
  }
  for (auto it = picked.rbegin(); it != picked.rend(); ++it) *out.add_tasks() = (*it)->info;
  return out;
}

absl::StatusOr<std::vector<v1::TaskEvent>> Coordinator::WaitForEvents(
    const std::vector<uint64_t>& ids, std::map<uint64_t, v1::TaskEvent>* last_seen,
    int64_t timeout_ms) {
  std::vector<v1::TaskEvent> events;
  uint64_t seq;
  {
    absl::MutexLock lock(&mu_);
    const absl::Time until = absl::Now() + absl::Milliseconds(timeout_ms);
    while (true) {
      for (uint64_t id : ids) {
        auto it = tasks_.find(id);
        if (it == tasks_.end()) {
          return absl::NotFoundError("task " + std::to_string(id) + " does not exist");
        }
        v1::TaskEvent e = EventOf(it->second.info);
        auto seen = last_seen->find(id);
        if (seen == last_seen->end() || seen->second.state() != e.state()) {
          (*last_seen)[id] = e;
          events.push_back(std::move(e));
        }
      }
      if (!events.empty() || changed_.WaitWithDeadline(&mu_, until)) break;
    }
    seq = last_seq_;
  }
  AwaitDurable(seq);
  return events;
}

CoordinatorStats Coordinator::Stats() const {
  absl::ReaderMutexLock lock(&mu_);
  CoordinatorStats s = stats_;
  s.commits = commits_.commits();
  s.batches = commits_.batches();
  return s;
}

}  // namespace artel
