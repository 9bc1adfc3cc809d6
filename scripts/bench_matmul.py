"""numpy's and PyTorch's matrix products: the anchors of `cargo xtask bench matmul`.

Each shape is `m,k,n`, with `,at` when A is the transposed view of a k x m array (as x^T in
dW = g^T.x) and `,bt` when B is the transposed view of an n x k array (as W^T in x.W^T), so
that the libraries receive the layouts the network's layers pass. Prints one JSON object per
shape and library: {"impl", "m", "k", "n", "threads", "layout", "gflops"}, the median of
`--samples` samples, each of enough calls to last `--min-sample` seconds. PyTorch is timed
when it imports, numpy always. numpy's wheels multiply with OpenBLAS, PyTorch's with MKL on
x86-64.

By hand (xtask runs it once per thread count):

    python3 scripts/bench_matmul.py --threads 1 256,256,256 64,784,50,bt 784,256,50,at
"""
import argparse
import json
import os
import time

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("shapes", nargs="+", help="m,k,n[,at][,bt]")
parser.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1)")
parser.add_argument("--samples", type=int, default=9, help="samples per product (default 9)")
parser.add_argument("--min-sample", type=float, default=0.05, help="seconds a sample lasts at least (default 0.05)")
args = parser.parse_args()

# The BLAS libraries fix their thread count when they load: set it before importing them.
for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(args.threads)

import numpy as np  # noqa: E402

try:
    import torch  # noqa: E402

    torch.set_num_threads(args.threads)
except ImportError:
    torch = None


def gflops(f, m, k, n):
    """Median GFLOP/s of f, a product of m x k by k x n: calls per sample doubled until a
    sample lasts min_sample seconds, after a warm-up call."""
    f()
    it = 1
    while True:
        t = time.perf_counter()
        for _ in range(it):
            f()
        if time.perf_counter() - t > args.min_sample:
            break
        it *= 2
    times = []
    for _ in range(args.samples):
        t = time.perf_counter()
        for _ in range(it):
            f()
        times.append((time.perf_counter() - t) / it)
    times.sort()
    return 2 * m * n * k / times[len(times) // 2] / 1e9


for text in args.shapes:
    parts = text.split(",")
    m, k, n = (int(p) for p in parts[:3])
    at, bt = "at" in parts[3:], "bt" in parts[3:]
    a = np.random.rand(k, m).astype(np.float32).T if at else np.random.rand(m, k).astype(np.float32)
    b = np.random.rand(n, k).astype(np.float32).T if bt else np.random.rand(k, n).astype(np.float32)
    layout = ("t" if at else "n") + ("t" if bt else "n")
    row = {"m": m, "k": k, "n": n, "threads": args.threads, "layout": layout}
    print(json.dumps(dict(row, impl="numpy", gflops=gflops(lambda: a @ b, m, k, n))), flush=True)
    if torch is not None:
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        c = torch.empty(m, n)
        print(json.dumps(dict(row, impl="pytorch", gflops=gflops(lambda: torch.mm(ta, tb, out=c), m, k, n))), flush=True)
