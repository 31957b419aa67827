"""A real artel cluster for the Python client's tests: one coordinator (TLS,
self-signed, a random loopback port) and two workers of different owners, as
separate processes started from the binaries in ARTEL_BIN_DIR (set by ctest;
default: build/bin of this checkout). Everything is killed at the end; logs
stay in pytest's temporary directory and their tails are printed when the
cluster fails to start.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List

import pytest

import artel

REPO = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("ARTEL_BIN_DIR", REPO / "build" / "bin"))
WORKERS = 2


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass
class Cluster:
    root: Path
    address: str = ""
    admin_token: str = ""
    processes: Dict[str, subprocess.Popen] = field(default_factory=dict)
    logs: Dict[str, Path] = field(default_factory=dict)

    @property
    def env(self) -> Dict[str, str]:
        """The environment of a client command (admin token)."""
        env = {k: v for k, v in os.environ.items()
               if k not in ("ARTEL_CA", "ARTEL_TLS_FINGERPRINT", "ARTEL_INSECURE")}
        env.update(ARTEL_COORDINATOR=self.address, ARTEL_TOKEN=self.admin_token)
        return env

    def start(self, name: str, argv: List[str], env: Dict[str, str] = None) -> None:
        log = self.root / f"{name}.log"
        self.logs[name] = log
        with open(log, "wb") as out:
            # A session of its own: the worker's sandboxed apps and warm
            # executors are stopped with it.
            self.processes[name] = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, env=env or self.env,
                start_new_session=True)

    def artel(self, *args: str) -> str:
        """Runs `artel ARGS` as the admin; its stdout."""
        done = subprocess.run([str(BIN / "artel"), *args], env=self.env, capture_output=True,
                              text=True, timeout=120)
        if done.returncode != 0:
            raise AssertionError(f"artel {' '.join(args)} failed ({done.returncode}): "
                                 f"{done.stderr.strip()}")
        return done.stdout

    def stop(self) -> None:
        for proc in self.processes.values():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 5
        for proc in self.processes.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of its session
            except ProcessLookupError:
                pass
            proc.wait()

    def failure(self, what: str) -> str:
        tails = "\n".join(f"--- {name}.log\n{_tail(log)}" for name, log in self.logs.items())
        return f"{what}\n{tails}"


def _wait_for_file(path: Path, proc: subprocess.Popen, cluster: Cluster,
                   complete: Callable[[str], bool]) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(cluster.failure(f"the coordinator exited ({proc.returncode}) at start"))
        try:
            text = path.read_text().strip()
        except OSError:
            text = ""
        if complete(text):
            return text
        time.sleep(0.05)
    pytest.fail(cluster.failure(f"the coordinator wrote no {path.name} within 30 s"))


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    """A running coordinator with WORKERS workers and the app `primes`."""
    for binary in ("artel", "artel-primes"):
        if not (BIN / binary).exists():
            pytest.fail(f"{BIN / binary} is missing; build the project first (make build) or "
                        "set ARTEL_BIN_DIR")
    root = tmp_path_factory.mktemp("cluster")
    c = Cluster(root=root)
    data = root / "coordinator"
    try:
        # --http port 0: no fixed dashboard port to collide on.
        argv = [str(BIN / "artel"), "coordinator", "--data", str(data), "--listen",
                "127.0.0.1:0", "--heartbeat-interval", "500ms", "--worker-timeout", "5s",
                "--http", "127.0.0.1:0"]
        c.start("coordinator", argv, env=dict(os.environ))
        coordinator = c.processes["coordinator"]
        c.address = _wait_for_file(data / "coordinator.addr", coordinator, c,
                                   lambda t: re.fullmatch(r"127\.0\.0\.1:[1-9][0-9]*", t))
        # Served over TLS, so the token carries the certificate's pin.
        c.admin_token = _wait_for_file(data / "admin.token", coordinator, c,
                                       lambda t: re.fullmatch(r"\S+#[0-9a-f]{64}", t))
        for i in range(1, WORKERS + 1):
            # One owner per worker: a task's replicas never share an owner.
            token = c.artel("token", "create", "--role", "worker", "--owner",
                            f"owner-{i}").splitlines()[0].strip()
            c.start(f"worker-{i}", [str(BIN / "artel"), "worker", "--data", str(root / f"w{i}"),
                                    "--cores", "1", "--name", f"py-worker-{i}"],
                    env=dict(c.env, ARTEL_TOKEN=token))
        client = artel.connect(c.address, c.admin_token)
        deadline = time.monotonic() + 30
        while sum(w.alive for w in client.workers()) < WORKERS:
            if time.monotonic() > deadline:
                pytest.fail(c.failure(f"{WORKERS} workers did not register within 30 s"))
            time.sleep(0.1)
        c.artel("app", "add", "primes", "--version", "1", str(BIN / "artel-primes"))
        client.close()
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="session")
def client(cluster: Cluster) -> artel.Client:
    """A client with the admin token (its pin verifies the coordinator)."""
    with artel.connect(cluster.address, cluster.admin_token) as c:
        yield c


@pytest.fixture(scope="session")
def ml_app(cluster: Cluster, client: artel.Client) -> None:
    """The ML app artel-ml, which the coordinator registers by itself (it lies
    beside the artel binary); no `app add` step."""
    if not (BIN / "artel-ml").exists():
        pytest.fail(f"{BIN / 'artel-ml'} is missing; build the project first (make build)")
    assert any(a.name == "artel-ml" for a in client.apps()), \
        "the coordinator did not register the artel-ml beside its binary"


def pytest_report_header(config: pytest.Config) -> str:
    return f"artel binaries: {BIN}; python {sys.version.split()[0]}"
