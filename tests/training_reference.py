"""Single-process PyTorch reference for tests/training_test.cc.

Run by /usr/bin/python3 (needs torch only; safetensors files are read and
written by hand so no other package is needed). Every command prints one
JSON object on stdout.

  model OUT [bn DROPOUT]         write a small TorchScript classifier (seed 0):
                                 an MLP, or with "bn" a CNN with BatchNorm2d and
                                 Dropout(DROPOUT)
  sgd-step MODEL DATA PARAMS LR ROWS...
                                 one SGD step from MODEL's own parameters on
                                 the mean cross-entropy over rows of DATA
                                 (ROWS are "begin:end" ranges); prints the
                                 largest |difference| from the tensors in
                                 PARAMS, plus missing/extra names
  sync-step MODEL DATA PARAMS LR ROWS...
                                 one synchronous SGD step as W workers take it:
                                 each ROWS range is one worker's batch, run from
                                 MODEL's own state in train mode (batch
                                 statistics of that batch alone); gradients and
                                 buffers are averaged, weighted by batch size
                                 (integer buffers rounded to the nearest).
                                 Prints the largest |difference| from PARAMS
                                 for parameters and float buffers, and the
                                 integer buffers that differ. MODEL's dropout
                                 must be off (p = 0): the reference draws no
                                 random numbers.
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


class BatchNormNet(torch.nn.Module):
    """Fashion-MNIST sized CNN with batch norm and dropout: [n, 1, 28, 28]
    -> 10 logits. Train and eval mode differ (batch statistics and dropout
    against running statistics and no dropout)."""

    def __init__(self, dropout):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 8, 3)
        self.bn1 = torch.nn.BatchNorm2d(8)
        self.drop = torch.nn.Dropout(dropout)
        self.fc = torch.nn.Linear(8 * 13 * 13, 10)

    def forward(self, x):
        x = torch.nn.functional.max_pool2d(torch.relu(self.bn1(self.conv1(x))), 2)
        return self.fc(self.drop(torch.flatten(x, 1)))


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


def sgd_steps(model_path, data_path, params_path, lr, step_specs):
    """One plain SGD step per spec ("BEGIN:END" rows of the data set), in
    order, from the model's initial parameters; compares the result with
    params_path."""
    torch.manual_seed(0)
    model = torch.jit.load(model_path)
    model.train()
    data = read_safetensors(data_path)
    start = {name: p.detach().clone() for name, p in model.named_parameters()}
    for spec in step_specs:
        rows = rows_of([spec])
        model.zero_grad()
        torch.nn.functional.cross_entropy(model(data["x"][rows]), data["y"][rows]).backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= float(lr) * p.grad
    got = read_safetensors(params_path)
    expected = dict(model.named_parameters())
    diff = max((got[n] - p.detach()).abs().max().item()
               for n, p in expected.items() if n in got and got[n].shape == p.shape)
    moved = max((p.detach() - start[n]).abs().max().item() for n, p in expected.items())
    print(json.dumps({"max_abs_diff": diff, "step_size": moved,
                      "missing": sorted(set(expected) - set(got))}))


def weighted_mean(values, weights):
    """sum(w * v) / sum(w) in float64; integer tensors are rounded to the
    nearest, halves away from zero, and keep their dtype."""
    total = float(sum(weights))
    mean = sum(w * v.double() for v, w in zip(values, weights)) / total
    if values[0].is_floating_point():
        return mean
    return (torch.sign(mean) * torch.floor(mean.abs() + 0.5)).to(values[0].dtype)


def sync_step(model_path, data_path, params_path, lr, row_specs):
    data = read_safetensors(data_path)
    grads, buffers, weights, losses = [], [], [], []
    for spec in row_specs:  # one worker each, from the same initial state
        model = torch.jit.load(model_path)
        model.train()
        rows = rows_of([spec])
        loss = torch.nn.functional.cross_entropy(model(data["x"][rows]), data["y"][rows])
        loss.backward()
        grads.append({n: p.grad.detach().clone() for n, p in model.named_parameters()})
        buffers.append({n: b.detach().clone() for n, b in model.named_buffers()})
        weights.append(len(rows))
        losses.append(loss.item())
    initial = torch.jit.load(model_path)
    expected, moved = {}, 0.0
    for name, p in initial.named_parameters():
        grad = weighted_mean([g[name] for g in grads], weights)
        expected[name] = p.detach().double() - float(lr) * grad
        moved = max(moved, (float(lr) * grad).abs().max().item())
    buffer_moved = 0.0
    for name, b in initial.named_buffers():
        avg = weighted_mean([bs[name] for bs in buffers], weights)
        expected["buffers/" + name] = avg
        if b.is_floating_point():
            buffer_moved = max(buffer_moved, (avg - b.double()).abs().max().item())
    got = read_safetensors(params_path)
    diff, buffer_diff, integer_mismatch = 0.0, 0.0, []
    for name, want in expected.items():
        if name not in got or got[name].shape != want.shape:
            continue
        if not want.is_floating_point():
            if got[name].dtype != want.dtype or not torch.equal(got[name], want):
                integer_mismatch.append(name)
            continue
        d = (got[name].double() - want).abs().max().item() if want.numel() else 0.0
        if name.startswith("buffers/"):
            buffer_diff = max(buffer_diff, d)
        else:
            diff = max(diff, d)
    print(json.dumps({
        "max_abs_diff": diff,
        "buffer_max_abs_diff": buffer_diff,
        "integer_buffer_mismatch": sorted(integer_mismatch),
        "integer_buffers": {n: int(v.item()) for n, v in expected.items()
                            if not v.is_floating_point() and v.numel() == 1},
        # How far the step moved parameters and running statistics: shows
        # the comparison is not vacuous.
        "step_size": moved,
        "buffer_step": buffer_moved,
        "loss": sum(w * l for w, l in zip(weights, losses)) / sum(weights),
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
        net = BatchNormNet(float(argv[4])) if argv[3:4] == ["bn"] else Net()
        torch.jit.script(net).save(argv[2])
        print(json.dumps({"model": argv[2]}))
    elif argv[1] == "sgd-step":
        sgd_step(argv[2], argv[3], argv[4], argv[5], argv[6:])
    elif argv[1] == "sgd-steps":
        sgd_steps(argv[2], argv[3], argv[4], argv[5], argv[6:])
    elif argv[1] == "sync-step":
        sync_step(argv[2], argv[3], argv[4], argv[5], argv[6:])
    elif argv[1] == "eval":
        evaluate(argv[2], argv[3])
    else:
        sys.exit("unknown command " + argv[1])


if __name__ == "__main__":
    main(sys.argv)
