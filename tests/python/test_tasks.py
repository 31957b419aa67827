"""Tasks on real workers: submit with quorum 2, wait, outputs and results,
listings, timeouts and cancelling. The app is artel-primes: `LO HI` prints
"LO HI COUNT" and writes COUNT to the output "count"."""

from __future__ import annotations

import os

import pytest

import artel


def _prime_flags(n: int) -> bytearray:
    sieve = bytearray([1]) * n
    sieve[:2] = b"\0\0"
    for i in range(2, int(n ** 0.5) + 1):
        if sieve[i]:
            sieve[i * i::i] = bytearray(len(range(i * i, n, i)))
    return sieve


def test_submit_wait_and_outputs_with_quorum_two(client, tmp_path):
    count = 10
    # {i} becomes the task's index: task i counts the primes in
    # [10000 i, 10000 i + 9999).
    tasks = client.submit("primes", args=["{i}0000", "{i}9999"], count=count, quorum=2,
                          job_name="python-primes")
    assert len(tasks) == count and len({t.id for t in tasks}) == count
    assert client.wait(tasks, timeout=120) == tasks
    assert all(t.state == "done" and t.outcome == "success" and t.ok for t in tasks), tasks

    flags = _prime_flags(count * 10000)
    total = 0
    for i, task in enumerate(tasks):
        lo, hi = 10000 * i, 10000 * i + 9999
        expected = sum(flags[lo:hi])
        outputs = task.outputs()
        assert outputs["count"] == f"{expected}\n".encode()
        assert outputs["stdout"] == f"{lo} {hi} {expected}\n".encode()
        total += int(outputs["count"])
    assert total == sum(sum(flags[10000 * i:10000 * i + 9999]) for i in range(count))

    status = tasks[3].status()
    assert (status.state, status.outcome, status.app, status.version) == \
        ("done", "success", "primes", "1")
    assert {f.name for f in status.outputs} >= {"count", "stdout", "stderr"}
    valid = [r for r in status.replicas if r.validity == "valid"]
    assert len(valid) >= 2 and len({r.owner for r in valid}) >= 2  # quorum of two owners

    paths = tasks[3].result(tmp_path / "result")
    assert sorted(os.path.basename(p) for p in paths) == sorted(f.name for f in status.outputs)
    with open(tmp_path / "result" / "count", "rb") as f:
        assert f.read() == tasks[3].outputs()["count"]


def test_app_errors_agreed_by_a_quorum(client):
    (task,) = client.submit("primes", args=["5", "1"], quorum=2)  # HI < LO: exit 2
    client.wait([task.id], timeout=60)
    task.status()
    assert (task.state, task.outcome) == ("done", "app_error")
    assert b"HI is not a number >= LO" in task.outputs()["stderr"]


def test_inputs_are_uploaded_once_for_all_tasks(client, tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(b"\1\2\3" * 1000)
    tasks = client.submit("primes", args=["0", "10"], inputs={"note.txt": b"hello",
                                                              "data.bin": path}, count=2)
    for task in tasks:
        inputs = {f.name: f.size for f in task.status().raw.spec.inputs}
        assert inputs == {"note.txt": 5, "data.bin": 3000}
    client.wait(tasks, timeout=60)
    assert all(t.ok for t in tasks)
    with pytest.raises(artel.NotFoundError, match="does not exist"):
        client.submit("primes", args=["0", "1"], inputs={"x": str(tmp_path / "missing")})
    with pytest.raises(artel.InvalidArgumentError, match="list of strings"):
        client.submit("primes", args="0 10")


def test_timeout_then_cancel(client):
    (task,) = client.submit("primes", args=["0", "100000000000"])  # hours of work
    with pytest.raises(artel.DeadlineExceededError, match=r"0 of 1 finished"):
        client.wait([task], timeout=1)
    with pytest.raises(artel.FailedPreconditionError, match="has not finished yet"):
        task.outputs()
    status = task.cancel()
    assert (status.state, status.outcome) == ("done", "system_error")
    with pytest.raises(artel.FailedPreconditionError, match=f"task {task.id} has no result"):
        task.outputs()


def test_listings(client):
    workers = client.workers()
    assert len(workers) == 2 and all(w.alive for w in workers)
    assert sorted(w.owner for w in workers) == ["owner-1", "owner-2"]
    assert sorted(w.name for w in workers) == ["py-worker-1", "py-worker-2"]
    assert repr(workers[0]).startswith("Worker(id=")

    (task,) = client.submit("primes", args=["0", "100"])
    client.wait([task], timeout=60)
    done = client.tasks(state="done")
    assert task.id in {t.id for t in done} and all(t.state == "done" for t in done)
    assert len(client.tasks(limit=1)) == 1
    assert all(t.state == "running" for t in client.tasks(state="running"))
    with pytest.raises(artel.InvalidArgumentError, match="use pending, running or done"):
        client.tasks(state="finished")
    assert any(a.name == "primes" and a.version == "1" for a in client.apps())
    assert isinstance(client.jobs(), list)
    assert {c.owner for c in client.credit()} >= {"owner-1", "owner-2"}
