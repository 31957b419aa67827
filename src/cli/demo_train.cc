// `artel demo`: a coordinator and four workers on this machine train a CNN on
// Fashion-MNIST; one worker is killed mid-run and another takes its place.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <thread>

#include "cli/cli_common.h"
#include "cli/local_cluster.h"
#include "cli/train_progress.h"
#include "common/subprocess.h"

namespace artel::cli {
namespace {

constexpr char kDataDir[] = "/usr/share/datasets/fashion-mnist";
constexpr char kPython[] = "/usr/bin/python3";

// A small CNN with BatchNorm and dropout, written by PyTorch as TorchScript:
// what a researcher brings. Its BatchNorm running statistics travel with the
// weights and are part of the exported model.
constexpr char kModelScript[] = R"py(import sys
import torch

class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 16, 3, padding=1)
        self.bn1 = torch.nn.BatchNorm2d(16)
        self.conv2 = torch.nn.Conv2d(16, 32, 3, padding=1)
        self.bn2 = torch.nn.BatchNorm2d(32)
        self.drop = torch.nn.Dropout(0.1)
        self.fc = torch.nn.Linear(32 * 7 * 7, 10)

    def forward(self, x):
        x = torch.max_pool2d(torch.relu(self.bn1(self.conv1(x))), 2)
        x = torch.max_pool2d(torch.relu(self.bn2(self.conv2(x))), 2)
        return self.fc(self.drop(torch.flatten(x, 1)))

torch.manual_seed(0)
torch.jit.script(Net()).save(sys.argv[1])
)py";

// Loads the exported model in PyTorch and measures it on the test set.
constexpr char kCheckScript[] = R"py(import gzip, sys, torch
d = sys.argv[2]
img = gzip.open(d + '/t10k-images-idx3-ubyte.gz').read()[16:]
lab = gzip.open(d + '/t10k-labels-idx1-ubyte.gz').read()[8:]
x = torch.frombuffer(bytearray(img), dtype=torch.uint8).reshape(-1, 1, 28, 28).float() / 255
y = torch.frombuffer(bytearray(lab), dtype=torch.uint8).long()
m = torch.jit.load(sys.argv[1])
m.eval()
with torch.no_grad():
    print('%.4f' % (m(x).argmax(1) == y).float().mean().item())
)py";

struct TrainDemoFlags {
  uint32_t workers = 4;
  uint32_t epochs = 6;
  double target = 0.90;
  bool keep = false;
};

int RunQuiet(const std::vector<std::string>& argv, const std::filesystem::path& log,
             const std::vector<std::string>& env = {}) {
  absl::StatusOr<Subprocess> p = Subprocess::Start(argv, log, env);
  return p.ok() ? p->Wait() : -1;
}

void RunTrainDemo(const TrainDemoFlags& f) {
  const auto start = std::chrono::steady_clock::now();
  for (const char* file : {"train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz"}) {
    if (!std::filesystem::exists(std::filesystem::path(kDataDir) / file)) {
      Fail(std::string("Fashion-MNIST is missing from ") + kDataDir +
           "; install it with scripts/setup.sh (package dataset-fashion-mnist)");
    }
  }
  const std::filesystem::path bin = SelfDirectory();
  if (!std::filesystem::exists(bin / "artel-ml")) {
    Fail("the ML app " + (bin / "artel-ml").string() + " is missing; build with `make build`");
  }
  char tmpl[] = "/tmp/artel-demo-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) Fail("cannot create a temporary directory under /tmp");
  const std::filesystem::path root = tmpl;
  std::cout << "artel demo: train a CNN on Fashion-MNIST to " << f.target * 100
            << "% test accuracy on " << f.workers << " workers (local SGD), killing one mid-run\n"
            << "  work directory: " << root.string() << std::endl;

  std::ofstream(root / "model.py") << kModelScript;
  if (RunQuiet({kPython, (root / "model.py").string(), (root / "net.pt").string()},
               root / "python.log") != 0) {
    Fail("PyTorch could not write the model (see " + (root / "python.log").string() +
         "); is python3-torch installed?");
  }
  std::cout << "  model: 2-conv CNN with BatchNorm and dropout, written by PyTorch as TorchScript "
               "(net.pt)"
            << std::endl;

  LocalClusterOptions options;
  options.artel_binary = bin / "artel";
  options.root = root;
  options.coordinator_args = {"--heartbeat-interval", "500ms", "--worker-timeout", "3s"};
  auto cluster = OrFail(LocalCluster::Start(options));
  Client& client = cluster->client();
  OrFail(client.AddApp("artel-ml", "1", bin / "artel-ml", cluster->signing_key()).status());
  const std::vector<std::string> env = {"ARTEL_COORDINATOR=" + cluster->address(),
                                        "ARTEL_TOKEN=" + cluster->admin_token()};
  const std::string d = kDataDir;
  if (RunQuiet(
          {(bin / "artel").string(), "data", "add", "fmnist", "--idx-images",
           d + "/train-images-idx3-ubyte.gz", "--idx-labels", d + "/train-labels-idx1-ubyte.gz",
           "--test-images", d + "/t10k-images-idx3-ubyte.gz", "--test-labels",
           d + "/t10k-labels-idx1-ubyte.gz"},
          root / "data.log", env) != 0) {
    Fail("registering the data set failed; see " + (root / "data.log").string());
  }
  std::cout
      << "  data: Fashion-MNIST, 60,000 training and 10,000 test images, in 2,000-image shards"
      << std::endl;
  for (uint32_t i = 1; i <= f.workers; ++i) {
    OrFail(cluster->AddWorker("worker-" + std::to_string(i), {"--cores", "1"}).status());
  }
  std::cout << "  started coordinator and " << f.workers << " workers" << std::endl;
  if (const std::string url = cluster->http_url(); !url.empty()) {
    std::cout << "  dashboard: " << url << "/  (token: " << cluster->admin_token().substr(0, 12)
              << "..., in " << (root / "coordinator" / "admin.token").string() << ")"
              << std::endl;
  }

  std::ifstream model_in(root / "net.pt", std::ios::binary);
  v1::TrainingSpec spec;
  spec.set_name("fashion-mnist-demo");
  spec.set_model_digest(OrFail(client.blobs().UploadFile(root / "net.pt")));
  spec.set_dataset("fmnist");
  spec.set_mode(v1::TRAIN_MODE_LOCAL);
  spec.set_workers(f.workers);
  spec.set_batch_size(64);
  spec.set_local_steps(32);
  spec.set_outer_lr(0.8);
  spec.set_outer_momentum(0.5);
  spec.set_optimizer("adam");
  spec.set_lr(0.002);
  spec.set_epochs(f.epochs);
  spec.set_target_accuracy(f.target);
  spec.set_eval_every(2);
  v1::TrainingJob job = OrFail(client.StartTraining(spec));
  std::cout << "  training job " << job.id() << ": local SGD, " << f.workers
            << " tasks of 32 Adam steps x 64 images per round, outer Nesterov step 0.8, momentum "
               "0.5\n"
            << std::endl;

  // Kill a worker once training is under way, and start another in its place.
  std::atomic<bool> done{false};
  std::string killed;
  std::thread chaos([&] {
    Client watcher(cluster->address(), cluster->admin_token());
    while (!done.load()) {
      auto j = watcher.GetTrainingJob(job.id());
      if (j.ok() && j->round() >= 3) {
        const pid_t pid = cluster->worker(1).pid();
        cluster->worker(1).Kill();
        auto added =
            cluster->AddWorker("worker-" + std::to_string(f.workers + 1), {"--cores", "1"});
        killed = "worker-2 (pid " + std::to_string(pid) + ") killed with SIGKILL after round " +
                 std::to_string(j->round()) + "; worker-" + std::to_string(f.workers + 1) +
                 (added.ok() ? " started in its place" : " could not start");
        std::cout << "  >>> " << killed << std::endl;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  });
  FollowOptions follow;
  follow.out = (root / "trained.pt").string();
  const int code = FollowTraining(client, job.id(), follow);
  done.store(true);
  chaos.join();
  job = OrFail(client.GetTrainingJob(job.id()));
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  std::cout << "\nsummary\n";
  std::printf("  rounds:            %u (%.2f epochs, %llu samples)\n", job.round(),
              job.history().empty() ? 0.0 : job.history().rbegin()->epoch(),
              static_cast<unsigned long long>(job.samples_seen()));
  std::printf("  test accuracy:     %s (target %.0f%%)\n", AccuracyString(job.accuracy()).c_str(),
              f.target * 100);
  std::printf("  failure injected:  %s\n",
              killed.empty() ? "none (finished first)" : killed.c_str());
  std::printf("  bytes moved:       %.1f MiB\n", job.bytes_moved() / 1048576.0);
  std::printf(
      "  compute:           %.1f %% utilization (workers' training compute / (wall time x "
      "%u workers)); coordinator %.1f ms per round\n",
      100 * job.compute_utilization(), job.spec().workers(),
      job.round() == 0 ? 0.0 : job.coordinator_ms() / job.round());
  std::string reloaded = "not checked";
  if (code == 0) {
    std::ofstream(root / "check.py") << kCheckScript;
    absl::StatusOr<Subprocess> p = Subprocess::Start(
        {"/bin/sh", "-c",
         std::string(kPython) + " " + (root / "check.py").string() + " " +
             (root / "trained.pt").string() + " " + d + " > " + (root / "check.out").string()},
        root / "python.log");
    if (p.ok() && p->Wait() == 0) {
      std::ifstream in(root / "check.out");
      double acc = -1;
      in >> acc;
      char buf[64];
      std::snprintf(buf, sizeof(buf), "%.2f%%", acc * 100);
      reloaded = buf;
    }
  }
  std::printf("  PyTorch reloads trained.pt: test accuracy %s\n", reloaded.c_str());
  std::printf("  time:              %.1f s\n", seconds);
  cluster.reset();
  if (!f.keep)
    std::filesystem::remove_all(root);
  else
    std::cout << "  logs and data kept in " << root.string() << "\n";
  if (code != 0 || job.accuracy() < f.target) throw CLI::RuntimeError(1);
}

}  // namespace

void AddDemoCommand(CLI::App& app) {
  auto f = std::make_shared<TrainDemoFlags>();
  CLI::App* demo =
      app.add_subcommand("demo",
                         "train a CNN on Fashion-MNIST on local workers, killing one mid-run "
                         "(`artel demo tasks`: the task-platform demo)");
  demo->require_subcommand(0, 1);
  demo->add_option("--workers", f->workers, "worker processes")->capture_default_str();
  demo->add_option("--epochs", f->epochs, "most passes over the data")->capture_default_str();
  demo->add_option("--target-accuracy", f->target, "stop at this test accuracy")
      ->capture_default_str();
  demo->add_flag("--keep", f->keep, "keep the work directory (logs, databases)");
  AddTaskDemo(*demo);
  demo->callback([f, demo] {
    if (demo->get_subcommands().empty()) RunTrainDemo(*f);
  });
}

}  // namespace artel::cli
