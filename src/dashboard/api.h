// The dashboard's HTTP API and the Prometheus endpoint, independent of the
// HTTP library: a request (path, query, Authorization header) in, a status,
// content type and body out. Read-only: nothing here changes the grid.
//
//   GET /metrics                      Prometheus text format
//   GET /api/session                  {"role": ...}: checks the token
//   GET /api/overview                 workers, tasks by state, throughput, jobs
//   GET /api/workers                  ListWorkersResponse (proto JSON) + now_ms
//   GET /api/tasks?state=S&limit=N    ListTasksResponse: the newest N, by id
//   GET /api/tasks/ID                 TaskInfo with its replicas
//   GET /api/tasks/ID/outputs/NAME    the canonical result's output, raw bytes
//                                     (?replica=R: that replica's)
//   GET /api/jobs                     ListTrainingJobsResponse
//   GET /api/jobs/ID                  TrainingJob with its history + now_ms
//
// Every path needs `Authorization: Bearer TOKEN` of an admin or submitter
// (a worker token is refused: volunteers hold those). Errors are JSON
// {"error": MESSAGE, "code": NAME} with 400 (bad argument), 401 (no or bad
// token), 403 (worker token), 404 (unknown id or path), 409 (failed
// precondition), 413 (an output too large to serve) or 500; the message says
// what to do. Thread-safe (it only reads the coordinator, which locks).
#pragma once

#include <map>
#include <string>

#include "coordinator/coordinator.h"
#include "dashboard/throughput.h"
#include "metrics/metrics.h"

namespace artel::dashboard {

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
};

class Api {
 public:
  // All three must outlive the Api.
  Api(const Coordinator& coordinator, const metrics::Registry& metrics,
      const Throughput& throughput)
      : coordinator_(coordinator), metrics_(metrics), throughput_(throughput) {}

  // Answers GET `path` (without the query string). `authorization` is the
  // header's value ("Bearer TOKEN"; a '#PIN' suffix is ignored).
  HttpResponse Get(const std::string& path, const std::map<std::string, std::string>& query,
                   const std::string& authorization) const;

 private:
  absl::StatusOr<HttpResponse> Route(const std::string& path,
                                     const std::map<std::string, std::string>& query) const;
  absl::StatusOr<HttpResponse> Overview() const;
  absl::StatusOr<HttpResponse> Tasks(const std::map<std::string, std::string>& query) const;
  absl::StatusOr<HttpResponse> Output(uint64_t task_id, const std::string& name,
                                      const std::map<std::string, std::string>& query) const;

  const Coordinator& coordinator_;
  const metrics::Registry& metrics_;
  const Throughput& throughput_;
};

}  // namespace artel::dashboard
