#include "server/server_metrics.h"

#include <string>

#include "absl/strings/ascii.h"

namespace artel {
namespace {

// "running" for TRAINING_STATE_RUNNING.
std::string JobState(v1::TrainingState s) {
  constexpr std::string_view kPrefix = "TRAINING_STATE_";
  std::string name = v1::TrainingState_Name(s);
  if (name.rfind(kPrefix, 0) == 0) name = name.substr(kPrefix.size());
  return absl::AsciiStrToLower(name);
}

}  // namespace

void AddCoordinatorCollector(metrics::Registry& registry, const Coordinator& coordinator,
                             const BlobServiceImpl& blobs) {
  registry.AddCollector([&coordinator, &blobs](metrics::Exposition& e) {
    const CoordinatorStats s = coordinator.Stats();
    const std::string tasks_help = "Tasks by state now.";
    e.Gauge("artel_tasks", tasks_help, {{"state", "pending"}}, static_cast<double>(s.pending));
    e.Gauge("artel_tasks", tasks_help, {{"state", "running"}}, static_cast<double>(s.running));
    e.Gauge("artel_tasks", tasks_help, {{"state", "done"}}, static_cast<double>(s.done));
    const std::string outcome_help = "Finished tasks by outcome now (a re-opened task leaves).";
    e.Gauge("artel_tasks_done", outcome_help, {{"outcome", "success"}},
            static_cast<double>(s.success));
    e.Gauge("artel_tasks_done", outcome_help, {{"outcome", "app_error"}},
            static_cast<double>(s.app_error));
    e.Gauge("artel_tasks_done", outcome_help, {{"outcome", "system_error"}},
            static_cast<double>(s.system_error));
    e.Counter("artel_tasks_submitted_total", "Tasks accepted (counted from those stored at start).",
              {}, static_cast<double>(s.tasks));
    e.Counter("artel_replicas_started_total",
              "Replicas placed on workers (counted from those stored at start).", {},
              static_cast<double>(s.replicas));
    e.Counter("artel_replicas_lost_total",
              "Replicas lost to a host fault: worker gone, lease expired, sandbox failure.", {},
              static_cast<double>(s.lost_total));
    e.Counter("artel_replicas_invalid_total", "Replica results outvoted by a quorum.", {},
              static_cast<double>(s.invalid));
    e.Counter("artel_store_commits_total", "Durable store transactions.", {},
              static_cast<double>(s.commits));

    uint64_t online = 0, offline = 0, cores = 0;
    const v1::ListWorkersResponse workers = coordinator.ListWorkers();
    for (const v1::WorkerInfo& w : workers.workers()) {
      if (w.alive()) {
        ++online;
        cores += w.cores();
      } else {
        ++offline;
      }
    }
    const std::string workers_help = "Known workers by state (offline: missed heartbeats).";
    e.Gauge("artel_workers", workers_help, {{"state", "online"}}, static_cast<double>(online));
    e.Gauge("artel_workers", workers_help, {{"state", "offline"}}, static_cast<double>(offline));
    e.Gauge("artel_worker_cores", "Cores lent by online workers.", {}, static_cast<double>(cores));

    e.Counter("artel_blob_received_bytes_total", "Blob bytes uploaded to this coordinator.", {},
              static_cast<double>(blobs.bytes_received()));
    e.Counter("artel_blob_sent_bytes_total", "Blob bytes downloaded from this coordinator.", {},
              static_cast<double>(blobs.bytes_sent()));

    std::map<std::string, uint64_t> jobs_by_state;
    const v1::ListTrainingJobsResponse jobs = coordinator.ListTrainingJobs();
    for (const v1::TrainingJob& job : jobs.jobs()) {
      ++jobs_by_state[JobState(job.state())];
      const metrics::Labels labels = {{"job", std::to_string(job.id())}};
      e.Gauge("artel_training_round", "Rounds a training job has completed.", labels, job.round());
      e.Gauge("artel_training_epoch", "Passes over the training set so far.", labels,
              job.history().empty() ? 0.0 : job.history().rbegin()->epoch());
      if (!job.history().empty()) {
        e.Gauge("artel_training_loss", "Mean training loss of the last round.", labels,
                job.history().rbegin()->loss());
      }
      if (job.accuracy() >= 0) {
        e.Gauge("artel_training_accuracy", "Latest test accuracy (0 to 1).", labels,
                job.accuracy());
      }
      e.Counter("artel_training_bytes_moved_total",
                "Parameter and update bytes moved for a job, over all tasks.", labels,
                static_cast<double>(job.bytes_moved()));
      e.Gauge("artel_training_compute_utilization",
              "Workers' training compute / (running time x workers), as of the last round.", labels,
              job.compute_utilization());
    }
    for (const char* state : {"init", "running", "exporting", "done", "failed"}) {
      e.Gauge("artel_training_jobs", "Training jobs by state.", {{"state", state}},
              static_cast<double>(jobs_by_state[state]));
    }
  });
}

}  // namespace artel
