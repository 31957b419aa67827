"""Checks and shards data sets as `artel data add --safetensors` does
(src/cli/cmd_data.cc, src/ml/dataset.cc).

A shard is a safetensors file with "x" F32 [n, ...] and "y" I64 [n] and the
metadata {"samples": "n", "first": "<index of its first sample>"}; shards hold
`shard_size` samples each, the last one the rest. Everything is checked here,
before anything is uploaded, and every problem raises DataError naming the
tensor, its shape or dtype, and what to do.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any, List, Sequence, Tuple

import numpy as np

from . import safetensors
from .errors import DataError


def shape_text(shape: Sequence[int]) -> str:
    return "[" + ", ".join(str(int(d)) for d in shape) + "]"


def _torch_tensor(value: Any) -> Any:
    """`value` if it is a torch.Tensor (torch is imported by whoever made one)."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        return value
    return None


def _describe(value: Any) -> str:
    t = _torch_tensor(value)
    return str(t.dtype) if t is not None else str(np.asarray(value).dtype)


def to_features(x: Any, name: str) -> np.ndarray:
    """x as a C-contiguous little-endian float32 numpy array [n, ...]."""
    t = _torch_tensor(x)
    if t is not None:
        t = t.detach()
        if t.is_complex() or not t.is_floating_point():
            raise DataError(_integer_x_message(name, str(t.dtype), "x.float() / 255",
                                               "x.float()"))
        array = t.to(device="cpu").float().contiguous().numpy()
    else:
        try:
            array = np.asarray(x)
        except Exception as e:  # noqa: BLE001 - anything numpy cannot take
            raise DataError(f"{name} cannot be read as an array ({e}); pass a torch tensor or "
                            "a numpy array") from None
        kind = array.dtype.kind
        if kind in "iub":
            raise DataError(_integer_x_message(name, str(array.dtype),
                                               "x.astype('float32') / 255",
                                               "x.astype('float32')"))
        if kind != "f":
            raise DataError(f"{name} has dtype {array.dtype}; artel trains on float32 inputs: "
                            "pass a float tensor or array")
        array = np.ascontiguousarray(array, dtype="<f4")
    if array.ndim < 2:
        raise DataError(f"{name} has shape {shape_text(array.shape)}, but its first dimension "
                        "counts samples and each sample needs at least one more; for one "
                        "feature per sample pass x.reshape(-1, 1)")
    if array.shape[0] == 0:
        raise DataError(f"{name} holds no samples (shape {shape_text(array.shape)}); give at "
                        "least one")
    finite = np.isfinite(array.reshape(array.shape[0], -1)).all(axis=1)
    if not finite.all():
        first = int(np.argmin(finite))
        raise DataError(f"{name} holds NaN or infinite values (first in sample {first}); clean "
                        "or drop those samples")
    return array


def _integer_x_message(name: str, dtype: str, images: str, other: str) -> str:
    return (f"{name} has dtype {dtype}, but artel trains on float32 inputs; convert it first, "
            f"e.g. {images} for 8-bit images (scaled to [0, 1]) or {other}")


def to_labels(y: Any, name: str) -> np.ndarray:
    """y as a C-contiguous little-endian int64 numpy array [n] of class indices."""
    t = _torch_tensor(y)
    if t is not None:
        t = t.detach().to(device="cpu")
        if t.is_complex():
            raise DataError(f"{name} has dtype {t.dtype}; labels are integer class indices")
        if t.dtype == sys.modules["torch"].bfloat16:  # numpy has no bfloat16
            t = t.float()
        array = t.numpy()
    else:
        try:
            array = np.asarray(y)
        except Exception as e:  # noqa: BLE001
            raise DataError(f"{name} cannot be read as an array ({e}); pass a torch tensor or "
                            "a numpy array") from None
    dtype = _describe(y)
    if array.ndim == 2 and array.shape[1] == 1:
        raise DataError(f"{name} has shape {shape_text(array.shape)}; labels are one class "
                        f"index per sample, shape [n]: pass {name}.reshape(-1)")
    if array.ndim == 2:
        raise DataError(f"{name} has shape {shape_text(array.shape)}, which looks one-hot "
                        f"encoded; labels are class indices, shape [n]: pass {name}.argmax(1)")
    if array.ndim != 1:
        raise DataError(f"{name} has shape {shape_text(array.shape)}; labels are one class "
                        "index per sample, shape [n]")
    kind = array.dtype.kind
    if kind == "f":
        bad = ~np.isfinite(array) | (array != np.round(array))
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(f"{name} has dtype {dtype} with values that are not whole numbers "
                            f"(e.g. {array[i]!r} at index {i}); labels are integer class "
                            "indices 0..C-1 for the cross-entropy loss: pass integer labels")
        warnings.warn(f"{name} has dtype {dtype}; its values are whole numbers, so they are used "
                      "as int64 class labels", stacklevel=3)
    elif kind not in "iub":
        raise DataError(f"{name} has dtype {dtype}; labels are integer class indices")
    labels = np.ascontiguousarray(array, dtype="<i8")
    if labels.size and labels.min() < 0:
        i = int(np.argmin(labels))
        raise DataError(f"{name} holds negative labels (e.g. {labels[i]} at index {i}); labels "
                        "are class indices 0..C-1")
    return labels


def prepare_split(x: Any, y: Any, what: str) -> Tuple[np.ndarray, np.ndarray]:
    """Checked float32 inputs and int64 labels for one split ("train" or "test")."""
    xname, yname = ("x", "y") if what == "train" else ("x_test", "y_test")
    features = to_features(x, xname)
    labels = to_labels(y, yname)
    if features.shape[0] != labels.shape[0]:
        raise DataError(f"{xname} holds {features.shape[0]} samples (shape "
                        f"{shape_text(features.shape)}) but {yname} {labels.shape[0]} labels "
                        f"(shape {shape_text(labels.shape)}); give exactly one label per sample")
    return features, labels


def make_shards(x: np.ndarray, y: np.ndarray, shard_size: int) -> List[Tuple[bytes, int]]:
    """(safetensors bytes, samples) of each shard, in order."""
    shards = []
    for first in range(0, x.shape[0], shard_size):
        n = min(shard_size, x.shape[0] - first)
        data = safetensors.serialize({"x": x[first:first + n], "y": y[first:first + n]},
                                     {"samples": str(n), "first": str(first)})
        shards.append((data, n))
    return shards
