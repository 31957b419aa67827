// `artel bench tasks`: end-to-end throughput and latency of the task
// platform with a real coordinator (durable SQLite, and PostgreSQL with
// --store) and real workers.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <thread>

#include "cli/cli_common.h"
#include "cli/local_cluster.h"
#include "common/subprocess.h"
#include "coordinator/coordinator.h"
#include "sandbox/bubblewrap_sandbox.h"
#include "store/postgres_store.h"

namespace artel::cli {
namespace {

struct BenchFlags {
  std::string store;  // a PostgreSQL URL: measured beside SQLite
  uint32_t count = 100'000;
  uint32_t workers = 2;
  uint32_t latency_samples = 200;
  uint32_t sandbox_samples = 30;
  uint32_t batch = 10'000;
  bool json = false;
};

using Clock = std::chrono::steady_clock;

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * (v.size() - 1) + 0.5))];
}

v1::TaskSpec NoopTask() {
  v1::TaskSpec t;
  t.set_app(kNoopApp);
  return t;
}

// Per-task cost of one sandboxed process (bwrap + /bin/sh + exit), run
// sequentially on this machine.
std::vector<double> SandboxSamples(const std::filesystem::path& root, uint32_t n) {
  std::vector<double> out;
  auto sandbox = BubblewrapSandbox::Create();
  if (!sandbox.ok()) return out;
  const auto dir = root / "sandbox-bench";
  std::filesystem::create_directories(dir / "work");
  std::filesystem::create_directories(dir / "out");
  std::filesystem::create_directories(dir / "ckpt");
  std::ofstream(dir / "app.sh") << "#!/bin/sh\necho ok\n";
  std::filesystem::permissions(dir / "app.sh", std::filesystem::perms::owner_all);
  SandboxSpec spec;
  spec.executable = dir / "app.sh";
  spec.work_dir = dir / "work";
  spec.output_dir = dir / "out";
  spec.checkpoint_dir = dir / "ckpt";
  CancelFlag cancel;
  for (uint32_t i = 0; i < n; ++i) {
    const auto t0 = Clock::now();
    auto r = (*sandbox)->Run(spec, cancel);
    if (r.ok() && r->exit_code == 0) out.push_back(Ms(Clock::now() - t0));
  }
  return out;
}

struct StoreRun {
  std::string store;  // "sqlite" or "postgres"
  std::string durability;
  double submit_ms = 0, total_ms = 0, tasks_per_s = 0, p50 = 0, p99 = 0;
};

// Throughput and latency of no-op tasks through a coordinator on `store_url`
// ("" for SQLite in its data directory).
StoreRun MeasureStore(const BenchFlags& f, const std::filesystem::path& root,
                      const std::string& store_url) {
  StoreRun run;
  run.store = store_url.empty() ? "sqlite" : "postgres";
  run.durability = "WAL, synchronous=FULL";
  if (!store_url.empty()) {
    auto pg = OrFail(PostgresStore::Open(store_url));
    if (!OrFail(pg->Empty())) {
      Fail("--store " + pg->where() +
               " already holds artel data; give an empty database (e.g. `createdb artel_bench`)",
           2);
    }
    run.durability = OrFail(pg->DurabilitySettings());
  }
  LocalClusterOptions options;
  options.artel_binary = SelfDirectory() / "artel";
  options.root = root / run.store;
  if (!store_url.empty()) options.coordinator_args = {"--store", store_url};
  auto cluster = OrFail(LocalCluster::Start(options));
  for (uint32_t i = 0; i < f.workers; ++i) {
    // The no-op app runs in-process: slots are not cores here.
    OrFail(cluster->AddWorker("bench-" + std::to_string(i), {"--cores", "4096", "--memory", "1T"})
               .status());
  }
  Client& client = cluster->client();
  // Wait until the workers have registered.
  for (int i = 0; i < 200; ++i) {
    auto w = client.ListWorkers();
    if (w.ok() && w->workers_size() == static_cast<int>(f.workers)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }

  // 1. Throughput: N no-op tasks, quorum 1, submitted in batches.
  const auto t0 = Clock::now();
  std::vector<uint64_t> jobs;
  for (uint32_t sent = 0; sent < f.count; sent += f.batch) {
    v1::SubmitRequest req;
    for (uint32_t i = sent; i < std::min(f.count, sent + f.batch); ++i)
      *req.add_tasks() = NoopTask();
    jobs.push_back(OrFail(client.Submit(req)).job_id());
  }
  run.submit_ms = Ms(Clock::now() - t0);
  for (uint64_t job : jobs) {
    while (true) {
      v1::JobStatus s = OrFail(client.GetJob(job));
      if (s.done() == s.job().task_count()) {
        if (s.success() != s.done()) Fail("some benchmark tasks failed");
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  run.total_ms = Ms(Clock::now() - t0);
  run.tasks_per_s = f.count / (run.total_ms / 1000.0);

  // 2. Latency: one task at a time, submit to the result seen by the client.
  std::vector<double> latency;
  for (uint32_t i = 0; i < f.latency_samples; ++i) {
    v1::SubmitRequest req;
    *req.add_tasks() = NoopTask();
    const auto s0 = Clock::now();
    v1::SubmitResponse resp = OrFail(client.Submit(req));
    OrFail(client.Watch(
        {resp.task_ids(0)}, [](const v1::TaskEvent&) {}, 30'000));
    latency.push_back(Ms(Clock::now() - s0));
  }
  run.p50 = Percentile(latency, 0.5);
  run.p99 = Percentile(latency, 0.99);
  return run;
}

void RunBench(const BenchFlags& f) {
  char tmpl[] = "/tmp/artel-bench-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) Fail("cannot create a temporary directory under /tmp");
  const std::filesystem::path root = tmpl;
  std::vector<StoreRun> runs = {MeasureStore(f, root, "")};
  if (!f.store.empty()) runs.push_back(MeasureStore(f, root, f.store));

  // 3. The cost of one sandboxed process, measured apart.
  std::vector<double> sandbox = SandboxSamples(root, f.sandbox_samples);
  std::filesystem::remove_all(root);
  const double sb50 = Percentile(sandbox, 0.5);
  if (f.json) {
    for (const StoreRun& r : runs) {
      std::cout << nlohmann::json{{"store", r.store},
                                  {"durability", r.durability},
                                  {"tasks", f.count},
                                  {"workers", f.workers},
                                  {"submit_ms", r.submit_ms},
                                  {"total_ms", r.total_ms},
                                  {"tasks_per_s", r.tasks_per_s},
                                  {"latency_p50_ms", r.p50},
                                  {"latency_p99_ms", r.p99},
                                  {"sandbox_process_p50_ms", sb50}}
                       .dump()
                << std::endl;
    }
    return;
  }
  std::printf("artel bench tasks --count %u --workers %u%s\n", f.count, f.workers,
              f.store.empty() ? "" : " --store ...");
  for (const StoreRun& r : runs) {
    std::printf("  coordinator on %s (%s), real worker processes\n",
                r.store == "sqlite" ? "durable SQLite" : "PostgreSQL", r.durability.c_str());
    std::printf(
        "    throughput (no-op app, quorum 1): %u tasks in %.0f ms = %.0f tasks/s "
        "(submit took %.0f ms)\n",
        f.count, r.total_ms, r.tasks_per_s, r.submit_ms);
    std::printf(
        "    latency submit->result (one at a time, %u samples): p50 %.2f ms, p99 %.2f ms\n",
        f.latency_samples, r.p50, r.p99);
  }
  if (sandbox.empty()) {
    std::printf("  sandboxed process: bubblewrap unavailable, not measured\n");
  } else {
    std::printf("  sandboxed process (bwrap + /bin/sh, %zu runs): p50 %.1f ms each\n",
                sandbox.size(), sb50);
  }
}

}  // namespace

void AddBenchCommands(CLI::App& app) {
  CLI::App* bench = app.add_subcommand("bench", "benchmarks");
  bench->require_subcommand(1);
  auto f = std::make_shared<BenchFlags>();
  CLI::App* tasks = bench->add_subcommand("tasks", "throughput and latency of no-op tasks");
  tasks->add_option("--count", f->count, "tasks for the throughput run")->capture_default_str();
  tasks->add_option("--workers", f->workers, "worker processes")->capture_default_str();
  tasks->add_option("--latency-samples", f->latency_samples, "sequential tasks timed one by one")
      ->capture_default_str();
  tasks->add_option("--store", f->store,
                    "also measure a coordinator on this PostgreSQL database (an empty one: "
                    "postgres://USER@HOST[:PORT]/DB), beside SQLite");
  tasks->add_flag("--json", f->json, "print one JSON object per store");
  tasks->callback([f] {
    if (f->count == 0 || f->workers == 0) Fail("--count and --workers must be at least 1", 2);
    RunBench(*f);
  });
  AddAdaptiveBench(*bench);
}

}  // namespace artel::cli
