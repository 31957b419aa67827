"""The client of an artel coordinator: tasks, data sets, training jobs.

Wraps the gRPC API (proto/artel/v1/artel.proto): ClientService for tasks,
apps, workers, data sets and training, BlobService for the bytes of inputs,
outputs, data shards and models. Every call carries the token's secret as
``authorization: Bearer SECRET``; the coordinator is trusted as
:mod:`artel._tls` describes.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import time
from typing import (Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional,
                    Sequence, Tuple, Union)

import grpc

from . import _tls
from .errors import (AlreadyExistsError, AuthError, DataError, DataLossError,
                     DeadlineExceededError, InvalidArgumentError, NotFoundError,
                     from_rpc_error)
from .records import App, Dataset, OwnerCredit, TaskStatus, Worker, enum_name
from .tasks import Task
from .training import ModelLike, TrainingJob, script_model
from .v1 import artel_pb2 as pb
from .v1 import artel_pb2_grpc as pb_grpc

__all__ = ["Client", "connect", "DEFAULT_ADDRESS"]

DEFAULT_ADDRESS = "127.0.0.1:7700"
MAX_MESSAGE_BYTES = 64 << 20
CHUNK_BYTES = 1 << 20
CALL_TIMEOUT_S = 60.0
TRANSFER_TIMEOUT_S = 600.0

PathLike = Union[str, "os.PathLike[str]"]
Blob = Union[bytes, bytearray, memoryview, PathLike]
Seconds = Union[int, float, str]
Size = Union[int, str]

_MODES = {"sync": pb.TRAIN_MODE_SYNC, "local": pb.TRAIN_MODE_LOCAL,
          "async": pb.TRAIN_MODE_ASYNC, "fullbatch": pb.TRAIN_MODE_FULLBATCH}
_STATES = {"pending": pb.TASK_STATE_PENDING, "running": pb.TASK_STATE_RUNNING,
           "done": pb.TASK_STATE_DONE}
# TrainingSpec fields that train() fills itself or takes as named arguments.
_SPEC_OWN = {"model_digest", "dataset", "mode"}


def _number_and_unit(text: str) -> Optional[Tuple[float, str]]:
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", text)
    return (float(match.group(1)), match.group(2)) if match else None


def duration_ms(value: Optional[Seconds], what: str) -> int:
    """Milliseconds for seconds (a number) or a text such as "250ms", "30s",
    "10m", "1h", "2d" (as the command line writes them); 0 for None."""
    if value is None:
        return 0
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value < 0:
            raise InvalidArgumentError(f"{what} must not be negative, got {value}")
        return int(value * 1000 + 0.5)
    parsed = _number_and_unit(str(value))
    scales = {"": 1000, "s": 1000, "ms": 1, "m": 60_000, "min": 60_000, "h": 3_600_000,
              "d": 86_400_000}
    if parsed is None or parsed[1] not in scales:
        raise InvalidArgumentError(f"{what} {value!r} is not a duration; give seconds or write "
                                   "e.g. 250ms, 30s, 10m or 1h")
    return int(parsed[0] * scales[parsed[1]] + 0.5)


def size_bytes(value: Optional[Size], what: str) -> int:
    """Bytes for a number or a text such as "512M", "4G" (binary units); 0 for None."""
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise InvalidArgumentError(f"{what} must not be negative, got {value}")
        return value
    parsed = _number_and_unit(str(value))
    unit = parsed[1].upper() if parsed else ""
    if unit.endswith("B") and len(unit) > 1:
        unit = unit[:-1]
    if unit.endswith("I") and len(unit) > 1:
        unit = unit[:-1]
    scales = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    if parsed is None or unit not in scales:
        raise InvalidArgumentError(f"{what} {value!r} is not a size; write e.g. 512M, 4G or "
                                   "1073741824")
    return int(parsed[0] * scales[unit])


def _sha256_file(path: str) -> Tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK_BYTES), b""):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def _tqdm() -> Any:
    """tqdm's progress bar class, or None without python3-tqdm (no bar then)."""
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - depends on the machine
        return None
    return tqdm


def connect(address: Optional[str] = None, token: Optional[str] = None, *,
            ca: Optional[PathLike] = None, tls_fingerprint: Optional[str] = None,
            tls_name: Optional[str] = None, insecure: Optional[bool] = None,
            timeout: float = 10.0) -> "Client":
    """Connects to a coordinator.

    Args:
        address: "host:port" [ARTEL_COORDINATOR, else 127.0.0.1:7700].
        token: an access token [ARTEL_TOKEN]. A token as the coordinator
            prints it, ``SECRET#FINGERPRINT``, also pins the coordinator's TLS
            certificate; only SECRET is sent.
        ca: trust the coordinator through this CA file (or its own
            DATA/tls/cert.pem) instead [ARTEL_CA].
        tls_fingerprint: trust exactly the certificate with this SHA-256
            (hex, printed when the coordinator starts) [ARTEL_TLS_FINGERPRINT].
        tls_name: with `ca`: the name the certificate must hold instead of
            the host dialed.
        insecure: plain TCP, for a coordinator started with --insecure
            [ARTEL_INSECURE=1].
        timeout: seconds to wait for the coordinator when checking a pinned
            certificate.

    The trust arguments win over the environment; without any, the token's
    pin is used. Exactly one way of trusting the coordinator must result.

    Raises:
        AuthError: no token, or the certificate is not the pinned one.
        InvalidArgumentError: no way (or several ways) to verify the
            coordinator; the message says which argument or variable to give.
        UnavailableError: the coordinator cannot be reached to check its
            certificate.
    """
    return Client(address, token, ca=ca, tls_fingerprint=tls_fingerprint, tls_name=tls_name,
                  insecure=insecure, timeout=timeout)


class Client:
    """A connection to an artel coordinator; see :func:`connect` for the
    arguments. Thread-safe for calls; close it (or use ``with``) to release
    the channel."""

    def __init__(self, address: Optional[str] = None, token: Optional[str] = None, *,
                 ca: Optional[PathLike] = None, tls_fingerprint: Optional[str] = None,
                 tls_name: Optional[str] = None, insecure: Optional[bool] = None,
                 timeout: float = 10.0) -> None:
        self.address: str = (address or os.environ.get("ARTEL_COORDINATOR")
                             or DEFAULT_ADDRESS).strip()
        token = (token if token is not None else os.environ.get("ARTEL_TOKEN", "")).strip()
        if not token:
            raise AuthError(
                "no token given; pass token= to artel.connect() or set ARTEL_TOKEN (the "
                "coordinator wrote an admin token to DATA/admin.token on first start; "
                "`artel token create` makes others)")
        _tls.split_address(self.address)
        trust = _tls.resolve(token, None if ca is None else os.fspath(ca), tls_fingerprint,
                             tls_name, insecure)
        self._secret = _tls.split_token(token)[0]
        self._metadata = (("authorization", "Bearer " + self._secret),)
        options = [
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 1000),
        ]
        self._channel = _tls.make_channel(self.address, trust, options, timeout)
        self._stub = pb_grpc.ClientServiceStub(self._channel)
        self._blobs = pb_grpc.BlobServiceStub(self._channel)

    def __repr__(self) -> str:
        return f"Client(address={self.address!r})"

    def close(self) -> None:
        """Closes the channel; the client cannot be used afterwards."""
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------ plumbing

    def _call(self, method: Callable[..., Any], request: Any,
              timeout: float = CALL_TIMEOUT_S) -> Any:
        try:
            return method(request, metadata=self._metadata, timeout=timeout)
        except grpc.RpcError as e:
            raise from_rpc_error(e, self.address) from None

    # ------------------------------------------------------------ blobs

    def has_blobs(self, digests: Sequence[str]) -> List[bool]:
        """Whether the coordinator stores each blob (SHA-256 hex digests)."""
        if not digests:
            return []
        resp = self._call(self._blobs.HasBlobs, pb.HasBlobsRequest(digests=list(digests)))
        if len(resp.present) != len(digests):
            raise DataLossError(f"the coordinator answered {len(resp.present)} of "
                                f"{len(digests)} blob queries; check that client and "
                                "coordinator versions match")
        return list(resp.present)

    def _upload(self, digest: str, size: int, chunks: Iterator[bytes]) -> str:
        def messages() -> Iterator[Any]:
            first = True
            for data in chunks:
                if first:
                    yield pb.UploadChunk(digest=digest, size=size, data=data)
                    first = False
                else:
                    yield pb.UploadChunk(data=data)
            if first:
                yield pb.UploadChunk(digest=digest, size=size)

        resp = self._call(self._blobs.Upload, messages(), timeout=TRANSFER_TIMEOUT_S)
        if resp.digest != digest:
            raise DataLossError(f"uploading blob {digest}: the coordinator stored "
                                f"{resp.digest}; try again")
        return digest

    def upload_blob(self, data: Blob, *, known: Optional[bool] = None) -> str:
        """Uploads bytes, or the file at a path, unless the coordinator has
        them already; returns the SHA-256 hex digest that names them.

        `known` skips the HasBlobs question when the caller already asked."""
        if isinstance(data, (bytes, bytearray, memoryview)):
            view = memoryview(data).cast("B")
            digest = hashlib.sha256(view).hexdigest()
            if known is None:
                known = self.has_blobs([digest])[0]
            if not known:
                self._upload(digest, len(view), (bytes(view[i:i + CHUNK_BYTES])
                                                 for i in range(0, len(view), CHUNK_BYTES)))
            return digest
        path = os.fspath(data)
        if not os.path.isfile(path):
            raise NotFoundError(f"'{path}' does not exist or is not a file")
        digest, size = _sha256_file(path)
        if known is None:
            known = self.has_blobs([digest])[0]
        if not known:
            with open(path, "rb") as f:
                self._upload(digest, size, iter(lambda: f.read(CHUNK_BYTES), b""))
        return digest

    def download_blob(self, digest: str) -> bytes:
        """The bytes of a stored blob, checked against its digest."""
        parts = []
        expected = None
        try:
            for chunk in self._blobs.Download(pb.DownloadRequest(digest=digest),
                                              metadata=self._metadata,
                                              timeout=TRANSFER_TIMEOUT_S):
                if expected is None:
                    expected = chunk.size
                parts.append(chunk.data)
        except grpc.RpcError as e:
            raise from_rpc_error(e, self.address) from None
        data = b"".join(parts)
        if expected is None:
            raise DataLossError(f"downloading blob {digest}: the coordinator sent no data; "
                                "try again")
        if len(data) != expected:
            raise DataLossError(f"downloading blob {digest}: received {len(data)} of {expected} "
                                "bytes; try again")
        got = hashlib.sha256(data).hexdigest()
        if got != digest:
            raise DataLossError(f"blob digest mismatch: expected {digest}, got {got}; the data "
                                "was corrupted in transit, download it again")
        return data

    # ------------------------------------------------------------ tasks

    def submit(self, app: str, args: Sequence[Any] = (),
               inputs: Optional[Mapping[str, Blob]] = None, *, count: int = 1,
               quorum: Optional[int] = None, replicas: Optional[int] = None,
               version: Optional[str] = None, validator: Optional[str] = None,
               job_name: Optional[str] = None, max_total: Optional[int] = None,
               max_errors: Optional[int] = None, lease: Optional[Seconds] = None,
               deadline: Optional[Seconds] = None, adaptive: bool = False,
               spot_check: Optional[float] = None, cores: Optional[int] = None,
               memory: Optional[Size] = None, gpu_memory: Optional[Size] = None,
               wall_time: Optional[Seconds] = None) -> List[Task]:
        """Submits `count` tasks of a registered app; returns their handles.

        Args:
            app: the app's name (see :meth:`apps`).
            args: the app's arguments; ``{i}`` in one becomes the task's index
                0..count-1.
            inputs: files the app finds in its work directory: {name: bytes,
                or the path of a file}. Each is uploaded once for all tasks.
            count: how many tasks.
            quorum: equivalent results needed [1].
            replicas: replicas started at once [quorum].
            version: the app version [newest].
            validator: "exact", "tolerance[:rtol=R,atol=A]" or
                "app:NAME[@VERSION]" [exact].
            job_name: a name for the job that groups these tasks.
            max_total: most replicas ever created [8].
            max_errors: host errors and losses tolerated [3].
            lease: silence before a replica counts as lost [30 s].
            deadline: give up on a task after this long [none].
            adaptive: adaptive replication (needs quorum >= 2).
            spot_check: with adaptive, the share of results accepted alone
                that get one more replica [0.1].
            cores, memory, gpu_memory, wall_time: per replica [1 core, 256M
                memory (also its limit), no GPU, no wall-time limit].

        Durations are seconds or texts like "30s", "10m"; sizes bytes or
        texts like "512M". Unset values take the coordinator's defaults
        (in brackets).
        """
        if isinstance(args, (str, bytes)):
            raise InvalidArgumentError(f"args is a list of strings, e.g. ['0', '1000'], not "
                                       f"{args!r}")
        if not isinstance(count, int) or count < 1:
            raise InvalidArgumentError(f"count must be at least 1, got {count!r}")
        files = []
        for name, value in (inputs or {}).items():
            if not name or "/" in name or name in (".", ".."):
                raise InvalidArgumentError(f"input name {name!r} is not a file name (no '/')")
            if isinstance(value, (str, os.PathLike)) and not os.path.isfile(value):
                raise NotFoundError(f"input file '{value}' does not exist or is not a file; "
                                    "pass bytes for contents")
            digest = self.upload_blob(value)
            size = (len(memoryview(value).cast("B"))
                    if isinstance(value, (bytes, bytearray, memoryview))
                    else os.path.getsize(os.fspath(value)))
            files.append(pb.InputFile(name=name, digest=digest, size=size))
        policy = pb.RedundancyPolicy(
            min_quorum=quorum or 0, target_replicas=replicas or 0,
            max_total_replicas=max_total or 0, max_error_replicas=max_errors or 0,
            lease_ms=duration_ms(lease, "lease"), deadline_ms=duration_ms(deadline, "deadline"),
            adaptive=bool(adaptive), spot_check_rate=spot_check or 0.0)
        resources = pb.Resources(
            cores=cores or 0, memory_bytes=size_bytes(memory, "memory"),
            gpu_memory_bytes=size_bytes(gpu_memory, "gpu_memory"),
            wall_time_ms=duration_ms(wall_time, "wall_time"))
        request = pb.SubmitRequest(job_name=job_name or "")
        texts = [str(a) for a in args]
        for i in range(count):
            spec = request.tasks.add(app=app, version=version or "", validator=validator or "")
            spec.args.extend(a.replace("{i}", str(i)) for a in texts)
            spec.inputs.extend(files)
            spec.policy.CopyFrom(policy)
            spec.resources.CopyFrom(resources)
        resp = self._call(self._stub.Submit, request)
        return [Task(self, task_id, resp.job_id) for task_id in resp.task_ids]

    def task(self, id: int) -> Task:
        """A handle on task `id` (checked to exist)."""
        task = Task(self, id)
        task.status()
        return task

    def _get_task(self, id: int) -> TaskStatus:
        return TaskStatus.from_proto(self._call(self._stub.GetTask, pb.GetTaskRequest(id=id)))

    def cancel(self, task: Union[Task, int]) -> TaskStatus:
        """Cancels a task that has not finished; returns its status."""
        task_id = task.id if isinstance(task, Task) else int(task)
        resp = self._call(self._stub.Cancel, pb.CancelRequest(id=task_id))
        return TaskStatus.from_proto(resp.task)

    def wait(self, tasks: Iterable[Union[Task, int]], timeout: Optional[float] = None,
             progress: bool = False) -> List[Task]:
        """Waits until every task is done; returns the tasks as handles, each
        with its ``state``, ``outcome`` and ``reason`` (``task.ok`` says whether
        it succeeded). Follows the coordinator's Watch stream and rides out a
        coordinator restart.

        Args:
            tasks: Task handles or task ids.
            timeout: seconds; DeadlineExceededError after it (the tasks go on).
            progress: show a tqdm bar of the tasks finished.
        """
        handles = [t if isinstance(t, Task) else Task(self, int(t)) for t in tasks]
        by_id: Dict[int, List[Task]] = {}
        for t in handles:
            by_id.setdefault(t.id, []).append(t)
        done: Dict[int, bool] = {}
        start = time.monotonic()
        tqdm = _tqdm() if progress else None
        bar = None
        if tqdm is not None:
            bar = tqdm(total=len(by_id), desc="tasks", unit="task", file=sys.stderr)
        try:
            while True:
                pending = [i for i in by_id if not done.get(i)]
                if not pending:
                    return handles
                left = None
                if timeout is not None:
                    left = timeout - (time.monotonic() - start)
                    if left <= 0:
                        raise DeadlineExceededError(
                            f"timed out waiting for tasks ({len(by_id) - len(pending)} of "
                            f"{len(by_id)} finished)")
                call = self._stub.Watch(pb.WatchRequest(ids=pending), metadata=self._metadata,
                                        timeout=left)
                try:
                    for event in call:
                        state = enum_name(pb.TaskState, event.state, "TASK_STATE_")
                        outcome = enum_name(pb.Outcome, event.outcome, "OUTCOME_", "none")
                        for t in by_id.get(event.id, ()):
                            t.state, t.outcome, t.reason = state, outcome, event.reason
                        if state == "done" and not done.get(event.id):
                            done[event.id] = True
                            if bar is not None:
                                bar.update(1)
                except grpc.RpcError as e:
                    if e.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                        finished = sum(1 for v in done.values() if v)
                        raise DeadlineExceededError(
                            f"timed out waiting for tasks ({finished} of {len(by_id)} "
                            "finished)") from None
                    if e.code() != grpc.StatusCode.UNAVAILABLE:
                        raise from_rpc_error(e, self.address) from None
                    time.sleep(0.3)  # the coordinator is restarting
                except KeyboardInterrupt:
                    call.cancel()
                    raise
        finally:
            if bar is not None:
                bar.close()

    def tasks(self, state: Optional[str] = None, limit: Optional[int] = None) -> List[TaskStatus]:
        """Recent tasks, newest first: all, or those pending, running or done
        [at most 1000]."""
        request = pb.ListTasksRequest(limit=limit or 0)
        if state is not None:
            if state not in _STATES:
                raise InvalidArgumentError(f"unknown state {state!r}; use pending, running or "
                                           "done")
            request.state = _STATES[state]
        resp = self._call(self._stub.ListTasks, request)
        return [TaskStatus.from_proto(t) for t in resp.tasks]

    def workers(self) -> List[Worker]:
        """The workers the coordinator knows, alive or not."""
        resp = self._call(self._stub.ListWorkers, pb.ListWorkersRequest())
        return [Worker.from_proto(w) for w in resp.workers]

    def credit(self) -> List[OwnerCredit]:
        """Core-seconds of accepted results per owner."""
        resp = self._call(self._stub.ListCredit, pb.ListCreditRequest())
        return [OwnerCredit.from_proto(o) for o in resp.owners]

    def apps(self) -> List[App]:
        """The registered app versions."""
        resp = self._call(self._stub.ListApps, pb.ListAppsRequest())
        return [App.from_proto(a) for a in resp.apps]

    def add_app(self, name: str, version: str, path: PathLike) -> App:
        """Uploads the executable at `path` and registers it as app `name`
        `version` (needs an admin token; unsigned: for signed apps use
        ``artel app add --sign``)."""
        digest = self.upload_blob(path)
        request = pb.AddAppRequest(app=pb.AppVersion(name=name, version=version, digest=digest))
        return App.from_proto(self._call(self._stub.AddApp, request).app)

    # ------------------------------------------------------------ data sets

    def datasets(self) -> List[Dataset]:
        """The registered training data sets."""
        resp = self._call(self._stub.ListDatasets, pb.ListDatasetsRequest())
        return [Dataset.from_proto(d) for d in resp.datasets]

    def dataset(self, name: str) -> Dataset:
        """The data set called `name`; NotFoundError if there is none."""
        for d in self.datasets():
            if d.name == name:
                return d
        raise NotFoundError(f"data set '{name}' does not exist; add it with "
                            "client.add_dataset() (client.datasets() lists them)")

    def add_dataset(self, name: str, x: Any, y: Any, test: Optional[Tuple[Any, Any]] = None,
                    shard_size: int = 2000, progress: bool = False) -> Dataset:
        """Registers a training data set, as ``artel data add --safetensors``.

        Args:
            name: the data set's name (letters, digits, '-', '_', '.').
            x: inputs, a torch tensor or numpy array [n, ...] of floats;
                float64/float16 become float32. Integer inputs (e.g. uint8
                images) are refused: convert them, e.g. ``x.float() / 255``.
            y: labels, class indices 0..C-1 [n], of any integer type (become
                int64). Float labels are accepted only when every value is a
                whole number (with a warning).
            test: optional (x_test, y_test), samples of the same shape; without
                it jobs report no test accuracy.
            shard_size: samples per shard; a local or sync task reads whole
                shards.
            progress: show a tqdm bar of the upload.

        The tensors are checked and cut into safetensors shards here (DataError,
        before anything is uploaded, names what is wrong and what to do); shards
        the coordinator has already are not sent again.
        """
        from . import _data

        if not name or len(name) > 128 or any(c in name for c in "/ \t\n"):
            raise InvalidArgumentError(f"data set name {name!r} is not allowed; use letters, "
                                       "digits, '-', '_' or '.'")
        if not isinstance(shard_size, int) or shard_size < 1:
            raise InvalidArgumentError(f"shard_size must be at least 1 sample, got "
                                       f"{shard_size!r}")
        train_x, train_y = _data.prepare_split(x, y, "train")
        splits = [("train", train_x, train_y)]
        if test is not None:
            if not isinstance(test, (tuple, list)) or len(test) != 2:
                raise DataError("test is a pair (x_test, y_test)")
            test_x, test_y = _data.prepare_split(test[0], test[1], "test")
            if test_x.shape[1:] != train_x.shape[1:]:
                raise DataError(
                    f"test samples have shape {_data.shape_text(test_x.shape[1:])} (x_test "
                    f"{_data.shape_text(test_x.shape)}) but training samples "
                    f"{_data.shape_text(train_x.shape[1:])} (x {_data.shape_text(train_x.shape)});"
                    " give test data of the same kind, reshaped like the training data")
            splits.append(("test", test_x, test_y))
        if any(d.name == name for d in self.datasets()):
            raise AlreadyExistsError(f"data set '{name}' already exists; pick another name")

        shards = {what: _data.make_shards(sx, sy, shard_size) for what, sx, sy in splits}
        refs: Dict[str, List[Any]] = {}
        digests = {what: [hashlib.sha256(data).hexdigest() for data, _ in shards[what]]
                   for what in shards}
        flat = [d for what in shards for d in digests[what]]
        present = dict(zip(flat, self.has_blobs(flat)))
        tqdm = _tqdm() if progress else None
        bar = None
        if tqdm is not None:
            todo = sum(len(data) for what in shards for (data, _), d in
                       zip(shards[what], digests[what]) if not present[d])
            bar = tqdm(total=todo, desc=f"uploading {name}", unit="B", unit_scale=True,
                       unit_divisor=1024, file=sys.stderr)
        try:
            for what in shards:
                refs[what] = []
                for (data, samples), digest in zip(shards[what], digests[what]):
                    if not present[digest]:
                        self.upload_blob(data, known=False)
                        present[digest] = True
                        if bar is not None:
                            bar.update(len(data))
                    refs[what].append(pb.ShardRef(digest=digest, samples=samples,
                                                  size=len(data)))
        finally:
            if bar is not None:
                bar.close()
        dataset = pb.Dataset(name=name, train=refs["train"], test=refs.get("test", []),
                             sample_shape=[int(d) for d in train_x.shape[1:]],
                             train_samples=int(train_x.shape[0]),
                             test_samples=int(splits[1][1].shape[0]) if test is not None else 0)
        resp = self._call(self._stub.AddDataset, pb.AddDatasetRequest(dataset=dataset))
        return Dataset.from_proto(resp.dataset)

    # ------------------------------------------------------------ training

    def train(self, model: ModelLike, data: Union[str, Dataset], *, mode: Optional[str] = None,
              workers: Optional[int] = None, epochs: Optional[int] = None,
              rounds: Optional[int] = None, target_accuracy: Optional[float] = None,
              batch_size: Optional[int] = None, lr: Optional[float] = None,
              optimizer: Optional[str] = None, local_steps: Optional[int] = None,
              compress: Optional[str] = None, aggregate: Optional[str] = None,
              eval_every: Optional[int] = None, quorum: Optional[int] = None,
              name: Optional[str] = None, check_model: bool = True,
              **more: Any) -> TrainingJob:
        """Starts a training job; returns it at once (follow it with
        :meth:`TrainingJob.wait`).

        Args:
            model: a ``torch.nn.Module`` (compiled with ``torch.jit.script``),
                a ``torch.jit.ScriptModule``, or the path of a TorchScript
                file. It maps a float batch x [b, *sample_shape] to class
                logits [b, classes]; the loss is cross-entropy.
            data: the data set (its name, or a :class:`Dataset`).
            mode: sync (data-parallel mini-batch SGD), local (H local steps
                per task, DiLoCo), async (bounded staleness) or fullbatch
                [sync].
            workers: tasks per round [2].
            epochs: stop after this many passes over the data [1 if neither
                epochs nor rounds].
            rounds: or after this many rounds.
            target_accuracy: or once test accuracy reaches this fraction
                (e.g. 0.9).
            batch_size: mini-batch per task [64].
            lr: learning rate for one task's batch [0.05 sgd/momentum, 0.001
                adam].
            optimizer: sgd, momentum or adam [momentum].
            local_steps: H, inner steps per task in local mode [64].
            compress: how updates travel: none, fp16 or int8 [none].
            aggregate: mean, trimmed-mean, median or centered-clip [mean].
            eval_every: evaluate every N rounds [automatic].
            quorum: replicas per task that must agree [1].
            name: a name for the job.
            check_model: run the model on a batch of the data set's sample
                shape before uploading it (catches shape errors early).
            **more: any other TrainingSpec field: backup, max_staleness, app,
                app_version, outer_lr, outer_momentum, inner_state, lr_scale,
                clip_radius.

        Unset values take the coordinator's defaults (in brackets).

        Raises:
            ModelError: the model cannot be compiled or does not run on the
                data set's samples (before anything is uploaded).
            NotFoundError: no such data set.
            InvalidArgumentError: an argument is out of range or unknown.
        """
        dataset_name = data.name if isinstance(data, Dataset) else data
        spec = pb.TrainingSpec(dataset=dataset_name, name=name or "")
        if mode is not None:
            if mode not in _MODES:
                raise InvalidArgumentError(f"unknown training mode {mode!r}; use sync, local, "
                                           "async or fullbatch")
            spec.mode = _MODES[mode]
        if target_accuracy is not None and not 0 < target_accuracy <= 1:
            raise InvalidArgumentError("target_accuracy is a fraction of the test set, e.g. 0.9 "
                                       f"for 90 %, not {target_accuracy!r}")
        if local_steps is not None and mode != "local":
            raise InvalidArgumentError("local_steps applies to mode='local' only")
        fields = dict(workers=workers, epochs=epochs, rounds=rounds,
                      target_accuracy=target_accuracy, batch_size=batch_size, lr=lr,
                      optimizer=optimizer, local_steps=local_steps, compress=compress,
                      aggregate=aggregate, eval_every=eval_every, quorum=quorum)
        known = {f.name for f in pb.TrainingSpec.DESCRIPTOR.fields} - _SPEC_OWN
        for key in more:
            if key not in known:
                raise InvalidArgumentError(
                    f"unknown training option {key!r}; TrainingSpec also has: "
                    + ", ".join(sorted(known - set(fields) - {"name"})))
        fields.update(more)
        for key, value in fields.items():
            if value is None:
                continue
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
                raise InvalidArgumentError(f"{key} must not be negative, got {value}")
            try:
                setattr(spec, key, value)
            except (TypeError, ValueError) as e:
                raise InvalidArgumentError(f"{key}={value!r} does not fit TrainingSpec.{key} "
                                           f"({e})") from None
        found = self.dataset(dataset_name)
        model_bytes = script_model(model, found.sample_shape if check_model else None)
        spec.model_digest = self.upload_blob(model_bytes)
        resp = self._call(self._stub.StartTraining, pb.StartTrainingRequest(spec=spec))
        return TrainingJob(self, resp)

    def _get_training_job(self, id: int) -> Any:
        return self._call(self._stub.GetTrainingJob, pb.GetTrainingJobRequest(id=id))

    def job(self, id: int) -> TrainingJob:
        """The training job `id`; NotFoundError if there is none."""
        return TrainingJob(self, self._get_training_job(int(id)))

    def jobs(self) -> List[TrainingJob]:
        """Every training job, oldest first."""
        resp = self._call(self._stub.ListTrainingJobs, pb.ListTrainingJobsRequest())
        return [TrainingJob(self, j) for j in resp.jobs]

