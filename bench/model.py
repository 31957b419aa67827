# The benchmark's model: a 2-conv CNN for 28x28 grey images and 10 classes,
# written as TorchScript. Usage: /usr/bin/python3 bench/model.py OUT.pt [C1 C2]
# (channels of the two convolutions; default 16 32).
import sys

import torch


class Net(torch.nn.Module):
    def __init__(self, c1: int, c2: int):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, c1, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(c1, c2, 3, padding=1)
        self.fc = torch.nn.Linear(c2 * 7 * 7, 10)

    def forward(self, x):
        x = torch.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = torch.max_pool2d(torch.relu(self.conv2(x)), 2)
        return self.fc(torch.flatten(x, 1))


if __name__ == "__main__":
    c1, c2 = (int(sys.argv[2]), int(sys.argv[3])) if len(sys.argv) > 3 else (16, 32)
    torch.manual_seed(0)
    torch.jit.script(Net(c1, c2)).save(sys.argv[1])
