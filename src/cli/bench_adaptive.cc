// `artel bench adaptive`: what adaptive replication costs with honest
// workers, and what it lets through with a liar, on a real cluster (a
// durable coordinator, worker processes of separate owners, every task a
// sandboxed process).
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <thread>

#include "cli/cli_common.h"
#include "cli/local_cluster.h"
#include "common/sha256.h"
#include "common/subprocess.h"

namespace artel::cli {
namespace {

struct AdaptiveFlags {
  uint32_t tasks = 2000;
  uint32_t workers = 5;
  uint32_t quorum = 2;
  double spot_check = 0;  // 0: the coordinator's default
  double liar_rate = 0.1;
  std::string scenarios = "honest,liar";
  bool json = false;
};

using SteadyClock = std::chrono::steady_clock;

// The app: squares its argument. Deterministic, so that every honest
// replica gives the same bytes.
constexpr char kSquareScript[] = "#!/bin/sh\necho $(($1 * $1)) > \"$ARTEL_OUTPUT_DIR/square\"\n";

struct Outcome {
  std::string scenario;
  uint32_t tasks = 0;
  uint64_t replicas = 0;      // replicas created, of every state
  uint64_t wrong = 0;         // canonical results that differ from the local computation
  uint64_t failed = 0;        // tasks that did not succeed
  uint64_t unverified = 0;    // results still accepted from one replica at the end
  uint64_t reopened = 0;      // tasks re-opened at least once
  uint64_t liar_invalid = 0;  // the liar's results outvoted
  bool liar_trusted = false;  // at the end
  double seconds = 0;
};

std::string Expected(uint32_t i) {
  const uint64_t n = i + 2;
  return Sha256Hex(std::to_string(n * n) + "\n");
}

Outcome RunScenario(const AdaptiveFlags& f, bool with_liar) {
  char tmpl[] = "/tmp/artel-bench-adaptive-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) Fail("cannot create a temporary directory under /tmp");
  const std::filesystem::path root = tmpl;
  LocalClusterOptions options;
  options.artel_binary = SelfDirectory() / "artel";
  options.root = root;
  auto cluster = OrFail(LocalCluster::Start(options));
  Client& client = cluster->client();
  {
    std::ofstream(root / "square.sh") << kSquareScript;
    std::filesystem::permissions(root / "square.sh", std::filesystem::perms::owner_all);
    OrFail(client.AddApp("square", "1", root / "square.sh", cluster->signing_key()).status());
  }
  const std::string liar_name = "liar";
  for (uint32_t i = 0; i < f.workers; ++i) {
    const bool liar = with_liar && i + 1 == f.workers;
    std::vector<std::string> extra = {"--cores", "1"};
    if (liar) {
      char rate[64];
      std::snprintf(rate, sizeof(rate), "corrupt-results:%g", f.liar_rate);
      extra.insert(extra.end(), {"--inject-fault", rate});
    }
    OrFail(cluster->AddWorker(liar ? liar_name : "honest-" + std::to_string(i), extra).status());
  }
  for (int i = 0; i < 400; ++i) {
    auto w = client.ListWorkers();
    if (w.ok() && w->workers_size() == static_cast<int>(f.workers)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }

  const auto t0 = SteadyClock::now();
  v1::SubmitRequest req;
  req.set_job_name("bench-adaptive");
  for (uint32_t i = 0; i < f.tasks; ++i) {
    v1::TaskSpec* t = req.add_tasks();
    t->set_app("square");
    t->add_args(std::to_string(i + 2));
    t->mutable_policy()->set_min_quorum(f.quorum);
    t->mutable_policy()->set_adaptive(true);
    t->mutable_policy()->set_spot_check_rate(f.spot_check);
  }
  v1::SubmitResponse submitted = OrFail(client.Submit(req));
  std::map<uint64_t, uint32_t> index;
  for (int i = 0; i < submitted.task_ids_size(); ++i) index[submitted.task_ids(i)] = i;

  // The end: every task done and no spot check still owed.
  v1::ListTasksRequest list;
  list.set_limit(f.tasks + 1000);
  v1::ListTasksResponse tasks;
  size_t last_done = 0;
  while (true) {
    tasks = OrFail(client.ListTasks(list));
    size_t done = 0, settled = 0;
    for (const v1::TaskInfo& t : tasks.tasks()) {
      if (!index.count(t.id())) continue;
      done += t.state() == v1::TASK_STATE_DONE;
      settled += t.state() == v1::TASK_STATE_DONE && !t.spot_check();
    }
    if (settled == f.tasks) break;
    if (!f.json && done / 200 != last_done / 200) {
      std::fprintf(stderr, "  %s: %zu of %u tasks done\n", with_liar ? "liar" : "honest", done,
                   f.tasks);
    }
    last_done = done;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  Outcome out;
  out.scenario = with_liar ? "liar" : "honest";
  out.tasks = f.tasks;
  out.seconds = std::chrono::duration<double>(SteadyClock::now() - t0).count();
  for (const v1::TaskInfo& listed : tasks.tasks()) {
    auto it = index.find(listed.id());
    if (it == index.end()) continue;
    const v1::TaskInfo t = OrFail(client.GetTask(listed.id()));
    out.replicas += t.replicas_size();
    out.unverified += t.unverified();
    out.reopened += t.reopened() > 0;
    if (t.outcome() != v1::OUTCOME_SUCCESS) {
      ++out.failed;
      continue;
    }
    std::string digest;
    for (const v1::OutputFile& o : t.outputs()) {
      if (o.name() == "square") digest = o.digest();
    }
    out.wrong += digest != Expected(it->second);
  }
  const v1::ListWorkersResponse workers = OrFail(client.ListWorkers());
  for (const v1::WorkerInfo& w : workers.workers()) {
    if (w.name() != liar_name) continue;
    out.liar_invalid = w.invalid();
    for (const v1::Reliability& r : w.reliability()) out.liar_trusted |= r.trusted();
  }
  cluster.reset();
  std::filesystem::remove_all(root);
  return out;
}

void RunAdaptiveBench(const AdaptiveFlags& f) {
  std::vector<Outcome> outcomes;
  for (const std::string& s : {std::string("honest"), std::string("liar")}) {
    if (f.scenarios.find(s) == std::string::npos) continue;
    outcomes.push_back(RunScenario(f, s == "liar"));
  }
  if (f.json) {
    for (const Outcome& o : outcomes) {
      std::cout << nlohmann::json{{"scenario", o.scenario},
                                  {"tasks", o.tasks},
                                  {"workers", f.workers},
                                  {"quorum", f.quorum},
                                  {"replicas", o.replicas},
                                  {"replicas_per_task", double(o.replicas) / o.tasks},
                                  {"wrong", o.wrong},
                                  {"failed", o.failed},
                                  {"unverified", o.unverified},
                                  {"reopened", o.reopened},
                                  {"liar_invalid", o.liar_invalid},
                                  {"liar_trusted", o.liar_trusted},
                                  {"seconds", o.seconds}}
                       .dump()
                << std::endl;
    }
    return;
  }
  std::printf("artel bench adaptive --tasks %u --workers %u --quorum %u --liar-rate %g%s\n",
              f.tasks, f.workers, f.quorum, f.liar_rate,
              f.spot_check > 0 ? (" --spot-check " + std::to_string(f.spot_check)).c_str() : "");
  std::printf(
      "  every worker its own owner; quorum %u with --adaptive; a sandboxed process per "
      "replica\n",
      f.quorum);
  for (const Outcome& o : outcomes) {
    std::printf(
        "  %-6s: %.0f s, %llu replicas for %u tasks = %.3f per task; wrong canonical results %llu, "
        "failed %llu, unverified %llu, re-opened %llu",
        o.scenario.c_str(), o.seconds, static_cast<unsigned long long>(o.replicas), o.tasks,
        double(o.replicas) / o.tasks, static_cast<unsigned long long>(o.wrong),
        static_cast<unsigned long long>(o.failed), static_cast<unsigned long long>(o.unverified),
        static_cast<unsigned long long>(o.reopened));
    if (o.scenario == "liar") {
      std::printf("; the liar: %llu results outvoted, trusted at the end: %s",
                  static_cast<unsigned long long>(o.liar_invalid), o.liar_trusted ? "yes" : "no");
    }
    std::printf("\n");
  }
}

}  // namespace

void AddAdaptiveBench(CLI::App& bench) {
  auto f = std::make_shared<AdaptiveFlags>();
  CLI::App* a = bench.add_subcommand(
      "adaptive",
      "replicas per task and wrong results under adaptive replication, with honest workers and "
      "with one liar");
  a->add_option("--tasks", f->tasks, "tasks per scenario")->capture_default_str();
  a->add_option("--workers", f->workers, "worker processes, each its own owner")
      ->capture_default_str();
  a->add_option("--quorum", f->quorum, "the quorum adaptive replication lowers")
      ->capture_default_str();
  a->add_option("--spot-check", f->spot_check, "spot-check rate [the coordinator's default, 0.1]");
  a->add_option("--liar-rate", f->liar_rate,
                "share of its results the liar corrupts (the last worker)")
      ->capture_default_str();
  a->add_option("--scenarios", f->scenarios, "honest, liar, or both")->capture_default_str();
  a->add_flag("--json", f->json, "one JSON object per scenario");
  a->callback([f] {
    if (f->tasks == 0 || f->workers < 3) {
      Fail("--tasks must be at least 1 and --workers at least 3 (a liar, a checker, a tie-break)",
           2);
    }
    if (!(f->liar_rate > 0 && f->liar_rate <= 1)) Fail("--liar-rate must be in (0, 1]", 2);
    RunAdaptiveBench(*f);
  });
}

}  // namespace artel::cli
