// `artel demo`: a coordinator and four workers on this machine count primes
// with quorum 2 while one worker is killed and another lies.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <thread>

#include "cli/cli_common.h"
#include "cli/local_cluster.h"
#include "common/subprocess.h"

namespace artel::cli {
namespace {

struct DemoFlags {
  uint32_t workers = 4;
  uint32_t tasks = 300;
  uint64_t range = 100'000;
  bool keep = false;
};

// Counts primes below `n` with a sieve: the local check of the grid's total.
uint64_t PrimesBelow(uint64_t n) {
  std::vector<bool> composite(n, false);
  uint64_t count = 0;
  for (uint64_t i = 2; i < n; ++i) {
    if (composite[i]) continue;
    ++count;
    for (uint64_t j = i * i; j < n; j += i) composite[j] = true;
  }
  return count;
}

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

// Redraws one line on a terminal; prints a line every few seconds elsewhere.
void ProgressLine(const v1::JobStatus& job, double elapsed, const std::string& note) {
  static const bool tty = isatty(STDOUT_FILENO) != 0;
  static double last_printed = -10;
  const uint32_t total = job.job().task_count();
  const bool finished = job.done() == total;
  if (!tty && elapsed - last_printed < 3 && !finished) return;
  last_printed = elapsed;
  const int width = 30;
  const int filled = total == 0 ? 0 : static_cast<int>(width * job.done() / total);
  std::printf("%s  [%s%s] %4u/%u done, %3u running  %5.1fs  %s%s", tty ? "\r" : "",
              std::string(filled, '#').c_str(), std::string(width - filled, '.').c_str(),
              job.done(), total, job.running(), elapsed, note.c_str(), tty ? "" : "\n");
  std::fflush(stdout);
}

void RunDemo(const DemoFlags& f) {
  if (f.workers < 3) Fail("the demo needs at least 3 workers (one is killed, one lies)", 2);
  const auto start = std::chrono::steady_clock::now();
  char tmpl[] = "/tmp/artel-demo-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) Fail("cannot create a temporary directory under /tmp");
  const std::filesystem::path root = tmpl;
  const std::filesystem::path primes = SelfDirectory() / "artel-primes";
  if (!std::filesystem::exists(primes)) {
    Fail("the demo app " + primes.string() + " is missing; build the project with `make build`");
  }
  std::cout << "artel demo: counting primes below " << f.tasks * f.range << " in " << f.tasks
            << " tasks, quorum 2, on " << f.workers << " workers\n"
            << "  work directory: " << root.string() << "\n";

  LocalClusterOptions options;
  options.artel_binary = SelfDirectory() / "artel";
  options.root = root;
  options.coordinator_args = {"--heartbeat-interval", "500ms", "--worker-timeout", "3s"};
  auto cluster = OrFail(LocalCluster::Start(options));
  std::cout << "  coordinator pid " << cluster->coordinator().pid() << " on " << cluster->address()
            << "\n";
  Client& client = cluster->client();
  OrFail(client.AddApp("primes", "1", primes, cluster->signing_key()).status());
  std::map<std::string, std::string> names;  // worker name -> role in the story
  for (uint32_t i = 1; i <= f.workers; ++i) {
    const std::string name = "worker-" + std::to_string(i);
    std::vector<std::string> extra = {"--cores", "1"};
    if (i == f.workers) {
      extra.insert(extra.end(), {"--inject-fault", "corrupt-results"});
      names[name] = "corrupts every result (--inject-fault corrupt-results)";
    }
    OrFail(cluster->AddWorker(name, extra).status());
    std::cout << "  started " << name << " (pid " << cluster->worker(i - 1).pid() << ")"
              << (i == f.workers ? " -- this one lies: --inject-fault corrupt-results" : "")
              << "\n";
  }

  v1::SubmitRequest req;
  req.set_job_name("primes-demo");
  for (uint32_t i = 0; i < f.tasks; ++i) {
    v1::TaskSpec* t = req.add_tasks();
    t->set_app("primes");
    t->add_args(std::to_string(i * f.range));
    t->add_args(std::to_string((i + 1) * f.range));
    t->mutable_policy()->set_min_quorum(2);
    t->mutable_policy()->set_lease_ms(10'000);
  }
  v1::SubmitResponse submitted = OrFail(client.Submit(req));
  std::cout << "  submitted " << f.tasks << " tasks as job " << submitted.job_id() << "\n";

  const size_t victim = 1;  // worker-2
  bool killed = false;
  std::string note;
  v1::JobStatus job;
  while (true) {
    job = OrFail(client.GetJob(submitted.job_id()));
    if (!killed && job.done() >= f.tasks / 3) {
      const pid_t pid = cluster->worker(victim).pid();
      cluster->worker(victim).Kill();
      killed = true;
      note = "killed worker-2 (pid " + std::to_string(pid) + ") with SIGKILL";
      names["worker-2"] = "killed with SIGKILL mid-run";
    }
    ProgressLine(job, Seconds(start), note);
    if (job.done() == job.job().task_count()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  std::cout << "\n\n";

  // The summary, from the coordinator's records.
  v1::ListWorkersResponse workers = OrFail(client.ListWorkers());
  std::map<std::string, std::string> worker_name;
  for (const auto& w : workers.workers()) worker_name[w.id()] = w.name();
  uint64_t total = 0, replicas = 0, lost = 0, resumed = 0, failed = 0;
  std::map<std::string, uint64_t> rejected;  // worker name -> results outvoted
  const std::filesystem::path result_dir = root / "results";
  for (uint64_t id : submitted.task_ids()) {
    v1::TaskInfo t = OrFail(client.GetTask(id));
    if (t.outcome() != v1::OUTCOME_SUCCESS) {
      ++failed;
      std::cout << "  task " << id << " failed: " << t.reason() << "\n";
      continue;
    }
    if (!t.resume_checkpoint().empty()) ++resumed;
    for (const auto& r : t.replicas()) {
      ++replicas;
      if (r.state() == v1::REPLICA_STATE_LOST) ++lost;
      if (r.validity() == v1::VALIDITY_INVALID) ++rejected[worker_name[r.worker_id()]];
    }
    auto files = OrFail(client.FetchResult(id, result_dir / std::to_string(id)));
    std::ifstream in(result_dir / std::to_string(id) / "count");
    uint64_t count = 0;
    if (!(in >> count)) Fail("task " + std::to_string(id) + " has no count output");
    total += count;
  }
  const uint64_t expected = PrimesBelow(static_cast<uint64_t>(f.tasks) * f.range);
  std::cout << "summary\n";
  std::printf("  tasks done:            %u of %u (%llu failed)\n", job.success(), f.tasks,
              static_cast<unsigned long long>(failed));
  std::printf("  replicas run:          %llu (quorum 2 needs %u)\n",
              static_cast<unsigned long long>(replicas), 2 * f.tasks);
  std::printf("  replicas lost:         %llu, all replaced (the killed worker's)\n",
              static_cast<unsigned long long>(lost));
  std::printf("  resumed from checkpoint: %llu task(s)\n",
              static_cast<unsigned long long>(resumed));
  for (const auto& [name, n] : rejected) {
    std::printf("  results rejected:      %llu from %s%s\n", static_cast<unsigned long long>(n),
                name.c_str(), names.count(name) ? (" -- " + names[name]).c_str() : "");
  }
  if (rejected.empty()) std::printf("  results rejected:      0\n");
  std::printf("  primes below %llu:  grid %llu, local sieve %llu -> %s\n",
              static_cast<unsigned long long>(static_cast<uint64_t>(f.tasks) * f.range),
              static_cast<unsigned long long>(total), static_cast<unsigned long long>(expected),
              total == expected ? "MATCH" : "MISMATCH");
  std::printf("  time:                  %.1f s\n", Seconds(start));
  cluster.reset();
  if (!f.keep)
    std::filesystem::remove_all(root);
  else
    std::cout << "  logs and data kept in " << root.string() << "\n";
  if (total != expected || failed != 0) throw CLI::RuntimeError(1);
}

}  // namespace

void AddTaskDemo(CLI::App& demo_command) {
  auto f = std::make_shared<DemoFlags>();
  CLI::App* demo = demo_command.add_subcommand(
      "tasks", "count primes with quorum 2 on local workers; kill one, let one lie; check it");
  demo->add_option("--workers", f->workers, "worker processes")->capture_default_str();
  demo->add_option("--tasks", f->tasks, "tasks to submit")->capture_default_str();
  demo->add_option("--range", f->range, "numbers checked per task")->capture_default_str();
  demo->add_flag("--keep", f->keep, "keep the work directory (logs, databases)");
  demo->callback([f] { RunDemo(*f); });
}

}  // namespace artel::cli
