#include "coordinator/transitioner.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <deque>
#include <string>
#include <vector>

#include "coordinator/policy.h"
#include "coordinator/validator.h"

namespace artel {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr int64_t kCreatedMs = 1'000;
constexpr int64_t kNowMs = 5'000;

// A task and its replicas, built by hand; Run() calls Transit on them.
class TaskUnderTest {
 public:
  explicit TaskUnderTest(v1::RedundancyPolicy policy = {}) {
    task_.set_id(7);
    task_.set_state(v1::TASK_STATE_PENDING);
    task_.set_created_at_ms(kCreatedMs);
    *task_.mutable_spec()->mutable_policy() = WithDefaults(policy);
  }

  v1::ReplicaInfo& InProgress() { return Add(v1::REPLICA_STATE_IN_PROGRESS); }
  v1::ReplicaInfo& Success(const std::string& digest) {
    v1::ReplicaInfo& r = Add(v1::REPLICA_STATE_REPORTED);
    r.set_result(v1::RESULT_KIND_SUCCESS);
    v1::OutputFile* out = r.add_outputs();
    out->set_name("result.txt");
    out->set_digest(digest);
    return r;
  }
  v1::ReplicaInfo& AppError(int exit_code, const std::string& error = "") {
    v1::ReplicaInfo& r = Add(v1::REPLICA_STATE_REPORTED);
    r.set_result(v1::RESULT_KIND_APP_ERROR);
    r.set_exit_code(exit_code);
    r.set_error(error);
    return r;
  }
  v1::ReplicaInfo& HostError(const std::string& error) {
    v1::ReplicaInfo& r = Add(v1::REPLICA_STATE_REPORTED);
    r.set_result(v1::RESULT_KIND_HOST_ERROR);
    r.set_error(error);
    return r;
  }
  v1::ReplicaInfo& Lost() {
    v1::ReplicaInfo& r = Add(v1::REPLICA_STATE_LOST);
    r.set_error("lease expired without a heartbeat");
    return r;
  }

  TransitionResult Run(int64_t now_ms = kNowMs) { return RunWith(validator_, now_ms); }
  TransitionResult RunWith(const Validator& validator, int64_t now_ms = kNowMs) {
    std::vector<v1::ReplicaInfo*> ptrs;
    for (v1::ReplicaInfo& r : replicas_) ptrs.push_back(&r);
    return Transit(task_, ptrs, validator, now_ms);
  }
  TransitionResult ReopenWith(const std::string& reason) {
    std::vector<v1::ReplicaInfo*> ptrs;
    for (v1::ReplicaInfo& r : replicas_) ptrs.push_back(&r);
    return Reopen(task_, ptrs, validator_, reason, kNowMs);
  }
  TransitionResult EndWith(const std::string& reason) {
    std::vector<v1::ReplicaInfo*> ptrs;
    for (v1::ReplicaInfo& r : replicas_) ptrs.push_back(&r);
    return EndAsSystemError(task_, ptrs, reason, kNowMs);
  }

  v1::TaskInfo& task() { return task_; }

 private:
  v1::ReplicaInfo& Add(v1::ReplicaState state) {
    v1::ReplicaInfo& r = replicas_.emplace_back();
    r.set_id(replicas_.size());
    r.set_task_id(task_.id());
    r.set_worker_id("w" + std::to_string(replicas_.size()));
    r.set_state(state);
    r.set_created_at_ms(kCreatedMs);
    if (state != v1::REPLICA_STATE_IN_PROGRESS) r.set_finished_at_ms(kCreatedMs + 2'000);
    return r;
  }

  v1::TaskInfo task_;
  std::deque<v1::ReplicaInfo> replicas_;  // stable addresses
  ExactValidator validator_;
};

v1::RedundancyPolicy Policy(uint32_t quorum, uint32_t target = 0, uint32_t max_total = 0,
                            uint32_t max_error = 0) {
  v1::RedundancyPolicy p;
  p.set_min_quorum(quorum);
  p.set_target_replicas(target);
  p.set_max_total_replicas(max_total);
  p.set_max_error_replicas(max_error);
  return p;
}

TEST(Transitioner, NewTaskNeedsTargetReplicas) {
  TaskUnderTest t(Policy(2, 3));
  TransitionResult r = t.Run();
  EXPECT_EQ(r.replicas_needed, 3u);
  EXPECT_EQ(t.task().state(), v1::TASK_STATE_PENDING);
  EXPECT_EQ(t.task().outcome(), v1::OUTCOME_NONE);
}

TEST(Transitioner, ReplicasInProgressCountTowardTargetAndMakeTaskRunning) {
  TaskUnderTest t(Policy(2, 3));
  t.InProgress();
  TransitionResult r = t.Run();
  EXPECT_EQ(r.replicas_needed, 2u);
  EXPECT_TRUE(r.task_changed);
  EXPECT_EQ(t.task().state(), v1::TASK_STATE_RUNNING);
}

TEST(Transitioner, QuorumOfEquivalentResultsSucceedsAndOutvotesTheOthers) {
  TaskUnderTest t(Policy(2, 3));
  v1::ReplicaInfo& a = t.Success("d1");
  v1::ReplicaInfo& b = t.Success("d2");
  v1::ReplicaInfo& c = t.Success("d1");
  TransitionResult r = t.Run();
  EXPECT_EQ(t.task().state(), v1::TASK_STATE_DONE);
  EXPECT_EQ(t.task().outcome(), v1::OUTCOME_SUCCESS);
  EXPECT_EQ(t.task().finished_at_ms(), kNowMs);
  EXPECT_TRUE(t.task().canonical_replica() == a.id() || t.task().canonical_replica() == c.id());
  ASSERT_EQ(t.task().outputs_size(), 1);
  EXPECT_EQ(t.task().outputs(0).digest(), "d1");
  EXPECT_EQ(a.validity(), v1::VALIDITY_VALID);
  EXPECT_EQ(c.validity(), v1::VALIDITY_VALID);
  EXPECT_EQ(b.validity(), v1::VALIDITY_INVALID);
  EXPECT_THAT(r.invalid_workers, ElementsAre(b.worker_id()));
  EXPECT_EQ(r.replicas_needed, 0u);
  EXPECT_TRUE(r.task_changed);
}

TEST(Transitioner, DisagreementAsksForExactlyOneMoreReplica) {
  TaskUnderTest t(Policy(2));
  t.Success("d1");
  t.Success("d2");
  TransitionResult r = t.Run();
  EXPECT_EQ(r.replicas_needed, 1u);
  EXPECT_NE(t.task().state(), v1::TASK_STATE_DONE);
  EXPECT_THAT(r.invalid_workers, IsEmpty());

  t.InProgress();  // the tie-breaker is running: nothing more is needed
  EXPECT_EQ(t.Run().replicas_needed, 0u);
  EXPECT_EQ(t.task().state(), v1::TASK_STATE_RUNNING);
}

TEST(Transitioner, AppErrorsAlikeOnAQuorumEndAsAppErrorWithTheReason) {
  TaskUnderTest t(Policy(2));
  t.AppError(3, "division by zero");
  t.AppError(3, "division by zero");
  t.Run();
  EXPECT_EQ(t.task().state(), v1::TASK_STATE_DONE);
  EXPECT_EQ(t.task().outcome(), v1::OUTCOME_APP_ERROR);
  EXPECT_THAT(t.task().reason(), HasSubstr("exit code 3"));
  EXPECT_THAT(t.task().reason(), HasSubstr("division by zero"));
}

TEST(Transitioner, AppErrorsWithDifferentExitCodesAreNoQuorum) {
  TaskUnderTest t(Policy(2));
  t.AppError(3);
  t.AppError(4);
  TransitionResult r = t.Run();
  EXPECT_NE(t.task().state(), v1::TASK_STATE_DONE);
  EXPECT_EQ(r.replicas_needed, 1u);
}

TEST(Transitioner, HostErrorOnlyCostsAReplica) {
  TaskUnderTest t(Policy(1));
  t.HostError("sandbox could not start");
  TransitionResult r = t.Run();
  EXPECT_NE(t.task().state(), v1::TASK_STATE_DONE);
  EXPECT_EQ(r.replicas_needed, 1u);
  EXPECT_EQ(t.task().state(), v1::TASK_STATE_PENDING);
}

TEST(Transitioner, LostReplicaIsReplacedUntilMaxTotal) {
  TaskUnderTest t(Policy(1, 1, /*max_total=*/3, /*max_error=*/10));
  t.Lost();
  EXPECT_EQ(t.Run().replicas_needed, 1u);
  t.Lost();
  EXPECT_EQ(t.Run().replicas_needed, 1u);
  EXPECT_NE(t.task().state(), v1::TASK_STATE_DONE);
  t.Lost();
  t.Run();
  EXPECT_EQ(t.task().state(), v1::TASK_STATE_DONE);
  EXPECT_EQ(t.task().outcome(), v1::OUTCOME_SYSTEM_ERROR);
  EXPECT_THAT(t.task().reason(), HasSubstr("max_total_replicas=3"));
}

TEST(Transitioner, MoreHostFaultsThanMaxErrorReplicasEndAsSystemError) {
  TaskUnderTest t(Policy(1, 1, 8, /*max_error=*/2));
  t.Lost();
  t.HostError("killed by the OOM killer");
  EXPECT_EQ(t.Run().replicas_needed, 1u);
  EXPECT_NE(t.task().state(), v1::TASK_STATE_DONE);
  t.HostError("killed by the OOM killer");
  t.Run();
  EXPECT_EQ(t.task().state(), v1::TASK_STATE_DONE);
  EXPECT_EQ(t.task().outcome(), v1::OUTCOME_SYSTEM_ERROR);
  EXPECT_THAT(t.task().reason(), HasSubstr("max_error_replicas=2"));
  EXPECT_THAT(t.task().reason(), HasSubstr("OOM killer"));
}

TEST(Transitioner, MaxTotalReachedWithoutQuorumEndsAsSystemError) {
  TaskUnderTest t(Policy(2, 2, /*max_total=*/3));
  t.Success("d1");
  t.Success("d2");
  t.Success("d3");
  TransitionResult r = t.Run();
  EXPECT_EQ(r.replicas_needed, 0u);
  EXPECT_EQ(t.task().state(), v1::TASK_STATE_DONE);
  EXPECT_EQ(t.task().outcome(), v1::OUTCOME_SYSTEM_ERROR);
  EXPECT_THAT(t.task().reason(), HasSubstr("no quorum of 2"));
  EXPECT_THAT(t.task().reason(), HasSubstr("max_total_replicas=3"));
}

TEST(Transitioner, PassedDeadlineEndsAsSystemErrorAndCancelsInProgress) {
  v1::RedundancyPolicy p = Policy(1);
  p.set_deadline_ms(60'000);
  TaskUnderTest t(p);
  v1::ReplicaInfo& running = t.InProgress();
  t.Run(kCreatedMs + 59'999);
  EXPECT_NE(t.task().state(), v1::TASK_STATE_DONE);

  TransitionResult r = t.Run(kCreatedMs + 60'000);
  EXPECT_EQ(t.task().state(), v1::TASK_STATE_DONE);
  EXPECT_EQ(t.task().outcome(), v1::OUTCOME_SYSTEM_ERROR);
  EXPECT_THAT(t.task().reason(), HasSubstr("deadline"));
  EXPECT_EQ(running.state(), v1::REPLICA_STATE_CANCELLED);
  EXPECT_EQ(running.finished_at_ms(), kCreatedMs + 60'000);
  EXPECT_THAT(r.cancelled_replicas, ElementsAre(running.id()));
  EXPECT_THAT(r.changed_replicas, ElementsAre(running.id()));
}

TEST(Transitioner, InProgressReplicasAreCancelledOnceTaskSucceeds) {
  TaskUnderTest t(Policy(1, 2));
  t.Success("d1");
  v1::ReplicaInfo& running = t.InProgress();
  TransitionResult r = t.Run();
  EXPECT_EQ(t.task().outcome(), v1::OUTCOME_SUCCESS);
  EXPECT_EQ(running.state(), v1::REPLICA_STATE_CANCELLED);
  EXPECT_THAT(r.cancelled_replicas, ElementsAre(running.id()));
}

TEST(Transitioner, LateReportOnFinishedTaskIsJudgedWithoutChangingOutcome) {
  TaskUnderTest t(Policy(1, 1));
  v1::ReplicaInfo& first = t.Success("d1");
  t.Run();
  ASSERT_EQ(t.task().outcome(), v1::OUTCOME_SUCCESS);
  const v1::TaskInfo before = t.task();

  v1::ReplicaInfo& agreeing = t.Success("d1");
  v1::ReplicaInfo& differing = t.Success("d2");
  TransitionResult r = t.Run(kNowMs + 1'000);
  EXPECT_EQ(agreeing.validity(), v1::VALIDITY_VALID);
  EXPECT_EQ(differing.validity(), v1::VALIDITY_INVALID);
  EXPECT_THAT(r.invalid_workers, ElementsAre(differing.worker_id()));
  EXPECT_FALSE(r.task_changed);
  EXPECT_EQ(r.replicas_needed, 0u);
  EXPECT_EQ(t.task().outcome(), v1::OUTCOME_SUCCESS);
  EXPECT_EQ(t.task().canonical_replica(), first.id());
  EXPECT_EQ(t.task().finished_at_ms(), before.finished_at_ms());

  // Judged once: running again changes nothing.
  TransitionResult again = t.Run(kNowMs + 2'000);
  EXPECT_THAT(again.changed_replicas, IsEmpty());
  EXPECT_THAT(again.invalid_workers, IsEmpty());
}

TEST(Transitioner, LostReplicaThatReportedCountsAsResultNotAsFault) {
  TaskUnderTest t(Policy(2, 2, 8, /*max_error=*/1));
  v1::ReplicaInfo& late = t.Lost();
  late.set_state(v1::REPLICA_STATE_REPORTED);  // it reported after all
  late.set_result(v1::RESULT_KIND_SUCCESS);
  v1::OutputFile* out = late.add_outputs();
  out->set_name("result.txt");
  out->set_digest("d1");
  t.Lost();
  // One fault (within max_error=1) and one result: one more is needed.
  TransitionResult r = t.Run();
  EXPECT_NE(t.task().state(), v1::TASK_STATE_DONE);
  EXPECT_EQ(r.replicas_needed, 1u);

  t.Success("d1");
  t.Run();
  EXPECT_EQ(t.task().outcome(), v1::OUTCOME_SUCCESS);
  EXPECT_EQ(late.validity(), v1::VALIDITY_VALID);
}

TEST(Transitioner, EndAsSystemErrorCancelsRunningReplicasAndIgnoresFinishedTasks) {
  TaskUnderTest t(Policy(1));
  v1::ReplicaInfo& running = t.InProgress();
  TransitionResult r = t.EndWith("cancelled by the user");
  EXPECT_EQ(t.task().outcome(), v1::OUTCOME_SYSTEM_ERROR);
  EXPECT_EQ(t.task().reason(), "cancelled by the user");
  EXPECT_EQ(running.state(), v1::REPLICA_STATE_CANCELLED);
  EXPECT_THAT(r.cancelled_replicas, ElementsAre(running.id()));

  TransitionResult again = t.EndWith("another reason");
  EXPECT_FALSE(again.task_changed);
  EXPECT_EQ(t.task().reason(), "cancelled by the user");
}

// ---- adaptive replication

v1::RedundancyPolicy Adaptive(double spot_check = 0.1) {
  v1::RedundancyPolicy p = Policy(2);
  p.set_adaptive(true);
  p.set_spot_check_rate(spot_check);
  return p;
}

TEST(Transitioner, UndecidedAdaptiveTaskAsksForOneReplica) {
  TaskUnderTest t(Adaptive());
  EXPECT_EQ(t.Run().replicas_needed, 1u);
  t.InProgress();  // placed, but the coordinator has not decided yet
  EXPECT_EQ(t.Run().replicas_needed, 0u);
}

TEST(Transitioner, SoloSuccessIsAcceptedAloneUnverifiedWithCredit) {
  TaskUnderTest t(Adaptive());
  v1::ReplicaInfo& solo = t.Success("d1");
  t.task().set_solo_replica(solo.id());
  TransitionResult r = t.Run();
  EXPECT_EQ(t.task().outcome(), v1::OUTCOME_SUCCESS);
  EXPECT_TRUE(t.task().unverified());
  EXPECT_EQ(t.task().canonical_replica(), solo.id());
  EXPECT_EQ(solo.validity(), v1::VALIDITY_VALID);
  EXPECT_DOUBLE_EQ(solo.credit(), 2.0);  // 1 core x 2 s
  EXPECT_THAT(r.confirmed_workers, IsEmpty()) << "a result alone confirms nothing";
  EXPECT_EQ(r.replicas_needed, 0u) << "no spot check was drawn";
}

TEST(Transitioner, SoloRunningNeedsNothingMore) {
  TaskUnderTest t(Adaptive());
  t.task().set_solo_replica(t.InProgress().id());
  TransitionResult r = t.Run();
  EXPECT_EQ(r.replicas_needed, 0u);
  EXPECT_EQ(t.task().state(), v1::TASK_STATE_RUNNING);
}

TEST(Transitioner, SpotCheckThatAgreesVerifiesTheResultAndConfirmsBothWorkers) {
  TaskUnderTest t(Adaptive());
  v1::ReplicaInfo& solo = t.Success("d1");
  t.task().set_solo_replica(solo.id());
  t.task().set_spot_check(true);
  EXPECT_EQ(t.Run().replicas_needed, 1u) << "accepted, then one check replica";
  EXPECT_EQ(t.task().state(), v1::TASK_STATE_DONE);
  v1::ReplicaInfo& check = t.InProgress();
  EXPECT_EQ(t.Run().replicas_needed, 0u);
  check.set_state(v1::REPLICA_STATE_REPORTED);
  check.set_result(v1::RESULT_KIND_SUCCESS);
  check.set_finished_at_ms(kCreatedMs + 3'000);
  *check.mutable_outputs() = solo.outputs();
  TransitionResult r = t.Run();
  EXPECT_FALSE(t.task().unverified());
  EXPECT_FALSE(t.task().spot_check());
  EXPECT_EQ(check.validity(), v1::VALIDITY_VALID);
  EXPECT_DOUBLE_EQ(check.credit(), 3.0);
  EXPECT_THAT(r.confirmed_workers, ElementsAre(solo.worker_id(), check.worker_id()));
}

TEST(Transitioner, SpotCheckThatDisagreesReopensTheTaskAndAQuorumDecides) {
  TaskUnderTest t(Adaptive());
  v1::ReplicaInfo& solo = t.Success("wrong");
  t.task().set_solo_replica(solo.id());
  t.task().set_spot_check(true);
  t.Run();
  v1::ReplicaInfo& check = t.Success("right");
  TransitionResult r = t.Run();
  EXPECT_EQ(t.task().state(), v1::TASK_STATE_PENDING);
  EXPECT_EQ(t.task().outcome(), v1::OUTCOME_NONE);
  EXPECT_THAT(t.task().outputs(), IsEmpty());
  EXPECT_THAT(t.task().reason(), HasSubstr("spot check disagreed"));
  EXPECT_EQ(t.task().reopened(), 1u);
  EXPECT_TRUE(t.task().replicated());
  EXPECT_EQ(solo.credit(), 0.0) << "credit is taken back while in doubt";
  EXPECT_EQ(r.replicas_needed, 1u) << "one vote each: a third replica breaks the tie";

  t.Success("right");
  r = t.Run();
  EXPECT_EQ(t.task().outcome(), v1::OUTCOME_SUCCESS);
  EXPECT_EQ(t.task().canonical_replica(), check.id());
  EXPECT_FALSE(t.task().unverified());
  EXPECT_EQ(solo.validity(), v1::VALIDITY_INVALID);
  EXPECT_EQ(solo.credit(), 0.0);
  EXPECT_THAT(r.invalid_workers, ElementsAre(solo.worker_id()));
  EXPECT_GT(check.credit(), 0.0);
}

TEST(Transitioner, ReopenClearsTheResultAndKeepsItsVote) {
  TaskUnderTest t(Adaptive());
  v1::ReplicaInfo& solo = t.Success("d1");
  t.task().set_solo_replica(solo.id());
  t.Run();
  ASSERT_EQ(t.task().state(), v1::TASK_STATE_DONE);
  TransitionResult r = t.ReopenWith("re-validating: its worker was caught");
  EXPECT_EQ(t.task().state(), v1::TASK_STATE_PENDING);
  EXPECT_EQ(t.task().reason(), "re-validating: its worker was caught");
  EXPECT_EQ(t.task().canonical_replica(), 0u);
  EXPECT_EQ(solo.validity(), v1::VALIDITY_UNKNOWN);
  EXPECT_EQ(solo.credit(), 0.0);
  EXPECT_EQ(r.replicas_needed, 1u) << "quorum 2 with one vote in";

  // The caught worker happened to be right this time: one match confirms it.
  t.Success("d1");
  r = t.Run();
  EXPECT_EQ(t.task().outcome(), v1::OUTCOME_SUCCESS);
  EXPECT_FALSE(t.task().unverified());
  EXPECT_EQ(solo.validity(), v1::VALIDITY_VALID);
  EXPECT_EQ(r.confirmed_workers.size(), 2u);
}

TEST(Transitioner, ReopenIgnoresAnUnfinishedTask) {
  TaskUnderTest t(Adaptive());
  t.InProgress();
  TransitionResult r = t.ReopenWith("why");
  EXPECT_FALSE(r.task_changed);
  EXPECT_EQ(t.task().reopened(), 0u);
}

TEST(Transitioner, SoloHostFaultMakesTheTaskUndecidedAgain) {
  TaskUnderTest t(Adaptive());
  t.task().set_solo_replica(t.Lost().id());
  TransitionResult r = t.Run();
  EXPECT_EQ(t.task().solo_replica(), 0u);
  EXPECT_FALSE(t.task().replicated());
  EXPECT_EQ(r.replicas_needed, 1u);
}

TEST(Transitioner, SoloAppErrorAsksAQuorumInsteadOfFailingAlone) {
  TaskUnderTest t(Adaptive());
  t.task().set_solo_replica(t.AppError(3).id());
  TransitionResult r = t.Run();
  EXPECT_NE(t.task().state(), v1::TASK_STATE_DONE);
  EXPECT_TRUE(t.task().replicated());
  EXPECT_EQ(r.replicas_needed, 1u);
  t.AppError(3);
  t.Run();
  EXPECT_EQ(t.task().outcome(), v1::OUTCOME_APP_ERROR);
}

TEST(Transitioner, ReplicatedAdaptiveTaskConfirmsTheAgreeingWorkers) {
  TaskUnderTest t(Adaptive());
  t.task().set_replicated(true);
  EXPECT_EQ(t.Run().replicas_needed, 2u);
  v1::ReplicaInfo& a = t.Success("d1");
  v1::ReplicaInfo& b = t.Success("d1");
  TransitionResult r = t.Run();
  EXPECT_EQ(t.task().outcome(), v1::OUTCOME_SUCCESS);
  EXPECT_FALSE(t.task().unverified());
  EXPECT_THAT(r.confirmed_workers, ElementsAre(a.worker_id(), b.worker_id()));
}

TEST(Transitioner, LateMatchingReportIsValidButEarnsNoCredit) {
  TaskUnderTest t(Policy(1, 2));
  t.Success("d1");
  v1::ReplicaInfo& late = t.InProgress();
  t.Run();
  ASSERT_EQ(t.task().outcome(), v1::OUTCOME_SUCCESS);
  late.set_state(v1::REPLICA_STATE_REPORTED);
  late.set_result(v1::RESULT_KIND_SUCCESS);
  late.add_outputs()->set_digest("d1");
  late.mutable_outputs(0)->set_name("result.txt");
  t.Run();
  EXPECT_EQ(late.validity(), v1::VALIDITY_VALID);
  EXPECT_EQ(late.credit(), 0.0);
}

TEST(Transitioner, CreditIsCoresTimesSecondsCappedByTheWallTimeLimit) {
  v1::TaskInfo task;
  task.mutable_spec()->mutable_resources()->set_cores(4);
  v1::ReplicaInfo r;
  r.set_created_at_ms(10'000);
  r.set_finished_at_ms(15'000);
  EXPECT_DOUBLE_EQ(CreditFor(task, r), 20.0);
  task.mutable_spec()->mutable_resources()->set_wall_time_ms(2'000);
  EXPECT_DOUBLE_EQ(CreditFor(task, r), 8.0);
}

// ---- validator apps

TEST(Transitioner, PairsAnAppHasNotJudgedYetHoldTheDecision) {
  TaskUnderTest t(Policy(2));
  Verdicts verdicts;
  AppVerdictValidator app("app:close@1", verdicts);
  v1::ReplicaInfo& a = t.Success("d1");
  v1::ReplicaInfo& b = t.Success("d2");
  TransitionResult r = t.RunWith(app);
  EXPECT_NE(t.task().state(), v1::TASK_STATE_DONE);
  EXPECT_EQ(r.replicas_needed, 0u) << "no new replica while a verdict is due";
  EXPECT_THAT(r.pending_validations, ElementsAre(VerdictKey(a.id(), b.id())));

  verdicts[VerdictKey(a.id(), b.id())] = true;
  r = t.RunWith(app);
  EXPECT_EQ(t.task().outcome(), v1::OUTCOME_SUCCESS);
  EXPECT_THAT(r.pending_validations, IsEmpty());
  EXPECT_EQ(b.validity(), v1::VALIDITY_VALID);
}

TEST(Transitioner, AnAppSayingDifferentAsksForAnotherReplica) {
  TaskUnderTest t(Policy(2));
  Verdicts verdicts;
  AppVerdictValidator app("app:close@1", verdicts);
  v1::ReplicaInfo& a = t.Success("d1");
  v1::ReplicaInfo& b = t.Success("d2");
  verdicts[VerdictKey(a.id(), b.id())] = false;
  TransitionResult r = t.RunWith(app);
  EXPECT_THAT(r.pending_validations, IsEmpty());
  EXPECT_EQ(r.replicas_needed, 1u);
}

TEST(Transitioner, IdenticalOutputsNeedNoVerdict) {
  TaskUnderTest t(Policy(2));
  Verdicts verdicts;
  AppVerdictValidator app("app:close@1", verdicts);
  t.Success("d1");
  t.Success("d1");
  TransitionResult r = t.RunWith(app);
  EXPECT_THAT(r.pending_validations, IsEmpty());
  EXPECT_EQ(t.task().outcome(), v1::OUTCOME_SUCCESS);
}

}  // namespace
}  // namespace artel
