"""Errors raised by the artel client.

Every error is an :class:`Error`. Those answered by the coordinator keep its
gRPC status code (``.code``) and its message, which says what to fix
(``str(e)``). Checks done here before anything is sent raise the same classes:
:class:`DataError` for tensors a data set cannot hold, :class:`ModelError` for
models that cannot be turned into TorchScript, :class:`InvalidArgumentError`
for other bad arguments.
"""

from __future__ import annotations

from typing import Any, Optional

import grpc


class Error(Exception):
    """Base class of every error the artel client raises.

    Attributes:
        message: what went wrong and what to do about it (also ``str(e)``).
        code: the gRPC status code (``grpc.StatusCode``) the coordinator
            answered with, or the code of the same kind for a check made on
            this side; ``None`` when no code applies.
    """

    code: Optional[grpc.StatusCode] = None

    def __init__(self, message: str, code: Optional[grpc.StatusCode] = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return self.message


class CancelledError(Error):
    """The call was cancelled."""

    code = grpc.StatusCode.CANCELLED


class UnknownError(Error):
    """The coordinator failed in a way it did not classify."""

    code = grpc.StatusCode.UNKNOWN


class InvalidArgumentError(Error):
    """An argument is wrong; the message says which and what is accepted."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class DeadlineExceededError(Error, TimeoutError):
    """A call or a wait took longer than its timeout (the work goes on)."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED


class NotFoundError(Error):
    """No such task, job, data set, app or blob."""

    code = grpc.StatusCode.NOT_FOUND


class AlreadyExistsError(Error):
    """The name is taken (e.g. a data set)."""

    code = grpc.StatusCode.ALREADY_EXISTS


class AuthError(Error):
    """The token is not valid, lacks the role the call needs, or the
    coordinator's certificate is not the one the token pins
    (UNAUTHENTICATED or PERMISSION_DENIED)."""

    code = grpc.StatusCode.UNAUTHENTICATED


class ResourceExhaustedError(Error):
    """A limit was reached (e.g. message size, replicas in flight)."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class FailedPreconditionError(Error):
    """The call does not fit the current state, e.g. asking for the result of
    a task that has not finished."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class AbortedError(Error):
    """The call was aborted; retrying may help."""

    code = grpc.StatusCode.ABORTED


class OutOfRangeError(Error):
    """A value is outside its range."""

    code = grpc.StatusCode.OUT_OF_RANGE


class UnimplementedError(Error):
    """The coordinator does not implement the call (version mismatch)."""

    code = grpc.StatusCode.UNIMPLEMENTED


class InternalError(Error):
    """The coordinator failed internally; its log says more."""

    code = grpc.StatusCode.INTERNAL


class UnavailableError(Error, ConnectionError):
    """The coordinator cannot be reached (not running, wrong address, or
    restarting)."""

    code = grpc.StatusCode.UNAVAILABLE


class DataLossError(Error):
    """Data was lost or corrupted in transit; trying again usually helps."""

    code = grpc.StatusCode.DATA_LOSS


class DataError(InvalidArgumentError):
    """Tensors given for a data set cannot be used as they are (dtype, shape,
    sample counts, values). Raised before anything is uploaded; the message
    names the tensor, its shape or dtype, and how to fix it."""


class ModelError(InvalidArgumentError):
    """A model cannot be turned into TorchScript, cannot run on the data set's
    samples, or does not match the module its weights are loaded into. Raised
    before anything is uploaded."""


class TrainingFailedError(Error):
    """A training job ended in the failed state; the message gives the
    coordinator's reason. ``job`` is the :class:`artel.TrainingJob`."""

    code = grpc.StatusCode.ABORTED

    def __init__(self, message: str, job: Any = None) -> None:
        super().__init__(message)
        self.job = job


_BY_CODE = {
    grpc.StatusCode.CANCELLED: CancelledError,
    grpc.StatusCode.UNKNOWN: UnknownError,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExistsError,
    grpc.StatusCode.PERMISSION_DENIED: AuthError,
    grpc.StatusCode.UNAUTHENTICATED: AuthError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
    grpc.StatusCode.ABORTED: AbortedError,
    grpc.StatusCode.OUT_OF_RANGE: OutOfRangeError,
    grpc.StatusCode.UNIMPLEMENTED: UnimplementedError,
    grpc.StatusCode.INTERNAL: InternalError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.DATA_LOSS: DataLossError,
}


def error_for(code: grpc.StatusCode, message: str) -> Error:
    """The :class:`Error` subclass for a gRPC status code, carrying `message`."""
    return _BY_CODE.get(code, Error)(message, code)


def from_rpc_error(error: grpc.RpcError, address: str = "") -> Error:
    """Converts a failed gRPC call into the matching :class:`Error`.

    The coordinator's message is kept as it is; a connection failure
    (UNAVAILABLE, whose text comes from gRPC itself) gets a hint on what to
    check.
    """
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    message = (error.details() if hasattr(error, "details") else None) or str(error)
    if code == grpc.StatusCode.UNAVAILABLE:
        where = f" at {address}" if address else ""
        message += (f" (is the coordinator running{where}? check the address given to "
                    "artel.connect() or ARTEL_COORDINATOR)")
    return error_for(code, message)
