"""Plain records the client returns: snapshots of what the coordinator knows.

Each keeps the protobuf message it was made from as ``.raw`` (left out of its
repr) for fields not copied here. Enumerations become lowercase strings as the
command line prints them ("running", "success", "app_error", ...); times
become timezone-aware datetimes (None when unset); sizes are bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, List, Optional, Tuple

__all__ = ["OutputFile", "Replica", "TaskStatus", "Worker", "App", "Dataset", "Round",
           "OwnerCredit"]


def enum_name(enum_type: Any, value: int, prefix: str, default: str = "unknown") -> str:
    """"running" for TASK_STATE_RUNNING with prefix "TASK_STATE_"."""
    try:
        name = enum_type.Name(value)
    except ValueError:
        return default
    if name.endswith("UNSPECIFIED"):
        return default
    return name[len(prefix):].lower() if name.startswith(prefix) else name.lower()


def time_of(ms: int) -> Optional[datetime]:
    """A UTC datetime for milliseconds since the epoch; None for 0."""
    return datetime.fromtimestamp(ms / 1000.0, tz=timezone.utc) if ms > 0 else None


@dataclass(frozen=True)
class OutputFile:
    """One output of a task's result: its name, blob digest and size."""

    name: str
    digest: str
    size: int


@dataclass
class Replica:
    """One run of a task on one worker."""

    id: int
    worker_id: str
    owner: str
    state: str  # in_progress | reported | lost | cancelled
    result: str  # success | app_error | host_error | "" (not reported)
    validity: str  # valid | invalid | unknown
    exit_code: int
    error: str
    runtime_ms: int
    credit: float
    raw: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def from_proto(cls, r: Any) -> "Replica":
        from .v1 import artel_pb2 as pb

        return cls(
            id=r.id, worker_id=r.worker_id, owner=r.owner,
            state=enum_name(pb.ReplicaState, r.state, "REPLICA_STATE_"),
            result=enum_name(pb.ResultKind, r.result, "RESULT_KIND_", default=""),
            validity=enum_name(pb.Validity, r.validity, "VALIDITY_"),
            exit_code=r.exit_code, error=r.error, runtime_ms=r.runtime_ms, credit=r.credit,
            raw=r)


@dataclass
class TaskStatus:
    """A task as the coordinator knows it at one moment.

    ``state`` is pending, running or done; ``outcome`` is none (not finished),
    success, app_error or system_error; ``reason`` says why it ended so.
    ``outputs`` are the canonical result's files (download them with
    :meth:`artel.Task.outputs`). ``verified`` is False only for a result
    accepted from one trusted replica (adaptive replication) not yet
    confirmed by another.
    """

    id: int
    job_id: int
    app: str
    version: str
    state: str
    outcome: str
    reason: str
    outputs: List[OutputFile]
    verified: bool = field(default=True, repr=False)
    replicas: List[Replica] = field(default_factory=list, repr=False)
    created_at: Optional[datetime] = field(default=None, repr=False)
    finished_at: Optional[datetime] = field(default=None, repr=False)
    raw: Any = field(default=None, repr=False, compare=False)

    @property
    def done(self) -> bool:
        """True once the task has finished, whatever its outcome."""
        return self.state == "done"

    @property
    def ok(self) -> bool:
        """True when the task finished with a quorum of equivalent results."""
        return self.outcome == "success"

    @classmethod
    def from_proto(cls, t: Any) -> "TaskStatus":
        from .v1 import artel_pb2 as pb

        return cls(
            id=t.id, job_id=t.job_id, app=t.spec.app,
            version=t.resolved_version or t.spec.version,
            state=enum_name(pb.TaskState, t.state, "TASK_STATE_"),
            outcome=enum_name(pb.Outcome, t.outcome, "OUTCOME_", default="none"),
            reason=t.reason,
            outputs=[OutputFile(f.name, f.digest, f.size) for f in t.outputs],
            verified=not t.unverified,
            replicas=[Replica.from_proto(r) for r in t.replicas],
            created_at=time_of(t.created_at_ms), finished_at=time_of(t.finished_at_ms), raw=t)


@dataclass
class Worker:
    """A worker machine as the coordinator sees it.

    ``trusted`` lists the app versions ("NAME@VERSION") it is trusted with
    (adaptive replication); ``credit`` is in core-seconds of accepted results.
    """

    id: str
    name: str
    owner: str
    alive: bool
    cores: int
    running: int
    completed: int
    invalid: int
    errors: int
    credit: float
    memory_bytes: int = field(default=0, repr=False)
    disk_bytes: int = field(default=0, repr=False)
    gpus: int = field(default=0, repr=False)
    sandboxed: bool = field(default=True, repr=False)
    last_heartbeat: Optional[datetime] = field(default=None, repr=False)
    trusted: List[str] = field(default_factory=list, repr=False)
    raw: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def from_proto(cls, w: Any) -> "Worker":
        return cls(
            id=w.id, name=w.name, owner=w.owner, alive=w.alive, cores=w.cores,
            running=w.running, completed=w.completed, invalid=w.invalid, errors=w.errors,
            credit=w.credit, memory_bytes=w.memory_bytes, disk_bytes=w.disk_bytes, gpus=w.gpus,
            sandboxed=w.sandboxed, last_heartbeat=time_of(w.last_heartbeat_ms),
            trusted=[r.app for r in w.reliability if r.trusted], raw=w)


@dataclass
class App:
    """A registered app version."""

    name: str
    version: str
    size: int
    signed: bool
    digest: str = field(default="", repr=False)
    created_at: Optional[datetime] = field(default=None, repr=False)
    raw: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def from_proto(cls, a: Any) -> "App":
        return cls(name=a.name, version=a.version, size=a.size, signed=bool(a.signature),
                   digest=a.digest, created_at=time_of(a.created_at_ms), raw=a)


@dataclass
class Dataset:
    """A registered training data set: sample counts, shards and the shape of
    one sample of x."""

    name: str
    train_samples: int
    test_samples: int
    sample_shape: Tuple[int, ...]
    train_shards: int
    test_shards: int
    bytes: int
    created_at: Optional[datetime] = field(default=None, repr=False)
    raw: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def from_proto(cls, d: Any) -> "Dataset":
        size = sum(s.size for s in d.train) + sum(s.size for s in d.test)
        return cls(name=d.name, train_samples=d.train_samples, test_samples=d.test_samples,
                   sample_shape=tuple(d.sample_shape), train_shards=len(d.train),
                   test_shards=len(d.test), bytes=size, created_at=time_of(d.created_at_ms),
                   raw=d)


@dataclass
class Round:
    """One round of a training job.

    ``accuracy`` and ``test_loss`` are None for a round that was not
    evaluated. ``samples_per_s`` is the round's training throughput, ``bytes``
    the parameters sent down plus the updates sent up over all its tasks.
    ``utilization`` is the round's training compute divided by its wall time
    times the job's workers (None when not known; meaningful for sync and
    local rounds).
    """

    round: int
    epoch: float
    loss: float
    accuracy: Optional[float]
    samples_per_s: float
    bytes: int
    utilization: Optional[float]
    test_loss: Optional[float] = field(default=None, repr=False)
    samples: int = field(default=0, repr=False)
    compute_ms: int = field(default=0, repr=False)
    coordinator_ms: float = field(default=0.0, repr=False)
    started_at: Optional[datetime] = field(default=None, repr=False)
    finished_at: Optional[datetime] = field(default=None, repr=False)
    raw: Any = field(default=None, repr=False, compare=False)

    def __repr__(self) -> str:
        def opt(value: Optional[float], digits: int) -> str:
            return "None" if value is None else f"{value:.{digits}f}"

        return (f"Round(round={self.round}, epoch={self.epoch:.3f}, loss={self.loss:.4f}, "
                f"accuracy={opt(self.accuracy, 4)}, samples_per_s={self.samples_per_s:.0f}, "
                f"bytes={self.bytes}, utilization={opt(self.utilization, 3)})")

    @classmethod
    def from_proto(cls, r: Any, workers: int) -> "Round":
        wall_ms = r.finished_at_ms - r.started_at_ms
        utilization = None
        if r.started_at_ms > 0 and wall_ms > 0 and workers > 0 and r.compute_ms > 0:
            utilization = r.compute_ms / (wall_ms * workers)
        evaluated = r.accuracy >= 0
        return cls(
            round=r.round, epoch=r.epoch, loss=r.loss,
            accuracy=r.accuracy if evaluated else None,
            samples_per_s=r.samples_per_s, bytes=r.bytes_moved, utilization=utilization,
            test_loss=r.test_loss if evaluated else None, samples=r.samples,
            compute_ms=r.compute_ms, coordinator_ms=r.coordinator_ms,
            started_at=time_of(r.started_at_ms), finished_at=time_of(r.finished_at_ms), raw=r)


@dataclass
class OwnerCredit:
    """Core-seconds of accepted results earned by one owner's workers."""

    owner: str
    credit: float
    results: int
    workers: int

    @classmethod
    def from_proto(cls, o: Any) -> "OwnerCredit":
        return cls(owner=o.owner, credit=o.credit, results=o.results, workers=o.workers)
