"""``run.py --peers``: each jaxgan benchmark case against its PyTorch reference, side by side.

Per case both train steps are built at the same batch and data shapes (jaxgan through
``cases.prepare`` on a one-device mesh, PyTorch through ``torch_models.make_step`` with
``--peer-threads`` = 2 threads), compiled / warmed up untimed, then timed in alternating rounds in
this one process (a 50 ms pause before each timed block): each round
runs k back-to-back jaxgan steps (ending in ``jax.block_until_ready``) and k' PyTorch steps, the
side that goes first alternating every round. Reported per case: the median ms per generator
iteration of each side, ``ratio`` = PyTorch ms / jaxgan ms (above 1: jaxgan is faster) and the
spread of the per-round ratios. Every case has both sides: for the external references
(``torch_models.EXTERNAL_CASES``) the jaxgan side is jaxgan's step on the script's settings with
NNX mirrors of the script's networks (``external.py``), the PyTorch side the script's own
iteration. See benchmarks/README.md.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

import cases as K  # noqa: N812
import jax
import measure as M  # noqa: N812
import numpy as np

from jaxgan import parallel, xla_flags

INSTALL = "pip install -r benchmarks/peers/requirements.txt"
GAP_S = 0.05  # pause before each timed block: the other runtime's idle workers stop spinning
BENCH_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # benchmarks/

Run = Callable[[int], None]  # run(k): k back-to-back steps, finished on return


def load_peers() -> ModuleType | None:
    """:mod:`peers.torch_models`, or None when torch cannot be imported."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return None
    from . import torch_models

    return torch_models


def with_batch(case: K.Case, batch: int | None) -> K.Case:
    """``case`` with its batch (of the measured stage, if progressive) set to ``batch``."""
    if batch is None:
        return case
    if case.resolution is None:
        return dataclasses.replace(case, overrides={**case.overrides, "batch_size": batch})
    per_res = {**case.config.schedule.batch_per_res, case.resolution: batch}
    return dataclasses.replace(case, overrides={**case.overrides, "batch_per_res": per_res})


def jaxgan_side(case: K.Case) -> tuple[Run, dict[str, Any]]:
    """The case's jitted step as ``run(k)`` and facts about it (flags, networks, batch, shape)."""
    state, jitted, reals = K.prepare(case, parallel.make_mesh(jax.devices()[:1]))
    compiled = jitted.lower(state, reals, K.ALPHA).compile()  # what runs, and its FLOPs
    step, _ = K.stepper(compiled, state, reals)
    del state

    def run(k: int) -> None:
        jax.block_until_ready(step(k))

    return run, {"flags": case.flags(), "models": case.models_doc, "batch": case.batch,
                 "reals_shape": list(reals.shape), "flops_per_iter": M.xla_flops(compiled)}  # fmt: skip


def torch_side(P: ModuleType, name: str, batch: int | None, threads: int) -> tuple[Run, dict]:
    """``torch_models.make_step`` (``threads`` torch threads) as ``run(k)`` and facts about it."""
    step = P.make_step(name, threads, batch=batch)

    def run(k: int) -> None:
        for _ in range(k):
            step()

    return run, {"batch": int(step.reals.shape[1]), "reals_shape": list(step.reals.shape)}


def seconds(run: Run, k: int = 1) -> float:
    """Seconds per step of ``run(k)``."""
    t0 = time.perf_counter()
    run(k)
    return (time.perf_counter() - t0) / k


def warm_up(run: Run, warmup: int, target_s: float) -> dict[str, Any]:
    """An untimed first call (compiles), ``warmup`` more and a probe; the steps per round that
    make one side's round last about ``target_s`` (1 to 100)."""
    first = seconds(run)
    for _ in range(warmup):
        run(1)
    probe = seconds(run)
    steps = int(max(1, min(100, round(target_s / max(probe, 1e-6)))))
    return {"first_call_s": first, "probe_s": probe, "steps_per_round": steps}


def interleave(sides: dict[str, tuple[Run, int]], rounds: int) -> dict[str, list[float]]:
    """ms per step of each side per round; the first side of ``sides`` goes first in even rounds,
    last in odd ones. Each timed block starts ``GAP_S`` after the previous one ended."""
    names, out = list(sides), {n: [] for n in sides}
    for r in range(rounds):
        for n in names if r % 2 == 0 else names[::-1]:
            run, k = sides[n]
            time.sleep(GAP_S)
            out[n].append(1e3 * seconds(run, k))
    return out


def quartiles(xs: list[float]) -> tuple[float, float, float, float, float]:
    """(min, q1, median, q3, max)."""
    q = np.percentile(xs, [0, 25, 50, 75, 100])
    return tuple(float(v) for v in q)  # type: ignore[return-value]


def summarize(ms: dict[str, list[float]]) -> dict[str, Any]:
    """Medians per side, ``ratio`` = PyTorch / jaxgan median, and the spread of the rounds."""
    pt = statistics.median(ms["pytorch"])
    out: dict[str, Any] = {"jaxgan_ms": None, "pytorch_ms": pt, "ratio": None}
    spread = {"pytorch_ms_min": min(ms["pytorch"]), "pytorch_ms_max": max(ms["pytorch"])}
    if "jaxgan" in ms:
        jx = statistics.median(ms["jaxgan"])
        out.update(jaxgan_ms=jx, ratio=pt / jx)
        spread.update(jaxgan_ms_min=min(ms["jaxgan"]), jaxgan_ms_max=max(ms["jaxgan"]))
        per_round = [p / j for p, j in zip(ms["pytorch"], ms["jaxgan"], strict=True)]
        keys = ("ratio_min", "ratio_q1", "ratio_median", "ratio_q3", "ratio_max")
        spread.update(dict(zip(keys, quartiles(per_round), strict=True)))
        out["round_ratios"] = per_round
    out["spread"], out["round_ms"] = spread, ms
    return out


def time_case(P: ModuleType, name: str, args, peak: float) -> dict[str, Any]:
    """Build, warm up and time one case's sides (jaxgan first); ``peak``: the matmul FLOP/s."""
    row: dict[str, Any] = {"case": name}
    sides: dict[str, tuple[Run, int]] = {}
    run, row["jaxgan"] = jaxgan_side(with_batch(P.jaxgan_case(name), args.peer_batch))
    row["jaxgan"].update(warm_up(run, args.warmup, args.target_rep_s))
    sides["jaxgan"] = (run, row["jaxgan"]["steps_per_round"])
    if name in P.EXTERNAL_CASES:
        row["note"] = "external reference: jaxgan's step on NNX mirrors of the script's networks"
    run, row["pytorch"] = torch_side(P, name, args.peer_batch, args.peer_threads)
    row["pytorch"].update(warm_up(run, args.warmup, args.target_rep_s))
    sides["pytorch"] = (run, row["pytorch"]["steps_per_round"])
    row["batch"] = row["pytorch"]["batch"]
    row.update(summarize(interleave(sides, args.peer_rounds)), rounds=args.peer_rounds)
    row.update(flop_rates(row["jaxgan"]["flops_per_iter"], row, peak))
    return row


def flop_rates(flops: float | None, row: dict[str, Any], peak: float) -> dict[str, Any]:
    """Each side's GFLOP/s at its median time and its share of the f32 matmul ``peak`` (FLOP/s),
    both counting the FLOPs of jaxgan's compiled step (XLA's cost analysis): the same work."""
    if not flops:
        return {}
    out: dict[str, Any] = {"flops_per_iter": flops}
    for side in ("jaxgan", "pytorch"):
        rate = flops / (row[f"{side}_ms"] / 1e3)
        out[f"{side}_gflops"], out[f"{side}_peak_fraction"] = rate / 1e9, rate / peak
    return out


def threads_info(P: ModuleType, machine: dict[str, Any], threads: int) -> dict[str, Any]:
    """Threads of each side: torch's setting, and the CPUs XLA's CPU thread pool is sized to."""
    cpus = machine["cpu_affinity"] or machine["cpu_count"]
    return {"pytorch": threads, "pytorch_interop": P.torch.get_num_interop_threads(),
            "jax_cpu": cpus, "jax_cpu_source": "CPUs this process may run on (XLA's CPU pool)",
            "equal": cpus == threads}  # fmt: skip


def report(res: dict[str, Any]) -> str:
    """The printed table: medians, ratio, its quartiles over rounds, steps per round."""
    t = res["threads"]
    header = [
        "case",
        "batch",
        "jaxgan ms",
        "pytorch ms",
        "ratio",
        "ratio q1-q3",
        "GFLOP/iter",
        "jaxgan GFLOP/s (% peak)",
        "pytorch GFLOP/s (% peak)",
        "rounds x steps",
    ]
    rows, notes = [], []
    for r in res["peers"]:
        if "error" in r:
            rows.append([r["case"], "-", "FAILED", *["-"] * 7])
            notes.append(f"  {r['case']}: {r['error']}")
            continue
        s, ks = r["spread"], [r[n]["steps_per_round"] for n in ("jaxgan", "pytorch") if n in r]
        q = f"{s['ratio_q1']:.2f}-{s['ratio_q3']:.2f}" if r["ratio"] is not None else "-"
        rows.append([r["case"], str(r["batch"]), M.fmt(r["jaxgan_ms"], ".2f"),
                     f"{r['pytorch_ms']:.2f}", M.fmt(r["ratio"], ".2f"), q, *_flop_cells(r),
                     f"{r['rounds']} x {'/'.join(map(str, ks))}"])  # fmt: skip
    lines = [
        f"jaxgan vs PyTorch {res['machine']['versions'].get('torch', '?')}: ms per generator "
        f"iteration, medians of alternating rounds; ratio = PyTorch / jaxgan (> 1: jaxgan faster)",
        f"FLOPs: XLA's count of jaxgan's compiled step, for both sides; % of the f32 matmul "
        f"peak {res['matmul_peak']['reference_flops_per_s'] / 1e9:.1f} GFLOP/s (n = "
        f"{res['matmul_peak']['n']}, best of start and end)",
        f"threads: PyTorch {t['pytorch']}, JAX CPU {t['jax_cpu']}; load average before "
        f"{res['load_before']} after {res['load_after']}",
        "",
        M.table(header, rows),
        *notes,
    ]
    if not t["equal"]:
        lines.append(f"note: JAX may use {t['jax_cpu']} CPUs, PyTorch {t['pytorch']} threads; "
                     f"run under `taskset -c 0,1` (and --peer-threads 2) to give both 2")  # fmt: skip
    return "\n".join(lines)


def _flop_cells(r: dict[str, Any]) -> list[str]:
    if "flops_per_iter" not in r:
        return ["-", "-", "-"]
    side = lambda n: f"{r[n + '_gflops']:.1f} ({100 * r[n + '_peak_fraction']:.0f} %)"  # noqa: E731
    return [f"{r['flops_per_iter'] / 1e9:.2f}", side("jaxgan"), side("pytorch")]


def main(args, argv: list[str] | None) -> int:
    """``run.py --peers``: time the cases, print the table, write the JSON; 2 without torch."""
    P = load_peers()
    if P is None:
        print(f"run.py: error: --peers needs PyTorch: {INSTALL}", file=sys.stderr)
        return 2
    xla_flags.apply(announce=True)  # before JAX starts, as for jaxgan's own cases
    names = [n.strip() for n in (args.peer_cases or ",".join(P.CASES)).split(",") if n.strip()]
    if bad := [n for n in names if n not in P.CASES]:
        raise SystemExit(
            f"run.py: error: unknown peer case {bad[0]!r}; valid: {', '.join(P.CASES)}"
        )
    started, load_before = time.time(), M.load_average()
    machine = M.machine_info()
    machine["versions"]["torch"] = P.torch.__version__
    res: dict[str, Any] = {"started": started, "machine": machine, "load_before": load_before}
    res["threads"] = threads_info(P, machine, args.peer_threads)
    res["settings"] = {"cases": names, "rounds": args.peer_rounds, "batch": args.peer_batch,
                       "warmup": args.warmup, "target_round_s": args.target_rep_s, "gap_s": GAP_S,
                       "order": "jaxgan first in even rounds, PyTorch first in odd ones",
                       "command": " ".join(["benchmarks/run.py", *(argv if argv is not None else sys.argv[1:])])}  # fmt: skip
    matmul = M.MatmulPeak(args.peak_n or 2048)
    start = matmul.measure()
    old_threads, res["peers"] = P.torch.get_num_threads(), []
    try:
        for name in names:
            print(f"[{time.strftime('%H:%M:%S')}] {name}", flush=True)
            try:
                row = time_case(P, name, args, start["flops_per_s"])
            except Exception as e:  # reported; the other cases still run
                row = {"case": name, "error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"}  # fmt: skip
                print(f"    FAILED {row['error']}", flush=True)
            else:
                print(f"    jaxgan {M.fmt(row['jaxgan_ms'], '.2f')} ms, PyTorch "
                      f"{row['pytorch_ms']:.2f} ms, ratio {M.fmt(row['ratio'], '.2f')}", flush=True)  # fmt: skip
            res["peers"].append(row)
            gc.collect()
    finally:
        P.torch.set_num_threads(old_threads)
    end = matmul.measure()
    ref = max(start["flops_per_s"], end["flops_per_s"])
    res["matmul_peak"] = {"n": matmul.n, "start": start, "end": end, "reference_flops_per_s": ref}
    for row in res["peers"]:  # against the best of the two samples, as run.py's own table
        row.update(flop_rates(row.get("flops_per_iter"), row, ref) if "ratio" in row else {})
    res["load_after"], res["total_s"] = M.load_average(), time.time() - started
    res["table"] = report(res)
    print(f"\n{res['table']}\ntotal {res['total_s']:.0f} s")
    out = args.out or os.path.join(BENCH_DIR, "results", "peers.json")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        json.dump(res, f, indent=2)
    print(f"wrote {out}")
    return 0
