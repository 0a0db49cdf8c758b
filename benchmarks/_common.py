"""Measurement helpers shared by ``benchmarks/run.py``: timing, FLOPs, memory, machine facts.

Nothing here knows about GANs. Every helper works on CPU and on accelerators alike: device memory
comes from ``Device.memory_stats()`` where the backend has it (GPU, TPU), and from the process's
peak resident set size on CPU.
"""

from __future__ import annotations

import contextlib
import os
import platform
import resource
import statistics
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

# --- machine -------------------------------------------------------------------------------


def load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages (None where the OS has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def _version(module: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:
        return None


def machine_info() -> dict[str, Any]:
    """Platform, CPU, devices and library versions."""
    import jax

    dev = jax.devices()[0]
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "backend": jax.default_backend(),
        "device_kind": dev.device_kind,
        "device_count": jax.device_count(),
        "versions": {
            name: _version(name) for name in ("jax", "jaxlib", "flax", "optax", "numpy", "jaxgan")
        },
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }


# --- statistics ----------------------------------------------------------------------------


def summarize(times: Sequence[float]) -> dict[str, Any]:
    """Median, min, max and interquartile range of per-iteration times (seconds)."""
    t = sorted(float(x) for x in times)
    q = np.percentile(t, [25, 75]) if len(t) > 1 else (t[0], t[0])
    return {
        "median_s": statistics.median(t),
        "min_s": t[0],
        "max_s": t[-1],
        "q1_s": float(q[0]),
        "q3_s": float(q[1]),
        "spread_pct": 100.0 * (t[-1] - t[0]) / statistics.median(t) if t[0] > 0 else 0.0,
        "samples_s": t,
    }


def write_json(path: str, obj: Any, indent: int = 1) -> None:
    """Write ``obj`` as JSON to ``path`` (making its folder) and say so."""
    import json

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f, indent=indent)
    print(f"wrote {path}")


# --- timing --------------------------------------------------------------------------------


class CompileCounter:
    """Counts XLA backend compilations while active (``jax.monitoring`` compile events)."""

    EVENT = "/jax/core/compile/backend_compile_duration"

    def __init__(self) -> None:
        self.count = 0
        self.seconds = 0.0
        self._active = False
        self._registered = False

    def _listener(self, event: str, duration: float, **kwargs: Any) -> None:
        if self._active and event == self.EVENT:
            self.count += 1
            self.seconds += duration

    @contextlib.contextmanager
    def active(self) -> Iterator[CompileCounter]:
        import jax

        if not self._registered:
            jax.monitoring.register_event_duration_secs_listener(self._listener)
            self._registered = True
        self._active = True
        try:
            yield self
        finally:
            self._active = False


COMPILES = CompileCounter()


def time_iterations(
    run: Callable[[int], Any],
    *,
    reps: int,
    warmup: int,
    target_rep_s: float,
    max_iters: int = 100,
    probe_s: float | None = None,
    pair: Callable[[], float] | None = None,
) -> dict[str, Any]:
    """Time ``run(k)`` (which performs k iterations and returns something to block on).

    ``pair``: called right before each repetition (a matmul peak sample, FLOP/s); its values
    are returned in order as ``pair_samples`` beside the unsorted ``rep_times_s``, so that each
    repetition can be set against the machine's speed at that moment.

    After ``warmup`` single iterations, one more single iteration (skipped when ``probe_s``, the
    known time of one iteration, is given) sizes the repetitions so that each lasts about
    ``target_rep_s`` (between 1 and ``max_iters`` iterations); then ``reps`` repetitions are
    timed, each ending in ``jax.block_until_ready``. Returns :func:`summarize` of the
    per-iteration times plus ``iters_per_rep`` and the compiles seen while timing.
    """
    import jax

    for _ in range(warmup):
        jax.block_until_ready(run(1))
    probe = probe_s
    if probe is None:
        t0 = time.perf_counter()
        jax.block_until_ready(run(1))
        probe = time.perf_counter() - t0
    iters = int(max(1, min(max_iters, round(target_rep_s / max(probe, 1e-6)))))
    times, pair_samples = [], []
    with COMPILES.active() as counter:
        before = counter.count
        for _ in range(reps):
            if pair is not None:
                pair_samples.append(pair())
            t0 = time.perf_counter()
            jax.block_until_ready(run(iters))
            times.append((time.perf_counter() - t0) / iters)
        recompiles = counter.count - before
    out = summarize(times)
    out.update(iters_per_rep=iters, reps=reps, warmup=warmup, probe_s=probe, recompiles=recompiles)
    out["rep_times_s"] = times
    if pair is not None:
        out["pair_samples"] = pair_samples
    return out


def time_within_budget(
    run: Callable[[int], Any],
    *,
    reps: int,
    warmup: int,
    target_rep_s: float,
    budget_s: float,
    pair: Callable[[], float] | None = None,
) -> tuple[float, dict[str, Any]]:
    """First call (timed, compiles counted), then :func:`time_iterations` cut to ``budget_s``.

    Expensive steps get fewer repetitions (at least one) and no extra warm-up (the first call
    serves as warm-up and probe), so that warm-up + repetitions fit the budget. Returns
    ``(first_call_s, timing)``; ``timing["compiles_in_first_call"]`` says whether the first
    call compiled again.
    """
    import jax

    with COMPILES.active() as counter:
        n0 = counter.count
        t0 = time.perf_counter()
        jax.block_until_ready(run(1))
        first = time.perf_counter() - t0
        compiles = counter.count - n0
    eff_reps = max(1, min(reps, int(budget_s / max(first, 1e-9))))
    eff_warmup = warmup if first * (warmup + eff_reps) <= budget_s else 0
    timing = time_iterations(
        run,
        reps=eff_reps,
        warmup=eff_warmup,
        target_rep_s=target_rep_s,
        probe_s=first if eff_warmup == 0 else None,
        pair=pair,
    )
    timing["reduced_for_budget"] = eff_reps < reps or eff_warmup < warmup
    timing["first_call_s"] = first
    timing["compiles_in_first_call"] = compiles
    return first, timing


# --- FLOPs ---------------------------------------------------------------------------------


def cost_flops(cost: Any) -> float | None:
    """The 'flops' entry of a cost analysis: a dict, or a list of dicts (one per program)."""
    if cost is None:
        return None
    if isinstance(cost, dict):
        v = cost.get("flops")
        return float(v) if v is not None else None
    if isinstance(cost, (list, tuple)):
        vals = [cost_flops(c) for c in cost]
        vals = [v for v in vals if v is not None]
        return float(sum(vals)) if vals else None
    return None


def safe_cost_flops(obj: Any) -> float | None:
    """``cost_flops(obj.cost_analysis())``, None if the backend cannot analyse it."""
    try:
        return cost_flops(obj.cost_analysis())
    except Exception:
        return None


def memory_analysis(compiled: Any) -> dict[str, int] | None:
    """XLA's static buffer sizes for a compiled executable (arguments, outputs, temporaries)."""
    try:
        m = compiled.memory_analysis()
    except Exception:
        return None
    if m is None:
        return None
    fields = (
        "argument_size_in_bytes",
        "output_size_in_bytes",
        "alias_size_in_bytes",
        "temp_size_in_bytes",
        "generated_code_size_in_bytes",
    )
    out = {f: int(getattr(m, f, 0) or 0) for f in fields}
    out["total_bytes"] = (
        out["argument_size_in_bytes"]
        + out["output_size_in_bytes"]
        - out["alias_size_in_bytes"]
        + out["temp_size_in_bytes"]
    )
    return out


# --- matmul peak ---------------------------------------------------------------------------


class MatmulPeak:
    """A compiled n×n @ n×n matmul to sample the machine's current peak FLOP/s (2·n³ per call)."""

    def __init__(self, n: int = 2048, dtype: str = "float32") -> None:
        import jax

        self.n, self.dtype = n, dtype
        ka, kb = jax.random.split(jax.random.key(0))
        self._a = jax.random.normal(ka, (n, n), dtype)
        self._b = jax.random.normal(kb, (n, n), dtype)
        self._f = jax.jit(lambda x, y: x @ y)
        jax.block_until_ready(self._f(self._a, self._b))
        jax.block_until_ready(self._f(self._a, self._b))

    def times(self, reps: int) -> list[float]:
        """Seconds of ``reps`` back-to-back single calls."""
        import jax

        out = []
        for _ in range(reps):
            t0 = time.perf_counter()
            jax.block_until_ready(self._f(self._a, self._b))
            out.append(time.perf_counter() - t0)
        return out

    def sample(self, reps: int = 3) -> float:
        """Best-of-``reps`` FLOP/s now."""
        return 2.0 * self.n**3 / min(self.times(reps))


def matmul_peak(n: int = 2048, dtype: str = "float32", reps: int = 7) -> dict[str, Any]:
    """Best-of-``reps`` FLOP/s of one jitted n×n @ n×n matmul (2·n³ FLOPs per call)."""
    import jax

    times = MatmulPeak(n, dtype).times(reps)
    flops = 2.0 * n**3
    return {
        "n": n,
        "dtype": dtype,
        "reps": reps,
        "best_s": min(times),
        "median_s": statistics.median(times),
        "flops_per_s": flops / min(times),
        "median_flops_per_s": flops / statistics.median(times),
        "precision": str(jax.config.jax_default_matmul_precision),
    }


# --- memory --------------------------------------------------------------------------------


def _proc_status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak RSS counter (VmHWM) of this process; Linux >= 4.0."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class PeakMemory:
    """Peak memory of the code inside ``with PeakMemory() as pm:``; read ``pm.result`` after.

    With device memory statistics (GPU/TPU): ``peak_bytes_in_use`` of the first device. That
    counter never resets inside a process, so the value is the case's own peak only if the case
    set a new high (``device_peak_is_cumulative`` tells); run cases with ``--isolate`` for exact
    per-case device peaks. On CPU: the process's peak resident set size, reset at entry through
    ``/proc/self/clear_refs`` where possible, else sampled every 20 ms by a thread (psutil),
    else ``ru_maxrss`` (the whole process's lifetime).
    """

    def __init__(self) -> None:
        self.result: dict[str, Any] = {}

    def __enter__(self) -> PeakMemory:
        import jax

        self._stats0 = None
        try:
            self._stats0 = jax.devices()[0].memory_stats()
        except Exception:
            self._stats0 = None
        self._rss0 = _proc_status_kb("VmRSS")
        self._reset = _reset_peak_rss()
        self._stop = threading.Event()
        self._sampled = 0
        self._thread = None
        if not self._reset:
            try:
                import psutil

                proc = psutil.Process()

                def sample() -> None:
                    while not self._stop.is_set():
                        self._sampled = max(self._sampled, proc.memory_info().rss)
                        self._stop.wait(0.02)

                self._thread = threading.Thread(target=sample, daemon=True)
                self._thread.start()
            except ImportError:
                pass
        return self

    def __exit__(self, *exc: Any) -> None:
        import jax

        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        res: dict[str, Any] = {}
        if self._reset:
            hwm = _proc_status_kb("VmHWM")
            res.update(rss_peak_bytes=hwm * 1024 if hwm else None, rss_source="VmHWM")
        elif self._sampled:
            res.update(rss_peak_bytes=self._sampled, rss_source="psutil sampling 20 ms")
        else:
            kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            res.update(rss_peak_bytes=kb * 1024, rss_source="ru_maxrss (process lifetime)")
        res["rss_before_bytes"] = self._rss0 * 1024 if self._rss0 else None
        stats = None
        try:
            stats = jax.devices()[0].memory_stats()
        except Exception:
            stats = None
        if stats and "peak_bytes_in_use" in stats:
            peak0 = (self._stats0 or {}).get("peak_bytes_in_use", 0)
            res.update(
                device_peak_bytes=int(stats["peak_bytes_in_use"]),
                device_bytes_in_use_before=int((self._stats0 or {}).get("bytes_in_use", 0)),
                device_peak_is_cumulative=int(stats["peak_bytes_in_use"]) <= int(peak0),
            )
            res["peak_bytes"], res["peak_source"] = res["device_peak_bytes"], "device"
        else:
            res["peak_bytes"], res["peak_source"] = res["rss_peak_bytes"], "host RSS"
        self.result = res


# --- table ---------------------------------------------------------------------------------


def fmt(x: Any, spec: str = ".3g") -> str:
    """Format a number, or '-' for None."""
    if x is None:
        return "-"
    if isinstance(x, str):
        return x
    return format(x, spec)


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table: first column left-aligned, the others right-aligned."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for r in [header, *rows]:
        cells = [
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
