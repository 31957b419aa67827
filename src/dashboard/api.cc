#include "dashboard/api.h"

#include <google/protobuf/util/json_util.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"

namespace artel::dashboard {
namespace {

constexpr int64_t kMaxOutputBytes = 64ll << 20;  // larger outputs: `artel result`

HttpResponse Json(const nlohmann::json& j) { return {200, "application/json", j.dump()}; }

// Proto JSON with the .proto field names and every field present, so the
// page needs no defaults. 64-bit integers arrive as strings.
absl::StatusOr<HttpResponse> ProtoJson(const google::protobuf::Message& m) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  HttpResponse r;
  if (!google::protobuf::util::MessageToJsonString(m, &r.body, options).ok()) {
    return absl::InternalError("cannot encode the answer as JSON");
  }
  return r;
}

int HttpStatusOf(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      return 400;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kFailedPrecondition:
      return 409;
    case absl::StatusCode::kResourceExhausted:
      return 413;
    default:
      return 500;
  }
}

HttpResponse Error(const absl::Status& s) {
  nlohmann::json j = {{"error", std::string(s.message())},
                      {"code", absl::StatusCodeToString(s.code())}};
  return {HttpStatusOf(s.code()), "application/json", j.dump()};
}

absl::StatusOr<uint64_t> ParseId(const std::string& text, const std::string& what) {
  uint64_t id = 0;
  if (!absl::SimpleAtoi(text, &id)) {
    return absl::InvalidArgumentError("'" + text + "' is not a " + what + " id; give a number");
  }
  return id;
}

// Splits "/a/b/c" into {"a", "b", "c"}.
std::vector<std::string> Segments(const std::string& path) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : path) {
    if (c == '/') {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

}  // namespace

HttpResponse Api::Get(const std::string& path, const std::map<std::string, std::string>& query,
                      const std::string& authorization) const {
  std::string token = authorization;
  constexpr std::string_view kBearer = "Bearer ";
  if (token.rfind(kBearer, 0) == 0) token = token.substr(kBearer.size());
  token = token.substr(0, token.find('#'));
  if (token.empty()) {
    return Error(absl::UnauthenticatedError(
        "no token given; sign in with an admin or submitter token (`cat DATA/admin.token` on the "
        "coordinator's host, or `artel token create --role submitter`)"));
  }
  absl::StatusOr<v1::Role> role = coordinator_.Authenticate(token);
  if (!role.ok()) {
    // The coordinator's message speaks of command-line flags; here the
    // token was typed into the sign-in form.
    std::string why(role.status().message());
    why = why.substr(0, why.find("; check --token"));
    return Error(absl::Status(role.status().code(),
                              why + "; sign in with an admin or submitter token (`cat "
                                    "DATA/admin.token` on the coordinator's host, or `artel token "
                                    "create --role submitter`)"));
  }
  if (*role != v1::ROLE_ADMIN && *role != v1::ROLE_SUBMITTER) {
    return Error(absl::PermissionDeniedError(
        "the dashboard needs an admin or submitter token, but a worker token was given; make one "
        "with `artel token create --role submitter`"));
  }
  if (path == "/api/session") {
    return Json({{"role", *role == v1::ROLE_ADMIN ? "admin" : "submitter"}});
  }
  absl::StatusOr<HttpResponse> r = Route(path, query);
  if (!r.ok()) return Error(r.status());
  return *std::move(r);
}

absl::StatusOr<HttpResponse> Api::Route(const std::string& path,
                                        const std::map<std::string, std::string>& query) const {
  if (path == "/metrics") {
    return HttpResponse{200, "text/plain; version=0.0.4; charset=utf-8", metrics_.Render()};
  }
  const std::vector<std::string> seg = Segments(path);
  if (seg.size() >= 2 && seg[0] == "api") {
    const std::string& what = seg[1];
    if (what == "overview" && seg.size() == 2) return Overview();
    if (what == "workers" && seg.size() == 2) {
      ASSIGN_OR_RETURN(HttpResponse r, ProtoJson(coordinator_.ListWorkers()));
      // The page compares heartbeats with the coordinator's clock, not its own.
      nlohmann::json j = nlohmann::json::parse(r.body);
      j["now_ms"] = coordinator_.clock().NowMs();
      return Json(j);
    }
    if (what == "tasks" && seg.size() == 2) return Tasks(query);
    if (what == "tasks" && seg.size() == 3) {
      ASSIGN_OR_RETURN(uint64_t id, ParseId(seg[2], "task"));
      ASSIGN_OR_RETURN(v1::TaskInfo task, coordinator_.GetTask(id));
      return ProtoJson(task);
    }
    if (what == "tasks" && seg.size() == 5 && seg[3] == "outputs") {
      ASSIGN_OR_RETURN(uint64_t id, ParseId(seg[2], "task"));
      return Output(id, seg[4], query);
    }
    if (what == "jobs" && seg.size() == 2) return ProtoJson(coordinator_.ListTrainingJobs());
    if (what == "jobs" && seg.size() == 3) {
      ASSIGN_OR_RETURN(uint64_t id, ParseId(seg[2], "training job"));
      ASSIGN_OR_RETURN(v1::TrainingJob job, coordinator_.GetTrainingJob(id));
      ASSIGN_OR_RETURN(HttpResponse r, ProtoJson(job));
      // Elapsed times are measured against the coordinator's clock.
      nlohmann::json j = nlohmann::json::parse(r.body);
      j["now_ms"] = coordinator_.clock().NowMs();
      return Json(j);
    }
  }
  return absl::NotFoundError("no such page or API path '" + path +
                             "'; the API has /api/overview, /api/workers, /api/tasks, "
                             "/api/tasks/ID, /api/jobs, /api/jobs/ID and /metrics");
}

absl::StatusOr<HttpResponse> Api::Overview() const {
  const CoordinatorStats s = coordinator_.Stats();
  const v1::ListWorkersResponse workers = coordinator_.ListWorkers();
  uint64_t online = 0, offline = 0, cores = 0, gpus = 0;
  for (const v1::WorkerInfo& w : workers.workers()) {
    if (w.alive()) {
      ++online;
      cores += w.cores();
      gpus += w.gpus();
    } else {
      ++offline;
    }
  }
  nlohmann::json jobs = nlohmann::json::array();
  uint64_t jobs_running = 0;
  const v1::ListTrainingJobsResponse all_jobs = coordinator_.ListTrainingJobs();
  for (const v1::TrainingJob& job : all_jobs.jobs()) {
    const bool active = job.state() == v1::TRAINING_STATE_INIT ||
                        job.state() == v1::TRAINING_STATE_RUNNING ||
                        job.state() == v1::TRAINING_STATE_EXPORTING;
    if (active) ++jobs_running;
    jobs.push_back({{"id", job.id()},
                    {"name", job.spec().name()},
                    {"state", v1::TrainingState_Name(job.state())},
                    {"round", job.round()},
                    {"accuracy", job.accuracy()},
                    {"dataset", job.spec().dataset()},
                    {"mode", v1::TrainMode_Name(job.spec().mode())}});
  }
  nlohmann::json rates = nlohmann::json::array();
  for (const Throughput::Point& p : throughput_.Rates()) {
    rates.push_back({{"t_ms", p.t_ms}, {"tasks_per_s", p.tasks_per_s}});
  }
  return Json(
      {{"now_ms", coordinator_.clock().NowMs()},
       {"workers", {{"online", online}, {"offline", offline}, {"cores", cores}, {"gpus", gpus}}},
       {"tasks",
        {{"pending", s.pending},
         {"running", s.running},
         {"done", s.done},
         {"success", s.success},
         {"app_error", s.app_error},
         {"system_error", s.system_error},
         {"total", s.tasks}}},
       {"replicas", {{"started", s.replicas}, {"lost", s.lost_total}, {"invalid", s.invalid}}},
       {"jobs_running", jobs_running},
       {"jobs", jobs},
       {"throughput", rates}});
}

absl::StatusOr<HttpResponse> Api::Tasks(const std::map<std::string, std::string>& query) const {
  v1::ListTasksRequest req;
  if (auto it = query.find("state");
      it != query.end() && !it->second.empty() && it->second != "all") {
    v1::TaskState state;
    std::string name = "TASK_STATE_" + it->second;
    for (char& c : name) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (!v1::TaskState_Parse(name, &state) || state == v1::TASK_STATE_UNSPECIFIED) {
      return absl::InvalidArgumentError("unknown task state '" + it->second +
                                        "'; use pending, running or done");
    }
    req.set_state(state);
  }
  if (auto it = query.find("limit"); it != query.end()) {
    uint32_t limit = 0;
    if (!absl::SimpleAtoi(it->second, &limit) || limit == 0) {
      return absl::InvalidArgumentError("limit '" + it->second + "' must be a positive number");
    }
    req.set_limit(limit);
  }
  return ProtoJson(coordinator_.ListTasks(req));
}

absl::StatusOr<HttpResponse> Api::Output(uint64_t task_id, const std::string& name,
                                         const std::map<std::string, std::string>& query) const {
  ASSIGN_OR_RETURN(v1::TaskInfo task, coordinator_.GetTask(task_id));
  uint64_t replica_id = task.canonical_replica();
  if (auto it = query.find("replica"); it != query.end()) {
    ASSIGN_OR_RETURN(replica_id, ParseId(it->second, "replica"));
  }
  if (replica_id == 0) {
    return absl::NotFoundError("task " + std::to_string(task_id) +
                               " has no canonical result yet; pick a replica (?replica=R) or "
                               "wait for it to finish");
  }
  for (const v1::ReplicaInfo& r : task.replicas()) {
    if (r.id() != replica_id) continue;
    for (const v1::OutputFile& f : r.outputs()) {
      if (f.name() != name) continue;
      if (f.size() > static_cast<uint64_t>(kMaxOutputBytes)) {
        return absl::ResourceExhaustedError("output '" + name + "' is " + std::to_string(f.size()) +
                                            " bytes; fetch it with `artel result " +
                                            std::to_string(task_id) + " --out DIR`");
      }
      std::ifstream in(coordinator_.blobs().PathOf(f.digest()), std::ios::binary);
      if (!in.is_open()) return absl::NotFoundError("output '" + name + "' is no longer stored");
      HttpResponse r{200, "application/octet-stream", std::string(f.size(), '\0')};
      in.read(r.body.data(), static_cast<std::streamsize>(r.body.size()));
      if (in.gcount() != static_cast<std::streamsize>(r.body.size())) {
        return absl::DataLossError("output '" + name + "' is shorter than recorded");
      }
      return r;
    }
    return absl::NotFoundError("replica " + std::to_string(replica_id) + " of task " +
                               std::to_string(task_id) + " has no output '" + name + "'");
  }
  return absl::NotFoundError("task " + std::to_string(task_id) + " has no replica " +
                             std::to_string(replica_id));
}

}  // namespace artel::dashboard
