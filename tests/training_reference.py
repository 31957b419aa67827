"""Single-process PyTorch reference for tests/training_test.cc.

Run by /usr/bin/python3 (needs torch only; safetensors files are read and
written by hand so no other package is needed). Every command prints one
JSON object on stdout.

  model OUT                      write a small TorchScript classifier (seed 0)
  sgd-step MODEL DATA PARAMS LR ROWS...
                                 one SGD step from MODEL's own parameters on
                                 the mean cross-entropy over rows of DATA
                                 (ROWS are "begin:end" ranges); prints the
                                 largest |difference| from the tensors in
                                 PARAMS, plus missing/extra names
  eval MODEL DATA                accuracy of MODEL (eval mode) on DATA
"""
import json
import struct
import sys

import torch


class Net(torch.nn.Module):
    """Fashion-MNIST sized MLP: [n, 1, 28, 28] -> 10 logits. No dropout or
    batch norm, so train and eval mode compute the same function."""

    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(28 * 28, 32)
        self.fc2 = torch.nn.Linear(32, 10)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(torch.flatten(x, 1))))


DTYPES = {"F32": (torch.float32, 4), "I64": (torch.int64, 8)}


def read_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    (header_len,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + header_len])
    data = blob[8 + header_len:]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype, _ = DTYPES[info["dtype"]]
        begin, end = info["data_offsets"]
        flat = torch.frombuffer(bytearray(data[begin:end]), dtype=dtype)
        tensors[name] = flat.reshape(info["shape"]).clone()
    return tensors


def rows_of(specs):
    rows = []
    for spec in specs:
        begin, end = (int(v) for v in spec.split(":"))
        rows.extend(range(begin, end))
    return torch.tensor(rows, dtype=torch.int64)


def sgd_step(model_path, data_path, params_path, lr, row_specs):
    torch.manual_seed(0)
    model = torch.jit.load(model_path)
    model.train()
    data = read_safetensors(data_path)
    rows = rows_of(row_specs)
    loss = torch.nn.functional.cross_entropy(model(data["x"][rows]), data["y"][rows])
    loss.backward()
    expected = {name: (p - float(lr) * p.grad).detach() for name, p in model.named_parameters()}
    got = read_safetensors(params_path)
    diff = 0.0
    for name, want in expected.items():
        if name in got and got[name].shape == want.shape:
            diff = max(diff, (got[name] - want).abs().max().item())
    # How far the step moved the params: shows the comparison is not vacuous.
    moved = max((float(lr) * p.grad).abs().max().item() for p in model.parameters())
    print(json.dumps({
        "max_abs_diff": diff,
        "step_size": moved,
        "loss": loss.item(),
        "missing": sorted(set(expected) - set(got)),
        "extra": sorted(set(got) - set(expected)),
        "shape_mismatch": sorted(n for n in expected
                                 if n in got and got[n].shape != expected[n].shape),
    }))


def evaluate(model_path, data_path):
    model = torch.jit.load(model_path)
    model.eval()
    data = read_safetensors(data_path)
    with torch.no_grad():
        predicted = model(data["x"]).argmax(dim=1)
    correct = int((predicted == data["y"]).sum().item())
    samples = int(data["y"].shape[0])
    print(json.dumps({"correct": correct, "samples": samples, "accuracy": correct / samples}))


def main(argv):
    torch.set_num_threads(1)
    if argv[1] == "model":
        torch.manual_seed(0)
        torch.jit.script(Net()).save(argv[2])
        print(json.dumps({"model": argv[2]}))
    elif argv[1] == "sgd-step":
        sgd_step(argv[2], argv[3], argv[4], argv[5], argv[6:])
    elif argv[1] == "eval":
        evaluate(argv[2], argv[3])
    else:
        sys.exit("unknown command " + argv[1])


if __name__ == "__main__":
    main(sys.argv)
