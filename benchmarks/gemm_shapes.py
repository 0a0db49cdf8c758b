"""Float32 GEMM speed of the MLP cases' matrix shapes against the 2048³ peak, back to back.

    python benchmarks/gemm_shapes.py [--out FILE]

Each shape ``M×K @ K×N`` is one jitted product; a repetition dispatches enough calls back to back
for about 2 GFLOP and blocks once, so per-call dispatch is not part of the figure; best of 7
repetitions. Prints a table and writes JSON (``benchmarks/results/gemm_shapes.json``).

Two forms: ``a @ b`` with ``a`` stored ``M×K`` ("nn"), and ``aᵀ @ b`` with ``a`` stored ``K×M``
("tn": ``lax.dot_general`` contracting dimension 0 of both operands). Reverse-mode autodiff of
``x @ W`` emits the weight gradient ``xᵀ @ δ`` in the "tn" form, contracting over the batch, and
XLA:CPU hands that form to Eigen rather than YNNPACK, so the weight-gradient shapes are measured
in both forms.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _common as C  # noqa: E402

# (M, K, N, form): the MNIST MLP cases at batch 64 (G forward, critic forward on 2B rows), the
# 5-batch (320-row) generator forward, and the weight gradients that contract over the batch
# (K = 64 or 128) in both forms.
SHAPES = [
    (64, 100, 128, "nn"), (64, 512, 1024, "nn"), (64, 1024, 784, "nn"), (64, 784, 512, "nn"),
    (128, 784, 512, "nn"), (128, 512, 256, "nn"), (320, 512, 1024, "nn"),
    (320, 1024, 784, "nn"), (256, 512, 512, "nn"),
    (784, 128, 512, "nn"), (784, 128, 512, "tn"), (784, 64, 512, "nn"), (784, 64, 512, "tn"),
    (512, 128, 256, "nn"), (512, 128, 256, "tn"), (1024, 64, 784, "nn"), (1024, 64, 784, "tn"),
    (512, 64, 1024, "nn"), (512, 64, 1024, "tn"),
]  # fmt: skip
FORMS = ("nn", "tn")


def product(form: str):
    """The jitted product ``f(a, b)`` of a form: "nn" ``a @ b``, or "tn" ``aᵀ @ b`` (``a`` is KxM)."""
    import jax

    if form not in FORMS:
        raise ValueError(f"form must be one of {', '.join(FORMS)}, got {form!r}")
    if form == "nn":
        return jax.jit(lambda x, y: x @ y)
    return jax.jit(lambda x, y: jax.lax.dot_general(x, y, (((0,), (0,)), ((), ()))))


def gemm_rate(
    m: int, k: int, n: int, form: str = "nn", reps: int = 7, flops_per_rep: float = 2e9
) -> float:
    """Best-of-``reps`` FLOP/s of an ``(m, k) @ (k, n)`` product in float32, calls back to back.

    ``form``: "nn" (``a`` stored ``(m, k)``) or "tn" (``a`` stored ``(k, m)``, contracted on
    dimension 0, as autodiff emits a weight gradient).
    """
    import jax
    import jax.numpy as jnp

    f = product(form)
    a = jnp.ones((m, k) if form == "nn" else (k, m), jnp.float32)
    b = jnp.ones((k, n), jnp.float32)
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
    rows = [[f"{m}x{k} @ {k}x{n}", form, f"{r / 1e9:.1f}", f"{100 * r / peak:.1f}"]
            for (m, k, n, form), r in rates.items()]  # fmt: skip
    print(f"float32 2048^3 matmul peak {peak / 1e9:.1f} GFLOP/s; load {C.load_average()}\n")
    print(C.table(["shape", "form", "GFLOP/s", "% peak"], rows))
    print(
        "\nform nn: a stored MxK; tn: a stored KxM and contracted on dim 0 (autodiff's weight "
        "gradient form)"
    )
    out = {
        "machine": C.machine_info(),
        "peak_flops_per_s": peak,
        "shapes": [
            {"m": m, "k": k, "n": n, "form": form, "flops_per_s": r}
            for (m, k, n, form), r in rates.items()
        ],
    }
    print()
    C.write_json(args.out, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
