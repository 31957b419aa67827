"""Writes the browser test's training fixtures: a tiny synthetic two-class
data set as safetensors files and a small TorchScript MLP with BatchNorm.

    python3 make_fixtures.py DIR   ->  DIR/train.safetensors, DIR/test.safetensors, DIR/net.pt
"""
import json
import random
import struct
import sys
from pathlib import Path

FEATURES = 16
HIDDEN = 64


def write_safetensors(path, rows, labels):
    """Writes "x" (F32 [n, FEATURES]) and "y" (I64 [n]) without the safetensors package."""
    x = b"".join(struct.pack("<%df" % FEATURES, *r) for r in rows)
    y = struct.pack("<%dq" % len(labels), *labels)
    header = {
        "x": {"dtype": "F32", "shape": [len(rows), FEATURES], "data_offsets": [0, len(x)]},
        "y": {"dtype": "I64", "shape": [len(labels)], "data_offsets": [len(x), len(x) + len(y)]},
    }
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)  # keeps the data 8-byte aligned
    Path(path).write_bytes(struct.pack("<Q", len(text)) + text + x + y)


def make_split(n, rng):
    """Two Gaussian clouds whose means differ in the first four features."""
    rows, labels = [], []
    for _ in range(n):
        label = rng.randrange(2)
        shift = 1.0 if label else -1.0
        rows.append([rng.gauss(shift if i < 4 else 0.0, 1.0) for i in range(FEATURES)])
        labels.append(label)
    return rows, labels


def write_model(path):
    import torch  # only here: the data needs no torch

    net = torch.nn.Sequential(
        torch.nn.Linear(FEATURES, HIDDEN),
        torch.nn.BatchNorm1d(HIDDEN),
        torch.nn.ReLU(),
        torch.nn.Dropout(0.1),
        torch.nn.Linear(HIDDEN, 2),
    )
    torch.jit.script(net).save(str(path))


def main(out_dir):
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(7)
    write_safetensors(out / "train.safetensors", *make_split(2000, rng))
    write_safetensors(out / "test.safetensors", *make_split(400, rng))
    write_model(out / "net.pt")


if __name__ == "__main__":
    main(sys.argv[1])
