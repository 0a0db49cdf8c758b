"""Measurement helpers of ``benchmarks/run.py``: machine facts, matmul peak, timing, FLOPs, memory.

Nothing here knows about GANs. Memory is the first device's ``peak_bytes_in_use`` where the backend
reports one (GPU, TPU), else the process's peak resident set size.
"""

from __future__ import annotations

import contextlib
import os
import platform
import resource
import statistics
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any

import jax
import numpy as np

_COMPILES = [0]  # XLA backend compilations in this process (a jax.monitoring event)


def _on_event(event: str, duration: float, **kw: Any) -> None:
    _COMPILES[0] += event == "/jax/core/compile/backend_compile_duration"


jax.monitoring.register_event_duration_secs_listener(_on_event)


def compiles() -> int:
    return _COMPILES[0]


def load_average() -> list[float] | None:
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def machine_info() -> dict[str, Any]:
    versions = {}
    for name in ("jax", "jaxlib", "flax", "optax", "numpy", "jaxgan"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return {
        "platform": platform.platform(), "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(), "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "backend": jax.default_backend(), "device_kind": jax.devices()[0].device_kind,
        "device_count": jax.device_count(), "versions": versions,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }  # fmt: skip


class MatmulPeak:
    """A compiled n×n @ n×n matmul (2·n³ FLOPs a call) to sample the machine's peak FLOP/s now."""

    def __init__(self, n: int, dtype: str = "float32") -> None:
        self.n, self.dtype = n, dtype
        self._a = jax.random.normal(jax.random.key(0), (2, n, n), dtype)
        self._f = jax.jit(lambda a: a[0] @ a[1])
        jax.block_until_ready(self._f(self._a))

    def times(self, reps: int) -> list[float]:
        return [timed(lambda: self._f(self._a)) for _ in range(reps)]

    def sample(self, reps: int = 3) -> float:
        """Best-of-``reps`` FLOP/s."""
        return 2.0 * self.n**3 / min(self.times(reps))

    def measure(self, reps: int = 7) -> dict[str, Any]:
        t = self.times(reps)
        return {
            "n": self.n, "dtype": self.dtype, "reps": reps, "best_s": min(t),
            "median_s": statistics.median(t), "flops_per_s": 2.0 * self.n**3 / min(t),
            "precision": str(jax.config.jax_default_matmul_precision),
        }  # fmt: skip


def timed(fn: Callable[[], Any]) -> float:
    """Seconds of ``fn()`` until its result is ready."""
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - t0


def time_steps(
    run: Callable[[int], Any], *, reps: int, warmup: int, target_rep_s: float, budget_s: float,
    pair: Callable[[], float] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Time ``run(k)`` (k back-to-back steps; returns something to block on).

    A timed first call (its compiles counted); then, cut to fit ``budget_s`` at the first call's
    speed (down to 0 warm-up and 1 repetition), ``warmup`` calls, a probe call that sizes a
    repetition to about ``target_rep_s`` (1 to 100 steps), and ``reps`` repetitions. ``pair`` (a
    peak sampler) is called right before each repetition: ``pair_samples`` beside ``rep_times_s``.
    """
    n0 = compiles()
    first = timed(lambda: run(1))
    out: dict[str, Any] = {"first_call_s": first, "compiles_in_first_call": compiles() - n0}
    n_reps = max(1, min(reps, int(budget_s / max(first, 1e-9))))
    n_warm = warmup if first * (warmup + n_reps) <= budget_s else 0
    for _ in range(n_warm):
        timed(lambda: run(1))
    probe = timed(lambda: run(1)) if n_warm else first
    iters = int(max(1, min(100, round(target_rep_s / max(probe, 1e-6)))))
    times, peaks, n0 = [], [], compiles()
    for _ in range(n_reps):
        peaks += [pair()] if pair else []
        times.append(timed(lambda: run(iters)) / iters)
    s = sorted(times)
    out.update(
        median_s=statistics.median(s), min_s=s[0], max_s=s[-1], q1_s=float(np.percentile(s, 25)),
        q3_s=float(np.percentile(s, 75)), rep_times_s=times, reps=n_reps, warmup=n_warm,
        iters_per_rep=iters, probe_s=probe, recompiles=compiles() - n0,
        reduced_for_budget=n_reps < reps or n_warm < warmup,
    )  # fmt: skip
    if pair:
        out["pair_samples"] = peaks
    return out


def xla_flops(stage: Any) -> float | None:
    """``cost_analysis()["flops"]`` of a lowered or compiled computation (dict or list form)."""
    try:
        cost = stage.cost_analysis()
    except Exception:
        return None
    vals = [c.get("flops") for c in (cost if isinstance(cost, list | tuple) else [cost]) if c]
    return sum(float(v) for v in vals if v is not None) if any(vals) else None


def xla_memory(compiled: Any) -> dict[str, int] | None:
    """XLA's static buffer sizes of a compiled executable."""
    kinds = ("argument", "output", "alias", "temp", "generated_code")
    try:
        m = compiled.memory_analysis()
        return {f"{k}_size_in_bytes": int(getattr(m, f"{k}_size_in_bytes")) for k in kinds}
    except Exception:
        return None


def _status_kb(field: str) -> int | None:
    with contextlib.suppress(OSError), open("/proc/self/status") as f:
        return next((int(ln.split()[1]) for ln in f if ln.startswith(field + ":")), None)
    return None


@contextlib.contextmanager
def peak_memory(out: dict[str, Any]):
    """Fill ``out`` with the block's peak memory: the device's ``peak_bytes_in_use`` (it never
    resets: ``device_peak_is_cumulative`` says the block set no new high; run.py then isolates
    cases), else the peak RSS (``VmHWM``, reset at entry through ``/proc/self/clear_refs``; else
    ``ru_maxrss``, the process's lifetime peak)."""
    dev = jax.devices()[0]
    before = (dev.memory_stats() or {}).get("peak_bytes_in_use", 0)
    out["rss_before_bytes"] = 1024 * (_status_kb("VmRSS") or 0)
    reset = False
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as f:
        reset = f.write("5") == 1
    yield
    stats = dev.memory_stats() or {}
    if "peak_bytes_in_use" in stats:
        peak = int(stats["peak_bytes_in_use"])
        out.update(peak_bytes=peak, peak_source="device", device_peak_is_cumulative=peak <= before)
    elif reset and _status_kb("VmHWM"):
        out.update(peak_bytes=1024 * _status_kb("VmHWM"), peak_source="host RSS (VmHWM)")
    else:
        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        out.update(peak_bytes=1024 * kb, peak_source="host RSS (ru_maxrss, process lifetime)")


def fmt(x: float | None, spec: str = ".1f") -> str:
    return "-" if x is None else format(x, spec)


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Plain text: the first column left-aligned, the others right-aligned."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(
            c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)
