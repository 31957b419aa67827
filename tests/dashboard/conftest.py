"""Fixtures of the dashboard's browser test: a live artel cluster and a headless
Chromium driven by selenium.

The cluster is real processes started from the binaries in ARTEL_BIN_DIR
(default: build/bin of this checkout): a coordinator (TLS for gRPC, the
dashboard on a free loopback port, serving the page files built into the
binary) and two one-core workers of different owners, one of them with a
name full of HTML. Logs stay in pytest's temporary directory; their tails are
printed when a test fails, together with the browser's console, and a
screenshot of the failing page is saved as FAILED-<test>.png.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
BIN = Path(os.environ.get("ARTEL_BIN_DIR") or REPO / "build" / "bin")
SHOTS = Path(os.environ.get("ARTEL_SCREENSHOT_DIR")
             or tempfile.mkdtemp(prefix="artel-dashboard-screenshots-"))
ODD_NAME = '<b>beta</b> & "co"'  # a worker name the page must show as text
WINDOW = (1440, 900)


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_for(predicate, timeout: float, what: str, interval: float = 0.1):
    """Polls predicate() until it returns something truthy; fails after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


class Cluster:
    """Processes of one test cluster, all stopped by stop()."""

    def __init__(self, root: Path):
        self.root = root
        self.processes: Dict[str, subprocess.Popen] = {}
        self.logs: Dict[str, Path] = {}
        self.address = ""
        self.http = ""
        self.admin_token = ""

    @property
    def env(self) -> Dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("ARTEL_") or k in ("ARTEL_BIN_DIR", "ARTEL_SCREENSHOT_DIR",
                                                      "ARTEL_DASHBOARD_ASSETS")}
        env.update(ARTEL_COORDINATOR=self.address, ARTEL_TOKEN=self.admin_token)
        return env

    def start(self, name: str, argv: List[str]) -> subprocess.Popen:
        log = self.root / f"{name}.log"
        self.logs[name] = log
        with open(log, "wb") as out:
            # Its own session, so that stop() ends the worker's sandboxed apps too.
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=self.env,
                                    start_new_session=True)
        self.processes[name] = proc
        return proc

    def artel(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        """Runs `artel ARGS` as the admin; fails the test if it fails."""
        done = subprocess.run([str(BIN / "artel"), *args], env=self.env, capture_output=True,
                              text=True, timeout=timeout)
        if done.returncode != 0:
            raise AssertionError(f"artel {' '.join(args)} exited {done.returncode}: "
                                 f"{done.stderr.strip()}")
        return done

    def create_token(self, role: str) -> (str, str):
        """A new token of `role`: (secret, id)."""
        done = self.artel("token", "create", "--role", role)
        match = re.search(r"token ([0-9a-f]+):", done.stderr)
        assert match, f"no token id in: {done.stderr!r}"
        return done.stdout.strip(), match.group(1)

    def api(self, path: str):
        """GET path of the dashboard's API with the admin token, as JSON."""
        import urllib.request
        req = urllib.request.Request(self.http + path,
                                     headers={"Authorization": f"Bearer {self.admin_token}"})
        with urllib.request.urlopen(req, timeout=10) as res:
            return json.loads(res.read())

    def stop(self) -> None:
        for proc in reversed(list(self.processes.values())):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 10
        for proc in self.processes.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=10)

    def log_tails(self) -> str:
        return "\n".join(f"--- {name} ({path})\n{tail(path)}" for name, path in self.logs.items())


def have_ml() -> Optional[str]:
    """Why training cannot run here, or None when it can."""
    if not (BIN / "artel-ml").exists():
        return f"{BIN / 'artel-ml'} is not built"
    done = subprocess.run(["/usr/bin/python3", "-c", "import torch"], capture_output=True)
    if done.returncode != 0:
        return "python3 cannot import torch (needed to write the TorchScript model)"
    return None


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    for name in ("artel", "artel-primes"):
        assert (BIN / name).exists(), f"{BIN / name} is missing; build it or set ARTEL_BIN_DIR"
    root = tmp_path_factory.mktemp("cluster")
    c = Cluster(root)
    data = root / "coordinator"
    try:
        # --http without --http-assets: the page files built into the binary.
        # ARTEL_DASHBOARD_ASSETS=src/dashboard/web tries page edits without a
        # rebuild (a developer's shortcut; ctest never sets it).
        argv = [str(BIN / "artel"), "coordinator", "--data", str(data),
                "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"]
        if os.environ.get("ARTEL_DASHBOARD_ASSETS"):
            argv += ["--http-assets", os.environ["ARTEL_DASHBOARD_ASSETS"]]
        c.start("coordinator", argv)
        files = [data / "coordinator.addr", data / "http.addr", data / "admin.token"]

        def started():
            if c.processes["coordinator"].poll() is not None:
                raise AssertionError("the coordinator exited:\n" + tail(c.logs["coordinator"]))
            return all(f.exists() and f.read_text().strip() for f in files)

        wait_for(started, 30, "the coordinator to write its addresses")
        c.address = files[0].read_text().strip()
        c.http = files[1].read_text().strip().rstrip("/")
        c.admin_token = files[2].read_text().strip()
        for name in ("alpha", ODD_NAME):
            token, _ = c.create_token("worker")  # each its own owner
            slug = "alpha" if name == "alpha" else "beta"
            c.start(f"worker-{slug}", [str(BIN / "artel"), "worker", "--token", token,
                                       "--data", str(root / f"worker-{slug}"), "--name", name,
                                       "--cores", "1"])
        wait_for(lambda: sum(w["alive"] for w in c.api("/api/workers")["workers"]) == 2, 30,
                 "two workers to register")
        yield c
    except BaseException:
        print(c.log_tails())
        raise
    finally:
        c.stop()


@pytest.fixture(scope="session")
def browser():
    SHOTS.mkdir(parents=True, exist_ok=True)
    options = Options()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--no-first-run", "--disable-extensions", f"--window-size={WINDOW[0]},{WINDOW[1]}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver_path = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(driver, name: str) -> Path:
    """The whole page (not only the window) as SHOTS/name.png."""
    metrics = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
    size = metrics.get("cssContentSize") or metrics["contentSize"]
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": WINDOW[0], "height": max(WINDOW[1], size["height"]),
                 "scale": 1}})
    path = SHOTS / f"{name}.png"
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    driver = item.funcargs.get("browser")
    if driver is not None:
        try:
            path = screenshot(driver, f"FAILED-{item.name}")
            report.sections.append(("screenshot", str(path)))
            console = "\n".join(str(e) for e in driver.get_log("browser"))
            report.sections.append(("browser console", console or "(empty)"))
        except Exception as e:  # the browser itself may be the failure
            report.sections.append(("screenshot", f"none: {e}"))
    c = item.funcargs.get("cluster")
    if c is not None:
        report.sections.append(("cluster logs", c.log_tails()))


def pytest_terminal_summary(terminalreporter):
    if SHOTS.exists() and any(SHOTS.glob("*.png")):
        terminalreporter.write_line(f"dashboard screenshots: {SHOTS}")
