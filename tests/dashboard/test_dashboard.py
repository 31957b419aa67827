"""The coordinator's web dashboard in a real browser.

Every page is opened in headless Chromium against a live cluster (conftest.py)
and checked as rendered after its scripts ran: real workers, tasks with their
replicas and output previews, training jobs with their curves, a curve that
grows while a job runs without a reload, and the coordinator's error messages
for a wrong, worker or revoked token and for unknown ids. Each page is saved
as a PNG under ARTEL_SCREENSHOT_DIR.

Runs in file order: the tests share one browser and one cluster.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By

from conftest import BIN, ODD_NAME, have_ml, screenshot, wait_for

PAGE_TIMEOUT = 30      # s: a page shows its data
POLL_S = 2.0           # the page's polling interval
PRIMES = [(i * 1000, i * 1000 + 500) for i in range(4)]   # quorum-1 tasks: LO HI
QUORUM2_TASKS = 11     # enough confirmed results for both workers to become trusted
SHORT_ROUNDS = 6


def primes_in(lo: int, hi: int) -> int:
    sieve = bytearray([1]) * max(hi, 2)
    sieve[0:2] = b"\0\0"
    for n in range(2, int(hi ** 0.5) + 1):
        if sieve[n]:
            sieve[n * n::n] = bytearray(len(sieve[n * n::n]))
    return sum(sieve[lo:hi])


# ------------------------------------------------------------------ the grid


@pytest.fixture(scope="module")
def primes_tasks(cluster):
    """Task ids of the quorum-1 primes tasks, all done; plus quorum-2 tasks
    that give both workers a streak and trust for primes@1."""
    cluster.artel("app", "add", "primes", "--version", "1", str(BIN / "artel-primes"))
    done = cluster.artel("submit", "--app", "primes", "--arg", "{i}000", "--arg", "{i}500",
                         "--count", str(len(PRIMES)), "--quorum", "1", "--json")
    ids = [json.loads(line)["id"] for line in done.stdout.splitlines() if line.strip()]
    assert len(ids) == len(PRIMES)
    done = cluster.artel("submit", "--app", "primes", "--arg", "{i}00", "--arg", "{i}50",
                         "--count", str(QUORUM2_TASKS), "--quorum", "2", "--json")
    more = [json.loads(line)["id"] for line in done.stdout.splitlines() if line.strip()]
    cluster.artel("wait", *map(str, ids + more), "--timeout", "2m", timeout=150)
    return ids


@pytest.fixture(scope="module")
def training(cluster, tmp_path_factory):
    """Fixtures for training: the data set "syn" registered, the model file,
    and a short job run to its end. Skips when artel-ml or torch is missing."""
    why = have_ml()
    if why:
        pytest.skip(why)
    root = tmp_path_factory.mktemp("training")
    subprocess.run(["/usr/bin/python3", str(Path(__file__).parent / "make_fixtures.py"), str(root)],
                   check=True, timeout=120)
    cluster.artel("data", "add", "syn", "--safetensors", str(root / "train.safetensors"),
                  "--test", str(root / "test.safetensors"), "--shard-size", "500")
    done = cluster.artel("train", "--model", str(root / "net.pt"), "--data", "syn",
                         "--mode", "local", "--workers", "1", "--local-steps", "8",
                         "--batch-size", "32", "--rounds", str(SHORT_ROUNDS), "--eval-every", "1",
                         "--name", "short-run", "--json", timeout=180)
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert lines and lines[-1].get("state") == "done", done.stdout
    return {"model": root / "net.pt", "short_job": lines[0]["id"]}


# ------------------------------------------------------------- page helpers


def view_state(driver):
    return driver.execute_script(
        "const v = document.getElementById('view');"
        "return [document.body.dataset.view, v ? v.dataset.loaded : null];")


def open_page(driver, fragment: str, view: str, loaded: str = "true", title: str = None):
    """Goes to #FRAGMENT without a reload and waits until the page `view`
    rendered (loaded "true") or showed its error (loaded "error")."""
    driver.execute_script(
        "if (location.hash === '#' + arguments[0]) return;"  # already there: no hashchange
        "document.getElementById('view').dataset.loaded = 'leaving';"
        "location.hash = arguments[0];", fragment)

    def ready():
        name, state = view_state(driver)
        if name != view or state != loaded:
            return False
        if title is not None:
            heading = driver.find_elements(By.ID, "page-title")
            return bool(heading) and title in heading[0].text
        return True

    wait_for(ready, PAGE_TIMEOUT, f"page #{fragment} ({view}, {loaded})")


def sign_in(driver, base: str, token: str):
    """Signs in through the form (signing out first if someone is signed in)."""
    if not driver.current_url.startswith(base):
        driver.get(base + "/")
    if not driver.find_elements(By.ID, "signin-form"):
        wait_for(lambda: driver.find_element(By.ID, "signout").is_displayed(), PAGE_TIMEOUT,
                 "the sign-out button")
        driver.find_element(By.ID, "signout").click()
    wait_for(lambda: driver.find_elements(By.ID, "token-input"), PAGE_TIMEOUT, "the sign-in form")
    box = driver.find_element(By.ID, "token-input")
    box.clear()
    box.send_keys(token)
    driver.find_element(By.ID, "signin-button").click()


def signed_in(driver, cluster):
    """Makes sure the admin is signed in (reusing the tab's session)."""
    if driver.current_url.startswith(cluster.http) and driver.execute_script(
            "return !!sessionStorage.getItem('artel.dashboard.token')"):
        return
    driver.get(cluster.http + "/")
    sign_in(driver, cluster.http, cluster.admin_token)
    wait_for(lambda: view_state(driver)[0] == "overview", PAGE_TIMEOUT,
             "the overview after sign-in")


def find(driver, css: str):
    return driver.find_element(By.CSS_SELECTOR, css)


def find_all(driver, css: str):
    return driver.find_elements(By.CSS_SELECTOR, css)


def texts(driver, css: str):
    return [e.text for e in find_all(driver, css)]


def count(driver, css: str) -> int:
    return len(find_all(driver, css))


def signin_message(driver) -> str:
    els = driver.find_elements(By.ID, "signin-error")
    return els[0].text if els and els[0].is_displayed() else ""


# -------------------------------------------------------------------- tests


def test_wrong_and_worker_tokens_are_refused(cluster, browser):
    browser.get(cluster.http + "/")
    sign_in(browser, cluster.http, "artel_0123456789abcdef0123456789abcdef")
    message = wait_for(lambda: signin_message(browser), PAGE_TIMEOUT, "the sign-in error")
    assert "not valid" in message, message
    screenshot(browser, "01-signin-wrong-token")

    worker_token, _ = cluster.create_token("worker")
    sign_in(browser, cluster.http, worker_token)
    wait_for(lambda: "worker token" in signin_message(browser), PAGE_TIMEOUT,
             "the worker-token error")
    message = signin_message(browser)
    assert "submitter" in message, message
    assert browser.execute_script("return sessionStorage.getItem('artel.dashboard.token')") is None
    assert not find(browser, "#nav").is_displayed()


def test_overview(cluster, browser, primes_tasks, request):
    try:
        training = request.getfixturevalue("training")
    except pytest.skip.Exception:
        training = None  # the task half of the page is still checked
    signed_in(browser, cluster)
    open_page(browser, "/overview", "overview")
    wait_for(lambda: texts(browser, "#stat-workers-online .stat-value") == ["2"], PAGE_TIMEOUT,
             "2 workers online")
    done = int(find(browser, "#stat-done .stat-value").text.replace(",", ""))
    assert done >= len(PRIMES) + QUORUM2_TASKS
    assert texts(browser, "#stat-cores .stat-value") == ["2"]
    # Throughput: the coordinator samples every few seconds; a line needs two samples.
    wait_for(lambda: count(browser, "#throughput-chart path.line") == 1, 30, "the throughput line")
    if training:
        job = training["short_job"]
        assert count(browser, f'#overview-jobs-table a[href="#/jobs/{job}"]') >= 1
    assert find(browser, "#nav a.active").text == "Overview"
    screenshot(browser, "02-overview")


def test_workers(cluster, browser, primes_tasks):
    signed_in(browser, cluster)
    open_page(browser, "/workers", "workers")
    wait_for(lambda: count(browser, "#workers-table tr.worker") == 2, PAGE_TIMEOUT,
             "two worker rows")
    names = sorted(texts(browser, "#workers-table .worker-name"))
    assert names == sorted(["alpha", ODD_NAME]), names
    # The HTML in a worker's name is text, not markup.
    assert count(browser, "#workers-table b") == 0
    heartbeats = texts(browser, "#workers-table .heartbeat")
    assert all(h.endswith(" ago") for h in heartbeats), heartbeats
    # quorum-2 tasks confirmed both workers' results: a streak and trust for primes@1.
    trusted = texts(browser, "#workers-table .chip.ok")
    assert trusted.count("primes@1") == 2, trusted
    streaks = [int(t) for t in texts(browser, "#workers-table .streaks strong")]
    assert streaks and all(s >= 10 for s in streaks), streaks
    screenshot(browser, "03-workers")

    # A reload keeps the tab's sign-in and the page (hash route).
    browser.refresh()
    wait_for(lambda: view_state(browser) == ["workers", "true"], PAGE_TIMEOUT,
             "the workers page after a reload")
    assert count(browser, "#workers-table tr.worker") == 2


def test_tasks_list(cluster, browser, primes_tasks):
    signed_in(browser, cluster)
    open_page(browser, "/tasks?state=done", "tasks")
    wait_for(lambda: count(browser, "#tasks-table tr.task") >= len(PRIMES), PAGE_TIMEOUT,
             "task rows")
    rows = find_all(browser, "#tasks-table tr.task")
    states = {r.get_attribute("data-state") for r in rows}
    assert states == {"done"}, states
    assert set(primes_tasks) <= {int(r.get_attribute("data-task-id")) for r in rows}
    assert find(browser, "#task-filter a.active").get_attribute("data-state") == "done"
    row = find(browser, f'#tasks-table tr[data-task-id="{primes_tasks[1]}"]')
    assert "primes@1" in row.text and "1000 1500" in row.text and "success" in row.text, row.text
    screenshot(browser, "04-tasks-done")

    open_page(browser, "/tasks?state=pending", "tasks")
    wait_for(lambda: "no pending tasks" in find(browser, "#tasks-table").text, PAGE_TIMEOUT,
             "the empty pending list")


def test_task_page(cluster, browser, primes_tasks, tmp_path):
    signed_in(browser, cluster)
    task = primes_tasks[1]
    lo, hi = PRIMES[1]
    expected = primes_in(lo, hi)
    open_page(browser, f"/tasks/{task}", "task", title=f"#{task}")
    wait_for(lambda: count(browser, "#replicas-table tr.replica") >= 1, PAGE_TIMEOUT,
             "replica rows")
    replica = find(browser, "#replicas-table tr.replica")
    assert replica.get_attribute("data-state") == "reported"
    assert "alpha" in replica.text or ODD_NAME in replica.text, replica.text
    assert "canonical" in replica.text and "success" in replica.text
    assert texts(browser, "#task-spec .chip.arg") == [str(lo), str(hi)]
    assert "quorum 1" in find(browser, '#task-spec [data-fact="policy"]').text

    preview = '#task-outputs pre.preview[data-output="stdout"][data-state="text"]'
    stdout = wait_for(lambda: find_all(browser, preview), PAGE_TIMEOUT, "the stdout preview")[0]
    assert stdout.text.strip() == f"{lo} {hi} {expected}"

    # Download: fetched with the token, handed to the browser as a blob.
    browser.execute_cdp_cmd("Browser.setDownloadBehavior",
                            {"behavior": "allow", "downloadPath": str(tmp_path)})
    find(browser, '#task-outputs .output[data-output="count"] button.download').click()
    path = tmp_path / "count"
    wait_for(lambda: path.exists() and path.read_text().strip(), PAGE_TIMEOUT,
             "the downloaded output")
    assert path.read_text().strip() == str(expected)
    screenshot(browser, "05-task")


def test_jobs_list(cluster, browser, training):
    signed_in(browser, cluster)
    job = training["short_job"]
    open_page(browser, "/jobs", "jobs")
    row = wait_for(lambda: find_all(browser, f'#jobs-table tr.job[data-job-id="{job}"]'),
                   PAGE_TIMEOUT, "the job's row")[0]
    assert row.get_attribute("data-state") == "done"
    assert "short-run" in row.text and "syn" in row.text and "local" in row.text, row.text
    assert f"{SHORT_ROUNDS} / {SHORT_ROUNDS}" in row.text
    screenshot(browser, "06-jobs")


def test_finished_job_curves(cluster, browser, training):
    signed_in(browser, cluster)
    job = training["short_job"]
    history = cluster.api(f"/api/jobs/{job}")["history"]
    evaluated = [r for r in history if r["accuracy"] >= 0]
    open_page(browser, f"/jobs/{job}", "job", title=f"#{job}")
    loss_points = find_all(browser, '#loss-chart circle.point[data-series="loss"]')
    assert len(loss_points) == len(history) == SHORT_ROUNDS
    rounds = sorted(int(p.get_attribute("data-round")) for p in loss_points)
    assert rounds == list(range(1, SHORT_ROUNDS + 1))
    acc_points = find_all(browser, '#accuracy-chart circle.point[data-series="accuracy"]')
    assert len(acc_points) == len(evaluated) >= 1
    rounds = {int(p.get_attribute("data-round")) for p in acc_points}
    assert rounds == {r["round"] for r in evaluated}
    # Axes are labelled.
    labels = texts(browser, "#loss-chart .axis-label, #accuracy-chart .axis-label")
    assert "round" in labels and "loss" in labels and "test accuracy" in labels, labels
    assert count(browser, "#rounds-table tbody tr[data-round]") == SHORT_ROUNDS
    assert find(browser, "#job-round .stat-value").text == f"{SHORT_ROUNDS} / {SHORT_ROUNDS}"
    assert "%" in find(browser, "#job-accuracy .stat-value").text
    screenshot(browser, "07-job-done")


def test_running_job_updates_live(cluster, browser, training):
    signed_in(browser, cluster)
    # Long enough to be running while the page is watched; the cluster stops it.
    follower = subprocess.Popen(
        [str(BIN / "artel"), "train", "--model", str(training["model"]), "--data", "syn",
         "--mode", "local", "--workers", "1", "--local-steps", "16", "--batch-size", "32",
         "--rounds", "2000", "--eval-every", "1", "--name", "live-run", "--json"],
        env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        job = json.loads(follower.stdout.readline())["id"]
        open_page(browser, f"/jobs/{job}", "job", title=f"#{job}")
        browser.execute_script(
            "window.__sameDocument = true; window.artelDashboard.maxInFlight = 0;")
        points = '#loss-chart circle.point[data-series="loss"]'
        first = wait_for(lambda: count(browser, points), 60, "the first round's point")
        screenshot(browser, "08-job-running")
        grown = wait_for(lambda: count(browser, points) > first and count(browser, points), 60,
                         f"more than {first} points without a reload")
        assert browser.execute_script("return window.__sameDocument === true")  # no reload
        assert grown > first
        assert count(browser, '#accuracy-chart circle.point[data-series="accuracy"]') >= 1
        state = find(browser, ".page-header .badge").text
        assert state == "running", state
        # One poll at a time (the job page makes one request per poll).
        stats = browser.execute_script("return window.artelDashboard")
        assert stats["maxInFlight"] <= 2, stats
        time.sleep(0.5)
        screenshot(browser, "09-job-live")
    finally:
        follower.terminate()  # stops following; the job runs on until the cluster stops
        follower.wait(timeout=10)


def test_unknown_ids_show_the_error(cluster, browser):
    signed_in(browser, cluster)
    open_page(browser, "/jobs/999", "job", loaded="error")
    message = find(browser, "#view-error").text
    assert "training job 999 does not exist" in message, message
    screenshot(browser, "10-unknown-job")

    open_page(browser, "/tasks/999999", "task", loaded="error")
    assert "task 999999 does not exist" in find(browser, "#view-error").text

    open_page(browser, "/tasks?state=bogus", "tasks", loaded="error")
    assert "unknown task state" in find(browser, "#view-error").text

    open_page(browser, "/no-such-page", "not-found", loaded="error")
    assert "no page" in find(browser, "#view-error").text


def test_sign_out_stops_polling(cluster, browser):
    signed_in(browser, cluster)
    open_page(browser, "/overview", "overview")
    # Polling runs while signed in...
    before = browser.execute_script("return window.artelDashboard.requests")
    wait_for(lambda: browser.execute_script("return window.artelDashboard.requests") > before,
             POLL_S * 3, "a poll")
    find(browser, "#signout").click()
    wait_for(lambda: find_all(browser, "#signin-form"), PAGE_TIMEOUT, "the sign-in form")
    assert browser.execute_script("return sessionStorage.getItem('artel.dashboard.token')") is None
    # ...and stops when signed out: nothing for well over two poll intervals.
    after = browser.execute_script("return window.artelDashboard.requests")
    time.sleep(POLL_S * 2.5)
    assert browser.execute_script("return window.artelDashboard.requests") == after
    assert browser.execute_script("return window.artelDashboard.inFlight") == 0
    screenshot(browser, "11-signed-out")


def test_revoked_token_signs_out(cluster, browser):
    token, token_id = cluster.create_token("submitter")
    sign_in(browser, cluster.http, token)
    wait_for(lambda: view_state(browser) == ["overview", "true"], PAGE_TIMEOUT, "the overview")
    assert find(browser, "#role").text == "submitter"
    cluster.artel("token", "revoke", token_id)
    message = wait_for(lambda: signin_message(browser), PAGE_TIMEOUT, "the revoked-token message")
    assert f"token {token_id} was revoked" in message, message
    screenshot(browser, "12-revoked-token")
