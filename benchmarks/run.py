"""jaxgan benchmark suite (issue 7): train-step speed, FLOP/s against the measured matmul peak,
compile time and peak memory, the gradient penalty's cost, input-pipeline headroom and data
parallel overhead.

Usage: ``python benchmarks/run.py [--cases a,b,...] [--reps N] [--warmup N] [--out FILE] [--quick]``

Cases: toy, mnist_mlp_gp, mnist_mlp_clip, dcgan64, pggan (or single stages such as pggan16_f32),
gp_overhead, input, dp. Every train step is jitted as ``jaxgan.engine.Run`` jits it, on a one-device
mesh (``dp`` runs in a child process with 8 fake CPU devices). Each figure is the median of
``--reps`` timed repetitions after ``--warmup`` calls; a repetition runs enough back-to-back steps
to last about ``--target-rep-s`` and ends in ``jax.block_until_ready``. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(1, os.path.dirname(HERE))

import _common as C  # noqa: E402, N812
import cases as K  # noqa: E402, N812

STEP_CASES = ("toy", "mnist_mlp_gp", "mnist_mlp_clip", "dcgan64", "pggan")
ALL_CASES = (*STEP_CASES, "gp_overhead", "input", "dp")
# Not in the default set: the DCGAN step with lax's native stride-2 convolutions (the "before" of
# the stride-1 rewrite; ~40 s per iteration on the 2-core CPU).
EXTRA_CASES = ("dcgan64_native",)
TARGET_FRACTION = 0.70  # issue 7: MLP cases at >= 70 % of the measured matmul peak
DP_DEVICES = (1, 2, 4, 8)
# The script the dp child process runs (a wrapper may point it at itself).
DP_ENTRY = os.path.abspath(__file__)


def pggan_resolutions(args, backend: str) -> list[int]:
    if args.pggan_res:
        return [int(r) for r in args.pggan_res.split(",")]
    top = 1024 if backend != "cpu" else (32 if args.quick else 128)
    return [r for r in (4, 8, 16, 32, 64, 128, 256, 512, 1024) if r <= top]


def expand_cases(names: list[str], args, backend: str) -> list[str]:
    """'pggan' -> one name per (stage, dtype); other names unchanged; validated."""
    out: list[str] = []
    for n in names:
        if n == "pggan":
            for dt in args.pggan_dtypes.split(","):
                short = "bf16" if dt == "bfloat16" else "f32"
                out += [f"pggan{r}_{short}" for r in pggan_resolutions(args, backend)]
        elif n in ALL_CASES or n in EXTRA_CASES or parse_pggan(n):
            out.append(n)
        else:
            raise SystemExit(
                f"run.py: error: unknown case {n!r}; valid: {', '.join(ALL_CASES + EXTRA_CASES)}"
            )
    return out


def parse_pggan(name: str) -> tuple[int, str] | None:
    if not name.startswith("pggan") or "_" not in name:
        return None
    res, dt = name[5:].split("_", 1)
    if not res.isdigit() or dt not in ("f32", "bf16"):
        return None
    return int(res), "bfloat16" if dt == "bf16" else "float32"


def gan_case(name: str, args) -> K.GanCase:
    fixed = {
        "toy": K.toy_case,
        "mnist_mlp_gp": K.mnist_gp_case,
        "mnist_mlp_clip": K.mnist_clip_case,
        "dcgan64": K.dcgan_case,
        "dcgan64_native": lambda: K.dcgan_case("native"),
    }
    if name in fixed:
        return fixed[name]()
    res, dtype = parse_pggan(name)
    final = max(r for r in args._pggan_res_all if r >= res) if args._pggan_res_all else res
    return K.pggan_case(res, dtype, final)


# --- running ---------------------------------------------------------------------------------


def single_device_mesh():
    import jax

    from jaxgan import parallel

    return parallel.make_mesh(jax.devices()[:1])


def run_step_cases(names: list[str], args) -> list[dict[str, Any]]:
    mesh = single_device_mesh()
    results = []
    rate: dict[str, float] = {}  # pggan dtype -> FLOP/s of its last measured stage
    sampler = C.MatmulPeak(args._peak_n)
    for name in names:
        case = gan_case(name, args)
        print(f"[{time.strftime('%H:%M:%S')}] {name}: {json.dumps(case.config)}", flush=True)
        dtype = case.config.get("dtype", "float32")
        # The machine's load changes during a run: measure the peak again right before the case.
        local_peak = sampler.sample(5)
        try:
            res = K.run_gan_case(
                case,
                mesh=mesh,
                reps=args.reps,
                warmup=args.warmup,
                target_rep_s=args.target_rep_s,
                budget_s=args.budget_s,
                exact_flops=args.exact_flops == "all"
                or (args.exact_flops == "toy" and name == "toy"),
                max_step_s=args.max_step_s if case.group == "pggan" else 0.0,
                rate_hint=rate.get(dtype) if case.group == "pggan" else None,
                unroll=args.unroll_critic,
                # The peak again right before every repetition: each repetition's rate is set
                # against the machine's speed at that moment ("% paired").
                pair=lambda: sampler.sample(3),
            )
        except Exception as e:  # a failing case is reported, the others still run
            msg = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            print(f"    FAILED {msg}", flush=True)
            results.append({"name": name, "group": case.group, "config": case.config, "error": msg})
            continue
        res["local_peak_flops_per_s"] = local_peak
        if "skipped" in res:
            print(f"    skipped: {res['skipped']}", flush=True)
        else:
            t = res["timing"]
            if case.group == "pggan" and res.get("flops_per_s"):
                rate[dtype] = res["flops_per_s"]
            print(
                f"    {1e3 * t['median_s']:.1f} ms/iter (min {1e3 * t['min_s']:.1f}, max "
                f"{1e3 * t['max_s']:.1f}; {t['reps']}x{t['iters_per_rep']}), compile "
                f"{res['compile']['total_s']:.1f} s",
                flush=True,
            )
        results.append(res)
    return results


def run_isolated(names: list[str], args) -> list[dict[str, Any]]:
    """Each step case in its own process (exact per-case device peak memory)."""
    results = []
    for name in names:
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "case.json")
            cmd = [
                sys.executable,
                os.path.abspath(__file__),
                "--cases",
                name,
                "--_worker",
                "--out",
                out,
                *args._passthrough,
            ]
            subprocess.run(cmd, check=True)
            with open(out) as f:
                results += json.load(f)["cases"]
    return results


def run_dp_worker(args) -> dict[str, Any]:
    """In a process with >= max(DP_DEVICES) CPU devices: per-step time and results vs 1 device."""
    import jax

    devices = [int(d) for d in args.dp_devices.split(",")]
    if jax.device_count() < max(devices):
        raise SystemExit(f"dp: need {max(devices)} devices, have {jax.device_count()}")
    out: dict[str, Any] = {"devices": devices, "steps_compared": args.dp_steps, "configs": []}
    for make in (K.toy_case, K.mnist_gp_case):
        # Plain SGD (lr 1e-3) for G and critic: Adam would turn reduction-order noise in gradients
        # near zero into full-size steps of opposite sign, hiding how close the gradients are.
        case = dataclasses.replace(make(), build_optimizers=_sgd)
        case.config = {**case.config, "optimizer": "sgd lr 1e-3 (dp comparison)"}
        try:
            rows = _dp_rows(case, devices, args)
        except Exception as e:  # reported, the other config still runs
            msg = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            out["configs"].append({"case": case.name, "batch": case.batch, "error": msg})
            continue
        out["configs"].append({"case": case.name, "batch": case.batch, "rows": rows})
    return out


def _sgd(objective):
    import optax

    return optax.sgd(1e-3), optax.sgd(1e-3)


def _dp_rows(case: K.GanCase, devices: list[int], args) -> list[dict[str, Any]]:
    """Same initial state, reals and key on meshes of n devices: time and results vs the first."""
    import jax
    import numpy as np

    from jaxgan import parallel

    rows: list[dict[str, Any]] = []
    ref = None
    for n in devices:
        mesh = parallel.make_mesh(jax.devices()[:n])
        state, make_step, reals, alpha = K.prepare(case, mesh)
        sharding = parallel.tree_shardings(state, mesh)
        step = jax.jit(
            make_step(args.unroll_critic), out_shardings=(sharding, None), donate_argnums=0
        )
        metrics_log = []
        for _ in range(args.dp_steps):
            state, m = step(state, reals, alpha)
            metrics_log.append(m)
        host = jax.device_get(((state.g_params, state.d_params), metrics_log))
        flat = [[np.asarray(x, np.float64) for x in jax.tree.leaves(h)] for h in host]
        holder = {"s": state}
        del state

        def run(k: int, step=step, holder=holder, reals=reals, alpha=alpha):
            s = holder["s"]
            for _ in range(k):
                s, _m = step(s, reals, alpha)
            holder["s"] = s
            return s

        timing = C.time_iterations(
            run, reps=args.dp_reps, warmup=1, target_rep_s=args.target_rep_s / 2
        )
        row: dict[str, Any] = {"devices": n, "timing": timing}
        if ref is None:
            ref = flat
        diffs = []
        for ref_leaves, leaves in zip(ref, flat, strict=True):
            pairs = list(zip(ref_leaves, leaves, strict=True))
            diffs.append(max(float(np.max(np.abs(a - b))) if a.size else 0.0 for a, b in pairs))
        row.update(
            max_abs_diff_params=diffs[0],
            max_abs_diff_metrics=diffs[1],
            max_abs_diff=max(diffs),
            max_abs_param=max(float(np.max(np.abs(a))) for a in ref[0] if a.size),
            bitwise_equal=all(
                np.array_equal(a, b)
                for rl, ls in zip(ref, flat, strict=True)
                for a, b in zip(rl, ls, strict=True)
            ),
        )
        rows.append(row)
        holder.clear()
    base = rows[0]["timing"]["median_s"]
    for r in rows:
        r["overhead_vs_1"] = r["timing"]["median_s"] / base
    return rows


def run_dp(args) -> dict[str, Any]:
    """Run the dp case in a child process with 8 fake CPU devices (unless this one has them)."""
    import jax

    need = max(int(d) for d in args.dp_devices.split(","))
    if jax.default_backend() == "cpu" and jax.device_count() >= need:
        return run_dp_worker(args)
    env = dict(os.environ)
    flags = env.get("XLA_FLAGS", "")
    env["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={need}".strip()
    env["JAX_PLATFORMS"] = "cpu"
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "dp.json")
        cmd = [
            sys.executable,
            DP_ENTRY,
            "--_dp-worker",
            "--out",
            out,
            "--dp-devices",
            args.dp_devices,
            "--dp-steps",
            str(args.dp_steps),
            "--dp-reps",
            str(args.dp_reps),
            "--target-rep-s",
            str(args.target_rep_s),
            "--unroll",
            args.unroll,
        ]
        subprocess.run(cmd, check=True, env=env)
        with open(out) as f:
            return json.load(f)


def run_inputs(step_results: list[dict[str, Any]], args) -> list[dict[str, Any]]:
    """Pipeline images/s at each measured case's batch/stack, beside the step's consumption."""
    mesh = single_device_mesh()

    def key(case: K.GanCase):
        return (case.input_spec, case.batch, case.n_critic)

    names = [r["name"] for r in step_results] or ["toy", "mnist_mlp_gp", "dcgan64"]
    cases = {n: gan_case(n, args) for n in names}
    consumed = {r["name"]: r["images_per_s"] for r in step_results if "images_per_s" in r}
    specs: dict[Any, K.GanCase] = {}
    for case in cases.values():
        if case.input_spec is not None:
            specs.setdefault(key(case), case)
    folder_res = [c.input_spec[1] for c in specs.values() if c.input_spec[0] == "folder"]
    folders = K.InputFolders(max(folder_res), n=args.input_files) if folder_res else None
    rows = []
    try:
        for k, case in specs.items():
            spec, res = case.input_spec
            label = spec + (f"@{res}" if res else "")
            if spec == "folder":
                spec = f"folder:{folders.path}"
                label += f" ({folders.files} JPEGs {folders.size}px, cached)"
            stack = case.n_critic if case.n_critic > 1 else None
            m = K.measure_input(
                spec,
                resolution=res,
                batch=case.batch,
                stack=stack,
                mesh=mesh,
                batches=args.input_batches,
            )
            cons = {n: v for n, v in consumed.items() if key(cases[n]) == k}
            rows.append(
                {
                    "dataset": label,
                    "batch": case.batch,
                    "stack": stack,
                    **m,
                    "consumed_images_per_s": cons,
                    "headroom": {n: m["images_per_s"] / v for n, v in cons.items()},
                }
            )
            print(
                f"    input {label} batch {case.batch} stack {stack}: "
                f"{m['images_per_s']:.0f} images/s",
                flush=True,
            )
    finally:
        if folders is not None:
            folders.close()
    return rows


# --- report ----------------------------------------------------------------------------------


def mb(x: float | None) -> str:
    return "-" if x is None else f"{x / 2**20:.0f}"


def report(res: dict[str, Any]) -> str:
    peak = res["matmul_peak"]["reference_flops_per_s"]
    m = res["machine"]
    lines = [
        f"jaxgan benchmarks  {time.strftime('%Y-%m-%d %H:%M', time.localtime(res['started']))}  "
        f"{m['device_kind']} x{m['device_count']} ({m['backend']}), {m['cpu_count']} CPU cores, "
        f"jax {m['versions']['jax']}, flax {m['versions']['flax']}",
        f"load average (1/5/15 min) before {res['load_before']}  after {res['load_after']}",
        f"float32 matmul peak: {peak / 1e9:.1f} GFLOP/s (best of {res['matmul_peak']['start']['reps']}"
        f" x {res['matmul_peak']['start']['n']}^3 at start "
        f"{res['matmul_peak']['start']['flops_per_s'] / 1e9:.1f}, at end "
        + (
            f"{res['matmul_peak']['end']['flops_per_s'] / 1e9:.1f})"
            if res["matmul_peak"].get("end")
            else "-)"
        )
        + (
            f"; bfloat16 {res['matmul_peak']['bf16']['flops_per_s'] / 1e9:.1f} GFLOP/s"
            if res["matmul_peak"].get("bf16")
            else ""
        ),
        "",
    ]
    if res["cases"]:
        header = [
            "case",
            "ms/iter",
            "min-max ms",
            "reps",
            "iter/s",
            "img/s",
            "compile s",
            "peak MB",
            "GFLOP/iter",
            "GFLOP/s",
            "% peak med/best",
            "% local",
            "% paired",
        ]
        rows = []
        notes = []
        for r in res["cases"]:
            if "error" in r or "skipped" in r:
                why = "FAILED" if "error" in r else "skipped"
                rows.append([r["name"], why] + ["-"] * (len(header) - 2))
                notes.append(f"  {r['name']}: {r.get('error') or r.get('skipped')}")
                continue
            t = r["timing"]
            fl = r["flops"].get("per_iter")
            rows.append(
                [
                    r["name"],
                    f"{1e3 * t['median_s']:.1f}",
                    f"{1e3 * t['min_s']:.1f}-{1e3 * t['max_s']:.1f}",
                    f"{t['reps']}x{t['iters_per_rep']}",
                    f"{r['iters_per_s']:.2f}",
                    f"{r['images_per_s']:.0f}",
                    f"{r['compile']['total_s']:.1f}",
                    mb(r["memory"].get("peak_bytes")),
                    C.fmt(fl / 1e9 if fl else None, ".2f"),
                    C.fmt(r.get("flops_per_s", 0) / 1e9 if fl else None, ".1f"),
                    f"{100 * r['flops_per_s'] / peak:.1f} / {100 * fl / t['min_s'] / peak:.1f}"
                    if fl
                    else "-",
                    C.fmt(
                        100 * r["flops_per_s"] / r["local_peak_flops_per_s"]
                        if fl and r.get("local_peak_flops_per_s")
                        else None,
                        ".1f",
                    ),
                    C.fmt(100 * r["paired"]["median"] if r.get("paired") else None, ".1f"),
                ]
            )
        lines += [C.table(header, rows), *notes, ""]
        measured = [r for r in res["cases"] if "timing" in r]
        lines.append(
            "img/s = real samples consumed per second (n_critic x batch per iteration); "
            "peak MB = "
            + (
                "device peak"
                if measured and measured[0]["memory"]["peak_source"] == "device"
                else "process peak RSS during the case"
            )
            + "; GFLOP/iter: XLA's cost analysis of the compiled step, all n_critic updates; "
            "% peak: of the run's reference peak, at the median / best time; % local: median "
            "against a peak measured just before the case (the load moves during a run); % "
            "paired: median over repetitions of the repetition's FLOP/s over a peak sample (best "
            "of 3) taken right before it."
        )
        lines.append("")
    fc = res.get("flop_check")
    if fc:
        lines += [
            "FLOP check, toy case (hand count = matmuls only; XLA also counts elementwise ops):",
            f"  hand count          {fc['hand'] / 1e9:8.3f} GFLOP/iter "
            f"(critic step {fc['hand_critic_step'] / 1e9:.3f} x5 + generator step "
            f"{fc['hand_generator_step'] / 1e9:.3f})",
            f"  XLA cost analysis   {fc['xla'] / 1e9:8.3f} GFLOP/iter  "
            f"ratio XLA/hand {fc['ratio']:.3f}",
            f"  XLA, lax.scan form  {fc['xla_scan_as_reported'] / 1e9:8.3f} GFLOP/iter  "
            f"ratio {fc['ratio_scan']:.3f} (a while-loop body is counted once, not n_critic times)",
            "",
        ]
    for g in res.get("gp_overhead", []):
        w, wo = g["rows"]["with_gp"], g["rows"]["without_gp"]
        lines.append(
            f"GP overhead, {g['config']}: critic step {1e3 * w['timing']['median_s']:.1f} ms with "
            f"penalty vs {1e3 * wo['timing']['median_s']:.1f} ms without: x{g['time_ratio']:.2f} "
            f"time, x{C.fmt(g['flops_ratio'], '.2f')} FLOPs"
        )
    if res.get("gp_overhead"):
        lines.append("")
    if res.get("input"):
        header = ["input", "batch", "stack", "pipeline img/s", "consumer", "step img/s", "headroom"]
        rows = []
        for r in res["input"]:
            cons = r["consumed_images_per_s"] or {"-": None}
            for i, (n, v) in enumerate(cons.items()):
                rows.append(
                    [
                        r["dataset"] if i == 0 else "",
                        str(r["batch"]) if i == 0 else "",
                        str(r["stack"] or 1) if i == 0 else "",
                        f"{r['images_per_s']:.0f}" if i == 0 else "",
                        n,
                        C.fmt(v, ".0f"),
                        C.fmt(r["headroom"].get(n), ".1f") + ("x" if v else ""),
                    ]
                )
        lines += [C.table(header, rows), ""]
    dp = res.get("dp")
    if dp:
        header = [
            "dp config",
            "devices",
            "ms/step",
            "min-max ms",
            "vs 1 dev",
            "max |dparam|",
            "max |dloss|",
            "bitwise",
        ]
        rows = []
        for cfg in dp["configs"]:
            if "error" in cfg:
                rows.append([f"{cfg['case']} (B {cfg['batch']})", "FAILED"] + ["-"] * 6)
                continue
            for i, r in enumerate(cfg["rows"]):
                t = r["timing"]
                rows.append(
                    [
                        f"{cfg['case']} (B {cfg['batch']})" if i == 0 else "",
                        str(r["devices"]),
                        f"{1e3 * t['median_s']:.1f}",
                        f"{1e3 * t['min_s']:.1f}-{1e3 * t['max_s']:.1f}",
                        f"x{r['overhead_vs_1']:.2f}",
                        f"{r['max_abs_diff_params']:.1e}",
                        f"{r['max_abs_diff_metrics']:.1e}",
                        "yes" if r["bitwise_equal"] else "no",
                    ]
                )
        lines += [C.table(header, rows)]
        lines += [f"  {c['case']}: {c['error']}" for c in dp["configs"] if "error" in c]
        lines.append(
            f"(fake CPU devices sharing the same cores: no speedup is expected; params and "
            f"metrics compared after {dp['steps_compared']} train steps from the same state, "
            "with SGD lr 1e-3 instead of the cases' optimizers)"
        )
        lines.append("")
    tgt = res.get("target")
    if tgt:
        lines.append(
            f"Target: MLP cases at >= {100 * TARGET_FRACTION:.0f} % of the matmul peak, judged on "
            "the paired ratio (each repetition against the peak sampled right before it)"
        )
        for n, v in tgt["cases"].items():
            lines.append(
                f"  {n:<16} {100 * v['paired']:5.1f} % paired; against the run's peak "
                f"{100 * v['fraction']:.1f} % at the median time, {100 * v['fraction_best']:.1f} % "
                f"at the best: {'met' if v['met'] else 'NOT met'}"
            )
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    ap.add_argument("--cases", default=",".join(ALL_CASES), help="comma-separated case names")
    ap.add_argument("--reps", type=int, default=5, help="timed repetitions per case")
    ap.add_argument("--warmup", type=int, default=2, help="untimed calls after compiling")
    ap.add_argument(
        "--target-rep-s",
        type=float,
        default=0.5,
        help="steps per repetition are chosen so one lasts about this long",
    )
    ap.add_argument(
        "--budget-s",
        type=float,
        default=30.0,
        help="per case: when warm-up + repetitions would exceed this, use fewer",
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="3 reps, 1 warm-up, PGGAN 4..32 on CPU, fewer input batches",
    )
    ap.add_argument("--pggan-res", default=None, help="stages, e.g. 4,8,16 (default: see README)")
    ap.add_argument("--pggan-dtypes", default="float32,bfloat16")
    ap.add_argument(
        "--max-step-s",
        type=float,
        default=30.0,
        help="skip a PGGAN stage predicted (FLOPs / previous stage's FLOP/s) to take "
        "longer per step than this; 0: never skip",
    )
    ap.add_argument(
        "--unroll",
        default="auto",
        choices=("auto", "yes", "no"),
        help="critic updates unrolled or in lax.scan (jaxgan's unroll_critic; auto: its default, "
        "unrolled on CPU)",
    )
    ap.add_argument(
        "--profile",
        default=None,
        help="after measuring, trace this step case with jax.profiler and summarise",
    )
    ap.add_argument("--profile-iters", type=int, default=2)
    ap.add_argument(
        "--exact-flops",
        default="toy",
        choices=("toy", "all", "none"),
        help="cases whose unrolled step is compiled for the FLOP count (others: "
        "compiled count + unrolled lowering)",
    )
    ap.add_argument(
        "--peak-n",
        type=int,
        default=None,
        help="matmul size for the peak (default 2048 on CPU, 8192 on accelerators)",
    )
    ap.add_argument(
        "--isolate",
        default="auto",
        choices=("auto", "yes", "no"),
        help="each step case in its own process (auto: where devices report memory)",
    )
    ap.add_argument("--dp-devices", default=",".join(map(str, DP_DEVICES)))
    ap.add_argument("--dp-steps", type=int, default=3, help="train steps compared across meshes")
    ap.add_argument("--dp-reps", type=int, default=3)
    ap.add_argument("--input-batches", type=int, default=20)
    ap.add_argument("--input-files", type=int, default=128)
    ap.add_argument("--out", default=os.path.join(HERE, "results", "run.json"))
    ap.add_argument("--_worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--_dp-worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.unroll_critic = {"auto": None, "yes": True, "no": False}[args.unroll]
    if args.quick:
        args.reps, args.warmup = min(args.reps, 3), min(args.warmup, 1)
        args.input_batches = min(args.input_batches, 8)
        args.budget_s = min(args.budget_s, 30.0)

    if args._dp_worker:
        res = run_dp_worker(args)
        with open(args.out, "w") as f:
            json.dump(res, f)
        return 0

    import jax

    started = time.time()
    load_before = C.load_average()
    backend = jax.default_backend()
    names = expand_cases([n.strip() for n in args.cases.split(",") if n.strip()], args, backend)
    stages = {p[0] for p in map(parse_pggan, names) if p}
    if args.pggan_res and stages:  # the networks are built for the largest stage asked for
        stages |= {int(r) for r in args.pggan_res.split(",")}
    args._pggan_res_all = sorted(stages)
    step_names = [n for n in names if n in STEP_CASES or n in EXTRA_CASES or parse_pggan(n)]
    # pggan stages of one dtype share networks built for the largest stage: run them in order.

    peak_n = args._peak_n = args.peak_n or (2048 if backend == "cpu" else 8192)
    if args._worker:
        res = {"cases": run_step_cases(step_names, args)}
        with open(args.out, "w") as f:
            json.dump(res, f)
        return 0

    print(f"load average before: {load_before}; cases: {', '.join(names)}", flush=True)
    machine = C.machine_info()
    peak_start = C.matmul_peak(peak_n)
    print(f"float32 matmul peak: {peak_start['flops_per_s'] / 1e9:.1f} GFLOP/s", flush=True)
    bf16 = None
    if any(n.endswith("_bf16") for n in names):
        bf16 = C.matmul_peak(peak_n, "bfloat16", reps=3)

    isolate = args.isolate == "yes" or (
        args.isolate == "auto" and backend != "cpu"
    )  # CPU: the peak RSS counter is reset per case, no need for processes
    if isolate:
        args._passthrough = [
            "--reps",
            str(args.reps),
            "--warmup",
            str(args.warmup),
            "--target-rep-s",
            str(args.target_rep_s),
            "--budget-s",
            str(args.budget_s),
            "--pggan-res",
            ",".join(map(str, args._pggan_res_all or [4])),
            "--exact-flops",
            args.exact_flops,
            "--unroll",
            args.unroll,
            "--max-step-s",
            str(args.max_step_s),
            "--peak-n",
            str(peak_n),
        ]
        step_results = run_isolated(step_names, args)
    else:
        step_results = run_step_cases(step_names, args)

    result: dict[str, Any] = {
        "started": started,
        "machine": machine,
        "load_before": load_before,
        "settings": {
            "cases": names,
            "reps": args.reps,
            "warmup": args.warmup,
            "target_rep_s": args.target_rep_s,
            "budget_s": args.budget_s,
            "quick": args.quick,
            "isolated": isolate,
            "command": " ".join(
                [os.path.relpath(__file__), *(argv if argv is not None else sys.argv[1:])]
            ),
        },
        "cases": step_results,
    }
    toy = next((r for r in step_results if r["name"] == "toy" and "timing" in r), None)
    if toy is not None:
        hand = K.toy_hand_flops()
        f = toy["flops"]
        scan = f["xla_lowered_scan"] if f["critic_loop"] == "unrolled" else f["xla_compiled"]
        result["flop_check"] = {
            "hand": hand["per_iter"],
            "hand_critic_step": hand["critic_step_total"],
            "hand_generator_step": hand["generator_step_total"],
            "hand_detail": hand,
            "xla": f["per_iter"],
            "xla_method": f["method"],
            "xla_scan_as_reported": scan,
            "ratio": f["per_iter"] / hand["per_iter"],
            "ratio_scan": scan / hand["per_iter"] if scan else None,
        }
    if "gp_overhead" in names:
        mesh = single_device_mesh()
        result["gp_overhead"] = []
        for which in ("toy", "dcgan64"):
            print(f"[{time.strftime('%H:%M:%S')}] gp_overhead {which}", flush=True)
            result["gp_overhead"].append(
                K.run_gp_overhead(
                    which,
                    mesh=mesh,
                    reps=args.reps,
                    warmup=args.warmup,
                    target_rep_s=args.target_rep_s,
                    budget_s=args.budget_s,
                )
            )
    if "input" in names:
        print(f"[{time.strftime('%H:%M:%S')}] input", flush=True)
        result["input"] = run_inputs(step_results, args)
    if "dp" in names:
        print(f"[{time.strftime('%H:%M:%S')}] dp (child process, fake CPU devices)", flush=True)
        result["dp"] = run_dp(args)

    if args.profile:
        import _profile as P  # noqa: N812

        print(f"[{time.strftime('%H:%M:%S')}] profile {args.profile}", flush=True)
        logdir = os.path.join(tempfile.gettempdir(), f"jaxgan_profile_{args.profile}")
        prof = P.profile_case(
            gan_case(args.profile, args),
            single_device_mesh(),
            logdir,
            iters=args.profile_iters,
            unroll=args.unroll_critic,
        )
        result["profile"] = prof
    peak_end = C.matmul_peak(peak_n)
    ref = max(peak_start["flops_per_s"], peak_end["flops_per_s"])
    result["matmul_peak"] = {
        "start": peak_start,
        "end": peak_end,
        "bf16": bf16,
        "reference_flops_per_s": ref,
        "note": "reference = the better of the start and end measurements (best of reps each)",
    }
    for r in step_results:
        if r.get("flops_per_s"):
            r["fraction_of_peak"] = r["flops_per_s"] / ref
            r["fraction_of_peak_best"] = r["flops"]["per_iter"] / r["timing"]["min_s"] / ref
    mlp = {r["name"]: r for r in step_results if r["group"] in ("toy", "mnist") and "timing" in r}
    if mlp:
        result["target"] = {
            "fraction": TARGET_FRACTION,
            "cases": {
                n: {
                    "paired": r.get("paired", {}).get("median", 0.0),
                    "fraction": r.get("fraction_of_peak", 0.0),
                    "fraction_best": r.get("fraction_of_peak_best", 0.0),
                    "met": r.get("paired", {}).get("median", 0.0) >= TARGET_FRACTION,
                }
                for n, r in mlp.items()
            },
        }
    result["load_after"] = C.load_average()
    result["total_s"] = time.time() - started
    text = report(result)
    if result.get("profile"):
        import _profile as P  # noqa: N812

        text += "\n" + P.format_profile(result["profile"]) + "\n"
    print()
    print(text)
    print(f"total {result['total_s']:.0f} s")
    result["table"] = text
    C.write_json(args.out, result, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
