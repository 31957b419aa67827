"""Training jobs: the model sent to the workers, following a job, and the
trained model that comes back.

Workers run models as TorchScript (``artel-ml``, libtorch): a
``torch.nn.Module`` is compiled with ``torch.jit.script`` here, saved in train
mode, and checked on a batch shaped like the data set's samples before
anything is uploaded. Workers train it in train mode (dropout on, batch
statistics) and evaluate and export it in eval mode; the exported model
carries the trained parameters and buffers (BatchNorm's running statistics).
"""

from __future__ import annotations

import importlib.util
import io
import os
import sys
import time
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Union

from .errors import (DeadlineExceededError, FailedPreconditionError, ModelError,
                     TrainingFailedError, UnavailableError)
from .records import Round, enum_name, time_of

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .client import Client

__all__ = ["TrainingJob", "script_model"]

ModelLike = Union["torch.nn.Module", str, "os.PathLike[str]"]

_SCRIPT_ADVICE = (
    "artel runs models as TorchScript on the workers. Make forward() scriptable: annotate "
    "arguments that are not tensors (def forward(self, x: torch.Tensor, k: int)), avoid *args "
    "and **kwargs, and Python features TorchScript lacks (numpy or other libraries inside "
    "forward, attributes set outside __init__); or compile it yourself, e.g. "
    "torch.jit.trace(model, example_batch), and pass the ScriptModule, or the path of a file "
    "saved with torch.jit.save, as the model")


def _import_torch() -> Any:
    try:
        import torch
    except ImportError as e:  # pragma: no cover - depends on the machine
        raise ModelError(f"PyTorch is needed for models ({e}); install python3-torch, or pass "
                         "the path of a TorchScript file") from None
    return torch


def _shape_text(shape: Sequence[int]) -> str:
    return "[" + ", ".join(str(int(d)) for d in shape) + "]"


def script_model(model: ModelLike, sample_shape: Optional[Sequence[int]] = None) -> bytes:
    """The TorchScript file (bytes) that workers train for `model`.

    `model` is a ``torch.nn.Module`` (compiled with ``torch.jit.script``), a
    ``torch.jit.ScriptModule``, or the path of a TorchScript file. The file is
    saved in train mode; the caller's module keeps its mode. When
    `sample_shape` is given (the data set's shape of one x sample) and PyTorch
    is present, the model is run in eval mode on a batch of two zero samples
    and must return logits of shape [2, classes].

    Raises ModelError with PyTorch's message and what to change.
    """
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise ModelError(f"model file '{path}' cannot be read ({e.strerror}); give the path "
                             "of a TorchScript file saved with torch.jit.save") from None
        if not data.startswith(b"PK\x03\x04"):
            raise ModelError(f"'{path}' is not a TorchScript file (not a zip archive); save the "
                             "model with torch.jit.script(model).save('net.pt'), not "
                             "torch.save")
        # Checked only where PyTorch is installed.
        if sample_shape is not None and importlib.util.find_spec("torch") is not None:
            _check_runs(data, sample_shape)
        return data

    torch = _import_torch()
    if not isinstance(model, torch.nn.Module):
        raise ModelError(f"model is a {type(model).__name__}; pass a torch.nn.Module, a "
                         "torch.jit.ScriptModule, or the path of a TorchScript file")
    tensors = list(model.parameters()) + list(model.buffers())
    if not tensors:
        raise ModelError("the model has no parameters to train")
    if any(t.device.type != "cpu" for t in tensors):
        import copy

        model = copy.deepcopy(model).cpu()  # workers load it on their CPUs
    was_training = model.training
    try:
        model.train()
        if isinstance(model, torch.jit.ScriptModule):
            scripted = model
        else:
            try:
                scripted = torch.jit.script(model)
            except Exception as e:  # noqa: BLE001 - torch raises many kinds
                raise ModelError(f"cannot compile the model with torch.jit.script: "
                                 f"{str(e).strip()}\n{_SCRIPT_ADVICE}") from None
        buffer = io.BytesIO()
        try:
            torch.jit.save(scripted, buffer)
        except Exception as e:  # noqa: BLE001
            raise ModelError(f"cannot save the model as TorchScript: {str(e).strip()}\n"
                             f"{_SCRIPT_ADVICE}") from None
    finally:
        model.train(was_training)
    data = buffer.getvalue()
    if sample_shape is not None:
        _check_runs(data, sample_shape)
    return data


def _check_runs(data: bytes, sample_shape: Sequence[int]) -> None:
    """Runs a fresh copy of the model (eval mode, no gradients) on a batch of
    two zero samples; ModelError unless it returns [2, classes] logits."""
    torch = _import_torch()
    try:
        copy = torch.jit.load(io.BytesIO(data), map_location="cpu")
    except Exception as e:  # noqa: BLE001
        raise ModelError(f"PyTorch cannot load the model as TorchScript: {str(e).strip()}\n"
                         "A file written by torch.save (a pickled module or state_dict) is not "
                         "TorchScript: save the model with torch.jit.script(model).save(path)") \
            from None
    batch = [2] + [int(d) for d in sample_shape]
    copy.eval()
    try:
        with torch.no_grad():
            out = copy(torch.zeros(batch))
    except Exception as e:  # noqa: BLE001
        raise ModelError(
            f"the model fails on a batch shaped like the data set's samples, x of shape "
            f"{_shape_text(batch)} (float32): {str(e).strip()}\nforward() gets x [batch, "
            f"{', '.join(str(d) for d in sample_shape)}] and must return class logits "
            "[batch, classes]") from None
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != 2 \
            or out.shape[1] < 2:
        got = _shape_text(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ModelError(f"the model returns {got} for x of shape {_shape_text(batch)}; artel "
                         "trains with the cross-entropy of class logits, so forward() must "
                         "return one tensor [batch, classes] with at least 2 classes")


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"


class TrainingJob:
    """A training job on the coordinator.

    The attributes read the latest snapshot (``raw``, a ``TrainingJob``
    protobuf); :meth:`refresh` fetches a new one and :meth:`wait` follows the
    job until it ends. Get one from :meth:`artel.Client.train`,
    :meth:`artel.Client.job` or :meth:`artel.Client.jobs`.
    """

    def __init__(self, client: "Client", raw: Any) -> None:
        self._client = client
        self.raw = raw
        self._model_bytes: Optional[bytes] = None

    # ------------------------------------------------------------ snapshot

    @property
    def id(self) -> int:
        """The job's id (``artel job show ID``)."""
        return self.raw.id

    @property
    def name(self) -> str:
        """The name given at start ("" if none)."""
        return self.raw.spec.name

    @property
    def state(self) -> str:
        """init, running, exporting, done or failed."""
        from .v1 import artel_pb2 as pb

        return enum_name(pb.TrainingState, self.raw.state, "TRAINING_STATE_")

    @property
    def done(self) -> bool:
        """True once the job is done or failed."""
        return self.state in ("done", "failed")

    @property
    def reason(self) -> str:
        """Why the job failed ("" otherwise)."""
        return self.raw.reason

    @property
    def mode(self) -> str:
        """sync, local, async or fullbatch."""
        from .v1 import artel_pb2 as pb

        return enum_name(pb.TrainMode, self.raw.spec.mode, "TRAIN_MODE_", default="sync")

    @property
    def dataset(self) -> str:
        """The name of the data set it trains on."""
        return self.raw.spec.dataset

    @property
    def spec(self) -> Any:
        """The job's settings (a ``TrainingSpec`` protobuf, defaults filled in)."""
        return self.raw.spec

    @property
    def round(self) -> int:
        """Rounds completed."""
        return self.raw.round

    @property
    def epoch(self) -> float:
        """Passes over the training set so far."""
        return self.raw.history[-1].epoch if self.raw.history else 0.0

    @property
    def accuracy(self) -> Optional[float]:
        """The latest test accuracy (a fraction), None before the first
        evaluation or without test data."""
        return self.raw.accuracy if self.raw.accuracy >= 0 else None

    @property
    def samples_seen(self) -> int:
        """Training samples processed so far."""
        return self.raw.samples_seen

    @property
    def bytes_moved(self) -> int:
        """Parameters sent down plus updates sent up, over all tasks."""
        return self.raw.bytes_moved

    @property
    def utilization(self) -> float:
        """The workers' training compute / (running time x workers), as of the
        last round closed."""
        return self.raw.compute_utilization

    @property
    def history(self) -> List[Round]:
        """Every round so far, oldest first."""
        workers = self.raw.spec.workers
        return [Round.from_proto(r, workers) for r in self.raw.history]

    @property
    def excluded(self) -> Dict[str, str]:
        """Workers excluded from the job by robust aggregation: id -> reason."""
        return {e.worker_id: e.reason for e in self.raw.excluded}

    @property
    def created_at(self) -> Any:
        """When the job was started (UTC datetime)."""
        return time_of(self.raw.created_at_ms)

    @property
    def finished_at(self) -> Any:
        """When the job ended (UTC datetime), None while it runs."""
        return time_of(self.raw.finished_at_ms)

    def __repr__(self) -> str:
        acc = "None" if self.accuracy is None else f"{self.accuracy:.4f}"
        return (f"TrainingJob(id={self.id}, state={self.state!r}, mode={self.mode!r}, "
                f"dataset={self.dataset!r}, round={self.round}, epoch={self.epoch:.3f}, "
                f"accuracy={acc})")

    # ------------------------------------------------------------ following

    def refresh(self) -> "TrainingJob":
        """Fetches the job's current state from the coordinator; returns self."""
        self.raw = self._client._get_training_job(self.id)
        return self

    def wait(self, progress: bool = True, timeout: Optional[float] = None,
             poll_interval: float = 0.5) -> "TrainingJob":
        """Follows the job until it is done; returns self.

        Args:
            progress: show a progress bar (tqdm, on stderr) with the round,
                epoch, loss, test accuracy and samples/s, and a summary at the
                end.
            timeout: give up following after this many seconds
                (DeadlineExceededError; the job keeps running).
            poll_interval: seconds between two looks at the job.

        Raises:
            TrainingFailedError: the job failed; the message says why.
            DeadlineExceededError: `timeout` passed first.
            KeyboardInterrupt: Ctrl-C stops following (after saying how to
                follow again); the job keeps running on the coordinator.

        A coordinator that restarts meanwhile is waited for.
        """
        start = time.monotonic()
        display = _Progress(self) if progress else None
        warned = False
        try:
            while True:
                try:
                    self.refresh()
                    warned = False
                except UnavailableError:
                    if display is not None and not warned:
                        display.note("coordinator unreachable; retrying (Ctrl-C stops following)")
                    warned = True
                else:
                    if display is not None:
                        display.update(self)
                    if self.done:
                        break
                if timeout is not None and time.monotonic() - start >= timeout:
                    raise DeadlineExceededError(
                        f"training job {self.id} is still {self.state} after {timeout:g} s "
                        f"(round {self.round}); it keeps running: wait for it again with "
                        f"client.job({self.id}).wait()")
                time.sleep(poll_interval)
        except KeyboardInterrupt:
            if display is not None:
                display.close()
            print(f"\nstopped following training job {self.id}; it keeps running on the "
                  f"coordinator. Follow it again with client.job({self.id}).wait() or "
                  f"`artel job wait {self.id}`", file=sys.stderr)
            raise
        if display is not None:
            display.close()
        if self.state == "failed":
            raise TrainingFailedError(
                f"training job {self.id} failed after {self.round} round(s): "
                f"{self.reason or 'no reason given'}", self)
        if display is not None:
            took = ""
            ms = self.raw.finished_at_ms - self.raw.created_at_ms
            if ms > 0 and self.raw.created_at_ms > 0:
                took = f", took {_duration(ms / 1000)}"
            acc = "-" if self.accuracy is None else f"{100 * self.accuracy:.2f}%"
            print(f"training job {self.id} done: {self.round} round(s), {self.epoch:.2f} "
                  f"epoch(s), test accuracy {acc}{took}", file=sys.stderr)
        return self

    # ------------------------------------------------------------ trained model

    def model_bytes(self) -> bytes:
        """The exported TorchScript file of a finished job (downloaded once).

        Raises FailedPreconditionError while the job runs or when it failed."""
        if self._model_bytes is not None:
            return self._model_bytes
        if not self.done:
            self.refresh()
        if self.state == "failed":
            raise FailedPreconditionError(
                f"training job {self.id} failed ({self.reason}); it has no trained model")
        if self.state != "done" or not self.raw.trained_model_digest:
            raise FailedPreconditionError(
                f"training job {self.id} is still {self.state} (round {self.round}); wait for "
                "it with job.wait() first")
        self._model_bytes = self._client.download_blob(self.raw.trained_model_digest)
        return self._model_bytes

    def model(self) -> "torch.jit.ScriptModule":
        """The trained model: the exported TorchScript module with the trained
        parameters and buffers, loaded on the CPU and in eval mode (call
        ``.train()`` to train it further).

        Raises FailedPreconditionError while the job runs or when it failed."""
        torch = _import_torch()
        module = torch.jit.load(io.BytesIO(self.model_bytes()), map_location="cpu")
        module.eval()
        return module

    def load_into(self, module: "torch.nn.Module") -> "torch.nn.Module":
        """Puts the trained parameters and buffers (BatchNorm's running
        statistics included) into `module`, the caller's own ``nn.Module`` of
        the architecture that was trained; returns it. The module keeps its
        device and its train/eval mode: call ``module.eval()`` before
        inference.

        Raises ModelError naming the missing and unexpected entries and the
        shapes that differ when `module` does not match."""
        torch = _import_torch()
        if not isinstance(module, torch.nn.Module):
            raise ModelError(f"load_into needs a torch.nn.Module, not a {type(module).__name__}")
        trained = self.model().state_dict()
        own = module.state_dict()
        # Buffers registered with persistent=False are not in the module's
        # state_dict; TorchScript's may still list them.
        transient = {n for n, _ in module.named_buffers()} - set(own)
        trained = {k: v for k, v in trained.items() if k not in transient}
        missing = sorted(set(own) - set(trained))
        unexpected = sorted(set(trained) - set(own))
        shapes = [f"{k}: trained {_shape_text(trained[k].shape)}, module "
                  f"{_shape_text(own[k].shape)}"
                  for k in sorted(set(own) & set(trained)) if own[k].shape != trained[k].shape]
        if missing or unexpected or shapes:
            parts = []
            if missing:
                parts.append("missing from the trained model: " + ", ".join(missing))
            if unexpected:
                parts.append("not in the module: " + ", ".join(unexpected))
            if shapes:
                parts.append("shapes differ: " + "; ".join(shapes))
            raise ModelError(f"the trained model of job {self.id} does not fit this module ("
                             + "; ".join(parts) + "); pass a module of the architecture that "
                             "was trained")
        module.load_state_dict(trained, strict=True)
        return module

    def export(self, path: Union[str, "os.PathLike[str]"]) -> str:
        """Writes the trained TorchScript file to `path` (open it with
        ``torch.jit.load``); returns the path."""
        path = os.fspath(path)
        data = self.model_bytes()
        tmp = path + ".part"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
        return path


class _Progress:
    """The progress display of TrainingJob.wait: a tqdm bar over the job's
    epochs (or rounds), or one printed line per round without tqdm."""

    def __init__(self, job: TrainingJob) -> None:
        spec = job.raw.spec
        self.by_rounds = spec.rounds > 0
        self.total = spec.rounds if self.by_rounds else (spec.epochs or 1)
        self.printed: Dict[int, bool] = {}
        self.bar: Any = None
        self.shown: Any = None
        self.refreshed = 0.0
        self.tty = bool(getattr(sys.stderr, "isatty", lambda: False)())
        try:
            from tqdm.auto import tqdm
        except ImportError:  # pragma: no cover - tqdm is optional
            tqdm = None
        target = f" to {100 * spec.target_accuracy:g}%" if spec.target_accuracy > 0 else ""
        desc = f"job {job.id} ({job.mode}{target})"
        if tqdm is not None:
            unit = "rounds" if self.by_rounds else "epochs"
            count = "{n:.0f}/{total:.0f}" if self.by_rounds else "{n:.2f}/{total:.0f}"
            self.bar = tqdm(total=self.total, desc=desc, file=sys.stderr, dynamic_ncols=True,
                            bar_format="{l_bar}{bar}| " + count + " " + unit
                                       + " [{elapsed}<{remaining}{postfix}]")
        else:
            print(desc, file=sys.stderr)

    def note(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr)

    def update(self, job: TrainingJob) -> None:
        history = job.raw.history
        last = history[-1] if history else None
        if self.bar is not None:
            value = job.round if self.by_rounds else (last.epoch if last else 0.0)
            self.bar.n = min(value, self.total)
            parts = [f"round {job.round}"]
            if last is not None:
                parts.append(f"loss {last.loss:.4f}")
                parts.append(f"{last.samples_per_s:.0f} samples/s")
            if job.accuracy is not None:
                parts.append(f"acc {100 * job.accuracy:.2f}%")
            if job.state not in ("running", "done"):
                parts.append(job.state)
            text = ", ".join(parts)
            # On a terminal the clock moves every second; into a file or pipe
            # only changes are written.
            now = time.monotonic()
            if (value, text) != self.shown or (self.tty and now - self.refreshed >= 1):
                self.bar.set_postfix_str(text, refresh=False)
                self.bar.refresh()
                self.shown, self.refreshed = (value, text), now
            return
        for r in history:
            seen = self.printed.get(r.round)
            if seen is None or (not seen and r.accuracy >= 0):
                acc = "-" if r.accuracy < 0 else f"{100 * r.accuracy:.2f}%"
                print(f"round {r.round:5d}  epoch {r.epoch:7.3f}  loss {r.loss:8.4f}  test acc "
                      f"{acc:>7}  {r.samples_per_s:9.0f} samples/s", file=sys.stderr)
                self.printed[r.round] = r.accuracy >= 0

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
