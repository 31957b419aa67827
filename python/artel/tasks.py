"""Tasks: handles on submitted tasks and their results."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Dict, List, Optional, Union

from .errors import FailedPreconditionError, InvalidArgumentError
from .records import TaskStatus

if TYPE_CHECKING:  # pragma: no cover
    from .client import Client

__all__ = ["Task"]


class Task:
    """A handle on one task. ``state``, ``outcome`` and ``reason`` are as of
    the last :meth:`status` or :meth:`artel.Client.wait` (None before either).
    """

    def __init__(self, client: "Client", id: int, job_id: int = 0) -> None:
        self._client = client
        self.id = int(id)
        self.job_id = int(job_id)
        self.state: Optional[str] = None
        self.outcome: Optional[str] = None
        self.reason: Optional[str] = None

    def __repr__(self) -> str:
        extra = "" if self.state is None else f", state={self.state!r}, outcome={self.outcome!r}"
        return f"Task(id={self.id}{extra})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Task) and other.id == self.id and other._client is self._client

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def ok(self) -> bool:
        """True when the task is known to have succeeded (as of the last look)."""
        return self.outcome == "success"

    def _remember(self, status: TaskStatus) -> None:
        self.job_id = status.job_id
        self.state, self.outcome, self.reason = status.state, status.outcome, status.reason

    def status(self) -> TaskStatus:
        """The task as the coordinator knows it now (state, outcome, outputs,
        replicas)."""
        status = self._client._get_task(self.id)
        self._remember(status)
        return status

    def wait(self, timeout: Optional[float] = None) -> "Task":
        """Waits until the task is done (see :meth:`artel.Client.wait`); returns self."""
        self._client.wait([self], timeout=timeout)
        return self

    def cancel(self) -> TaskStatus:
        """Cancels the task if it has not finished; returns its status."""
        status = self._client.cancel(self.id)
        self._remember(status)
        return status

    def _finished(self) -> TaskStatus:
        status = self.status()
        if status.state != "done":
            raise FailedPreconditionError(
                f"task {self.id} has not finished yet; wait for it first "
                f"(client.wait([task]) or task.wait())")
        if status.outcome == "system_error":
            raise FailedPreconditionError(f"task {self.id} has no result: {status.reason}")
        return status

    def outputs(self) -> Dict[str, bytes]:
        """The canonical result's outputs, {name: bytes} (an app's stdout and
        stderr are the outputs "stdout" and "stderr"). For an app_error
        outcome these are the failing run's outputs.

        Raises FailedPreconditionError when the task has not finished or has
        no result (system_error)."""
        status = self._finished()
        return {f.name: self._client.download_blob(f.digest) for f in status.outputs}

    def result(self, directory: Union[str, "os.PathLike[str]"]) -> List[str]:
        """Writes the canonical result's outputs as files into `directory`
        (created if needed); returns their paths."""
        status = self._finished()
        directory = os.fspath(directory)
        os.makedirs(directory, exist_ok=True)
        paths = []
        for f in status.outputs:
            if "/" in f.name or f.name in ("", ".", ".."):
                raise InvalidArgumentError(f"task {self.id} has an output named {f.name!r}, "
                                           "which is not a file name")
            path = os.path.join(directory, f.name)
            data = self._client.download_blob(f.digest)
            tmp = path + ".part"
            with open(tmp, "wb") as out:
                out.write(data)
            os.replace(tmp, path)
            paths.append(path)
        return paths
