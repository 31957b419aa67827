"""Data sets: the checks made before upload, and shards identical to those
`artel data add --safetensors` makes."""

from __future__ import annotations

import numpy as np
import pytest

import artel
from artel import safetensors


def _data(n=30, shape=(2, 3), classes=4, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, *shape)).astype(np.float32),
            rng.integers(0, classes, n).astype(np.int64))


def test_shards_match_the_command_line(cluster, client, tmp_path):
    x, y = _data(23)
    xt, yt = _data(7, seed=1)
    safetensors.save(tmp_path / "train.safetensors", {"x": x, "y": y})
    safetensors.save(tmp_path / "test.safetensors", {"x": xt, "y": yt})
    cluster.artel("data", "add", "cli-made", "--safetensors", str(tmp_path / "train.safetensors"),
                  "--test", str(tmp_path / "test.safetensors"), "--shard-size", "5")
    # float64 inputs and int16 labels are converted to F32 and I64.
    added = client.add_dataset("py-made", x.astype(np.float64), y.astype(np.int16),
                               test=(xt, yt.astype(np.uint8)), shard_size=5)
    assert (added.train_samples, added.test_samples, added.sample_shape) == (23, 7, (2, 3))
    assert (added.train_shards, added.test_shards) == (5, 2)
    cli = client.dataset("cli-made").raw
    py = client.dataset("py-made").raw
    assert [s.digest for s in py.train] == [s.digest for s in cli.train]
    assert [s.digest for s in py.test] == [s.digest for s in cli.test]
    assert [s.samples for s in py.train] == [5, 5, 5, 5, 3]
    tensors, metadata = safetensors.parse(client.download_blob(py.train[4].digest))
    assert metadata == {"samples": "3", "first": "20"}
    assert tensors["x"].dtype == np.float32 and tensors["y"].dtype == np.int64
    np.testing.assert_array_equal(tensors["x"], x[20:])
    np.testing.assert_array_equal(tensors["y"], y[20:])


def test_torch_tensors(client):
    torch = pytest.importorskip("torch")
    x = torch.rand(12, 1, 4, 4, dtype=torch.float16, requires_grad=False)
    y = torch.arange(12) % 3
    added = client.add_dataset("torch-made", x, y.int(), test=(x[:4].double(), y[:4]))
    assert (added.train_samples, added.test_samples, added.sample_shape) == (12, 4, (1, 4, 4))


@pytest.mark.parametrize("x, y, message", [
    (np.zeros((4, 3), np.uint8), np.zeros(4, np.int64),
     r"x has dtype uint8, but artel trains on float32 inputs; convert it first, e\.g\. "
     r"x\.astype\('float32'\) / 255"),
    (np.zeros((4, 3), np.float32), np.array([0.0, 1.5, 2.0, 1.0]),
     r"y has dtype float64 with values that are not whole numbers \(e\.g\. 1\.5 at index 1\)"),
    (np.zeros((4, 3), np.float32), np.zeros(5, np.int64),
     r"x holds 4 samples \(shape \[4, 3\]\) but y 5 labels \(shape \[5\]\); give exactly one "
     r"label per sample"),
    (np.zeros((0, 3), np.float32), np.zeros(0, np.int64), r"x holds no samples"),
    (np.zeros((4, 3), np.float32), np.eye(4, dtype=np.float32),
     r"y has shape \[4, 4\], which looks one-hot encoded.*y\.argmax\(1\)"),
    (np.zeros((4, 3), np.float32), np.array([0, 1, -1, 2]), r"negative labels"),
    (np.full((4, 3), np.nan, np.float32), np.zeros(4, np.int64), r"NaN or infinite"),
    (np.zeros(4, np.float32), np.zeros(4, np.int64), r"x\.reshape\(-1, 1\)"),
])
def test_bad_tensors_are_data_errors_before_upload(client, x, y, message):
    with pytest.raises(artel.DataError, match=message):
        client.add_dataset("never-made", x, y)
    assert all(d.name != "never-made" for d in client.datasets())


def test_integer_torch_images_name_the_conversion(client):
    torch = pytest.importorskip("torch")
    with pytest.raises(artel.DataError, match=r"torch\.uint8.*x\.float\(\) / 255"):
        client.add_dataset("never-made", torch.zeros(4, 1, 2, 2, dtype=torch.uint8),
                           torch.zeros(4, dtype=torch.long))


def test_test_samples_of_another_shape(client):
    x, y = _data(8, shape=(1, 2, 2))
    with pytest.raises(artel.DataError) as info:
        client.add_dataset("never-made", x, y, test=(x.reshape(8, 4), y))
    assert str(info.value).startswith("test samples have shape [4] (x_test [8, 4]) but training "
                                      "samples [1, 2, 2] (x [8, 1, 2, 2])")


def test_whole_number_float_labels_are_converted_with_a_warning(client):
    x, y = _data(6)
    with pytest.warns(UserWarning, match="used as int64 class labels"):
        added = client.add_dataset("float-labels", x, y.astype(np.float32))
    assert added.train_samples == 6


def test_names_already_taken_or_not_allowed(client):
    x, y = _data(4)
    client.add_dataset("taken", x, y)
    with pytest.raises(artel.AlreadyExistsError, match="data set 'taken' already exists"):
        client.add_dataset("taken", x, y)
    with pytest.raises(artel.InvalidArgumentError, match="is not allowed"):
        client.add_dataset("a/b", x, y)


def test_safetensors_layout_and_strictness():
    data = safetensors.serialize({"b": np.arange(3, dtype=np.int64),
                                  "a": np.ones((2, 2), np.float32)}, {"k": "v"})
    header_len = int.from_bytes(data[:8], "little")
    assert header_len % 8 == 0
    assert data[8:8 + header_len].rstrip(b" ") == (
        b'{"__metadata__":{"k":"v"},"b":{"dtype":"I64","shape":[3],"data_offsets":[0,24]},'
        b'"a":{"dtype":"F32","shape":[2,2],"data_offsets":[24,40]}}')
    tensors, metadata = safetensors.parse(data)
    assert metadata == {"k": "v"} and tensors["b"].tolist() == [0, 1, 2]
    with pytest.raises(artel.DataError, match="trailing|cover"):
        safetensors.parse(data + b"\0")
    with pytest.raises(artel.DataError, match="runs past the end"):
        safetensors.parse(data[:20])
