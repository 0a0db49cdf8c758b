"""Interleaved A/B of train-step options: the same case compiled in several forms, timed in turns.

Load on a shared machine drifts by 10-20 % within minutes, so comparing two separate runs of
``benchmarks/run.py`` mixes the load's change into the difference. Here every variant is compiled
in one process and the timed rounds alternate between variants (round r times variant 1, 2, ...,
then round r + 1), so a load change hits every variant alike. Prints a table and writes JSON.

    python benchmarks/ab_step.py --case mnist_mlp_gp
    python benchmarks/ab_step.py --case mnist_mlp_clip --rounds 15 \\
        --variants "default;batch_fakes=false;skip_with=select;batch_fakes=false,skip_with=select"

A variant is a comma-separated list of ``jaxgan.train.make_train_step`` keywords
(``batch_fakes``, ``skip_with``, ``joint_critic_batch``, ``unroll_critic``), each ``name=value``
with value ``true``, ``false``, ``none`` or a string; ``default`` is the step as jaxgan builds it.
One more item, ``clip_step=nextafter``, compiles the weight-clipping projection with the general
``jnp.nextafter`` in place of jaxgan's bit-arithmetic inward step (the form it replaced):

    python benchmarks/ab_step.py --case mnist_mlp_clip --variants "default;clip_step=nextafter"
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _common as C  # noqa: E402
import cases as K  # noqa: E402

CASES = {
    "toy": K.toy_case,
    "mnist_mlp_gp": K.mnist_gp_case,
    "mnist_mlp_clip": K.mnist_clip_case,
}
OPTIONS = ("batch_fakes", "skip_with", "joint_critic_batch", "unroll_critic", "clip_step")
CLIP_STEPS = ("bits", "nextafter")
DEFAULT_VARIANTS = "default;batch_fakes=false,skip_with=select"


def _check_clip_step(value: str) -> None:
    if value not in CLIP_STEPS:
        raise ValueError(f"clip_step must be one of {', '.join(CLIP_STEPS)}, got {value!r}")


def nextafter_step(x: Any, landed: Any) -> Any:
    """The general inward step ``jaxgan.optim._step_inward`` replaced: ``jnp.nextafter``."""
    import jax.numpy as jnp

    return jnp.nextafter(x, jnp.where(landed > 0, -jnp.inf, jnp.inf).astype(x.dtype))


def compile_with_clip_step(jitted: Any, args: tuple, clip_step: str = "bits") -> Any:
    """``jitted.lower(*args).compile()`` with the clipping projection's inward step of ``clip_step``.

    The step is looked up when the projection is traced, which ``lower`` does. ``jitted`` must
    wrap a function that was never traced before: JAX caches traces per function, so one traced
    outside the patch would be served from that cache (``main`` builds a new step function per
    variant). Call the returned executable, not ``jitted``, so nothing is traced again outside
    the patch.
    """
    from unittest import mock

    from jaxgan import optim

    _check_clip_step(clip_step)
    inward = nextafter_step if clip_step == "nextafter" else optim._step_inward
    with mock.patch.object(optim, "_step_inward", inward):
        return jitted.lower(*args).compile()


def parse_variant(text: str) -> dict[str, Any]:
    """'batch_fakes=false,skip_with=select' -> {'batch_fakes': False, 'skip_with': 'select'}."""
    text = text.strip()
    if text in ("", "default"):
        return {}
    out: dict[str, Any] = {}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or name not in OPTIONS:
            raise ValueError(
                f"--variants: bad item {item!r}; expected name=value with name one of "
                f"{', '.join(OPTIONS)}"
            )
        v = value.strip()
        if name == "clip_step":
            _check_clip_step(v)
        out[name] = {"true": True, "false": False, "none": None}.get(v.lower(), v)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--case", default="mnist_mlp_gp", choices=sorted(CASES))
    ap.add_argument("--variants", default=DEFAULT_VARIANTS, help="';'-separated variants")
    ap.add_argument("--rounds", type=int, default=11, help="timed rounds per variant")
    ap.add_argument("--steps", type=int, default=10, help="back-to-back steps per round")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "ab_step.json"))
    args = ap.parse_args(argv)
    try:
        variants = [(v.strip() or "default", parse_variant(v)) for v in args.variants.split(";")]
    except ValueError as e:
        ap.error(str(e))
    if args.rounds < 1 or args.steps < 1:
        ap.error("--rounds and --steps must be >= 1")

    import jax

    from jaxgan import parallel

    mesh = parallel.make_mesh(jax.devices()[:1])
    load_before = C.load_average()
    peak_start = C.matmul_peak()
    runs = []
    for label, options in variants:
        case = CASES[args.case]()
        state, make_step, reals, alpha = K.prepare(case, mesh)
        options = dict(options)
        clip_step = options.pop("clip_step", "bits")
        step = jax.jit(
            make_step(options.pop("unroll_critic", None), **options),
            out_shardings=(parallel.tree_shardings(state, mesh), None),
            donate_argnums=0,
        )
        compiled = compile_with_clip_step(step, (state, reals, alpha), clip_step)
        flops = C.cost_flops(compiled.cost_analysis())
        for _ in range(3):  # warm-up; the compiled executable, so nothing is traced again
            state, metrics = compiled(state, reals, alpha)
        jax.block_until_ready(state)
        runs.append(
            {"label": label, "step": compiled, "state": state, "inputs": (reals, alpha),
             "flops": flops, "times": []}
        )  # fmt: skip
        print(f"compiled {label}: {flops / 1e9:.3f} GFLOP/iter", flush=True)
    for _ in range(args.rounds):
        for r in runs:
            t0 = time.perf_counter()
            state, (reals, alpha) = r["state"], r["inputs"]
            for _ in range(args.steps):
                state, _ = r["step"](state, reals, alpha)
            jax.block_until_ready(state)
            r["state"] = state
            r["times"].append((time.perf_counter() - t0) / args.steps)
    peak_end = C.matmul_peak()
    peak = max(peak_start["flops_per_s"], peak_end["flops_per_s"])

    rows, results = [], []
    base = statistics.median(runs[0]["times"])
    for r in runs:
        s = C.summarize(r["times"])
        rate = r["flops"] / s["median_s"]
        results.append({"variant": r["label"], "flops_per_iter": r["flops"], **s})
        rows.append(
            [
                r["label"],
                f"{1e3 * s['median_s']:.2f}",
                f"{1e3 * s['min_s']:.2f}-{1e3 * s['max_s']:.2f}",
                f"{s['median_s'] / base:.3f}",
                f"{r['flops'] / 1e9:.3f}",
                f"{rate / 1e9:.1f}",
                f"{100 * rate / peak:.1f} / {100 * r['flops'] / s['min_s'] / peak:.1f}",
            ]
        )
    header = ["variant", "ms/iter", "min-max ms", "vs first", "GFLOP/iter", "GFLOP/s",
              "% peak med/best"]  # fmt: skip
    print(
        f"\n{args.case}: {args.rounds} interleaved rounds of {args.steps} steps per variant; "
        f"float32 matmul peak {peak / 1e9:.1f} GFLOP/s (start {peak_start['flops_per_s'] / 1e9:.1f}"
        f", end {peak_end['flops_per_s'] / 1e9:.1f}); load before {load_before}, after "
        f"{C.load_average()}\n"
    )
    print(C.table(header, rows))
    out = {
        "case": args.case,
        "machine": C.machine_info(),
        "rounds": args.rounds,
        "steps_per_round": args.steps,
        "peak": {"start": peak_start, "end": peak_end, "reference_flops_per_s": peak},
        "results": results,
    }
    print()
    C.write_json(args.out, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
