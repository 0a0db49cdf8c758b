"""Profile one train-step case with ``jax.profiler`` and summarise where the time goes.

The trace (a Perfetto JSON written next to the XPlane protobuf) is read back and every XLA
operation's time is attributed to its HLO opcode, found in the compiled module's text. Convolutions
that XLA:CPU does not hand to its Eigen/oneDNN kernels are emitted as plain loops; the compiled
HLO marks those with ``outer_dimension_partitions`` (the loop parallelisation plan), so their time
is reported separately.
"""

from __future__ import annotations

import collections
import glob
import gzip
import json
import os
import re
import time
from typing import Any

_INSTR = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*[^=]*?\s([a-z][\w\-]*)\(")


def hlo_opcodes(hlo_text: str) -> tuple[dict[str, str], set[str]]:
    """Instruction name -> opcode (fusions as 'fusion:<kind>'), and the loop-emitted convs."""
    ops: dict[str, str] = {}
    loop_convs: set[str] = set()
    for line in hlo_text.splitlines():
        m = _INSTR.match(line)
        if not m:
            continue
        name, op = m.group(1), m.group(2)
        if op == "fusion":
            kind = re.search(r"kind=(\w+)", line)
            op = f"fusion:{kind.group(1) if kind else '?'}"
        ops[name] = op
        if op == "convolution" and "outer_dimension_partitions" in line:
            loop_convs.add(name)
    return ops, loop_convs


def _load_trace(logdir: str) -> list[dict[str, Any]]:
    paths = sorted(glob.glob(os.path.join(logdir, "plugins", "profile", "*", "*perfetto*.json.gz")))
    if not paths:
        raise FileNotFoundError(f"no perfetto trace under {logdir}")
    with gzip.open(paths[-1]) as f:
        data = json.load(f)
    return data["traceEvents"] if isinstance(data, dict) else data


def summarize_trace(logdir: str, hlo_text: str, wall_s: float, iters: int, top: int = 12):
    """Per-opcode and per-op time from a trace of ``iters`` steps lasting ``wall_s``."""
    events = _load_trace(logdir)
    ops, loop_convs = hlo_opcodes(hlo_text)
    by_op: dict[str, float] = collections.defaultdict(float)
    by_name: dict[str, float] = collections.defaultdict(float)
    count: dict[str, int] = collections.defaultdict(int)
    n_exec = 0
    spans: list[tuple[float, float]] = []
    for e in events:
        if e.get("ph") != "X":
            continue
        name, dur = e.get("name", ""), float(e.get("dur", 0.0)) * 1e-6
        if name == "ThunkExecutor::Execute":
            n_exec += 1
            continue
        if name in ops:
            by_op[ops[name]] += dur
            by_name[name] += dur
            count[name] += 1
            start = float(e.get("ts", 0.0)) * 1e-6
            spans.append((start, start + dur))
    op_total = sum(by_op.values())
    # Time when at least one XLA op ran (ops on different threads overlap).
    busy, end = 0.0, float("-inf")
    for a, b in sorted(spans):
        if b > end:
            busy += b - max(a, end)
            end = b
    loop_conv_s = sum(by_name[n] for n in loop_convs if n in by_name)
    return {
        "iters": iters,
        "wall_s": wall_s,
        "wall_per_iter_s": wall_s / iters,
        "xla_op_time_per_iter_s": op_total / iters,
        "busy_per_iter_s": busy / iters,
        "op_parallelism": op_total / busy if busy else None,
        "idle_fraction": max(0.0, 1.0 - busy / wall_s) if wall_s else None,
        "by_opcode_s": dict(
            sorted(((k, v / iters) for k, v in by_op.items()), key=lambda kv: -kv[1])
        ),
        "top_ops": [
            {
                "name": n,
                "opcode": ops.get(n),
                "s_per_iter": t / iters,
                "calls": count[n] // iters,
                "loop_emitted_conv": n in loop_convs,
            }
            for n, t in sorted(by_name.items(), key=lambda kv: -kv[1])[:top]
        ],
        "loop_emitted_convs": sorted(loop_convs),
        "loop_emitted_conv_s_per_iter": loop_conv_s / iters,
        "loop_emitted_conv_fraction": loop_conv_s / op_total if op_total else None,
        "thunk_executes": n_exec,
    }


def profile_case(case, mesh, logdir: str, iters: int = 2, unroll=None) -> dict[str, Any]:
    """Trace ``iters`` train steps of ``case`` (after compiling and one untraced call)."""
    import cases as K  # noqa: N812
    import jax

    from jaxgan import parallel

    state, make_step, reals, alpha = K.prepare(case, mesh)
    step = jax.jit(
        make_step(unroll),
        out_shardings=(parallel.tree_shardings(state, mesh), None),
        donate_argnums=0,
    )
    compiled = step.lower(state, reals, alpha).compile()
    state, _ = step(state, reals, alpha)
    jax.block_until_ready(state)
    os.makedirs(logdir, exist_ok=True)
    with jax.profiler.trace(logdir, create_perfetto_trace=True):
        t0 = time.perf_counter()
        for _ in range(iters):
            state, _ = step(state, reals, alpha)
        jax.block_until_ready(state)
        wall = time.perf_counter() - t0
    out = summarize_trace(logdir, compiled.as_text(), wall, iters)
    out.update(case=case.name, logdir=logdir)
    return out


def format_profile(p: dict[str, Any]) -> str:
    lines = [
        f"Profile of {p['case']}: {p['iters']} steps traced, {1e3 * p['wall_per_iter_s']:.1f} ms "
        f"per step; some XLA op running {1e3 * p['busy_per_iter_s']:.1f} ms of it (idle "
        f"{100 * (p['idle_fraction'] or 0):.0f} %: dispatch, host, gaps between ops); op time "
        f"summed over threads {1e3 * p['xla_op_time_per_iter_s']:.1f} ms (x"
        f"{p['op_parallelism'] or 0:.2f} overlap); trace in {p['logdir']}",
        "  time per step by HLO opcode: "
        + ", ".join(f"{k} {1e3 * v:.1f} ms" for k, v in list(p["by_opcode_s"].items())[:8]),
    ]
    if p["loop_emitted_convs"]:
        lines.append(
            f"  loop-emitted (non-Eigen) convolutions: {len(p['loop_emitted_convs'])}, "
            f"{1e3 * p['loop_emitted_conv_s_per_iter']:.1f} ms per step = "
            f"{100 * (p['loop_emitted_conv_fraction'] or 0):.0f} % of op time"
        )
    lines.append("  top ops:")
    for o in p["top_ops"]:
        flag = "  <- loop-emitted conv" if o["loop_emitted_conv"] else ""
        lines.append(f"    {1e3 * o['s_per_iter']:9.2f} ms  {o['opcode']:<22} {o['name']}{flag}")
    return "\n".join(lines)
