#include "coordinator/reliability.h"

namespace artel {
namespace {

void Update(v1::Reliability& r) {
  r.set_trusted(r.consecutive_valid() >= kTrustStreak &&
                r.invalid() * kValidPerInvalid <= r.valid());
}

}  // namespace

std::string AppKey(const v1::TaskInfo& task) {
  return task.spec().app() + "@" + task.resolved_version();
}

v1::Reliability& ReliabilityOf(v1::WorkerInfo& worker, const std::string& app) {
  for (v1::Reliability& r : *worker.mutable_reliability()) {
    if (r.app() == app) return r;
  }
  v1::Reliability* r = worker.add_reliability();
  r->set_app(app);
  return *r;
}

bool Trusted(const v1::WorkerInfo& worker, const std::string& app) {
  for (const v1::Reliability& r : worker.reliability()) {
    if (r.app() == app) return r.trusted();
  }
  return false;
}

void RecordConfirmed(v1::WorkerInfo& worker, const std::string& app) {
  v1::Reliability& r = ReliabilityOf(worker, app);
  r.set_consecutive_valid(r.consecutive_valid() + 1);
  r.set_valid(r.valid() + 1);
  Update(r);
}

void RecordInvalid(v1::WorkerInfo& worker, const std::string& app) {
  v1::Reliability& r = ReliabilityOf(worker, app);
  r.set_consecutive_valid(0);
  r.set_invalid(r.invalid() + 1);
  Update(r);
}

void RecordHostError(v1::WorkerInfo& worker, const std::string& app) {
  v1::Reliability& r = ReliabilityOf(worker, app);
  r.set_consecutive_valid(0);
  Update(r);
}

}  // namespace artel
