// Researcher commands: submit, status, wait, result, cancel, tasks, workers,
// credit.
#include <iostream>
#include <set>

#include "cli/cli_common.h"
#include "common/units.h"

namespace artel::cli {
namespace {

struct SubmitFlags {
  Connection conn;
  std::string app, version, job, validator;
  std::vector<std::string> args, inputs;
  uint32_t count = 1, quorum = 0, replicas = 0, max_total = 0, max_errors = 0, cores = 0;
  std::string lease, deadline, memory, wall_time, gpu_memory;
  double spot_check = 0;
  bool adaptive = false, wait = false, json = false;
};

std::string ReplaceAll(std::string s, const std::string& from, const std::string& to) {
  for (size_t pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size())) {
    s.replace(pos, from.size(), to);
  }
  return s;
}

// Waits for `ids`; prints one line per finished task (or JSON). Returns the
// exit code: 0 when every task succeeded.
int WaitFor(Client& client, const std::vector<uint64_t>& ids, uint64_t timeout_ms, bool json) {
  size_t done = 0, failed = 0;
  absl::Status s = client.Watch(
      ids,
      [&](const v1::TaskEvent& e) {
        if (e.state() != v1::TASK_STATE_DONE) return;
        ++done;
        if (e.outcome() != v1::OUTCOME_SUCCESS) ++failed;
        if (json) {
          std::cout << nlohmann::json{{"id", e.id()},
                                      {"state", StateName(e.state())},
                                      {"outcome", OutcomeName(e.outcome())},
                                      {"reason", e.reason()}}
                           .dump()
                    << std::endl;
        } else if (e.outcome() != v1::OUTCOME_SUCCESS || ids.size() <= 20) {
          std::cout << "task " << e.id() << ": " << OutcomeName(e.outcome())
                    << (e.reason().empty() ? "" : " (" + e.reason() + ")") << std::endl;
        }
      },
      timeout_ms);
  if (!s.ok()) {
    std::cerr << "artel: " << s.message() << " (" << done << " of " << ids.size() << " finished)"
              << std::endl;
    return 1;
  }
  if (!json) {
    std::cout << done << " task(s) finished: " << done - failed << " succeeded, " << failed
              << " failed" << std::endl;
  }
  return failed == 0 ? 0 : 1;
}

void Submit(const SubmitFlags& f) {
  if (f.count == 0) Fail("--count must be at least 1", 2);
  auto client = Connect(f.conn);
  std::vector<v1::InputFile> inputs;
  for (const std::string& in : f.inputs) {
    const size_t eq = in.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == in.size()) {
      Fail("--input '" + in + "' is not NAME=FILE; e.g. --input data.csv=./local/data.csv", 2);
    }
    v1::InputFile file;
    file.set_name(in.substr(0, eq));
    const std::filesystem::path path = in.substr(eq + 1);
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) {
      Fail("input file '" + path.string() + "' does not exist or is not a file", 2);
    }
    file.set_digest(OrFail(client->blobs().UploadFile(path)));
    file.set_size(std::filesystem::file_size(path, ec));
    inputs.push_back(file);
  }
  v1::SubmitRequest req;
  req.set_job_name(f.job);
  for (uint32_t i = 0; i < f.count; ++i) {
    v1::TaskSpec* t = req.add_tasks();
    t->set_app(f.app);
    t->set_version(f.version);
    t->set_validator(f.validator);
    for (const auto& a : f.args) t->add_args(ReplaceAll(a, "{i}", std::to_string(i)));
    for (const auto& in : inputs) *t->add_inputs() = in;
    v1::RedundancyPolicy* p = t->mutable_policy();
    p->set_min_quorum(f.quorum);
    p->set_target_replicas(f.replicas);
    p->set_max_total_replicas(f.max_total);
    p->set_max_error_replicas(f.max_errors);
    p->set_adaptive(f.adaptive);
    p->set_spot_check_rate(f.spot_check);
    if (!f.lease.empty()) p->set_lease_ms(OrFail(ParseDurationMs(f.lease)));
    if (!f.deadline.empty()) p->set_deadline_ms(OrFail(ParseDurationMs(f.deadline)));
    v1::Resources* r = t->mutable_resources();
    r->set_cores(f.cores);
    if (!f.memory.empty()) r->set_memory_bytes(OrFail(ParseBytes(f.memory)));
    if (!f.wall_time.empty()) r->set_wall_time_ms(OrFail(ParseDurationMs(f.wall_time)));
    if (!f.gpu_memory.empty()) r->set_gpu_memory_bytes(OrFail(ParseBytes(f.gpu_memory)));
  }
  v1::SubmitResponse resp = OrFail(client->Submit(req));
  std::vector<uint64_t> ids(resp.task_ids().begin(), resp.task_ids().end());
  if (f.json) {
    for (uint64_t id : ids) std::cout << nlohmann::json{{"id", id}}.dump() << "\n";
    std::cout.flush();
  } else {
    std::cout << "submitted " << ids.size() << " task(s) as job " << resp.job_id() << ":";
    for (size_t i = 0; i < ids.size() && i < 20; ++i) std::cout << " " << ids[i];
    if (ids.size() > 20) std::cout << " ... " << ids.back();
    std::cout << std::endl;
  }
  if (f.wait) {
    const int code = WaitFor(*client, ids, 0, f.json);
    if (code != 0) throw CLI::RuntimeError(code);
  }
}

void PrintStatus(const v1::TaskInfo& t) {
  std::cout << "task " << t.id() << " (job " << t.job_id() << "): app " << t.spec().app() << " "
            << t.resolved_version() << "\n  state:   " << StateName(t.state())
            << "\n  outcome: " << OutcomeName(t.outcome()) << "\n";
  if (!t.reason().empty()) std::cout << "  reason:  " << t.reason() << "\n";
  const auto& p = t.spec().policy();
  std::cout << "  policy:  quorum " << p.min_quorum() << ", replicas " << p.target_replicas()
            << ", max total " << p.max_total_replicas() << ", max errors " << p.max_error_replicas()
            << ", lease " << FormatDurationMs(p.lease_ms());
  if (p.adaptive()) std::cout << ", adaptive (spot checks " << p.spot_check_rate() << ")";
  std::cout << "\n";
  if (t.unverified()) {
    std::cout << "  verified: no - accepted from one trusted replica"
              << (t.spot_check() ? "; a spot check is running" : "") << "\n";
  }
  if (t.reopened() > 0) std::cout << "  re-opened: " << t.reopened() << " time(s)\n";
  for (const auto& f : t.outputs()) {
    std::cout << "  output:  " << f.name() << " (" << FormatBytes(f.size()) << ")\n";
  }
  for (const auto& r : t.replicas()) {
    std::cout << "  replica " << r.id() << " on " << r.worker_id()
              << (r.owner().empty() ? "" : " (" + r.owner() + ")") << ": "
              << ReplicaStateName(r.state());
    if (r.state() == v1::REPLICA_STATE_REPORTED) std::cout << " " << ResultName(r.result());
    if (r.validity() == v1::VALIDITY_VALID) std::cout << ", valid";
    if (r.credit() > 0) std::cout << ", credit " << FormatCredit(r.credit());
    if (r.validity() == v1::VALIDITY_INVALID) std::cout << ", INVALID (outvoted)";
    if (!r.error().empty()) std::cout << " - " << r.error();
    std::cout << "\n";
  }
  std::cout.flush();
}

}  // namespace

void AddTaskCommands(CLI::App& app) {
  auto sf = std::make_shared<SubmitFlags>();
  CLI::App* s = app.add_subcommand("submit", "submit tasks");
  AddConnectionOptions(s, &sf->conn);
  s->add_option("--app", sf->app, "registered app name (see `artel app list`)")->required();
  s->add_option("--version", sf->version, "app version (default: newest)");
  s->add_option("--arg", sf->args, "argument to the app (repeatable; {i} becomes the task index)")
      ->allow_extra_args(false);
  s->add_option("--input", sf->inputs, "NAME=FILE: upload FILE, visible to the app as NAME")
      ->allow_extra_args(false);
  s->add_option("--count", sf->count, "submit K tasks at once")->capture_default_str();
  s->add_option("--quorum", sf->quorum, "equivalent results needed [1]");
  s->add_option("--replicas", sf->replicas, "replicas started at once [quorum]");
  s->add_option("--max-total", sf->max_total, "most replicas ever created [8]");
  s->add_option("--max-errors", sf->max_errors, "host errors and losses tolerated [3]");
  s->add_flag("--adaptive", sf->adaptive,
              "adaptive replication: a worker trusted with this app version (10 results in a row "
              "confirmed by other owners) runs the task alone; its result is accepted unverified "
              "and re-validated if that worker is later caught lying. Needs --quorum 2 or more");
  s->add_option("--spot-check", sf->spot_check,
                "with --adaptive: share of results accepted alone that one more replica checks "
                "[0.1]");
  s->add_option("--lease", sf->lease, "silence before a replica is lost, e.g. 30s [30s]");
  s->add_option("--deadline", sf->deadline, "give up after this long, e.g. 1h [none]");
  s->add_option("--cores", sf->cores, "cores per replica [1]");
  s->add_option("--memory", sf->memory, "memory limit per replica, e.g. 512M [256M]");
  s->add_option("--gpu-memory", sf->gpu_memory, "GPU memory per replica, e.g. 8G [none]");
  s->add_option("--wall-time", sf->wall_time, "wall-time limit per replica, e.g. 10m [none]");
  s->add_option("--validator", sf->validator,
                "how a quorum compares results: exact (same bytes), tolerance[:rtol=R,atol=A] "
                "(*.safetensors outputs equal within rtol 1e-4, atol 1e-6), or app:NAME[@VERSION] "
                "(a registered app the coordinator runs in its sandbox as `APP a b` on two "
                "replicas' output dirs: exit 0 equivalent, 1 different) [exact]");
  s->add_option("--job", sf->job, "job name");
  s->add_flag("--wait", sf->wait, "wait until every task finished; exit 0 if all succeeded");
  s->add_flag("--json", sf->json, "print {\"id\": N} per task");
  s->callback([sf] { Submit(*sf); });

  struct IdFlags {
    Connection conn;
    std::vector<uint64_t> ids;
    bool json = false;
    std::string timeout, out, state;
    uint32_t limit = 1000;
  };
  auto st = std::make_shared<IdFlags>();
  CLI::App* status = app.add_subcommand("status", "show one task");
  AddConnectionOptions(status, &st->conn);
  status->add_option("id", st->ids, "task id")->required()->expected(1);
  status->add_flag("--json", st->json, "print JSON");
  status->callback([st] {
    v1::TaskInfo t = OrFail(Connect(st->conn)->GetTask(st->ids.at(0)));
    if (st->json)
      std::cout << TaskJson(t).dump() << std::endl;
    else
      PrintStatus(t);
  });

  auto wt = std::make_shared<IdFlags>();
  CLI::App* wait = app.add_subcommand("wait", "wait for tasks; exit 0 only if all succeeded");
  AddConnectionOptions(wait, &wt->conn);
  wait->add_option("ids", wt->ids, "task ids")->required();
  wait->add_option("--timeout", wt->timeout, "give up after, e.g. 10m [no limit]");
  wait->add_flag("--json", wt->json, "one JSON object per finished task");
  wait->callback([wt] {
    const uint64_t timeout = wt->timeout.empty() ? 0 : OrFail(ParseDurationMs(wt->timeout));
    auto client = Connect(wt->conn);
    const int code = WaitFor(*client, wt->ids, timeout, wt->json);
    if (code != 0) throw CLI::RuntimeError(code);
  });

  auto rs = std::make_shared<IdFlags>();
  CLI::App* result = app.add_subcommand("result", "write a finished task's outputs into a dir");
  AddConnectionOptions(result, &rs->conn);
  result->add_option("id", rs->ids, "task id")->required()->expected(1);
  result->add_option("--out", rs->out, "directory to write into")->required();
  result->callback([rs] {
    auto names = OrFail(Connect(rs->conn)->FetchResult(rs->ids.at(0), rs->out));
    for (const auto& n : names) std::cout << (std::filesystem::path(rs->out) / n).string() << "\n";
  });

  auto cs = std::make_shared<IdFlags>();
  CLI::App* cancel = app.add_subcommand("cancel", "cancel an unfinished task");
  AddConnectionOptions(cancel, &cs->conn);
  cancel->add_option("id", cs->ids, "task id")->required()->expected(1);
  cancel->callback([cs] {
    v1::TaskInfo t = OrFail(Connect(cs->conn)->Cancel(cs->ids.at(0)));
    std::cout << "task " << t.id() << " cancelled" << std::endl;
  });

  auto ts = std::make_shared<IdFlags>();
  CLI::App* tasks = app.add_subcommand("tasks", "list recent tasks");
  AddConnectionOptions(tasks, &ts->conn);
  tasks->add_option("--state", ts->state, "pending, running or done");
  tasks->add_option("--limit", ts->limit, "most recent N")->capture_default_str();
  tasks->add_flag("--json", ts->json, "one JSON object per line");
  tasks->callback([ts] {
    v1::ListTasksRequest req;
    if (!ts->state.empty()) req.set_state(OrFail(ParseState(ts->state)));
    req.set_limit(ts->limit);
    v1::ListTasksResponse resp = OrFail(Connect(ts->conn)->ListTasks(req));
    if (!ts->json)
      std::printf("%-8s %-6s %-16s %-8s %-12s %s\n", "ID", "JOB", "APP", "STATE", "OUTCOME",
                  "REASON");
    for (const auto& t : resp.tasks()) {
      if (ts->json) {
        std::cout << TaskJson(t).dump() << "\n";
      } else {
        std::printf("%-8llu %-6llu %-16s %-8s %-12s %s\n", static_cast<unsigned long long>(t.id()),
                    static_cast<unsigned long long>(t.job_id()), t.spec().app().c_str(),
                    StateName(t.state()).c_str(), OutcomeName(t.outcome()).c_str(),
                    t.reason().c_str());
      }
    }
  });

  auto ws = std::make_shared<IdFlags>();
  CLI::App* workers = app.add_subcommand("workers", "list workers");
  AddConnectionOptions(workers, &ws->conn);
  workers->add_flag("--json", ws->json, "one JSON object per line");
  workers->callback([ws] {
    v1::ListWorkersResponse resp = OrFail(Connect(ws->conn)->ListWorkers());
    if (!ws->json) {
      std::printf("%-16s %-12s %-14s %-6s %-5s %-9s %-8s %-10s %-8s %-7s %-7s %-9s %s\n", "ID",
                  "NAME", "OWNER", "ALIVE", "CORES", "SANDBOXED", "RUNNING", "COMPLETED", "INVALID",
                  "ERRORS", "STREAK", "CREDIT", "TRUSTED WITH");
    }
    for (const auto& w : resp.workers()) {
      if (ws->json) {
        std::cout << WorkerJson(w).dump() << "\n";
        continue;
      }
      uint32_t streak = 0;
      std::string trusted;
      for (const auto& r : w.reliability()) {
        streak = std::max(streak, r.consecutive_valid());
        if (r.trusted()) trusted += (trusted.empty() ? "" : ",") + r.app();
      }
      std::printf(
          "%-16s %-12s %-14s %-6s %-5u %-9s %-8u %-10llu %-8llu %-7llu %-7u %-9s %s\n",
          w.id().c_str(), w.name().c_str(), w.owner().c_str(), w.alive() ? "yes" : "no", w.cores(),
          w.sandboxed() ? "yes" : "NO", w.running(), static_cast<unsigned long long>(w.completed()),
          static_cast<unsigned long long>(w.invalid()), static_cast<unsigned long long>(w.errors()),
          streak, FormatCredit(w.credit()).c_str(), trusted.empty() ? "-" : trusted.c_str());
    }
  });

  auto crs = std::make_shared<IdFlags>();
  CLI::App* credit = app.add_subcommand(
      "credit",
      "credit per owner: core-seconds of results the grid accepted (placement to report, capped "
      "by the task's wall-time limit; nothing for invalid, lost or unneeded results)");
  AddConnectionOptions(credit, &crs->conn);
  credit->add_flag("--json", crs->json, "one JSON object per line");
  credit->callback([crs] {
    v1::ListCreditResponse resp = OrFail(Connect(crs->conn)->ListCredit());
    if (!crs->json) std::printf("%-24s %-12s %-9s %s\n", "OWNER", "CREDIT", "RESULTS", "WORKERS");
    for (const auto& c : resp.owners()) {
      if (crs->json) {
        std::cout << nlohmann::json{{"owner", c.owner()},
                                    {"credit", c.credit()},
                                    {"results", c.results()},
                                    {"workers", c.workers()}}
                         .dump()
                  << "\n";
      } else {
        std::printf("%-24s %-12s %-9llu %u\n", c.owner().c_str(), FormatCredit(c.credit()).c_str(),
                    static_cast<unsigned long long>(c.results()), c.workers());
      }
    }
  });
}

}  // namespace artel::cli
