"""A study run's result file, committed with the code so that results survive a new machine.

A finished run writes ``<results>/runs/<dataset>/<objective>/seed<k>.json`` (``results`` is
``experiments/results/<study>`` by default): the reported numbers, the budget in steps, seed,
preset, flat overrides, git commit, train and evaluation seconds, the curve along the way and,
for the 2-D toys, at most :data:`MAX_POINTS` generated points. No checkpoint or array goes there.
A committed file counts as done for its cell when it holds the cell's preset and overrides (see
:func:`matches`). Stdlib and numpy only: nothing here imports jax.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

#: What a result must hold to be counted and shown (the table, the progress lines).
NEEDED = ("modes_captured", "num_modes", "reverse_kl", "train_seconds")
#: The numbers a curve point holds (``modes/<key>`` in a toy's log rows, ``eval/modes/<key>`` in
#: an evaluation row).
CURVE_KEYS = ("modes_captured", "high_quality_fraction", "reverse_kl")
#: A curve keeps the log rows at multiples of this many steps (plus the study's table steps and
#: the last row): 100 points for a 100k-step run, a few kB.
CURVE_EVERY = 1000
#: Generated points kept for a toy's scatter plot, rounded to 3 decimals (about 16 kB).
MAX_POINTS = 1000
#: Run flags that cannot change a trained result or its curve: a study run with only these is
#: still the study's protocol, so its result is committed and a committed one counts.
NEUTRAL_FIELDS = frozenset({"ckpt_every", "keep_checkpoints", "sample_every", "download",
                            "data_dir"})  # fmt: skip


def path(results_dir: str, dataset: str, objective: str, seed: int) -> str:
    """Where the committed result of one run goes."""
    return os.path.join(results_dir, "runs", dataset, objective, f"seed{seed}.json")


def is_protocol(overrides: Mapping[str, Any] | None) -> bool:
    """True when run flags ``overrides`` leave the study's runs as the study defines them."""
    return not set(overrides or {}) - NEUTRAL_FIELDS


def plain(value: Any) -> Any:
    """``value`` as JSON reads it back (tuples become lists), for comparisons."""
    return json.loads(json.dumps(value))


def matches(result: Mapping[str, Any], preset: str, overrides: Mapping[str, Any]) -> bool:
    """True when ``result`` was trained with ``preset`` and the cell's ``overrides`` (the neutral
    fields aside): a committed file of a cell since redefined does not count as done."""
    theirs = {k: v for k, v in (result.get("overrides") or {}).items() if k not in NEUTRAL_FIELDS}
    mine = {k: v for k, v in overrides.items() if k not in NEUTRAL_FIELDS}
    return result.get("preset") == preset and plain(theirs) == plain(mine)


def read(file: str) -> dict[str, Any] | None:
    """The result in ``file``; ``None`` when it is missing, torn or lacks :data:`NEEDED`."""
    try:
        with open(file) as f:
            result = json.load(f)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError, ValueError):
        return None
    return result if isinstance(result, dict) and all(k in result for k in NEEDED) else None


def dumps(result: Mapping[str, Any]) -> str:
    """One key a line, each value on its line (the curve and the points stay one line each): a
    readable diff and a small file."""
    lines = [f" {json.dumps(k)}: {json.dumps(v, separators=(',', ':'))}" for k, v in result.items()]
    return "{\n" + ",\n".join(lines) + "\n}\n"


def write(file: str, result: Mapping[str, Any]) -> None:
    """``result`` into ``file`` whole (a temporary file, then ``os.replace``)."""
    os.makedirs(os.path.dirname(file), exist_ok=True)
    tmp = file + ".tmp"
    try:
        with open(tmp, "w") as f:
            f.write(dumps(result))
        os.replace(tmp, file)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def load_all(results_root: str) -> list[dict[str, Any]]:
    """Every readable committed result under ``results_root`` (all studies), for time estimates."""
    files = sorted(glob.glob(os.path.join(results_root, "*", "runs", "*", "*", "seed*.json")))
    return [r for f in files if (r := read(f)) is not None]


def git_commit(where: str) -> str | None:
    """``git rev-parse HEAD`` of the repository holding ``where``, with ``-dirty`` when tracked
    files have changes; ``None`` without git or outside a repository."""
    try:
        head = subprocess.run(["git", "-C", where, "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=20, check=True).stdout.strip()  # fmt: skip
        status = subprocess.run(["git", "-C", where, "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=20, check=True).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("-dirty" if status.strip() else "") if head else None


def read_rows(metrics_file: str) -> list[dict[str, Any]]:
    """The rows of a run's ``metrics.jsonl`` (lines a kill cut short are passed over)."""
    try:
        with open(metrics_file) as f:
            lines = f.read().splitlines()
    except (FileNotFoundError, NotADirectoryError):
        return []
    rows = []
    for line in lines:
        with contextlib.suppress(ValueError):
            row = json.loads(line)
            if isinstance(row, dict) and isinstance(row.get("step"), int | float):
                rows.append(row)
    return rows


def _rounded(value: Any) -> Any:
    """A curve number to 4 decimals (a share of 2,500 samples needs no more)."""
    return round(value, 4) if isinstance(value, float) else value


def curve(rows: Iterable[Mapping[str, Any]], keep: Sequence[int] = (),
          every: int = CURVE_EVERY) -> list[dict[str, Any]]:  # fmt: skip
    """The mode numbers along training: one point per logged step that is a multiple of
    ``every``, in ``keep`` or the last, ascending. A step's later row wins (a resumed run logs it
    again); an evaluation row's ``eval/modes/*`` wins over a toy's ``modes/*`` at the same step."""
    points: dict[int, dict[str, Any]] = {}
    for row in rows:
        step = int(row["step"])
        for prefix in ("modes/", "eval/modes/"):
            found = {k: _rounded(row[prefix + k]) for k in CURVE_KEYS if prefix + k in row}
            if found:
                points.setdefault(step, {}).update(found)
    if not points:
        return []
    last = max(points)
    wanted = [s for s in sorted(points) if s % every == 0 or s in keep or s == last]
    return [{"step": s, **points[s]} for s in wanted]


def curve_at(result: Mapping[str, Any], step: int) -> dict[str, Any] | None:
    """The curve point of ``result`` at ``step`` exactly, ``None`` when it has none."""
    return next((p for p in result.get("curve") or () if p.get("step") == step), None)


def points(samples: np.ndarray) -> list[list[float]]:
    """At most :data:`MAX_POINTS` of a toy's generated points (the first ones: the latents are
    random, so they are a random subsample), rounded to 3 decimals, as JSON lists."""
    return np.round(np.asarray(samples, np.float64)[:MAX_POINTS], 3).tolist()


def steps_done(workdir: str) -> int:
    """The step of a run directory's newest complete checkpoint (0 without one): what a resumed
    run has already trained. Orbax's temporary directories have non-numeric names."""
    try:
        names = os.listdir(os.path.join(workdir, "checkpoints"))
    except (FileNotFoundError, NotADirectoryError):
        return 0
    return max((int(n) for n in names if n.isdigit()), default=0)
