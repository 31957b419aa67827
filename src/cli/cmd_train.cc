// Training commands: train, jobs, job show / wait / export.
#include <cstdio>
#include <fstream>
#include <iostream>

#include "cli/cli_common.h"
#include "cli/train_progress.h"
#include "common/units.h"

namespace artel::cli {
namespace {

// Zero / empty means "not given": the coordinator fills in the defaults
// documented on TrainingSpec.
// CLI::PositiveNumber's message prints the range up to DBL_MAX in full.
const CLI::Validator kPositive(
    [](std::string& text) -> std::string {
      double value = 0;
      try {
        value = std::stod(text);
      } catch (const std::exception&) {
        return "'" + text + "' is not a number";
      }
      return value > 0 ? "" : "must be greater than 0, not " + text;
    },
    "POSITIVE");

struct TrainFlags {
  Connection conn;
  std::string model, data, mode, optimizer, name, out, inner_state, compress, lr_scale, aggregate;
  double clip_radius = 0;
  uint32_t workers = 0, batch_size = 0, local_steps = 0, epochs = 0, rounds = 0, quorum = 0,
           backup = 0, eval_every = 0;
  double lr = 0, target_accuracy = 0, outer_lr = 0;
  double outer_momentum = -1;  // < 0: not given (the coordinator's default)
  bool json = false;
};

// A TorchScript file is a zip archive; catch a pickled state_dict or a wrong
// path here rather than in the first round on a worker.
void CheckModelFile(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    Fail("model file '" + path + "' does not exist or is not a file", 2);
  }
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  in.read(magic, sizeof(magic));
  if (in.gcount() != 4 || std::string(magic, 4) != std::string("PK\x03\x04", 4)) {
    Fail("'" + path +
             "' is not a TorchScript file (not a zip archive); save the model with "
             "torch.jit.script(model).save('net.pt')",
         2);
  }
}

// Fails early when `out` cannot be written after hours of training.
void CheckOutPath(const std::string& out) {
  if (out.empty()) return;
  std::filesystem::path parent = std::filesystem::path(out).parent_path();
  if (parent.empty()) parent = ".";
  std::error_code ec;
  if (!std::filesystem::is_directory(parent, ec)) {
    Fail("cannot write --out '" + out + "': directory '" + parent.string() +
             "' does not exist; create it first",
         2);
  }
}

void Train(const TrainFlags& f) {
  if (f.target_accuracy != 0 && !(f.target_accuracy > 0 && f.target_accuracy <= 1)) {
    Fail("--target-accuracy is a fraction of the test set, e.g. 0.9 for 90%", 2);
  }
  if (f.local_steps != 0 && f.mode != "local") {
    Fail("--local-steps applies to --mode local only", 2);
  }
  if ((f.outer_lr != 0 || f.outer_momentum >= 0 || !f.inner_state.empty()) && f.mode != "local") {
    Fail("--outer-lr, --outer-momentum and --inner-state apply to --mode local only", 2);
  }
  if ((f.lr_scale == "sqrt" || f.lr_scale == "linear") &&
      (f.mode == "async" || f.mode == "fullbatch")) {
    Fail(
        "--lr-scale sqrt and linear apply to --mode sync and local (an async or fullbatch step "
        "uses one task's batch); use --lr-scale none or leave it out",
        2);
  }
  if (f.backup != 0 && !f.mode.empty() && f.mode != "sync") {
    Fail("--backup applies to --mode sync only", 2);
  }
  CheckModelFile(f.model);
  CheckOutPath(f.out);
  auto client = Connect(f.conn);

  std::error_code ec;
  std::cerr << "uploading model " << f.model << " ("
            << FormatBytes(std::filesystem::file_size(f.model, ec)) << ")" << std::endl;
  v1::TrainingSpec spec;
  spec.set_model_digest(OrFail(client->blobs().UploadFile(f.model)));
  spec.set_dataset(f.data);
  spec.set_name(f.name);
  if (!f.mode.empty()) spec.set_mode(OrFail(ParseTrainMode(f.mode)));
  spec.set_workers(f.workers);
  spec.set_batch_size(f.batch_size);
  spec.set_lr(f.lr);
  spec.set_optimizer(f.optimizer);
  spec.set_local_steps(f.local_steps);
  spec.set_outer_lr(f.outer_lr);
  if (f.outer_momentum >= 0) spec.set_outer_momentum(f.outer_momentum);
  spec.set_inner_state(f.inner_state);
  spec.set_compress(f.compress);
  spec.set_lr_scale(f.lr_scale);
  spec.set_aggregate(f.aggregate);
  spec.set_clip_radius(f.clip_radius);
  spec.set_epochs(f.epochs);
  spec.set_rounds(f.rounds);
  spec.set_target_accuracy(f.target_accuracy);
  spec.set_quorum(f.quorum);
  spec.set_backup(f.backup);
  spec.set_eval_every(f.eval_every);
  v1::TrainingJob job = OrFail(client->StartTraining(spec));
  const std::string id = std::to_string(job.id());
  if (f.json) {
    std::cout << nlohmann::json{{"id", job.id()}}.dump() << std::endl;
  } else {
    std::cout << "training job " << id << " started on data set " << job.spec().dataset()
              << " (mode " << TrainModeName(job.spec().mode()) << ")" << std::endl;
  }
  std::cerr << "Ctrl-C stops following; the job keeps running on the coordinator, and "
               "`artel job wait "
            << id << "` follows it again" << std::endl;
  const int code =
      FollowTraining(*client, job.id(), {.timeout_ms = 0, .json = f.json, .out = f.out});
  if (code != 0) throw CLI::RuntimeError(code);
}

std::string Default(uint32_t value) { return value == 0 ? "default" : std::to_string(value); }
std::string Number(double value) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", value);
  return buf;
}
std::string Default(double value) { return value == 0 ? "default" : Number(value); }

void PrintJob(const v1::TrainingJob& job) {
  const v1::TrainingSpec& s = job.spec();
  std::cout << "training job " << job.id() << (s.name().empty() ? "" : " \"" + s.name() + "\"")
            << ": " << TrainingStateName(job.state()) << "\n";
  if (!job.reason().empty()) std::cout << "  reason:    " << job.reason() << "\n";
  std::cout << "  data set:  " << s.dataset() << "\n  model:     " << s.model_digest() << "\n";
  std::cout << "  mode:      " << TrainModeName(s.mode()) << ", workers " << Default(s.workers())
            << ", batch size " << Default(s.batch_size()) << ", optimizer "
            << (s.optimizer().empty() ? "default" : s.optimizer()) << ", lr " << Default(s.lr())
            << " (scaled with the workers: " << (s.lr_scale().empty() ? "none" : s.lr_scale())
            << ")\n";
  if (s.mode() == v1::TRAIN_MODE_LOCAL) {
    std::cout << "  local:     " << Default(s.local_steps()) << " steps per task, outer lr "
              << Default(s.outer_lr()) << ", outer momentum "
              << (s.has_outer_momentum() ? Number(s.outer_momentum()) : std::string("default"))
              << ", inner state " << (s.inner_state().empty() ? "default" : s.inner_state())
              << "\n";
  }
  std::cout << "  updates:   " << (s.compress().empty() ? "none" : s.compress())
            << " compression, aggregated by " << (s.aggregate().empty() ? "mean" : s.aggregate());
  if (s.clip_radius() > 0) std::cout << " (radius " << Number(s.clip_radius()) << ")";
  std::cout << "\n";
  for (const v1::ExcludedWorker& e : job.excluded()) {
    std::cout << "  excluded:  worker " << e.worker_id() << " after round " << e.round() << ": "
              << e.reason() << "\n";
  }
  std::cout << "  stop:      ";
  if (s.rounds() > 0) std::cout << "after " << s.rounds() << " rounds";
  if (s.rounds() == 0) std::cout << "after " << (s.epochs() == 0 ? 1 : s.epochs()) << " epoch(s)";
  if (s.target_accuracy() > 0) {
    std::cout << " or at test accuracy " << AccuracyString(s.target_accuracy());
  }
  std::cout << "\n  quorum:    " << Default(s.quorum()) << ", backup tasks " << s.backup()
            << ", eval every " << (s.eval_every() == 0 ? "auto" : std::to_string(s.eval_every()))
            << " round(s)\n";
  std::cout << "  app:       " << (s.app().empty() ? "artel-ml" : s.app()) << " "
            << (s.app_version().empty() ? "newest" : s.app_version()) << "\n";
  std::cout << "  progress:  round " << job.round() << ", " << job.samples_seen() << " samples, "
            << FormatBytes(job.bytes_moved()) << " moved, test accuracy "
            << AccuracyString(job.accuracy()) << "\n";
  if (job.round() > 0) {
    std::printf(
        "  compute:   utilization %.1f %% (workers' training compute / (wall time x %u "
        "workers)); coordinator %.1f ms per round\n",
        100 * job.compute_utilization(), job.spec().workers(), job.coordinator_ms() / job.round());
  }
  if (job.finished_at_ms() > job.created_at_ms() && job.created_at_ms() > 0) {
    std::cout << "  took:      "
              << FormatDurationMs(static_cast<uint64_t>(job.finished_at_ms() - job.created_at_ms()))
              << "\n";
  }
  if (!job.trained_model_digest().empty()) {
    std::cout << "  trained:   " << job.trained_model_digest() << " (`artel job export " << job.id()
              << " --out trained.pt`)\n";
  }
  std::printf("\n%-6s %-7s %-9s %-9s %-9s %-10s %-10s %s\n", "ROUND", "EPOCH", "LOSS", "TEST ACC",
              "TEST LOSS", "SAMPLES", "SAMPLES/S", "MOVED");
  for (const v1::RoundRecord& r : job.history()) {
    const std::string test_loss =
        r.accuracy() < 0 ? "-" : std::to_string(r.test_loss()).substr(0, 6);
    std::printf("%-6u %-7.3f %-9.4f %-9s %-9s %-10llu %-10.0f %s\n", r.round(), r.epoch(), r.loss(),
                AccuracyString(r.accuracy()).c_str(), test_loss.c_str(),
                static_cast<unsigned long long>(r.samples()), r.samples_per_s(),
                FormatBytes(r.bytes_moved()).c_str());
  }
  std::cout.flush();
}

void ListJobs(const Connection& conn, bool json) {
  v1::ListTrainingJobsResponse resp = OrFail(Connect(conn)->ListTrainingJobs());
  if (!json) {
    std::printf("%-6s %-20s %-16s %-10s %-10s %-7s %-8s %s\n", "ID", "NAME", "DATA", "MODE",
                "STATE", "ROUND", "EPOCH", "ACCURACY");
  }
  for (const v1::TrainingJob& job : resp.jobs()) {
    const nlohmann::json j = TrainingJobJson(job);
    if (json) {
      std::cout << j.dump() << "\n";
      continue;
    }
    std::printf("%-6llu %-20s %-16s %-10s %-10s %-7u %-8.3f %s\n",
                static_cast<unsigned long long>(job.id()), job.spec().name().c_str(),
                job.spec().dataset().c_str(), TrainModeName(job.spec().mode()).c_str(),
                TrainingStateName(job.state()).c_str(), job.round(), j["epoch"].get<double>(),
                AccuracyString(job.accuracy()).c_str());
  }
  std::cout.flush();
}

struct JobFlags {
  Connection conn;
  uint64_t id = 0;
  std::string timeout, out;
  bool json = false;
};

}  // namespace

void AddTrainCommands(CLI::App& app) {
  auto tf = std::make_shared<TrainFlags>();
  CLI::App* t = app.add_subcommand(
      "train", "train a TorchScript model on a registered data set and follow its progress");
  t->footer(
      "Unset options take the coordinator's defaults, shown in [brackets].\n"
      "Prints one line per round (one JSON object with --json) until the job is done.\n"
      "Ctrl-C stops following; the job keeps running on the coordinator:\n"
      "`artel job wait ID` follows it again, `artel job export ID --out F` fetches the model.");
  AddConnectionOptions(t, &tf->conn);
  t->add_option("--model", tf->model,
                "TorchScript file: torch.jit.script(model).save('net.pt'); run by workers only")
      ->required();
  t->add_option("--data", tf->data, "data set name (see `artel data list`)")->required();
  t->add_option("--mode", tf->mode,
                "sync: synchronous mini-batch SGD; local: H local steps per task (DiLoCo); "
                "async: bounded staleness; fullbatch: one step per epoch [sync]")
      ->check(CLI::IsMember({"sync", "local", "async", "fullbatch"}));
  t->add_option("--workers", tf->workers, "tasks per round [2]")->check(kPositive);
  t->add_option("--batch-size", tf->batch_size, "mini-batch size per task [64]")->check(kPositive);
  t->add_option("--lr", tf->lr,
                "learning rate [0.05 sgd/momentum, 0.001 adam]; local mode: of the inner steps")
      ->check(kPositive);
  t->add_option("--lr-scale", tf->lr_scale,
                "how --lr (for one task's batch) grows with the W workers one step averages, in "
                "sync and local mode: none, sqrt (lr * sqrt(W)) or linear (lr * W) [auto: in sync "
                "sqrt for adam and linear for sgd and momentum; none otherwise]")
      ->check(CLI::IsMember({"auto", "none", "sqrt", "linear"}));
  t->add_option("--aggregate", tf->aggregate,
                "how a round's updates combine: mean, trimmed-mean (25 % cut each side), median, "
                "or centered-clip; robust rules exclude a worker whose updates lie far from the "
                "result 3 rounds in a row (async: norm clipping) [mean]")
      ->check(CLI::IsMember({"mean", "trimmed-mean", "median", "centered-clip"}));
  t->add_option("--clip-radius", tf->clip_radius,
                "centered-clip's radius, L2 over the whole update [0: automatic, the median "
                "distance of the round's updates from their coordinate median]");
  t->add_option("--optimizer", tf->optimizer, "sgd, momentum or adam [momentum]")
      ->check(CLI::IsMember({"sgd", "momentum", "adam"}));
  t->add_option("--local-steps", tf->local_steps, "H: inner steps per task in local mode [64]")
      ->check(kPositive);
  t->add_option("--outer-lr", tf->outer_lr,
                "local mode: step of the outer optimizer on the averaged deltas [0.8]")
      ->check(kPositive);
  t->add_option("--outer-momentum", tf->outer_momentum,
                "local mode: outer Nesterov momentum; 0 = plain averaging [0.5]")
      ->check(CLI::Range(0.0, 0.999));
  t->add_option("--inner-state", tf->inner_state,
                "local mode: reset = every task starts a fresh inner optimizer; carry = tasks "
                "start from the previous round's averaged inner optimizer state [reset]")
      ->check(CLI::IsMember({"carry", "reset"}));
  CLI::Option* epochs =
      t->add_option("--epochs", tf->epochs, "stop after E passes over the data [1]")
          ->check(kPositive);
  CLI::Option* rounds =
      t->add_option("--rounds", tf->rounds, "or stop after R rounds")->check(kPositive);
  epochs->excludes(rounds);
  t->add_option("--target-accuracy", tf->target_accuracy,
                "also stop once test accuracy reaches A, a fraction (e.g. 0.9)");
  t->add_option("--quorum", tf->quorum, "replicas per task that must agree [1]")->check(kPositive);
  t->add_option("--backup", tf->backup,
                "sync mode: K extra tasks per round; a round closes on the first --workers [0]");
  t->add_option("--eval-every", tf->eval_every,
                "evaluate every N rounds [about 4 times per epoch for a test set a sixth of the "
                "training set]")
      ->check(kPositive);
  t->add_option("--compress", tf->compress,
                "how updates travel from workers: none (fp32), fp16, or int8 (per-tensor scale, "
                "with error feedback kept by each worker's executor) [none]")
      ->check(CLI::IsMember({"none", "fp16", "int8"}));
  t->add_option("--name", tf->name, "a name for the job");
  t->add_option("--out", tf->out, "write the trained TorchScript model here when done");
  t->add_flag("--json", tf->json, "one JSON object per line: {\"id\"}, each round, the outcome");
  t->callback([tf] { Train(*tf); });

  auto lf = std::make_shared<JobFlags>();
  CLI::App* jobs = app.add_subcommand("jobs", "list training jobs");
  AddConnectionOptions(jobs, &lf->conn);
  jobs->add_flag("--json", lf->json, "one JSON object per line");
  jobs->callback([lf] { ListJobs(lf->conn, lf->json); });

  CLI::App* job = app.add_subcommand("job", "show, follow or export a training job");
  job->require_subcommand(1);

  auto sf = std::make_shared<JobFlags>();
  CLI::App* show = job->add_subcommand("show", "the job's settings and its whole round history");
  AddConnectionOptions(show, &sf->conn);
  show->add_option("id", sf->id, "training job id")->required();
  show->add_flag("--json", sf->json, "the job and its history as one JSON object");
  show->callback([sf] {
    v1::TrainingJob j = OrFail(Connect(sf->conn)->GetTrainingJob(sf->id));
    if (!sf->json) return PrintJob(j);
    nlohmann::json out = TrainingJobJson(j);
    out["history"] = nlohmann::json::array();
    for (const auto& r : j.history()) out["history"].push_back(RoundJson(j, r));
    std::cout << out.dump() << std::endl;
  });

  auto wf = std::make_shared<JobFlags>();
  CLI::App* wait = job->add_subcommand(
      "wait", "follow a training job; exit 0 when done, 1 when failed, 3 on --timeout");
  AddConnectionOptions(wait, &wf->conn);
  wait->add_option("id", wf->id, "training job id")->required();
  wait->add_option("--timeout", wf->timeout, "stop following after, e.g. 1h [no limit]");
  wait->add_option("--out", wf->out, "write the trained TorchScript model here when done");
  wait->add_flag("--json", wf->json, "one JSON object per round, then the outcome");
  wait->callback([wf] {
    const uint64_t timeout = wf->timeout.empty() ? 0 : OrFail(ParseDurationMs(wf->timeout));
    CheckOutPath(wf->out);
    auto client = Connect(wf->conn);
    const int code =
        FollowTraining(*client, wf->id, {.timeout_ms = timeout, .json = wf->json, .out = wf->out});
    if (code != 0) throw CLI::RuntimeError(code);
  });

  auto ef = std::make_shared<JobFlags>();
  CLI::App* exp = job->add_subcommand("export", "download the trained model of a finished job");
  AddConnectionOptions(exp, &ef->conn);
  exp->add_option("id", ef->id, "training job id")->required();
  exp->add_option("--out", ef->out, "where to write the TorchScript file")->required();
  exp->callback([ef] {
    CheckOutPath(ef->out);
    auto client = Connect(ef->conn);
    v1::TrainingJob j = OrFail(client->GetTrainingJob(ef->id));
    OrFail(ExportModel(*client, j, ef->out, false));
  });
}

}  // namespace artel::cli
