"""artel: the Python client of an artel coordinator.

    import artel
    client = artel.connect()              # ARTEL_COORDINATOR, ARTEL_TOKEN
    client.add_dataset("fm", x_train, y_train, test=(x_test, y_test))
    job = client.train(model, data="fm", mode="local", workers=4, epochs=3,
                       target_accuracy=0.9)
    job.wait()                            # progress bar; Ctrl-C stops following only
    job.load_into(model)                  # trained weights and buffers
    tasks = client.submit("primes", args=["0", "1000"], quorum=2, count=100)
    client.wait(tasks)
    tasks[0].outputs()                    # {name: bytes}

See docs/PYTHON.md. PyTorch, numpy and tqdm are imported only when a call
needs them.
"""

from .client import DEFAULT_ADDRESS, Client, connect
from .errors import (AbortedError, AlreadyExistsError, AuthError, CancelledError, DataError,
                     DataLossError, DeadlineExceededError, Error, FailedPreconditionError,
                     InternalError, InvalidArgumentError, ModelError, NotFoundError,
                     OutOfRangeError, ResourceExhaustedError, TrainingFailedError,
                     UnavailableError, UnimplementedError, UnknownError)
from .records import App, Dataset, OutputFile, OwnerCredit, Replica, Round, TaskStatus, Worker
from .tasks import Task
from .training import TrainingJob

__version__ = "1.0"

__all__ = [
    "connect", "Client", "DEFAULT_ADDRESS",
    "Task", "TaskStatus", "Replica", "OutputFile", "Worker", "App", "OwnerCredit",
    "Dataset", "TrainingJob", "Round",
    "Error", "AbortedError", "AlreadyExistsError", "AuthError", "CancelledError", "DataError",
    "DataLossError", "DeadlineExceededError", "FailedPreconditionError", "InternalError",
    "InvalidArgumentError", "ModelError", "NotFoundError", "OutOfRangeError",
    "ResourceExhaustedError", "TrainingFailedError", "UnavailableError", "UnimplementedError",
    "UnknownError",
]
