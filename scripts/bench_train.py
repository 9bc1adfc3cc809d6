"""The training loop of `cargo xtask bench train` in PyTorch eager: the anchor it runs beside.

Loads MNIST's training images once (normalized with their own mean and std, as backprop does),
prints `ready`, then reads one request per line from stdin, `ARCH BATCH THREADS` (e.g.
`784-50-10 64 2`), and answers each with one JSON line {"seconds": S}: the median seconds of
`--epochs` epochs of plain SGD (lr 0.05, cross-entropy, shuffled batches) after one warm-up
epoch, on THREADS threads. xtask sends the cells one by one, alternating which side runs
first, so that both sides of a cell are timed close together.

By hand:

    echo "784-50-10 64 1" | python3 scripts/bench_train.py "$BACKPROP_DATA" --epochs 5
"""
import argparse
import gzip
import json
import sys
import time

import numpy as np
import torch

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("data", help="the folder holding mnist/train-images-idx3-ubyte.gz and its labels")
parser.add_argument("--epochs", type=int, default=5, help="timed epochs per cell, after one warm-up (default 5)")
args = parser.parse_args()


def idx(path, offset):
    """The bytes of a gzipped IDX file after its header."""
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), np.uint8, offset=offset)


x = idx(args.data + "/mnist/train-images-idx3-ubyte.gz", 16).reshape(-1, 784).astype(np.float32) / 255
y = torch.from_numpy(idx(args.data + "/mnist/train-labels-idx1-ubyte.gz", 8).astype(np.int64))
x = torch.from_numpy((x - x.mean()) / x.std())
print("ready", flush=True)

for request in sys.stdin:
    arch, batch, threads = request.split()
    arch, batch, threads = [int(v) for v in arch.split("-")], int(batch), int(threads)
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    layers = []
    for i in range(len(arch) - 1):
        if i:
            layers.append(torch.nn.ReLU())
        layers.append(torch.nn.Linear(arch[i], arch[i + 1]))
    model = torch.nn.Sequential(*layers)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    times = []
    for e in range(args.epochs + 1):
        t = time.perf_counter()
        perm = torch.randperm(len(x))
        for s in range(0, len(x), batch):
            i = perm[s : s + batch]
            loss = torch.nn.functional.cross_entropy(model(x[i]), y[i])
            opt.zero_grad()
            loss.backward()
            opt.step()
        times.append(time.perf_counter() - t)
    times = sorted(times[1:])
    print(json.dumps({"seconds": times[len(times) // 2]}), flush=True)
