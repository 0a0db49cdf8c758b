"""Float32 GEMM speed of the MLP cases' matrix shapes against the 2048³ peak, back to back.

    python benchmarks/gemm_shapes.py [--out FILE]

Each shape ``M×K @ K×N`` is one jitted ``a @ b``; a repetition dispatches enough calls back to back
for about 2 GFLOP and blocks once, so per-call dispatch is not part of the figure; best of 7
repetitions. Prints a table and writes JSON (``benchmarks/results/gemm_shapes.json``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _common as C  # noqa: E402

# (M, K, N): the MNIST MLP cases at batch 64 (G forward, critic forward on 2B rows, weight
# gradients that contract over the batch), and the 5-batch (320-row) generator forward.
SHAPES = [
    (64, 100, 128), (64, 512, 1024), (64, 1024, 784), (64, 784, 512), (128, 784, 512),
    (128, 512, 256), (784, 128, 512), (1024, 64, 784), (320, 512, 1024), (320, 1024, 784),
    (256, 512, 512),
]  # fmt: skip


def gemm_rate(m: int, k: int, n: int, reps: int = 7, flops_per_rep: float = 2e9) -> float:
    """Best-of-``reps`` FLOP/s of ``(m, k) @ (k, n)`` in float32, calls back to back."""
    import jax
    import jax.numpy as jnp

    a = jnp.ones((m, k), jnp.float32)
    b = jnp.ones((k, n), jnp.float32)
    f = jax.jit(lambda x, y: x @ y)
    jax.block_until_ready(f(a, b))
    calls = max(1, int(flops_per_rep / (2 * m * k * n)))
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(calls):
            out = f(a, b)
        jax.block_until_ready(out)
        best = min(best, (time.perf_counter() - t0) / calls)
    return 2 * m * k * n / best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(HERE, "results", "gemm_shapes.json"))
    args = ap.parse_args(argv)
    start = C.matmul_peak()["flops_per_s"]
    rates = {s: gemm_rate(*s) for s in SHAPES}
    peak = max(start, C.matmul_peak()["flops_per_s"])
    rows = [[f"{m}x{k} @ {k}x{n}", f"{r / 1e9:.1f}", f"{100 * r / peak:.1f}"]
            for (m, k, n), r in rates.items()]  # fmt: skip
    print(f"float32 2048^3 matmul peak {peak / 1e9:.1f} GFLOP/s; load {C.load_average()}\n")
    print(C.table(["shape", "GFLOP/s", "% peak"], rows))
    out = {
        "machine": C.machine_info(),
        "peak_flops_per_s": peak,
        "shapes": [{"m": m, "k": k, "n": n, "flops_per_s": r} for (m, k, n), r in rates.items()],
    }
    print()
    C.write_json(args.out, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
