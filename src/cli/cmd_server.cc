// `artel coordinator` and `artel worker`: the two long-running processes.
#include <signal.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iostream>
#include <thread>

#include "absl/strings/numbers.h"
#include "cli/cli_common.h"
#include "cli/log_format.h"
#include "common/units.h"
#include "sandbox/bubblewrap_sandbox.h"
#include "sandbox/plain_process_sandbox.h"
#include "server/server.h"
#include "worker/worker.h"

namespace artel::cli {
namespace {

// Blocks SIGINT/SIGTERM in every thread and calls `on_signal` from a
// dedicated thread when one arrives.
std::thread HandleTermination(std::function<void()> on_signal) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return std::thread([set, on_signal = std::move(on_signal)] {
    int sig = 0;
    sigwait(&set, &sig);
    on_signal();
  });
}

struct CoordinatorFlags {
  std::string data;
  std::string store;
  std::string listen = "127.0.0.1:7700";
  std::string heartbeat = "1s";
  std::string worker_timeout = "5s";
  uint32_t owner_max_in_flight = 1024;
  std::string app_key;
  std::string tls_cert, tls_key;
  bool insecure = false;
  std::string http = "127.0.0.1:7780";
  bool http_tls = false;
  std::string http_assets;
  bool http_given = false;  // --http was passed: failing to serve it is fatal
  std::string ml_app = "auto";
  std::string log_format = "text";
};

// The ML app to register: `flag` as given, or for "auto" the artel-ml beside
// this binary if there is one ("" for none or "off").
std::filesystem::path MlAppPath(const std::string& flag) {
  if (flag == "off" || flag.empty()) return {};
  if (flag != "auto") {
    if (!std::filesystem::is_regular_file(flag)) {
      Fail("--ml-app '" + flag + "' is not a file; give the path of artel-ml, or --ml-app off", 2);
    }
    return std::filesystem::absolute(flag);
  }
  std::error_code ec;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return {};
  std::filesystem::path beside = self.parent_path() / "artel-ml";
  if (!std::filesystem::is_regular_file(beside, ec)) {
    spdlog::info("no artel-ml beside {}: training jobs need --ml-app PATH or `artel app add`",
                 self.string());
    return {};
  }
  return beside;
}

void RunCoordinator(const CoordinatorFlags& f) {
  if (absl::Status s = SetLogFormat(f.log_format); !s.ok()) Fail(s, 2);
  ServerOptions options;
  options.data_dir = f.data;
  options.store_url = f.store;
  options.listen = f.listen;
  options.coordinator.heartbeat_interval_ms = OrFail(ParseDurationMs(f.heartbeat));
  options.coordinator.worker_timeout_ms = OrFail(ParseDurationMs(f.worker_timeout));
  options.coordinator.max_in_flight_per_owner = f.owner_max_in_flight;
  options.insecure = f.insecure;
  options.tls_cert = f.tls_cert;
  options.tls_key = f.tls_key;
  options.http_listen = f.http == "off" ? "" : f.http;
  options.http_tls = f.http_tls;
  options.http_required = f.http_given;
  options.http_assets = f.http_assets;
  options.ml_app = MlAppPath(f.ml_app);
  if (f.insecure && (!f.tls_cert.empty() || !f.tls_key.empty())) {
    Fail("--insecure serves plain TCP; drop it to serve --tls-cert/--tls-key", 2);
  }
  if (!f.app_key.empty()) {
    options.coordinator.app_public_key = ReadPublicKeyFile(f.app_key, "--app-key");
  }
  if (options.coordinator.worker_timeout_ms < 2 * options.coordinator.heartbeat_interval_ms) {
    Fail("--worker-timeout must be at least two heartbeat intervals; raise it", 2);
  }
  std::unique_ptr<CoordinatorServer> server = OrFail(CoordinatorServer::Start(options));
  const std::string address =
      f.listen.substr(0, f.listen.rfind(':')) + ":" + std::to_string(server->port());
  std::ofstream(std::filesystem::path(f.data) / "coordinator.addr", std::ios::trunc)
      << address << "\n";
  Announce("artel coordinator listening on " + address + ", data in " + f.data);
  if (server->tls_fingerprint().empty()) {
    Announce("plain TCP (--insecure): clients and workers need --insecure too");
  } else {
    Announce("TLS certificate sha256 " + server->tls_fingerprint() +
             " (clients: --tls-fingerprint, or --ca " +
             (f.tls_cert.empty() ? (std::filesystem::path(f.data) / "tls" / "cert.pem").string()
                                 : f.tls_cert) +
             "; tokens made here carry it)");
  }
  if (!server->new_admin_token().empty()) {
    Announce("admin token written to " + (std::filesystem::path(f.data) / "admin.token").string());
  }
  if (!server->http_url().empty()) {
    Announce("dashboard at " + server->http_url() + "/ and Prometheus metrics at " +
             server->http_url() + "/metrics (both ask for an admin or submitter token)");
  }
  CoordinatorServer* raw = server.get();
  std::thread signals = HandleTermination([raw] { raw->Shutdown(); });
  signals.detach();
  server->Wait();
  Announce("artel coordinator stopped");
}

struct WorkerFlags {
  Connection conn;
  std::string data;
  std::string name;
  uint32_t cores = 1;
  std::string memory = "4G";
  std::string disk = "10G";
  uint32_t gpus = 0;
  std::string gpu_memory = "0";
  std::string inject_fault;
  std::string app_key;
  bool unsandboxed = false;
  bool cold = false;
  std::string executor_idle = "2m";
  std::string log_format = "text";
};

void RunWorker(const WorkerFlags& f) {
  if (absl::Status s = SetLogFormat(f.log_format); !s.ok()) Fail(s, 2);
  WorkerOptions options;
  options.coordinator = f.conn.coordinator;
  options.token = f.conn.token;
  options.trust = TrustOf(f.conn);
  if (options.token.empty())
    Fail("a worker needs a worker token; pass --token or set ARTEL_TOKEN", 2);
  options.data_dir = f.data;
  options.name = f.name;
  options.cores = f.cores;
  options.memory_bytes = OrFail(ParseBytes(f.memory));
  options.disk_bytes = OrFail(ParseBytes(f.disk));
  options.gpus = f.gpus;
  options.gpu_memory_bytes = OrFail(ParseBytes(f.gpu_memory));
  if ((f.gpus == 0) != (options.gpu_memory_bytes == 0)) {
    Fail("give both --gpus and --gpu-memory (the memory of one GPU), or neither", 2);
  }
  if (f.cores == 0) Fail("--cores must be at least 1", 2);
  options.warm_executors = !f.cold;
  options.executor_idle_ms = OrFail(ParseDurationMs(f.executor_idle));
  if (!f.app_key.empty()) options.app_public_key = ReadPublicKeyFile(f.app_key, "--app-key");
  if (f.inject_fault == "corrupt-results" || f.inject_fault.rfind("corrupt-results:", 0) == 0) {
    double rate = 1;
    const std::string tail = f.inject_fault.substr(std::min<size_t>(f.inject_fault.size(), 16));
    if (!tail.empty() && (!absl::SimpleAtod(tail, &rate) || !(rate > 0 && rate <= 1))) {
      Fail("--inject-fault corrupt-results:RATE needs a RATE in (0, 1], e.g. corrupt-results:0.1",
           2);
    }
    options.runner.corrupt_rate = rate;
    spdlog::warn(
        "fault injection on: this worker corrupts {:.0f} % of the results it reports "
        "(testing aid)",
        rate * 100);
  } else if (f.inject_fault == "sign-flip" || f.inject_fault == "noise" ||
             f.inject_fault == "label-flip" || f.inject_fault.rfind("scale:", 0) == 0) {
    double k;
    if (f.inject_fault.rfind("scale:", 0) == 0 &&
        (!absl::SimpleAtod(f.inject_fault.substr(6), &k) || !std::isfinite(k))) {
      Fail("--inject-fault scale:K needs a number K, e.g. scale:-4", 2);
    }
    options.runner.app_fault = f.inject_fault;
    spdlog::warn("fault injection on: artel-ml tasks on this worker send {} updates (testing aid)",
                 f.inject_fault);
  } else if (!f.inject_fault.empty()) {
    Fail("unknown --inject-fault '" + f.inject_fault +
             "'; known: corrupt-results, corrupt-results:RATE, and for training sign-flip, noise, "
             "scale:K, label-flip",
         2);
  }
  std::unique_ptr<Sandbox> sandbox;
  absl::StatusOr<std::unique_ptr<BubblewrapSandbox>> bwrap = BubblewrapSandbox::Create();
  if (bwrap.ok()) {
    sandbox = std::move(*bwrap);
  } else if (f.unsandboxed) {
    spdlog::warn(
        "RUNNING UNSANDBOXED: tasks run as plain processes with full access to this "
        "machine's files and network ({})",
        std::string(bwrap.status().message()));
    sandbox = std::make_unique<PlainProcessSandbox>();
  } else {
    Fail("cannot run tasks safely: " + std::string(bwrap.status().message()) +
         ". Install bubblewrap (apt-get install bubblewrap), or pass --unsandboxed to run tasks "
         "WITHOUT isolation on a machine you do not mind exposing");
  }
  Worker worker(options, *sandbox);
  std::thread signals = HandleTermination([&worker] { worker.Stop(); });
  signals.detach();
  Announce("artel worker: " + std::to_string(f.cores) + " core(s), sandbox " + sandbox->name() +
           ", coordinator " + options.coordinator);
  OrFail(worker.Run());
}

}  // namespace

void AddServerCommands(CLI::App& app) {
  auto coord = std::make_shared<CoordinatorFlags>();
  CLI::App* c = app.add_subcommand(
      "coordinator", "run the coordinator (embedded SQLite in --data, or PostgreSQL with --store)");
  c->add_option("--data", coord->data, "data directory (database, blobs, admin.token)")->required();
  c->add_option("--store", coord->store,
                "PostgreSQL for the durable state: postgres://USER[:PASSWORD]@HOST[:PORT]/DB "
                "[SQLite in --data]");
  c->add_option("--listen", coord->listen, "address to listen on (port 0: any free port)")
      ->capture_default_str();
  c->add_option("--heartbeat-interval", coord->heartbeat, "how often workers heartbeat")
      ->capture_default_str();
  c->add_option("--worker-timeout", coord->worker_timeout,
                "silence after which a worker's replicas are lost and re-placed")
      ->capture_default_str();
  c->add_option("--owner-max-in-flight", coord->owner_max_in_flight,
                "most replicas the workers of one owner hold at once")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  c->add_option("--tls-cert", coord->tls_cert,
                "TLS certificate (PEM) to serve [a self-signed one kept in DATA/tls/]");
  c->add_option("--tls-key", coord->tls_key, "the private key of --tls-cert (PEM)");
  c->add_flag("--insecure", coord->insecure,
              "serve plain TCP without TLS (only on a trusted network)");
  c->add_option("--app-key", coord->app_key,
                "the project's public key (from `artel keys create`): accept only apps it signed, "
                "and tell workers to run only those");
  c->add_option("--http", coord->http,
                "address of the web dashboard and /metrics (port 0: any free port, written to "
                "DATA/http.addr; `off`: none)")
      ->capture_default_str();
  c->add_flag("--http-tls", coord->http_tls,
              "serve the dashboard over HTTPS with the coordinator's TLS certificate");
  c->add_option("--http-assets", coord->http_assets,
                "serve the dashboard's page files from this directory instead of the built-in "
                "ones (to work on the dashboard)");
  c->add_option("--ml-app", coord->ml_app,
                "the ML app registered at start as artel-ml (`auto`: the artel-ml beside this "
                "binary; `off`: none)")
      ->capture_default_str();
  c->add_option("--log-format", coord->log_format, "text, or json (one object per line)")
      ->capture_default_str();
  c->callback([coord, c] {
    coord->http_given = c->count("--http") > 0;
    RunCoordinator(*coord);
  });

  auto wf = std::make_shared<WorkerFlags>();
  CLI::App* w = app.add_subcommand("worker", "run a worker agent that lends this machine");
  AddConnectionOptions(w, &wf->conn);
  w->add_option("--data", wf->data, "worker directory (identity, blob cache, run dirs)")
      ->required();
  w->add_option("--name", wf->name, "name shown by `artel workers` (default: host name)");
  w->add_option("--cores", wf->cores, "cores lent to tasks")->capture_default_str();
  w->add_option("--memory", wf->memory, "memory lent to tasks, e.g. 4G")->capture_default_str();
  w->add_option("--disk", wf->disk, "disk budget of the blob cache, e.g. 10G")
      ->capture_default_str();
  w->add_option("--gpus", wf->gpus, "GPUs lent to tasks")->capture_default_str();
  w->add_option("--gpu-memory", wf->gpu_memory, "memory of one GPU, e.g. 16G");
  w->add_option("--inject-fault", wf->inject_fault,
                "TESTING AID: corrupt-results makes this worker report wrong results; "
                "corrupt-results:RATE only that share of them, e.g. corrupt-results:0.1; "
                "training attacks (artel-ml): sign-flip (negated updates), noise (Gaussian, std "
                "1 per value, added), scale:K (updates times K), label-flip (labels y become "
                "C-1-y)");
  w->add_flag("--no-warm-executors", wf->cold,
              "run every task as a fresh process, even for persistent apps such as artel-ml");
  w->add_option("--executor-idle", wf->executor_idle,
                "end a warm executor (a persistent app kept for one job) idle this long")
      ->capture_default_str();
  w->add_option("--app-key", wf->app_key,
                "the project's public key: run only apps it signed (default: the key the "
                "coordinator gave at first registration, kept in --data as app-key.pub)");
  w->add_flag("--unsandboxed", wf->unsandboxed,
              "run tasks without bubblewrap if it is missing (no isolation!)");
  w->add_option("--log-format", wf->log_format, "text, or json (one object per line)")
      ->capture_default_str();
  w->callback([wf] { RunWorker(*wf); });
}

}  // namespace artel::cli
