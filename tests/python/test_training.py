"""Training jobs on real workers with a model that has BatchNorm and Dropout:
the trained model comes back with the accuracy the job reported, and its
weights and buffers load into the caller's own module."""

from __future__ import annotations

import os
import signal
import threading

import numpy as np
import pytest

import artel
from artel.training import script_model

torch = pytest.importorskip("torch", reason="PyTorch (python3-torch) is not installed")

CLASSES = 4
FEATURES = 16


class Net(torch.nn.Module):
    """A small MLP whose train and eval modes differ: batch statistics and
    dropout against running statistics and none."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = torch.nn.Linear(FEATURES, 32)
        self.bn = torch.nn.BatchNorm1d(32)
        self.drop = torch.nn.Dropout(0.1)
        self.fc2 = torch.nn.Linear(32, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.drop(torch.relu(self.bn(self.fc1(x)))))


class Unscriptable(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(FEATURES, CLASSES)

    def forward(self, x, **options):  # TorchScript has no **kwargs
        return self.fc(x)


def _blobs(n: int, seed: int):
    """Four Gaussian clusters, separable but overlapping a little."""
    rng = np.random.default_rng(seed)
    centers = np.random.default_rng(7).standard_normal((CLASSES, FEATURES)) * 0.85
    y = rng.integers(0, CLASSES, n)
    x = centers[y] + rng.standard_normal((n, FEATURES))
    return x.astype(np.float32), y


@pytest.fixture(scope="module")
def blobs(client):
    x, y = _blobs(2400, seed=1)
    xt, yt = _blobs(600, seed=2)
    client.add_dataset("blobs", torch.from_numpy(x), torch.from_numpy(y),
                       test=(torch.from_numpy(xt), torch.from_numpy(yt)), shard_size=400)
    return torch.from_numpy(xt), torch.from_numpy(yt)


def _accuracy(model, x, y) -> float:
    with torch.no_grad():
        return (model(x).argmax(1) == y).double().mean().item()


@pytest.mark.parametrize("mode, options", [
    ("local", dict(workers=2, epochs=2, target_accuracy=0.9, batch_size=32, local_steps=8,
                   optimizer="adam", lr=0.003, eval_every=1)),
    ("sync", dict(workers=2, rounds=6, batch_size=64, optimizer="adam", lr=0.01)),
])
def test_train_then_use_the_trained_model(client, ml_app, blobs, mode, options):
    x_test, y_test = blobs
    torch.manual_seed(0)
    model = Net()
    model.eval()  # the caller's mode is kept; the model travels in train mode
    before = {k: v.clone() for k, v in model.state_dict().items()}
    job = client.train(model, "blobs", mode=mode, name=f"python-{mode}", **options)
    assert not model.training
    assert job.mode == mode and job.dataset == "blobs"
    job.wait(progress=True, timeout=240)
    assert job.state == "done", job.reason
    for k, v in model.state_dict().items():  # training happened elsewhere
        assert torch.equal(v, before[k]), k

    history = job.history
    assert [r.round for r in history] == list(range(1, job.round + 1))
    assert all(r.loss > 0 and r.samples_per_s > 0 and r.bytes > 0 for r in history)
    assert history[-1].accuracy == pytest.approx(job.accuracy)
    assert history[-1].epoch == pytest.approx(job.epoch)
    if mode == "sync":
        assert job.round == 6
    else:
        assert job.accuracy >= 0.9 or job.epoch >= 2

    trained = job.model()
    assert not trained.training
    # The final parameters are evaluated before export: PyTorch measures the
    # same accuracy on the same test set (within half a point).
    assert abs(_accuracy(trained, x_test, y_test) - job.accuracy) <= 0.005

    fresh = Net()
    assert job.load_into(fresh) is fresh
    trained_state = trained.state_dict()
    fresh_state = fresh.state_dict()
    assert set(fresh_state) == set(trained_state)
    assert "bn.running_mean" in fresh_state and "bn.num_batches_tracked" in fresh_state
    for k, v in fresh_state.items():
        assert v.dtype == trained_state[k].dtype and torch.equal(v, trained_state[k]), k
    assert fresh_state["bn.num_batches_tracked"].item() > 0
    assert not torch.equal(fresh_state["bn.running_mean"], before["bn.running_mean"])
    fresh.eval()
    assert _accuracy(fresh, x_test, y_test) == _accuracy(trained, x_test, y_test)

    assert any(j.id == job.id and j.state == "done" for j in client.jobs())
    assert client.job(job.id).round == job.round


def test_unscriptable_model_is_a_model_error_before_upload(client, blobs):
    jobs = len(client.jobs())
    with pytest.raises(artel.ModelError) as info:
        client.train(Unscriptable(), "blobs")
    assert "torch.jit.script" in str(info.value) and "**kwargs" in str(info.value)
    assert len(client.jobs()) == jobs


def test_model_that_does_not_fit_the_samples(client, blobs, tmp_path):
    wrong = torch.nn.Sequential(torch.nn.Linear(FEATURES + 1, CLASSES))
    with pytest.raises(artel.ModelError, match=r"x of shape \[2, 16\]"):
        client.train(wrong, "blobs")
    one_output = torch.nn.Sequential(torch.nn.Linear(FEATURES, 1), torch.nn.Flatten(0))
    with pytest.raises(artel.ModelError, match=r"returns \[2\]"):
        client.train(one_output, "blobs")
    pickled = tmp_path / "state.pt"
    torch.save(Net().state_dict(), pickled)
    with pytest.raises(artel.ModelError, match="torch.save .* is not TorchScript"):
        client.train(pickled, "blobs")
    scripted = tmp_path / "net.pt"
    torch.jit.script(Net()).save(str(scripted))
    assert script_model(str(scripted), (FEATURES,)) == scripted.read_bytes()
    with pytest.raises(artel.NotFoundError, match="data set 'no-such-data' does not exist"):
        client.train(Net(), "no-such-data")
    with pytest.raises(artel.InvalidArgumentError, match="unknown training option 'epoch'"):
        client.train(Net(), "blobs", epoch=3)


def test_load_into_a_module_of_another_architecture(client, blobs):
    done = [j for j in client.jobs() if j.state == "done"]
    if not done:
        pytest.skip("no finished training job")
    with pytest.raises(artel.ModelError, match="does not fit this module") as info:
        done[0].load_into(torch.nn.Sequential(torch.nn.Linear(FEATURES, CLASSES)))
    assert "missing from the trained model: 0.bias, 0.weight" in str(info.value)


def test_a_running_job_ctrl_c_stops_following_only(client, ml_app, blobs, capsys):
    job = client.train(Net(), "blobs", mode="sync", rounds=500, batch_size=16)
    with pytest.raises(artel.FailedPreconditionError, match="wait for it with job.wait"):
        job.model()
    with pytest.raises(artel.DeadlineExceededError, match="keeps running"):
        job.wait(progress=False, timeout=0.5)
    # Ctrl-C while following: the job goes on, and the message says how to
    # follow it again.
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            job.wait(progress=True)
    finally:
        timer.cancel()
    assert f"client.job({job.id}).wait()" in capsys.readouterr().err
    assert client.job(job.id).state in ("init", "running")
