#!/usr/bin/python3
"""Train a small CNN on Fashion-MNIST with artel, from Python.

Needs a coordinator with workers, and ARTEL_COORDINATOR / ARTEL_TOKEN set:

    build/bin/artel coordinator --data /tmp/grid &
    export ARTEL_COORDINATOR=127.0.0.1:7700 ARTEL_TOKEN=$(cat /tmp/grid/admin.token)
    for i in 1 2 3 4; do
      ARTEL_TOKEN=$(build/bin/artel token create --role worker | head -1) \\
        build/bin/artel worker --data /tmp/grid-w$i --cores 1 --name w$i &
    done
    /usr/bin/python3 examples/train_fashion_mnist.py [--workers 4] [--epochs 3]

It registers the data set (once), trains with local SGD until 90 % test
accuracy or the epochs are done, puts the trained weights and BatchNorm
statistics into its own model, and measures that model here in PyTorch.
"""

import argparse
import gzip
from pathlib import Path

import numpy as np
import torch

import artel

DATA = Path("/usr/share/datasets/fashion-mnist")  # Debian package dataset-fashion-mnist


def read_idx(name: str) -> np.ndarray:
    """An IDX file (gzip) as a numpy array: images [n, 28, 28] or labels [n]."""
    raw = gzip.open(DATA / name).read()
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load(split: str):
    images = read_idx(f"{split}-images-idx3-ubyte.gz")
    labels = read_idx(f"{split}-labels-idx1-ubyte.gz")
    x = torch.from_numpy(images.copy()).float().unsqueeze(1) / 255  # [n, 1, 28, 28] in [0, 1]
    return x, torch.from_numpy(labels.astype(np.int64))


class Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 16, 3, padding=1)
        self.bn1 = torch.nn.BatchNorm2d(16)
        self.conv2 = torch.nn.Conv2d(16, 32, 3, padding=1)
        self.bn2 = torch.nn.BatchNorm2d(32)
        self.drop = torch.nn.Dropout(0.1)
        self.fc = torch.nn.Linear(32 * 7 * 7, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.max_pool2d(torch.relu(self.bn1(self.conv1(x))), 2)
        x = torch.max_pool2d(torch.relu(self.bn2(self.conv2(x))), 2)
        return self.fc(self.drop(torch.flatten(x, 1)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=4, help="tasks per round")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--target", type=float, default=0.9, help="test accuracy to stop at")
    args = parser.parse_args()

    client = artel.connect()
    x_train, y_train = load("train")
    x_test, y_test = load("t10k")
    if any(d.name == "fashion-mnist" for d in client.datasets()):
        print("data set fashion-mnist is registered already")
    else:
        client.add_dataset("fashion-mnist", x_train, y_train, test=(x_test, y_test),
                           progress=True)

    torch.manual_seed(0)
    model = Net()
    job = client.train(model, data="fashion-mnist", mode="local", workers=args.workers,
                       epochs=args.epochs, target_accuracy=args.target, batch_size=64,
                       local_steps=32, optimizer="adam", lr=0.002, eval_every=2)
    print(f"training job {job.id} started on {args.workers} workers")
    job.wait(progress=True)  # Ctrl-C stops following; the job goes on

    for r in job.history[-3:]:
        print(r)
    job.load_into(model)  # trained weights and BatchNorm statistics
    model.eval()
    with torch.no_grad():
        accuracy = (model(x_test).argmax(1) == y_test).float().mean().item()
    print(f"the job reported {100 * job.accuracy:.2f} % test accuracy; "
          f"measured here in PyTorch: {100 * accuracy:.2f} %")


if __name__ == "__main__":
    main()
