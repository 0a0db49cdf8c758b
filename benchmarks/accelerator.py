"""jaxgan's accelerator path, read from this CPU-only machine and measured on a lent GPU.

The train step picks two formulations per *lowering* platform (``jax.lax.platform_dependent``):
the n_critic critic updates unrolled for ``cpu`` and in one ``lax.scan`` (a StableHLO ``while``)
elsewhere, and DCGAN's stride-2 layers rewritten without strides for ``cpu`` (space-to-depth dot,
sub-pixel stride-1 convolution) and native elsewhere (``stablehlo.convolution`` with ``stride`` /
``lhs_dilate`` 2). ``jax.export`` lowers for ``cuda`` and ``tpu`` here, so both forms can be read
without an accelerator. Commands::

    python benchmarks/accelerator.py forms    # per preset and platform: StableHLO size, critic-loop
                                              # form, convolution windows (the accelerator-form ops)
    python benchmarks/accelerator.py stages   # XLA's FLOP and memory estimates per PGGAN stage
                                              # (4..1024, paper batch, f32 and bf16), CPU-compiled
    python benchmarks/accelerator.py steps    # on this process's device: PGGAN stage steps timed,
                                              # images/s and MFU against the device's peak

Steps are built the way the run builds them: ``build.init_state`` (under ``jax.eval_shape`` for
``forms`` and ``stages``, so a 1024² PGGAN state is never materialised), ``build.train_step``,
``build.jit_step``; ``steps`` reuses ``benchmarks/cases.py`` (``get_case``, ``prepare``) and
``measure.py`` (``time_steps``, ``xla_flops``, ``xla_memory``, ``MatmulPeak``). The StableHLO
readers (:func:`critic_loop`, :func:`strided_convs`, :func:`rewrite_folds`) are what
``tests/test_accelerator_lowering.py`` asserts with. ``benchmarks/gpu_check.sh`` runs ``steps``.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import sys
from collections.abc import Callable
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]

from jaxgan import xla_flags  # noqa: E402

if __name__ == "__main__":
    xla_flags.apply()  # before JAX starts, as run.py and the tests do

import jax  # noqa: E402
import jax.extend  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from jaxgan import configs, parallel  # noqa: E402
from jaxgan.training import build, schedule  # noqa: E402
from jaxgan.training.config import override  # noqa: E402

#: name -> (preset, config overrides, one sample's shape, stage (None: not progressive)).
#: DCGAN on mnist5k trains at 32x32x1 (28x28 padded); PGGAN at its last stage, the paper's batch.
CASES: dict[str, tuple[str, dict[str, Any], tuple[int, ...], int | None]] = {
    "toy": ("toy-wgan-gp", {}, (2,), None),
    "dcgan": ("dcgan-mnist5k", {}, (32, 32, 1), None),
    "pggan1024_bf16": ("pggan", {"dtype": "bfloat16"}, (1024, 1024, 3), 1024),
}
PGGAN_STAGES = (4, 8, 16, 32, 64, 128, 256, 512, 1024)
CARDS_GB = (16, 40, 80)
#: Dense peak FLOP/s by device kind (substring, lower case) and dtype, from the vendors' data
#: sheets: tensor-core bf16 and TF32 (JAX's default float32 matmul precision on these GPUs).
PEAKS: dict[str, dict[str, float]] = {
    "h200": {"bfloat16": 989e12, "float32": 494.5e12},
    "h100 pcie": {"bfloat16": 756e12, "float32": 378e12},
    "h100": {"bfloat16": 989e12, "float32": 494.5e12},
    "a100": {"bfloat16": 312e12, "float32": 156e12},
    "l4": {"bfloat16": 121e12, "float32": 60e12},
}


# --- the steps ---------------------------------------------------------------------------


def step_and_specs(
    preset: str,
    overrides: dict[str, Any],
    shape: tuple[int, ...],
    resolution: int | None,
    fading: bool = False,
) -> tuple[Callable, tuple[Any, ...]]:
    """(jitted step, abstract arguments) of a preset's phase, built as the run builds it.

    ``build.init_state`` runs under ``jax.eval_shape`` (its graphdefs are caught on the way
    out): the state is ShapeDtypeStructs. The real batch is ``(n_critic, batch, ...)`` at the
    phase's batch (for PGGAN the paper's, ``schedule.default_batch_size``); alpha a float32."""
    config = override(configs.get(preset), **overrides)
    mesh = parallel.make_mesh(jax.devices()[:1])
    defs: dict[str, Any] = {}

    def init():
        state, defs["g"], defs["d"] = build.init_state(config, shape, mesh)
        return state

    state = jax.eval_shape(init)
    phases = {(p.resolution, p.fading): p for p in schedule.for_config(config).phases()}
    phase = phases[(resolution, fading)]
    batch = phase.batch_size
    fn = build.train_step(config, defs["g"], defs["d"], phase)
    sample = shape if resolution is None else (resolution, resolution, shape[-1])
    reals = jax.ShapeDtypeStruct((config.loss.n_critic, batch, *sample), jnp.float32)
    alpha = jax.ShapeDtypeStruct((), jnp.float32)
    return build.jit_step(fn, state, mesh), (state, reals, alpha)


def export_text(jitted: Callable, args: tuple[Any, ...], platforms: tuple[str, ...]) -> str:
    """The StableHLO text of ``jax.export.export(jitted, platforms=platforms)(*args)``."""
    return jax.export.export(jitted, platforms=platforms)(*args).mlir_module()


# --- reading StableHLO text ----------------------------------------------------------------

_CALL = re.compile(r"call @([\w.$-]+)\(")
_FUNC = re.compile(r"func\.func (?:public |private )?@([\w.$-]+)\(")
_NETWORK_OPS = re.compile(r"stablehlo\.(?:convolution|dot_general)\b")
#: The stride-2 rewrites' 2x2 folds: (B, H/2, 2, W/2, 2, C) and (B, H, W, 2, 2, C) tensors.
_FOLD = re.compile(r"tensor<\d+x\d+x2x\d+x2x\d+x\w+>|tensor<\d+x\d+x\d+x2x2x\d+x\w+>")


def _close(text: str, open_at: int) -> int:
    """Index of the ``}`` matching the ``{`` at ``open_at``."""
    depth = 0
    for i in range(open_at, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return i
    raise ValueError("unbalanced braces in StableHLO text")


def functions(text: str) -> dict[str, str]:
    """Each ``func.func``'s name -> its body (nested regions included). A signature is one line
    ending in the body's ``{`` (its argument attributes hold braces of their own)."""
    out = {}
    for m in _FUNC.finditer(text):
        start = text.index("\n", m.end()) - 1
        if text[start] != "{":
            raise ValueError(f"unexpected StableHLO signature of @{m.group(1)}")
        out[m.group(1)] = text[start : _close(text, start) + 1]
    return out


def while_bodies(text: str) -> list[str]:
    """The ``do`` region of every ``stablehlo.while`` (nested loops included)."""
    out = []
    for m in re.finditer(r"stablehlo\.while\(", text):
        cond = text.index("{", m.end())
        do = text.index("{", _close(text, cond) + 1)
        out.append(text[do : _close(text, do) + 1])
    return out


def count(text: str, pattern: re.Pattern, funcs: dict[str, str], _stack: tuple = ()) -> int:
    """Matches of ``pattern`` in ``text`` and, once per call site, in the functions it calls."""
    n = len(pattern.findall(text))
    for name in _CALL.findall(text):
        if name in funcs and name not in _stack:
            n += count(funcs[name], pattern, funcs, (*_stack, name))
    return n


def critic_loop(text: str) -> str:
    """ "scan" if a ``while`` loop's body (with the functions it calls) holds convolutions or
    matmuls — the critic update; PRNG loops hold neither — else "unrolled"."""
    funcs = functions(text)
    return "scan" if any(count(b, _NETWORK_OPS, funcs) for b in while_bodies(text)) else "unrolled"


def conv_windows(text: str) -> collections.Counter:
    """``stablehlo.convolution`` ops by their ``window = {...}`` attribute (strides, padding,
    dilations; ``{}``: stride 1, no padding)."""
    return collections.Counter(re.findall(r"stablehlo\.convolution\(.*?window = (\{[^}]*\})", text))


def strided_convs(text: str) -> dict[str, int]:
    """Native stride-2 convolution ops: ``stride = [2, 2]`` (a strided convolution's forward
    pass), ``lhs_dilate = [2, 2]`` (a transposed convolution's forward pass and a strided one's
    input gradient) and ``rhs_dilate = [2, 2]`` (a strided convolution's kernel gradient)."""
    w = conv_windows(text)
    return {k: sum(n for win, n in w.items() if f"{k} = [2, 2]" in win) for k in ("stride", "lhs_dilate", "rhs_dilate")}  # fmt: skip


def rewrite_folds(text: str) -> int:
    """Tensor types of the CPU rewrites' 2x2 folds (PGGAN's 2x2 average pooling has them too)."""
    return len(_FOLD.findall(text))


def describe(text: str) -> dict[str, Any]:
    """Size and forms of one lowering."""
    ops = collections.Counter(re.findall(r"\b(?:stablehlo|chlo)\.[a-z_]+", text))
    return {
        "chars": len(text),
        "ops": sum(ops.values()),
        "critic_loop": critic_loop(text),
        "while": ops["stablehlo.while"],
        "case": ops["stablehlo.case"],
        "convolution": ops["stablehlo.convolution"],
        "dot_general": ops["stablehlo.dot_general"],
        "strided_convs": strided_convs(text),
        "rewrite_folds": rewrite_folds(text),
        "conv_windows": dict(conv_windows(text)),
    }


def jaxpr_eqns(jaxpr: Any) -> int:
    """Equations of a jaxpr, those of its sub-jaxprs (cond branches, scan bodies) included: what
    tracing built, both forms of every ``platform_dependent`` among them."""
    n = 0
    for eqn in jaxpr.eqns:
        n += 1
        for p in eqn.params.values():
            for sub in p if isinstance(p, tuple | list) else (p,):
                if isinstance(sub, jax.extend.core.ClosedJaxpr):
                    n += jaxpr_eqns(sub.jaxpr)
                elif isinstance(sub, jax.extend.core.Jaxpr):
                    n += jaxpr_eqns(sub)
    return n


def forms(names: list[str]) -> dict[str, Any]:
    """Per case: the traced step's jaxpr size, and :func:`describe` of its ``cpu`` and
    ``cuda, tpu`` exports."""
    out = {}
    for name in names:
        preset, o, shape, res = CASES[name]
        jitted, args = step_and_specs(preset, o, shape, res)
        out[name] = {"jaxpr_eqns": jaxpr_eqns(jitted.trace(*args).jaxpr.jaxpr)}
        for p in ("cpu", "cuda,tpu"):
            out[name][p] = describe(export_text(jitted, args, tuple(p.split(","))))
    return out


# --- XLA's estimates per PGGAN stage -------------------------------------------------------


def stage_costs(stages: list[int], dtypes: list[str]) -> list[dict[str, Any]]:
    """XLA's FLOP count and static buffer sizes of the stable-phase PGGAN step at each stage,
    compiled for this CPU (networks built for the paper's 4..1024 schedule, paper batch)."""
    rows = []
    for dtype in dtypes:
        for res in stages:
            jitted, args = step_and_specs("pggan", {"dtype": dtype}, (1024, 1024, 3), res)
            compiled = jitted.lower(*args).compile()
            cost = compiled.cost_analysis()
            cost = cost[0] if isinstance(cost, list | tuple) else cost
            m = compiled.memory_analysis()
            mem = {k: int(getattr(m, f"{k}_size_in_bytes")) for k in ("argument", "output", "alias", "temp", "generated_code")}  # fmt: skip
            total = mem["argument"] + mem["output"] - mem["alias"] + mem["temp"]
            batch = args[1].shape[1]
            rows.append({"resolution": res, "dtype": dtype, "batch": batch,
                         "flops": float(cost.get("flops", 0.0)),
                         "bytes_accessed": float(cost.get("bytes accessed", 0.0)),
                         **{f"{k}_bytes": v for k, v in mem.items()}, "total_bytes": total,
                         "fits_gb": {gb: total < gb * 1e9 for gb in CARDS_GB}})  # fmt: skip
            print(_stage_line(rows[-1]), flush=True)
    return rows


def _stage_line(r: dict[str, Any]) -> str:
    fits = " ".join(f"{gb}GB:{'yes' if ok else 'NO'}" for gb, ok in r["fits_gb"].items())
    return (f"{r['resolution']:>5}² {r['dtype']:>8} B={r['batch']:>2}  "
            f"{r['flops'] / 1e12:8.3f} TFLOP/step  {r['flops'] / r['batch'] / 1e9:8.1f} GFLOP/img  "
            f"args {r['argument_bytes'] / 2**30:6.2f} GiB  temp {r['temp_bytes'] / 2**30:6.2f} GiB  "
            f"total {r['total_bytes'] / 2**30:6.2f} GiB  {fits}")  # fmt: skip


# --- PGGAN stage steps on this device --------------------------------------------------


def device_peak(device_kind: str, dtype: str) -> float | None:
    """The nominal dense peak FLOP/s of ``device_kind`` for ``dtype`` (None: not in PEAKS)."""
    kind = device_kind.lower()
    return next((p[dtype] for k, p in PEAKS.items() if k in kind), None)


def stage_steps(
    stages: list[int],
    dtypes: list[str],
    final: int,
    budget_s: float,
    deadline_s: float,
    out_path: str | None = None,
) -> dict[str, Any]:
    """Time the stable-phase PGGAN step at each stage and dtype on this process's first device.

    Each case is ``cases.get_case("pggan{R}_{f32,bf16}", final)`` (networks for the schedule
    4..``final``, as a run to ``final`` builds them; the paper's batch), prepared as the loop
    prepares it, compiled once (that executable is what is timed) and timed by
    ``measure.time_steps`` (3 repetitions, 1 warm-up, ``budget_s``). FLOPs: the compiled step's
    cost analysis (PGGAN runs 1 critic update: a loop body counted once is the whole count). MFU: FLOP/s over :func:`device_peak`; beside it the fraction of a
    measured 8192³ matmul of the same dtype. Memory: XLA's static buffer sizes of the compiled
    step, and the device's ``peak_bytes_in_use`` (cumulative over the process: cases run from the
    largest stage down). Cases that would start after ``deadline_s`` seconds are skipped; the
    result so far is written to ``out_path`` after every case (a time limit keeps what ran)."""
    import gc
    import time

    import cases as K  # noqa: N812
    import measure as M  # noqa: N812

    t0 = time.perf_counter()
    mesh = parallel.make_mesh(jax.devices()[:1])
    dev = jax.devices()[0]
    n = 8192 if jax.default_backend() != "cpu" else 512
    matmul = {d: M.MatmulPeak(n, d).sample(5) for d in dtypes}
    out: dict[str, Any] = {"machine": M.machine_info(), "matmul_peak_flops_per_s": matmul,
                           "final": final, "cases": []}  # fmt: skip
    last = 0.0
    for res in sorted(stages, reverse=True):
        for dtype in dtypes:
            name = f"pggan{res}_{'bf16' if dtype == 'bfloat16' else 'f32'}"
            if time.perf_counter() - t0 + last > deadline_s:
                out["cases"].append({"name": name, "skipped": "deadline"})
                print(f"{name}: skipped (deadline)", flush=True)
                continue
            c0 = time.perf_counter()
            case = K.get_case(name, final)
            r: dict[str, Any] = {
                "name": name,
                "resolution": res,
                "dtype": dtype,
                "batch": case.batch,
            }
            try:
                state, jitted, reals = K.prepare(case, mesh)
                c1 = time.perf_counter()
                compiled = jitted.lower(state, reals, K.ALPHA).compile()
                r["compile_s"], r["setup_s"] = time.perf_counter() - c1, c1 - c0
                r["flops_per_step"] = M.xla_flops(compiled)
                r["xla_memory"] = M.xla_memory(compiled)
                run, held = K.stepper(compiled, state, reals)
                del state
                t = M.time_steps(run, reps=3, warmup=1, target_rep_s=0.25, budget_s=budget_s)
                held.clear()
                r["timing"] = {k: t[k] for k in ("median_s", "min_s", "max_s", "reps", "iters_per_rep", "first_call_s")}  # fmt: skip
                r["images_per_s"] = case.batch / t["median_s"]
                fl, peak = r["flops_per_step"], device_peak(dev.device_kind, dtype)
                r["flops_per_s"] = fl / t["median_s"] if fl else None
                r["nominal_peak_flops_per_s"] = peak
                r["mfu"] = r["flops_per_s"] / peak if fl and peak else None
                r["of_matmul_peak"] = r["flops_per_s"] / matmul[dtype] if fl else None
                r["device_peak_bytes"] = (dev.memory_stats() or {}).get("peak_bytes_in_use")
            except Exception as e:  # reported; the other cases still run
                r["error"] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            r["total_s"] = last = time.perf_counter() - c0
            out["cases"].append(r)
            print(_step_line(r), flush=True)
            if out_path:
                with open(out_path, "w") as f:
                    json.dump(out, f, indent=1)
            gc.collect()
    return out


def _step_line(r: dict[str, Any]) -> str:
    if "error" in r:
        return f"{r['name']}: FAILED {r['error']}"
    pct = lambda x: "-" if x is None else f"{100 * x:.1f}%"  # noqa: E731
    fl = r["flops_per_step"]
    mem = r["xla_memory"] or {}
    static = sum(mem.get(f"{k}_size_in_bytes", 0) for k in ("argument", "output", "temp")) - mem.get("alias_size_in_bytes", 0)  # fmt: skip
    return (f"{r['name']:>14}  B={r['batch']:>2}  {r['images_per_s']:8.1f} img/s  "
            f"{1e3 * r['timing']['median_s']:8.1f} ms/step  "
            f"{'-' if fl is None else f'{fl / 1e12:.3f}'} TFLOP/step  MFU {pct(r['mfu'])}  "
            f"of matmul {pct(r['of_matmul_peak'])}  XLA static {static / 2**30:.2f} GiB  "
            f"compile {r['compile_s']:.0f} s")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("forms", help="StableHLO size and forms per preset and platform")
    f.add_argument("--cases", default=",".join(CASES), help=f"of {', '.join(CASES)}")
    s = sub.add_parser("stages", help="XLA's FLOP and memory estimates per PGGAN stage (CPU)")
    s.add_argument("--res", default=",".join(map(str, PGGAN_STAGES)))
    s.add_argument("--dtypes", default="float32,bfloat16")
    m = sub.add_parser("steps", help="time PGGAN stage steps here: images/s, MFU")
    m.add_argument("--res", default="128,256,512,1024")
    m.add_argument("--dtypes", default="float32,bfloat16")
    m.add_argument("--final", type=int, default=1024, help="networks built for 4..FINAL")
    m.add_argument("--budget-s", type=float, default=8.0, help="timing per case")
    m.add_argument("--deadline-s", type=float, default=1e9, help="start no case after this")
    for p in (f, s, m):
        p.add_argument("--out", default=None, help="also write the result as JSON here")
    args = ap.parse_args(argv)
    if args.cmd == "forms":
        result: Any = forms([n.strip() for n in args.cases.split(",") if n.strip()])
        for name, per in result.items():
            print(f"{name}: traced step {per['jaxpr_eqns']:,} jaxpr equations")
            for plat, d in per.items():
                if plat == "jaxpr_eqns":
                    continue
                windows = "; ".join(f"{n}x {w}" for w, n in sorted(d["conv_windows"].items()))
                print(f"{name:>15} [{plat:>8}] {d['chars']:>9,} chars {d['ops']:>6} ops  critic loop: "
                      f"{d['critic_loop']:<8} while {d['while']:>2}  case {d['case']:>4}  "
                      f"stride-2 convs {d['strided_convs']}  rewrite folds {d['rewrite_folds']}")  # fmt: skip
                print(f"{'':>15} conv windows: {windows or '-'}")
    elif args.cmd == "stages":
        print("XLA estimates of the PGGAN stable-phase train step, compiled for this CPU (GPU/TPU "
              "compilers fuse and schedule differently: treat these as estimates)")  # fmt: skip
        result = stage_costs([int(r) for r in args.res.split(",")], args.dtypes.split(","))
    else:
        kind = jax.devices()[0].device_kind
        print(f"PGGAN stage steps on {kind} ({jax.default_backend()}); MFU against "
              f"{', '.join(f'{d} {(device_peak(kind, d) or 0) / 1e12:.0f}' for d in args.dtypes.split(','))} "
              "TFLOP/s nominal dense peak (0: unknown device, add it to PEAKS)")  # fmt: skip
        result = stage_steps([int(r) for r in args.res.split(",")], args.dtypes.split(","),
                             args.final, args.budget_s, args.deadline_s, args.out)  # fmt: skip
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(result, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
