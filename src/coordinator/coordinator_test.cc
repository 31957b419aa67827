// The Coordinator engine end to end with a real SqliteStore and BlobStore;
// time moves only by FakeClock.
#include "coordinator/coordinator.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "common/sha256.h"
#include "coordinator/coordinator_test_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "sandbox/bubblewrap_sandbox.h"

namespace artel::coordinator_test {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

TEST_F(CoordinatorTest, SubmittedTaskSucceedsWhenItsWorkerReports) {
  const uint64_t task = SubmitOne(Spec());
  EXPECT_EQ(Task(task).state(), v1::TASK_STATE_PENDING);
  const std::string w = RegisterWorker("alice");
  std::vector<v1::Assignment> got = Fetch(w, 4);
  ASSERT_EQ(got.size(), 1u);
  const v1::Assignment& a = got[0];
  EXPECT_EQ(a.task_id(), task);
  EXPECT_EQ(a.app(), "primes");
  EXPECT_EQ(a.version(), "1");
  EXPECT_TRUE(IsSha256Hex(a.app_digest()));
  ASSERT_EQ(a.inputs_size(), 1);
  EXPECT_EQ(a.inputs(0).name(), "range.txt");
  EXPECT_EQ(a.lease_ms(), 30'000u);
  EXPECT_EQ(a.resources().cores(), 1u);
  EXPECT_EQ(Task(task).state(), v1::TASK_STATE_RUNNING);

  ARTEL_ASSERT_OK(ReportSuccess(w, a.replica_id(), "2 3 5 7\n"));
  const v1::TaskInfo t = Task(task);
  EXPECT_EQ(t.state(), v1::TASK_STATE_DONE);
  EXPECT_EQ(t.outcome(), v1::OUTCOME_SUCCESS);
  EXPECT_EQ(t.canonical_replica(), a.replica_id());
  ASSERT_EQ(t.outputs_size(), 1);
  EXPECT_EQ(t.outputs(0).digest(), Sha256Hex("2 3 5 7\n"));
  ASSERT_EQ(t.replicas_size(), 1);
  EXPECT_EQ(t.replicas(0).state(), v1::REPLICA_STATE_REPORTED);
  EXPECT_EQ(t.replicas(0).validity(), v1::VALIDITY_VALID);
  EXPECT_EQ(Worker(w).completed(), 1u);
  EXPECT_THAT(Fetch(w, 4), IsEmpty());
}

TEST_F(CoordinatorTest, OutputReportedButNeverUploadedIsAHostFault) {
  const uint64_t task = SubmitOne(Spec());
  const std::string w1 = RegisterWorker("w1");
  const uint64_t r1 = FetchOne(w1);
  v1::ReportRequest request;
  request.set_worker_id(w1);
  v1::ReplicaReport* report = request.add_reports();
  report->set_replica_id(r1);
  report->set_result(v1::RESULT_KIND_SUCCESS);
  report->add_outputs()->set_name("result.txt");
  report->mutable_outputs(0)->set_digest(Sha256Hex("never uploaded"));
  ARTEL_ASSERT_OK(coord_->Report(request));
  const v1::ReplicaInfo r = Replica(task, r1);
  EXPECT_EQ(r.result(), v1::RESULT_KIND_HOST_ERROR);
  EXPECT_THAT(r.error(), HasSubstr("never uploaded"));
  EXPECT_EQ(Task(task).state(), v1::TASK_STATE_PENDING);
  EXPECT_EQ(Worker(w1).errors(), 1u);
  FetchOne(RegisterWorker("w2"));
}

// ---- rejected submissions store nothing

class RejectedSubmitTest : public CoordinatorTest {
 protected:
  void ExpectRejectedAndNothingStored(const v1::SubmitRequest& request, absl::StatusCode code,
                                      const std::string& words) {
    absl::StatusOr<v1::SubmitResponse> response = coord_->Submit(request);
    ASSERT_FALSE(response.ok());
    EXPECT_EQ(response.status().code(), code) << response.status();
    EXPECT_THAT(response.status().message(), HasSubstr(words));
    EXPECT_EQ(TaskCount(), 0u);
    EXPECT_FALSE(coord_->GetJob(1).ok());
    ASSERT_NO_FATAL_FAILURE(Restart());
    EXPECT_EQ(TaskCount(), 0u);
    EXPECT_FALSE(coord_->GetJob(1).ok());
    EXPECT_EQ(SubmitOne(Spec()), 1u) << "a rejected request used up a task id";
  }
  v1::SubmitRequest RequestOf(const v1::TaskSpec& spec) {
    v1::SubmitRequest request;
    *request.add_tasks() = spec;
    return request;
  }
};

TEST_F(RejectedSubmitTest, UnknownApp) {
  v1::TaskSpec spec = Spec();
  spec.set_app("sieve");
  ExpectRejectedAndNothingStored(RequestOf(spec), absl::StatusCode::kNotFound,
                                 "app 'sieve' is not registered");
}

TEST_F(RejectedSubmitTest, UnknownVersion) {
  v1::TaskSpec spec = Spec();
  spec.set_version("9");
  ExpectRejectedAndNothingStored(RequestOf(spec), absl::StatusCode::kNotFound,
                                 "version 9 is not registered");
}

TEST_F(RejectedSubmitTest, MissingInputBlob) {
  v1::TaskSpec spec = Spec();
  spec.mutable_inputs(0)->set_digest(Sha256Hex("never uploaded"));
  ExpectRejectedAndNothingStored(RequestOf(spec), absl::StatusCode::kFailedPrecondition,
                                 "has not been uploaded");
}

TEST_F(RejectedSubmitTest, QuorumAboveMaxTotal) {
  v1::TaskSpec spec = Spec(/*quorum=*/3);
  spec.mutable_policy()->set_max_total_replicas(2);
  ExpectRejectedAndNothingStored(RequestOf(spec), absl::StatusCode::kInvalidArgument,
                                 "--max-total");
}

TEST_F(RejectedSubmitTest, UnknownValidator) {
  v1::TaskSpec spec = Spec();
  spec.set_validator("fuzzy");
  ExpectRejectedAndNothingStored(RequestOf(spec), absl::StatusCode::kInvalidArgument,
                                 "known validators");
}

TEST_F(RejectedSubmitTest, EmptyRequest) {
  ExpectRejectedAndNothingStored(v1::SubmitRequest(), absl::StatusCode::kInvalidArgument,
                                 "no tasks");
}

TEST_F(RejectedSubmitTest, OneBadTaskRejectsTheWholeRequest) {
  v1::SubmitRequest request = RequestOf(Spec());
  v1::TaskSpec bad = Spec();
  bad.set_app("sieve");
  *request.add_tasks() = bad;
  ExpectRejectedAndNothingStored(request, absl::StatusCode::kNotFound, "task 2 of 2");
}

TEST_F(RejectedSubmitTest, TooManyTasksInOneRequest) {
  options_.max_tasks_per_submit = 2;
  ASSERT_NO_FATAL_FAILURE(Restart());
  v1::SubmitRequest request;
  for (int i = 0; i < 3; ++i) *request.add_tasks() = Spec();
  ExpectRejectedAndNothingStored(request, absl::StatusCode::kInvalidArgument, "smaller batches");
}

// ---- placement

TEST_F(CoordinatorTest, NoTwoReplicasOfOneTaskOnOneWorker) {
  const uint64_t task = SubmitOne(Spec(/*quorum=*/2));
  const std::string w1 = RegisterWorker("w1");
  const uint64_t r1 = FetchOne(w1);
  EXPECT_THAT(Fetch(w1, 4), IsEmpty());
  const std::string w2 = RegisterWorker("w2");
  const uint64_t r2 = FetchOne(w2);
  EXPECT_NE(r1, r2);
  const v1::TaskInfo t = Task(task);
  ASSERT_EQ(t.replicas_size(), 2);
  EXPECT_NE(t.replicas(0).worker_id(), t.replicas(1).worker_id());
}

TEST_F(CoordinatorTest, GpuMemoryOfRunningReplicasIsNotGivenAgain) {
  v1::TaskSpec spec = Spec();
  spec.mutable_resources()->set_gpu_memory_bytes(10 * kGiB);
  Submit({spec, spec});
  v1::RegisterRequest request;
  request.set_name("gpu");
  request.set_cores(4);
  request.set_memory_bytes(8 * kGiB);
  request.set_gpus(1);
  request.set_gpu_memory_bytes(16 * kGiB);
  auto w = coord_->Register(request);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(Fetch(w->worker_id()).size(), 1u);
  EXPECT_THAT(Fetch(w->worker_id()), IsEmpty());
}

// ---- lost replicas

TEST_F(CoordinatorTest, SilentWorkerLosesItsReplicasAndTheTaskRunsElsewhere) {
  const uint64_t task = SubmitOne(Spec());
  const std::string w1 = RegisterWorker("w1");
  const uint64_t r1 = FetchOne(w1);
  clock_.AdvanceMs(4'000);
  ARTEL_ASSERT_OK(Heartbeat(w1, {r1}).status());
  clock_.AdvanceMs(4'000);
  ARTEL_ASSERT_OK(coord_->Tick());
  EXPECT_EQ(Replica(task, r1).state(), v1::REPLICA_STATE_IN_PROGRESS);
  EXPECT_TRUE(Worker(w1).alive());

  clock_.AdvanceMs(options_.worker_timeout_ms + 1);
  ARTEL_ASSERT_OK(coord_->Tick());
  const v1::ReplicaInfo lost = Replica(task, r1);
  EXPECT_EQ(lost.state(), v1::REPLICA_STATE_LOST);
  EXPECT_THAT(lost.error(), HasSubstr("stopped heartbeating"));
  EXPECT_FALSE(Worker(w1).alive());
  EXPECT_EQ(Worker(w1).errors(), 1u);
  EXPECT_EQ(Task(task).state(), v1::TASK_STATE_PENDING);

  const std::string w2 = RegisterWorker("w2");
  const std::vector<v1::Assignment> got = Fetch(w2);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].task_id(), task);
  EXPECT_NE(got[0].replica_id(), r1);
}

TEST_F(CoordinatorTest, ExpiredLeaseLosesTheReplicaWhileHeartbeatsExtendIt) {
  options_.worker_timeout_ms = 60'000;  // only the lease matters here
  ASSERT_NO_FATAL_FAILURE(Restart());
  const uint64_t task = SubmitOne(Spec(1, /*lease_ms=*/2'000));
  const std::string w1 = RegisterWorker("w1");
  const uint64_t r1 = FetchOne(w1);
  clock_.AdvanceMs(1'500);
  ARTEL_ASSERT_OK(Heartbeat(w1, {r1}).status());
  clock_.AdvanceMs(1'500);  // past the first lease, within the extended one
  ARTEL_ASSERT_OK(coord_->Tick());
  EXPECT_EQ(Replica(task, r1).state(), v1::REPLICA_STATE_IN_PROGRESS);

  clock_.AdvanceMs(1'000);
  ARTEL_ASSERT_OK(Heartbeat(w1, {}).status());  // alive, but silent about r1
  ARTEL_ASSERT_OK(coord_->Tick());
  EXPECT_EQ(Replica(task, r1).state(), v1::REPLICA_STATE_LOST);
  EXPECT_THAT(Replica(task, r1).error(), HasSubstr("lease expired"));
  EXPECT_TRUE(Worker(w1).alive());
  EXPECT_NE(FetchOne(RegisterWorker("w2")), 0u);
}

TEST_F(CoordinatorTest, LateReportFromLostReplicaCountsWhileTheTaskIsNotDone) {
  const uint64_t task = SubmitOne(Spec());
  const std::string w1 = RegisterWorker("w1");
  const uint64_t r1 = FetchOne(w1);
  clock_.AdvanceMs(options_.worker_timeout_ms + 1);
  ARTEL_ASSERT_OK(coord_->Tick());
  ASSERT_EQ(Replica(task, r1).state(), v1::REPLICA_STATE_LOST);
  const std::string w2 = RegisterWorker("w2");
  const uint64_t r2 = FetchOne(w2);

  // w1 comes back: its lost replica is still useful, so it is not cancelled.
  auto hb = Heartbeat(w1, {r1});
  ASSERT_TRUE(hb.ok()) << hb.status();
  EXPECT_THAT(hb->cancel(), IsEmpty());
  ARTEL_ASSERT_OK(ReportSuccess(w1, r1));
  const v1::TaskInfo t = Task(task);
  EXPECT_EQ(t.outcome(), v1::OUTCOME_SUCCESS);
  EXPECT_EQ(t.canonical_replica(), r1);
  EXPECT_EQ(Replica(task, r1).state(), v1::REPLICA_STATE_REPORTED);
  EXPECT_EQ(Replica(task, r2).state(), v1::REPLICA_STATE_CANCELLED);
  EXPECT_EQ(Worker(w1).completed(), 1u);
  hb = Heartbeat(w2, {r2});
  ASSERT_TRUE(hb.ok()) << hb.status();
  EXPECT_THAT(hb->cancel(), Contains(r2));
}

TEST_F(CoordinatorTest, LateReportFromLostReplicaOfDoneTaskIsIgnored) {
  const uint64_t task = SubmitOne(Spec());
  const std::string w1 = RegisterWorker("w1");
  const uint64_t r1 = FetchOne(w1);
  clock_.AdvanceMs(options_.worker_timeout_ms + 1);
  ARTEL_ASSERT_OK(coord_->Tick());
  const std::string w2 = RegisterWorker("w2");
  ARTEL_ASSERT_OK(ReportSuccess(w2, FetchOne(w2), "right"));
  ASSERT_EQ(Task(task).outcome(), v1::OUTCOME_SUCCESS);

  ARTEL_ASSERT_OK(ReportSuccess(w1, r1, "late"));
  EXPECT_EQ(Replica(task, r1).state(), v1::REPLICA_STATE_LOST);
  EXPECT_EQ(Worker(w1).completed(), 0u);
  EXPECT_EQ(Task(task).outputs(0).digest(), Sha256Hex("right"));
}

TEST_F(CoordinatorTest, RepeatedReportIsNeverCountedTwice) {
  const uint64_t task = SubmitOne(Spec(/*quorum=*/2));
  const std::string w1 = RegisterWorker("w1"), w2 = RegisterWorker("w2");
  const uint64_t r1 = FetchOne(w1), r2 = FetchOne(w2);
  ARTEL_ASSERT_OK(ReportSuccess(w1, r1));
  ARTEL_ASSERT_OK(ReportSuccess(w1, r1));
  EXPECT_EQ(Worker(w1).completed(), 1u);
  EXPECT_EQ(Task(task).state(), v1::TASK_STATE_RUNNING) << "one replica made a quorum of 2";
  EXPECT_EQ(Replica(task, r1).state(), v1::REPLICA_STATE_REPORTED);

  ARTEL_ASSERT_OK(ReportSuccess(w2, r2));
  EXPECT_EQ(Task(task).outcome(), v1::OUTCOME_SUCCESS);
  ARTEL_ASSERT_OK(ReportSuccess(w2, r2));
  EXPECT_EQ(Worker(w2).completed(), 1u);
  EXPECT_EQ(coord_->Stats().success, 1u);
}

TEST_F(CoordinatorTest, ReportOfAnotherWorkersReplicaIsRefused) {
  SubmitOne(Spec());
  const std::string w1 = RegisterWorker("w1"), w2 = RegisterWorker("w2");
  const uint64_t r1 = FetchOne(w1);
  absl::Status s = ReportSuccess(w2, r1);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound) << s;
  EXPECT_EQ(Worker(w2).completed(), 0u);
}

TEST_F(CoordinatorTest, CorruptingWorkerIsOutvotedAndRecorded) {
  const uint64_t task = SubmitOne(Spec(/*quorum=*/2));
  const std::string honest1 = RegisterWorker("honest1"), cheat = RegisterWorker("cheat");
  const uint64_t r1 = FetchOne(honest1), bad = FetchOne(cheat);
  ARTEL_ASSERT_OK(ReportSuccess(honest1, r1, "2 3 5 7\n"));
  ARTEL_ASSERT_OK(ReportSuccess(cheat, bad, "2 3 5 7 9\n"));
  EXPECT_NE(Task(task).state(), v1::TASK_STATE_DONE);
  EXPECT_THAT(Fetch(cheat), IsEmpty());

  const std::string honest2 = RegisterWorker("honest2");
  ARTEL_ASSERT_OK(ReportSuccess(honest2, FetchOne(honest2), "2 3 5 7\n"));
  const v1::TaskInfo t = Task(task);
  EXPECT_EQ(t.outcome(), v1::OUTCOME_SUCCESS);
  EXPECT_EQ(t.outputs(0).digest(), Sha256Hex("2 3 5 7\n"));
  EXPECT_EQ(Replica(task, bad).validity(), v1::VALIDITY_INVALID);
  EXPECT_EQ(Worker(cheat).invalid(), 1u);
  EXPECT_EQ(Worker(honest1).invalid(), 0u);
  ASSERT_NO_FATAL_FAILURE(Restart());
  EXPECT_EQ(Worker(cheat).invalid(), 1u);
}

TEST_F(CoordinatorTest, CancelEndsTheTaskAndTellsItsWorkerToStop) {
  const uint64_t task = SubmitOne(Spec());
  const std::string w1 = RegisterWorker("w1");
  const uint64_t r1 = FetchOne(w1);
  absl::StatusOr<v1::TaskInfo> cancelled = coord_->Cancel(task);
  ASSERT_TRUE(cancelled.ok()) << cancelled.status();
  EXPECT_EQ(cancelled->state(), v1::TASK_STATE_DONE);
  EXPECT_EQ(cancelled->outcome(), v1::OUTCOME_SYSTEM_ERROR);
  EXPECT_THAT(cancelled->reason(), HasSubstr("cancelled"));
  EXPECT_EQ(Replica(task, r1).state(), v1::REPLICA_STATE_CANCELLED);

  auto hb = Heartbeat(w1, {r1});
  ASSERT_TRUE(hb.ok()) << hb.status();
  EXPECT_THAT(hb->cancel(), Contains(r1));
  EXPECT_EQ(coord_->Cancel(task).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(coord_->Cancel(999).status().code(), absl::StatusCode::kNotFound);

  ARTEL_ASSERT_OK(ReportSuccess(w1, r1));  // acknowledged, ignored
  EXPECT_EQ(Task(task).outcome(), v1::OUTCOME_SYSTEM_ERROR);
  EXPECT_EQ(Worker(w1).completed(), 0u);
  EXPECT_THAT(Fetch(RegisterWorker("w2")), IsEmpty());
}

TEST_F(CoordinatorTest, CheckpointOfLostReplicaIsWhereTheNextReplicaResumes) {
  options_.worker_timeout_ms = 60'000;
  ASSERT_NO_FATAL_FAILURE(Restart());
  const uint64_t task = SubmitOne(Spec(1, /*lease_ms=*/2'000));
  const std::string w1 = RegisterWorker("w1");
  const std::vector<v1::Assignment> first = Fetch(w1);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].checkpoint_digest(), "");
  const uint64_t r1 = first[0].replica_id();

  ARTEL_ASSERT_OK(Heartbeat(w1, {r1}, Sha256Hex("not uploaded")).status());
  EXPECT_EQ(Replica(task, r1).checkpoint_digest(), "");
  const std::string checkpoint = Put("state at step 10");
  ARTEL_ASSERT_OK(Heartbeat(w1, {r1}, checkpoint).status());
  EXPECT_EQ(Replica(task, r1).checkpoint_digest(), checkpoint);

  clock_.AdvanceMs(2'001);
  ARTEL_ASSERT_OK(coord_->Tick());
  ASSERT_EQ(Replica(task, r1).state(), v1::REPLICA_STATE_LOST);
  EXPECT_EQ(Task(task).resume_checkpoint(), checkpoint);
  ASSERT_NO_FATAL_FAILURE(Restart());
  EXPECT_EQ(Task(task).resume_checkpoint(), checkpoint);
  const std::vector<v1::Assignment> next = Fetch(RegisterWorker("w2"));
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].checkpoint_digest(), checkpoint);
}

TEST_F(CoordinatorTest, ReplicaCancelledByItsTaskEndingInATickIsNotAlsoLost) {
  options_.worker_timeout_ms = 60'000;
  ASSERT_NO_FATAL_FAILURE(Restart());
  v1::TaskSpec spec = Spec(1, /*lease_ms=*/2'000);
  spec.mutable_policy()->set_target_replicas(3);
  spec.mutable_policy()->set_max_error_replicas(1);
  const uint64_t task = SubmitOne(spec);
  for (const char* name : {"w1", "w2", "w3"}) FetchOne(RegisterWorker(name));
  clock_.AdvanceMs(2'001);
  ARTEL_ASSERT_OK(coord_->Tick());
  const v1::TaskInfo t = Task(task);
  EXPECT_EQ(t.outcome(), v1::OUTCOME_SYSTEM_ERROR);
  EXPECT_THAT(t.reason(), HasSubstr("max_error_replicas=1"));
  int lost = 0, cancelled = 0;
  for (const v1::ReplicaInfo& r : t.replicas()) {
    lost += r.state() == v1::REPLICA_STATE_LOST;
    cancelled += r.state() == v1::REPLICA_STATE_CANCELLED;
  }
  EXPECT_EQ(lost, 2);
  EXPECT_EQ(cancelled, 1);
  EXPECT_EQ(coord_->Stats().lost, 2u);
}

TEST_F(CoordinatorTest, WorkerDeclaredDeadThatFetchesWorkIsWatchedAgain) {
  const std::string w1 = RegisterWorker("w1");
  clock_.AdvanceMs(options_.worker_timeout_ms + 1);
  ARTEL_ASSERT_OK(coord_->Tick());
  ASSERT_FALSE(Worker(w1).alive());
  const uint64_t task = SubmitOne(Spec());
  const uint64_t r1 = FetchOne(w1);
  EXPECT_TRUE(Worker(w1).alive());
  clock_.AdvanceMs(options_.worker_timeout_ms + 1);
  ARTEL_ASSERT_OK(coord_->Tick());
  EXPECT_EQ(Replica(task, r1).state(), v1::REPLICA_STATE_LOST);
}

TEST_F(CoordinatorTest, WaitForEventsReportsEachStateChangeOnce) {
  const uint64_t task = SubmitOne(Spec());
  std::map<uint64_t, v1::TaskEvent> seen;
  auto events = coord_->WaitForEvents({task}, &seen, 0);
  ASSERT_TRUE(events.ok()) << events.status();
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0].state(), v1::TASK_STATE_PENDING);
  events = coord_->WaitForEvents({task}, &seen, 0);
  ASSERT_TRUE(events.ok()) << events.status();
  EXPECT_THAT(*events, IsEmpty());

  const std::string w = RegisterWorker("w");
  ARTEL_ASSERT_OK(ReportSuccess(w, FetchOne(w)));
  events = coord_->WaitForEvents({task}, &seen, 0);
  ASSERT_TRUE(events.ok()) << events.status();
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0].state(), v1::TASK_STATE_DONE);
  EXPECT_EQ((*events)[0].outcome(), v1::OUTCOME_SUCCESS);
  EXPECT_EQ(coord_->WaitForEvents({task, 999}, &seen, 0).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(CoordinatorTest, ListTasksFiltersByStateAndKeepsTheNewest) {
  const std::vector<uint64_t> ids = Submit({Spec(), Spec(), Spec()});
  ASSERT_EQ(ids.size(), 3u);
  ARTEL_ASSERT_OK(coord_->Cancel(ids[1]).status());
  v1::ListTasksRequest request;
  request.set_state(v1::TASK_STATE_PENDING);
  v1::ListTasksResponse pending = coord_->ListTasks(request);
  ASSERT_EQ(pending.tasks_size(), 2);
  EXPECT_EQ(pending.tasks(0).id(), ids[0]);
  EXPECT_EQ(pending.tasks(1).id(), ids[2]);
  request.set_limit(1);
  pending = coord_->ListTasks(request);
  ASSERT_EQ(pending.tasks_size(), 1);
  EXPECT_EQ(pending.tasks(0).id(), ids[2]);
}

TEST_F(CoordinatorTest, PassedDeadlineEndsTheTaskOnTick) {
  v1::TaskSpec spec = Spec(1, /*lease_ms=*/2'000);
  spec.mutable_policy()->set_deadline_ms(10'000);
  const uint64_t task = SubmitOne(spec);
  clock_.AdvanceMs(9'999);
  ARTEL_ASSERT_OK(coord_->Tick());
  EXPECT_NE(Task(task).state(), v1::TASK_STATE_DONE);
  clock_.AdvanceMs(1);
  ARTEL_ASSERT_OK(coord_->Tick());
  EXPECT_EQ(Task(task).outcome(), v1::OUTCOME_SYSTEM_ERROR);
  EXPECT_THAT(Task(task).reason(), HasSubstr("deadline"));
}

TEST_F(CoordinatorTest, WorkerThatRegistersAgainLosesWhatItRan) {
  const uint64_t task = SubmitOne(Spec());
  const std::string w1 = RegisterWorker("w1");
  const uint64_t r1 = FetchOne(w1);
  v1::RegisterRequest again;
  again.set_worker_id(w1);
  again.set_cores(4);
  auto response = coord_->Register(again);
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->worker_id(), w1);
  EXPECT_EQ(Replica(task, r1).state(), v1::REPLICA_STATE_LOST);
  EXPECT_THAT(Replica(task, r1).error(), HasSubstr("restarted"));
  EXPECT_EQ(Task(task).state(), v1::TASK_STATE_PENDING);
}

// ---- durability and counters

bool SameMessage(const google::protobuf::Message& a, const google::protobuf::Message& b) {
  return google::protobuf::util::MessageDifferencer::Equals(a, b);
}

TEST_F(CoordinatorTest, StateSurvivesARestartAndUnfinishedTasksResume) {
  const std::vector<uint64_t> ids = Submit({Spec(), Spec(), Spec(), Spec()});
  ASSERT_EQ(ids.size(), 4u);
  const std::string w1 = RegisterWorker("w1");
  ARTEL_ASSERT_OK(ReportSuccess(w1, FetchOne(w1)));  // ids[0] done
  const uint64_t running = FetchOne(w1);             // ids[1] running
  ARTEL_ASSERT_OK(coord_->Cancel(ids[3]).status());  // ids[3] cancelled; ids[2] pending
  std::vector<v1::TaskInfo> before;
  for (uint64_t id : ids) before.push_back(Task(id));
  const v1::JobStatus job_before = *coord_->GetJob(last_job_id_);
  const v1::WorkerInfo worker_before = Worker(w1);

  ASSERT_NO_FATAL_FAILURE(Restart());
  for (size_t i = 0; i < ids.size(); ++i) {
    EXPECT_TRUE(SameMessage(Task(ids[i]), before[i])) << "task " << ids[i] << " before:\n"
                                                      << before[i].DebugString() << "after:\n"
                                                      << Task(ids[i]).DebugString();
  }
  EXPECT_EQ(Task(ids[0]).outcome(), v1::OUTCOME_SUCCESS);
  EXPECT_EQ(Task(ids[1]).state(), v1::TASK_STATE_RUNNING);
  EXPECT_EQ(Task(ids[2]).state(), v1::TASK_STATE_PENDING);
  EXPECT_EQ(Task(ids[3]).outcome(), v1::OUTCOME_SYSTEM_ERROR);
  auto job_after = coord_->GetJob(last_job_id_);
  ASSERT_TRUE(job_after.ok()) << job_after.status();
  EXPECT_TRUE(SameMessage(*job_after, job_before)) << job_after->DebugString();
  EXPECT_EQ(Worker(w1).completed(), worker_before.completed());

  // The pending task goes to a new worker; the running replica can still report.
  const std::string w2 = RegisterWorker("w2");
  const std::vector<v1::Assignment> got = Fetch(w2, 4);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].task_id(), ids[2]);
  std::set<uint64_t> replica_ids;
  for (uint64_t id : ids) {
    const v1::TaskInfo task = Task(id);
    for (const v1::ReplicaInfo& r : task.replicas()) {
      EXPECT_TRUE(replica_ids.insert(r.id()).second) << "replica id " << r.id() << " reused";
    }
  }
  ARTEL_ASSERT_OK(ReportSuccess(w1, running));
  EXPECT_EQ(Task(ids[1]).outcome(), v1::OUTCOME_SUCCESS);
  EXPECT_EQ(SubmitOne(Spec()), ids[3] + 1) << "task ids must not be reused after a restart";
}

TEST_F(CoordinatorTest, InProgressReplicaOfSilentWorkerIsLostAfterARestart) {
  const uint64_t task = SubmitOne(Spec());
  const uint64_t r1 = FetchOne(RegisterWorker("w1"));
  ASSERT_NO_FATAL_FAILURE(Restart());
  EXPECT_EQ(Replica(task, r1).state(), v1::REPLICA_STATE_IN_PROGRESS);
  clock_.AdvanceMs(options_.worker_timeout_ms + 1);
  ARTEL_ASSERT_OK(coord_->Tick());
  EXPECT_EQ(Replica(task, r1).state(), v1::REPLICA_STATE_LOST);
  EXPECT_NE(FetchOne(RegisterWorker("w2")), 0u);
}

TEST_F(CoordinatorTest, JobCountersTrackTaskStates) {
  const std::vector<uint64_t> ids = Submit({Spec(), Spec(), Spec()});
  ASSERT_EQ(ids.size(), 3u);
  auto job = [&] {
    auto j = coord_->GetJob(last_job_id_);
    EXPECT_TRUE(j.ok()) << j.status();
    return j.ok() ? *j : v1::JobStatus();
  };
  EXPECT_EQ(job().job().task_count(), 3u);
  EXPECT_EQ(job().job().name(), "test");
  EXPECT_EQ(job().pending(), 3u);

  const std::string w = RegisterWorker("w");
  const uint64_t r = FetchOne(w);
  EXPECT_EQ(job().pending(), 2u);
  EXPECT_EQ(job().running(), 1u);

  ARTEL_ASSERT_OK(ReportSuccess(w, r));
  EXPECT_EQ(job().running(), 0u);
  EXPECT_EQ(job().done(), 1u);
  EXPECT_EQ(job().success(), 1u);

  ARTEL_ASSERT_OK(coord_->Cancel(ids[2]).status());
  EXPECT_EQ(job().pending(), 1u);
  EXPECT_EQ(job().done(), 2u);
  EXPECT_EQ(job().system_error(), 1u);

  ASSERT_NO_FATAL_FAILURE(Restart());
  const v1::JobStatus after = job();
  EXPECT_EQ(after.pending(), 1u);
  EXPECT_EQ(after.running(), 0u);
  EXPECT_EQ(after.done(), 2u);
  EXPECT_EQ(after.success(), 1u);
  EXPECT_EQ(after.system_error(), 1u);
  EXPECT_EQ(coord_->GetJob(last_job_id_ + 1).status().code(), absl::StatusCode::kNotFound);
}

// ---- tokens

TEST_F(CoordinatorTest, TokensAuthenticateWithTheirRole) {
  auto submitter_created = coord_->CreateToken(v1::ROLE_SUBMITTER);
  auto worker_created = coord_->CreateToken(v1::ROLE_WORKER);
  ASSERT_TRUE(submitter_created.ok() && worker_created.ok());
  const std::string submitter = submitter_created->token();
  const std::string worker = worker_created->token();
  EXPECT_NE(submitter, worker);
  EXPECT_EQ(*coord_->Authenticate(submitter), v1::ROLE_SUBMITTER);
  EXPECT_EQ(*coord_->Authenticate(worker), v1::ROLE_WORKER);
  EXPECT_EQ(coord_->Authenticate("artel_0000").status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(coord_->Authenticate("").status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(coord_->CreateToken(v1::ROLE_UNSPECIFIED).status().code(),
            absl::StatusCode::kInvalidArgument);

  ASSERT_NO_FATAL_FAILURE(Restart());
  auto role = coord_->Authenticate(submitter);
  ASSERT_TRUE(role.ok()) << role.status();
  EXPECT_EQ(*role, v1::ROLE_SUBMITTER);
}

TEST_F(CoordinatorTest, TokensCarryTheirOwnerAndAreListedWithoutSecrets) {
  auto named = coord_->CreateToken(v1::ROLE_WORKER, "alice@lab-1");
  ASSERT_TRUE(named.ok()) << named.status();
  EXPECT_EQ(named->info().owner(), "alice@lab-1");
  EXPECT_EQ(named->info().id(), Sha256Hex(named->token()).substr(0, 12));
  EXPECT_EQ(named->info().expires_at_ms(), 0);
  auto unnamed = coord_->CreateToken(v1::ROLE_WORKER);
  ASSERT_TRUE(unnamed.ok());
  EXPECT_EQ(unnamed->info().owner(), unnamed->info().id()) << "its own owner by default";
  EXPECT_EQ(coord_->CreateToken(v1::ROLE_WORKER, "bad owner!").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(coord_->CreateToken(v1::ROLE_WORKER, std::string(65, 'a')).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(coord_->CreateToken(v1::ROLE_WORKER, "x", -1).status().code(),
            absl::StatusCode::kInvalidArgument);
  v1::ListTokensResponse list = coord_->ListTokens();
  ASSERT_EQ(list.tokens_size(), 2);
  for (const v1::TokenInfo& t : list.tokens()) {
    EXPECT_EQ(t.id().size(), 12u);
    EXPECT_EQ(t.ShortDebugString().find(named->token()), std::string::npos);
  }
  ASSERT_NO_FATAL_FAILURE(Restart());
  v1::ListTokensResponse again = coord_->ListTokens();
  ASSERT_EQ(again.tokens_size(), 2);
  bool found = false;
  for (const v1::TokenInfo& t : again.tokens()) found |= t.owner() == "alice@lab-1";
  EXPECT_TRUE(found);
}

TEST_F(CoordinatorTest, RevokedAndExpiredTokensFailWithTheReason) {
  auto admin = coord_->EnsureAdminToken();
  ASSERT_TRUE(admin.ok() && admin->has_value());
  auto doomed = coord_->CreateToken(v1::ROLE_SUBMITTER, "bob");
  auto brief = coord_->CreateToken(v1::ROLE_WORKER, "carol", 60'000);
  ASSERT_TRUE(doomed.ok() && brief.ok());
  EXPECT_EQ(brief->info().expires_at_ms(), brief->info().created_at_ms() + 60'000);

  auto revoked = coord_->RevokeToken(doomed->info().id());
  ASSERT_TRUE(revoked.ok()) << revoked.status();
  EXPECT_GT(revoked->revoked_at_ms(), 0);
  auto denied = coord_->Authenticate(doomed->token());
  EXPECT_EQ(denied.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(denied.status().message()), HasSubstr("revoked"));
  EXPECT_THAT(std::string(denied.status().message()), HasSubstr(doomed->info().id()));
  // Revoking again keeps the first time; unknown or malformed ids are refused.
  EXPECT_EQ(coord_->RevokeToken(doomed->info().id())->revoked_at_ms(), revoked->revoked_at_ms());
  EXPECT_EQ(coord_->RevokeToken("0123456789ab").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(coord_->RevokeToken("abc").status().code(), absl::StatusCode::kInvalidArgument);

  EXPECT_EQ(*coord_->Authenticate(brief->token()), v1::ROLE_WORKER);
  clock_.AdvanceMs(60'000);
  auto expired = coord_->Authenticate(brief->token());
  EXPECT_EQ(expired.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(expired.status().message()), HasSubstr("expired"));

  // The last valid admin token cannot be revoked: the grid would have no
  // operator left.
  const std::string admin_id = Sha256Hex(**admin).substr(0, 12);
  EXPECT_EQ(coord_->RevokeToken(admin_id).status().code(), absl::StatusCode::kFailedPrecondition);
  auto second_admin = coord_->CreateToken(v1::ROLE_ADMIN, "ops");
  ASSERT_TRUE(second_admin.ok());
  EXPECT_TRUE(coord_->RevokeToken(admin_id).ok());

  // Revocation is durable.
  ASSERT_NO_FATAL_FAILURE(Restart());
  EXPECT_EQ(coord_->Authenticate(doomed->token()).status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(coord_->Authenticate(**admin).status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(*coord_->Authenticate(second_admin->token()), v1::ROLE_ADMIN);
}

// One owner's workers hold at most max_in_flight_per_owner replicas at a
// time, however many machines it brings; another owner has a cap of its own.
TEST_F(CoordinatorTest, AnOwnersWorkersHoldAtMostTheOwnersCapOfReplicas) {
  options_.max_in_flight_per_owner = 2;
  ASSERT_NO_FATAL_FAILURE(Restart());
  std::vector<v1::TaskSpec> specs(5, Spec());
  ASSERT_EQ(Submit(specs).size(), 5u);
  const std::string a1 = RegisterWorker("acme-1", "acme");
  const std::string a2 = RegisterWorker("acme-2", "acme");
  const std::string other = RegisterWorker("other", "bob");
  EXPECT_EQ(Fetch(a1, 4).size(), 2u);
  EXPECT_EQ(Fetch(a2, 4).size(), 0u) << "acme's cap is already held by acme-1";
  EXPECT_EQ(Fetch(other, 4).size(), 2u) << "bob's own cap, whatever acme holds";
  v1::ListWorkersResponse workers = coord_->ListWorkers();
  for (const v1::WorkerInfo& w : workers.workers()) {
    EXPECT_EQ(w.owner(), w.name() == "other" ? "bob" : "acme") << w.name();
  }
}

TEST_F(CoordinatorTest, EnsureAdminTokenCreatesOnlyOnce) {
  auto first = coord_->EnsureAdminToken();
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(first->has_value());
  EXPECT_EQ(*coord_->Authenticate(**first), v1::ROLE_ADMIN);
  auto second = coord_->EnsureAdminToken();
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_FALSE(second->has_value());
  ASSERT_NO_FATAL_FAILURE(Restart());
  auto third = coord_->EnsureAdminToken();
  ASSERT_TRUE(third.ok()) << third.status();
  EXPECT_FALSE(third->has_value());
}

// ---- adaptive replication and credit

v1::TaskSpec AdaptiveSpec(v1::TaskSpec spec, double spot_check) {
  spec.mutable_policy()->set_adaptive(true);
  spec.mutable_policy()->set_spot_check_rate(spot_check);
  return spec;
}

const v1::Reliability* FindReliability(const v1::WorkerInfo& w, const std::string& app) {
  for (const v1::Reliability& r : w.reliability()) {
    if (r.app() == app) return &r;
  }
  return nullptr;
}

TEST_F(CoordinatorTest, AdaptiveTaskRunsAloneOnceItsWorkerIsTrusted) {
  const std::string a = RegisterWorker("a", "alice");
  const std::string b = RegisterWorker("b", "bob");
  constexpr double kNever = 1e-12;  // a spot check rate that never draws
  std::vector<uint64_t> warmup =
      Submit(std::vector<v1::TaskSpec>(10, AdaptiveSpec(Spec(2), kNever)));
  for (uint64_t id : warmup) {
    const uint64_t ra = FetchOne(a);
    const uint64_t rb = FetchOne(b);
    clock_.AdvanceMs(1'500);
    ARTEL_ASSERT_OK(ReportSuccess(a, ra));
    ARTEL_ASSERT_OK(ReportSuccess(b, rb));
    const v1::TaskInfo t = Task(id);
    ASSERT_EQ(t.outcome(), v1::OUTCOME_SUCCESS);
    EXPECT_TRUE(t.replicated()) << "untrusted workers run a quorum";
    EXPECT_FALSE(t.unverified());
  }
  const v1::WorkerInfo worker_a = Worker(a);
  const v1::Reliability* rel = FindReliability(worker_a, "primes@1");
  ASSERT_NE(rel, nullptr);
  EXPECT_EQ(rel->consecutive_valid(), 10u);
  EXPECT_TRUE(rel->trusted());

  const uint64_t solo_task = SubmitOne(AdaptiveSpec(Spec(2), kNever));
  const uint64_t solo = FetchOne(a);
  EXPECT_TRUE(Fetch(b).empty()) << "a trusted worker's replica runs alone";
  clock_.AdvanceMs(2'000);
  ARTEL_ASSERT_OK(ReportSuccess(a, solo));
  v1::TaskInfo t = Task(solo_task);
  EXPECT_EQ(t.outcome(), v1::OUTCOME_SUCCESS);
  EXPECT_TRUE(t.unverified());
  EXPECT_EQ(t.solo_replica(), solo);

  // Credit: 10 warm-up results of 1.5 s each plus the solo one of 2 s, on
  // one core.
  v1::ListCreditResponse credit = coord_->ListCredit();
  ASSERT_GE(credit.owners_size(), 2);
  EXPECT_EQ(credit.owners(0).owner(), "alice");
  EXPECT_DOUBLE_EQ(credit.owners(0).credit(), 17.0);
  EXPECT_EQ(credit.owners(0).results(), 11u);
  EXPECT_DOUBLE_EQ(Worker(a).credit(), 17.0);

  ASSERT_NO_FATAL_FAILURE(Restart());
  EXPECT_TRUE(Task(solo_task).unverified());
  EXPECT_TRUE(FindReliability(Worker(a), "primes@1")->trusted());
  EXPECT_DOUBLE_EQ(coord_->ListCredit().owners(0).credit(), 17.0);
}

TEST_F(CoordinatorTest, ACaughtWorkersUnverifiedResultsAreReopenedAndItsCreditTakenBack) {
  const std::string liar = RegisterWorker("liar", "mallory");
  const std::string b = RegisterWorker("b", "bob");
  const std::string c = RegisterWorker("c", "carol");
  constexpr double kNever = 1e-12;
  Submit(std::vector<v1::TaskSpec>(10, AdaptiveSpec(Spec(2), kNever)));
  for (int i = 0; i < 10; ++i) {
    const uint64_t r1 = FetchOne(liar);
    const uint64_t r2 = FetchOne(b);
    clock_.AdvanceMs(1'000);
    ARTEL_ASSERT_OK(ReportSuccess(liar, r1));
    ARTEL_ASSERT_OK(ReportSuccess(b, r2));
  }
  ASSERT_TRUE(FindReliability(Worker(liar), "primes@1")->trusted());

  // Trusted now, it lies on a task nobody checks...
  const uint64_t fooled = SubmitOne(AdaptiveSpec(Spec(2), kNever));
  const uint64_t lie = FetchOne(liar);
  clock_.AdvanceMs(1'000);
  ARTEL_ASSERT_OK(ReportSuccess(liar, lie, "a wrong answer\n"));
  ASSERT_EQ(Task(fooled).outcome(), v1::OUTCOME_SUCCESS);
  ASSERT_TRUE(Task(fooled).unverified());
  EXPECT_GT(Replica(fooled, lie).credit(), 0.0);

  // ...and on one that a spot check (rate 1) catches.
  const uint64_t checked = SubmitOne(AdaptiveSpec(Spec(2), 1.0));
  const uint64_t lie2 = FetchOne(liar);
  ARTEL_ASSERT_OK(ReportSuccess(liar, lie2, "another wrong answer\n"));
  EXPECT_TRUE(Task(checked).spot_check());
  EXPECT_TRUE(Fetch(liar).empty()) << "no check on the liar's own owner";
  const uint64_t check = FetchOne(b);
  ARTEL_ASSERT_OK(ReportSuccess(b, check));
  v1::TaskInfo t = Task(checked);
  EXPECT_EQ(t.state(), v1::TASK_STATE_PENDING) << "one vote each: re-opened for a tie-break";
  EXPECT_THAT(t.reason(), HasSubstr("spot check disagreed"));
  const uint64_t tie_break = FetchOne(c);
  ARTEL_ASSERT_OK(ReportSuccess(c, tie_break));
  t = Task(checked);
  EXPECT_EQ(t.outcome(), v1::OUTCOME_SUCCESS);
  EXPECT_EQ(Replica(checked, lie2).validity(), v1::VALIDITY_INVALID);

  // Caught: its earlier unverified result is re-opened, its credit gone.
  t = Task(fooled);
  EXPECT_NE(t.state(), v1::TASK_STATE_DONE);
  EXPECT_THAT(t.reason(), HasSubstr("caught returning a wrong result"));
  EXPECT_TRUE(t.outputs().empty());
  EXPECT_EQ(t.reopened(), 1u);
  EXPECT_EQ(Replica(fooled, lie).credit(), 0.0);
  const v1::WorkerInfo caught = Worker(liar);
  const v1::Reliability* rel = FindReliability(caught, "primes@1");
  ASSERT_NE(rel, nullptr);
  EXPECT_FALSE(rel->trusted());
  EXPECT_EQ(rel->consecutive_valid(), 0u);

  // Fresh replicas of other owners decide it.
  const uint64_t r1 = FetchOne(b);
  ARTEL_ASSERT_OK(ReportSuccess(b, r1));
  const uint64_t r2 = FetchOne(c);
  ARTEL_ASSERT_OK(ReportSuccess(c, r2));
  t = Task(fooled);
  EXPECT_EQ(t.outcome(), v1::OUTCOME_SUCCESS);
  EXPECT_FALSE(t.unverified());
  EXPECT_NE(t.canonical_replica(), lie);
  EXPECT_EQ(Replica(fooled, lie).validity(), v1::VALIDITY_INVALID);
  EXPECT_EQ(Worker(liar).invalid(), 2u);
  const v1::ListCreditResponse credit = coord_->ListCredit();
  for (const v1::OwnerCredit& oc : credit.owners()) {
    if (oc.owner() == "mallory") EXPECT_EQ(oc.results(), 10u) << "only its confirmed results";
  }

  // A new adaptive task now runs a quorum even when the liar fetches first.
  const uint64_t next = SubmitOne(AdaptiveSpec(Spec(2), kNever));
  FetchOne(liar);
  EXPECT_TRUE(Task(next).replicated());
}

TEST_F(CoordinatorTest, HostErrorResetsTrust) {
  const std::string a = RegisterWorker("a", "alice");
  const std::string b = RegisterWorker("b", "bob");
  Submit(std::vector<v1::TaskSpec>(10, AdaptiveSpec(Spec(2), 0.5)));
  for (int i = 0; i < 10; ++i) {
    const uint64_t r1 = FetchOne(a);
    const uint64_t r2 = FetchOne(b);
    ARTEL_ASSERT_OK(ReportSuccess(a, r1));
    ARTEL_ASSERT_OK(ReportSuccess(b, r2));
  }
  ASSERT_TRUE(FindReliability(Worker(a), "primes@1")->trusted());
  SubmitOne(AdaptiveSpec(Spec(2), 0.5));
  v1::ReportRequest request;
  request.set_worker_id(a);
  v1::ReplicaReport* report = request.add_reports();
  report->set_replica_id(FetchOne(a));
  report->set_result(v1::RESULT_KIND_HOST_ERROR);
  report->set_error("disk full");
  ARTEL_ASSERT_OK(coord_->Report(request));
  const v1::WorkerInfo after = Worker(a);
  const v1::Reliability* rel = FindReliability(after, "primes@1");
  ASSERT_NE(rel, nullptr);
  EXPECT_FALSE(rel->trusted());
  EXPECT_EQ(rel->invalid(), 0u) << "a host error is no lie";
}

// ---- validator apps

constexpr char kCloseValidator[] = R"(#!/bin/sh
# Equivalent when the two numbers in result.txt differ by at most 5.
a=$(cat "$1/result.txt"); b=$(cat "$2/result.txt")
d=$((a - b)); [ "$d" -lt 0 ] && d=$((0 - d))
[ "$d" -le 5 ] && exit 0
exit 1
)";

TEST_F(CoordinatorTest, ValidatorAppJudgesOnTheCoordinatorsHostOutsideItsLock) {
  absl::StatusOr<std::unique_ptr<BubblewrapSandbox>> bwrap = BubblewrapSandbox::Create();
  ASSERT_TRUE(bwrap.ok()) << bwrap.status();
  sandbox_ = bwrap->get();
  ASSERT_NO_FATAL_FAILURE(Restart());
  v1::AppVersion app;
  app.set_name("close");
  app.set_version("1");
  app.set_digest(Put(kCloseValidator));
  ARTEL_ASSERT_OK(coord_->AddApp(app).status());
  const std::string a = RegisterWorker("a", "alice"), b = RegisterWorker("b", "bob"),
                    c = RegisterWorker("c", "carol");

  v1::TaskSpec spec = Spec(2);
  spec.set_validator("app:close");
  const uint64_t near = SubmitOne(spec);
  EXPECT_EQ(Task(near).spec().validator(), "app:close@1") << "pinned to the version at submit";
  const uint64_t ra = FetchOne(a), rb = FetchOne(b);
  ARTEL_ASSERT_OK(ReportSuccess(a, ra, "13\n"));
  ARTEL_ASSERT_OK(ReportSuccess(b, rb, "17\n"));
  EXPECT_NE(Task(near).state(), v1::TASK_STATE_DONE) << "decided before the app judged";
  ARTEL_ASSERT_OK(coord_->Tick());
  EXPECT_EQ(Task(near).outcome(), v1::OUTCOME_SUCCESS) << Task(near).reason();

  const uint64_t far = SubmitOne(spec);
  const uint64_t fa = FetchOne(a), fb = FetchOne(b);
  ARTEL_ASSERT_OK(ReportSuccess(a, fa, "13\n"));
  ARTEL_ASSERT_OK(ReportSuccess(b, fb, "30\n"));
  ARTEL_ASSERT_OK(coord_->Tick());
  EXPECT_NE(Task(far).state(), v1::TASK_STATE_DONE);
  const uint64_t fc = FetchOne(c);
  ARTEL_ASSERT_OK(ReportSuccess(c, fc, "14\n"));
  ARTEL_ASSERT_OK(coord_->Tick());
  const v1::TaskInfo t = Task(far);
  EXPECT_EQ(t.outcome(), v1::OUTCOME_SUCCESS) << t.reason();
  EXPECT_EQ(Replica(far, fb).validity(), v1::VALIDITY_INVALID);
  EXPECT_EQ(Replica(far, fc).validity(), v1::VALIDITY_VALID);
}

TEST_F(CoordinatorTest, ValidatorAppMustBeRegisteredAndNeedsASandbox) {
  v1::TaskSpec spec = Spec(2);
  spec.set_validator("app:nowhere");
  v1::SubmitRequest req;
  *req.add_tasks() = spec;
  absl::Status s = coord_->Submit(req).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("artel app add"));
  spec.set_validator("app:primes");  // registered, but this coordinator has no sandbox
  *req.mutable_tasks(0) = spec;
  s = coord_->Submit(req).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("bubblewrap"));
}

}  // namespace
}  // namespace artel::coordinator_test
