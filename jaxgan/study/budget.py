"""Which study runs to start within ``--budget_minutes``: pure functions of committed results.

A run's time is estimated as seconds per step x the steps it has left, plus its evaluation:
from the committed results of the same cell (study, dataset, preset) when there are any, else
from any committed result of the same preset (another study, another dataset), else unknown. A
run starts when its estimate fits in the time left; an unknown one only while at least half the
budget is left (so one first run of a new preset can calibrate the next session's estimates).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def _rate(results: list[Mapping[str, Any]]) -> tuple[float, float] | None:
    """(train seconds per step, mean evaluation seconds) over ``results``, ``None`` if empty."""
    timed = [r for r in results if r.get("step") and r.get("train_seconds") is not None]
    if not timed:
        return None
    per_step = sum(float(r["train_seconds"]) for r in timed) / sum(int(r["step"]) for r in timed)
    evals = [float(r["eval_seconds"]) for r in timed if r.get("eval_seconds") is not None]
    return per_step, (sum(evals) / len(evals) if evals else 0.0)


def estimate_seconds(results: Iterable[Mapping[str, Any]], *, study: str, dataset: str,
                     preset: str, steps_left: int) -> float | None:  # fmt: skip
    """Seconds to train ``steps_left`` more steps of one run and evaluate it, from committed
    ``results`` (any studies); ``None`` when no committed result has the same preset."""
    results = list(results)
    same_preset = [r for r in results if r.get("preset") == preset]
    same_cell = [r for r in same_preset if (r.get("study"), r.get("dataset")) == (study, dataset)]
    rate = _rate(same_cell) or _rate(same_preset)
    if rate is None:
        return None
    per_step, evaluation = rate
    return per_step * max(steps_left, 0) + evaluation


def fits(estimate: float | None, remaining: float, budget: float) -> bool:
    """Whether to start a run estimated at ``estimate`` seconds with ``remaining`` of ``budget``
    seconds left: a known estimate must fit; an unknown one starts while half the budget is left."""
    if remaining <= 0:
        return False
    if estimate is None:
        return remaining >= budget / 2
    return estimate <= remaining
