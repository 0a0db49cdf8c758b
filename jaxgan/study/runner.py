"""Mode-collapse studies: objectives x datasets x seeds, every run a preset through ``jaxgan.train``.

A :class:`Study` is a list of :class:`Cell` (one dataset, one objective's preset, N seeds).
:func:`run_one` trains one run (resuming an unfinished one; a finished one is not redone) and
evaluates it once into ``<run>/study_result.json`` and, for a run of the study's own protocol,
into a committed result file under ``results_dir`` (:mod:`.records`; such a file counts as done
on any machine). :func:`collect` gathers the results into the per-cell mean ± std that
:func:`write_report` puts in ``results.json`` and ``table.md``. The protocols (sample counts,
high quality, modes, reverse KL) are in :mod:`jaxgan.metrics.modes`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from jaxgan.configs.modes import OBJECTIVES, STACKED_OBJECTIVES
from jaxgan.study import records
from jaxgan.training.config import Config, ConfigError

RESULT_FILE = "study_result.json"
TIME_FILE = "study_time.json"
SAMPLES_FILE = "study_samples.npy"

# The numbers a study reports per run, from the ``modes`` evaluation (keys without "modes/").
REPORTED = ("modes_captured", "high_quality_fraction", "reverse_kl")


@dataclasses.dataclass(frozen=True)
class Cell:
    """``seeds`` runs of preset ``preset`` on ``dataset`` (flat overrides in ``overrides``)."""

    dataset: str
    preset: str
    seeds: int
    overrides: tuple[tuple[str, Any], ...] = ()

    def config(self, seed: int, overrides: dict[str, Any] | None = None) -> Config:
        """The preset on this cell's dataset and ``seed``, then the cell's and ``overrides``."""
        from jaxgan import configs
        from jaxgan.training.config import override

        flat = {**dict(self.overrides), **(overrides or {})}
        return override(configs.get(self.preset), dataset=self.dataset, seed=seed, **flat)

    @property
    def objective(self) -> str:
        return self.config(0).loss.loss

    def workdir(self, root: str, seed: int) -> str:
        return os.path.join(root, self.dataset, self.objective, f"seed{seed}")


@dataclasses.dataclass(frozen=True)
class Study:
    """Cells evaluated with ``num_samples`` generated samples each (the protocol's count).

    ``curve_steps``: the budgets at which the table also gives the numbers logged during
    training (the curve). ``seed_major``: train seed 0 of every cell first, then seed 1, ...:
    a study spread over several sessions has every cell early."""

    name: str
    description: str
    cells: tuple[Cell, ...]
    num_samples: int
    curve_steps: tuple[int, ...] = ()
    seed_major: bool = False

    def runs(self, root: str) -> list[tuple[Cell, int, str]]:
        """Every (cell, seed, workdir) of the study: cell by cell, seeds in order (seed by seed,
        cells in order, when ``seed_major``)."""
        out = [(c, s, c.workdir(root, s)) for c in self.cells for s in range(c.seeds)]
        if self.seed_major:
            out.sort(key=lambda r: r[1])  # stable: the cells keep their order within a seed
        return out


_HEADLINE = ("gan", "nsgan", "wgan", "wgan-gp")  # 5 seeds; hinge and lsgan 3 (exploratory)


def _toy_cells(datasets: tuple[str, ...], seeds: dict[str, int],
               overrides: tuple[tuple[str, Any], ...] = ()) -> tuple[Cell, ...]:  # fmt: skip
    return tuple(
        Cell(d, f"modes-{o}", seeds[o], overrides)
        for d in datasets
        for o in OBJECTIVES
        if o in seeds
    )


# Stacked MNIST at >= 20k generator steps, evaluated with the full protocol every 5k (the curve).
_STACKED = (("steps", 20000), ("eval_every", 5000), ("eval_metrics", ("modes",)),
            ("eval_images", 26000))  # fmt: skip


STUDIES: dict[str, Study] = {
    s.name: s
    for s in (
        Study(
            "toys",
            "8-Gaussian ring and 25-Gaussian grid, PacGAN/VEEGAN protocol (2,500 samples)",
            _toy_cells(
                ("ring8-veegan", "grid25-veegan"),
                {**{o: 5 for o in _HEADLINE}, "hinge": 3, "lsgan": 3},
            ),  # fmt: skip
            2500,
        ),
        Study(
            "toys-wgan-gp-scale",
            "the same ring and grid in the WGAN-GP toy script's scaling (2,500 samples)",
            _toy_cells(("ring8", "grid25"), {o: 3 for o in _HEADLINE}),
            2500,
        ),
        Study(
            "toys-100k",
            "the ring and the grid at 100,000 generator steps, PacGAN/VEEGAN protocol (2,500 "
            "samples), the curve at 6k/25k/50k/100k",
            _toy_cells(
                ("ring8-veegan", "grid25-veegan"),
                {"gan": 5, "nsgan": 5, "wgan": 3, "wgan-gp": 5},
                (("steps", 100000),),
            ),  # fmt: skip
            2500,
            curve_steps=(6000, 25000, 50000, 100000),
            seed_major=True,
        ),
        Study(
            "stacked-mnist",
            "Stacked MNIST, 1,000 modes counted with the digit classifier (26,000 samples), "
            "DCGAN width 32 at 20,000 generator steps; WGAN-GP in PGGAN's form (n_critic 1 with "
            "drift, Adam 1e-3), not its paper's n_critic 5",
            tuple(Cell("stacked_mnist", f"stacked-{o}", 3, _STACKED) for o in STACKED_OBJECTIVES),
            26000,
            curve_steps=(5000, 10000, 20000),
            seed_major=True,
        ),
    )
}


def get(name: str) -> Study:
    """The study called ``name``; ConfigError listing the names otherwise."""
    if name not in STUDIES:
        raise ConfigError(f"--study={name!r}: choose one of {', '.join(STUDIES)}.")
    return STUDIES[name]


def read_result(workdir: str) -> dict[str, Any] | None:
    """A finished run's evaluation in its run directory (``None`` while it has none, or one that
    cannot be read: the run is then evaluated again, see :func:`damaged_results`)."""
    return records.read(os.path.join(workdir, RESULT_FILE))


def committed_dir(results_dir: str | None, overrides: dict[str, Any] | None) -> str | None:
    """``results_dir`` when runs with the run flags ``overrides`` are the study's own protocol;
    ``None`` for a variant (``--steps=1000``): its results stay in its run directories."""
    return results_dir if results_dir and records.is_protocol(overrides) else None


def committed(cell: Cell, seed: int, results_dir: str | None) -> dict[str, Any] | None:
    """The committed result of one run, when there is one of this cell's preset and overrides."""
    if results_dir is None:
        return None
    result = records.read(records.path(results_dir, cell.dataset, cell.objective, seed))
    ok = result is not None and records.matches(result, cell.preset, dict(cell.overrides))
    return result if ok else None


def result_for(cell: Cell, seed: int, root: str, results_dir: str | None = None) -> dict[str, Any] | None:  # fmt: skip
    """The result shown for one run: the committed one, else its run directory's."""
    return committed(cell, seed, results_dir) or read_result(cell.workdir(root, seed))


def _complete(result: dict[str, Any], config: Config) -> bool:
    """A run directory's result trained to ``config``'s budget, or stopped for good (non-finite
    updates): a result of a shorter budget (say a study's cells made longer) is trained on."""
    if config.progressive:
        return True
    return result.get("step", 0) >= config.schedule.steps or result.get("exit_code", 0) != 0


def done(cell: Cell, seed: int, root: str, *, overrides: dict[str, Any] | None = None,
         results_dir: str | None = None) -> dict[str, Any] | None:  # fmt: skip
    """The result that makes a run done (``None``: it is to train): its committed result (runs of
    the protocol only), else its run directory's, trained to the budget."""
    found = committed(cell, seed, committed_dir(results_dir, overrides))
    if found is not None:
        return found
    result = read_result(cell.workdir(root, seed))
    ok = result is not None and _complete(result, cell.config(seed, overrides))
    return result if ok else None


def damaged_results(study: Study, root: str, results_dir: str | None = None) -> list[str]:
    """The result files of ``study`` (under ``root`` and ``results_dir``) that are there but
    cannot be read."""
    paths = [os.path.join(w, RESULT_FILE) for *_, w in study.runs(root)]
    if results_dir is not None:
        paths += [records.path(results_dir, c.dataset, c.objective, s) for c, s, _ in study.runs(root)]  # fmt: skip
    return [p for p in paths if os.path.isfile(p) and records.read(p) is None]


def write_atomic(path: str, write: Callable[[Any], None]) -> None:
    """``write(file)`` into ``path`` through a temporary file and ``os.replace``: ``path`` holds the
    old or the new content, never part of one; nothing is left over when writing fails."""
    tmp = path + ".tmp"
    try:
        with open(tmp, "w") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def _add_time(workdir: str, seconds: float) -> float:
    path = os.path.join(workdir, TIME_FILE)
    try:
        with open(path) as f:
            seconds += float(json.load(f)["train_seconds"])
    except (FileNotFoundError, ValueError, TypeError, KeyError):  # none yet, or unreadable
        pass
    write_atomic(path, lambda f: json.dump({"train_seconds": seconds}, f))
    return seconds


def run_one(study: Study, cell: Cell, seed: int, root: str, *,
            overrides: dict[str, Any] | None = None, quiet: bool = True,
            caught: Sequence[int] = (), results_dir: str | None = None) -> dict[str, Any] | None:  # fmt: skip
    """Train (or resume) one run and evaluate it once; ``None`` when it was stopped by a signal.

    ``overrides``: flat config fields applied to every run of the study (say a shorter budget).
    ``caught``: signals the caller's handler recorded before this call (then nothing trains and a
    new run directory is removed). ``results_dir``: where committed results are read and written
    (see :mod:`.records`), for runs of the protocol only (:func:`committed_dir`). Returns a
    committed result, or the stored result of a run that already has one, without training; a
    result file that cannot be read is replaced by a new evaluation.
    """
    import jaxgan

    workdir = cell.workdir(root, seed)
    results_dir = committed_dir(results_dir, overrides)
    found = committed(cell, seed, results_dir)
    if found is not None:
        return found
    config = cell.config(seed, overrides)
    stored = read_result(workdir)
    if stored is not None and _complete(stored, config):
        if results_dir and records.matches(stored, cell.preset, dict(cell.overrides)):
            # finished before its result was committed (or that write was lost): commit it now
            records.write(records.path(results_dir, cell.dataset, cell.objective, seed), stored)
        return stored
    commit = records.git_commit(os.path.dirname(os.path.abspath(__file__)))  # the code that trains
    start = time.perf_counter()
    try:
        summary = jaxgan.train(config, workdir, quiet=quiet, caught=caught)
    finally:
        if os.path.isdir(workdir):
            seconds = _add_time(workdir, time.perf_counter() - start)
    if summary.exit_code >= 128:
        return None  # stopped by a signal: the checkpoint resumes it next time
    from jaxgan import evaluation as ev

    start = time.perf_counter()
    run = jaxgan.open_run(workdir)
    fake = ev.generate_images(lambda z: run.sample(z=z), config.model.latent_dim, study.num_samples)
    evaluation = ev.evaluate_images(fake, cell.dataset, metrics=["modes"])
    if fake.ndim == 2:  # 2-D toys: kept for the figures
        np.save(os.path.join(workdir, SAMPLES_FILE), fake.astype(np.float32))
    rows = records.read_rows(os.path.join(workdir, "metrics.jsonl"))
    result = {
        "study": study.name,
        "dataset": cell.dataset,
        "objective": cell.objective,
        "preset": cell.preset,
        "seed": seed,
        "steps": config.schedule.steps,  # the budget
        "step": summary.step,
        "exit_code": summary.exit_code,  # 3: stopped on non-finite updates (still evaluated)
        "overrides": records.plain({**dict(cell.overrides), **(overrides or {})}),
        "commit": commit,  # of this invocation's training (a resumed run: its last session's)
        "train_seconds": round(seconds, 1),
        "eval_seconds": round(time.perf_counter() - start, 1),
        "num_samples": study.num_samples,
        **{k.removeprefix("modes/"): v for k, v in evaluation.items() if k.startswith("modes/")},
        "curve": records.curve(rows, keep=study.curve_steps),
        **({"samples": records.points(fake)} if fake.ndim == 2 else {}),
    }
    result = json.loads(records.dumps(result))  # as read back: lists, plain floats
    write_atomic(os.path.join(workdir, RESULT_FILE), lambda f: f.write(records.dumps(result)))
    if results_dir:
        records.write(records.path(results_dir, cell.dataset, cell.objective, seed), result)
    return result


def _stat(values: Sequence[float]) -> dict[str, float]:
    v = np.asarray(values, np.float64)
    return {"mean": float(v.mean()), "std": float(v.std(ddof=0)), "min": float(v.min()),
            "max": float(v.max())}  # fmt: skip


def curve_rows(study: Study, results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per step of ``study.curve_steps``: how many of ``results`` logged it and their numbers'
    mean, std, min and max (steps no result reached are left out)."""
    out = []
    for step in study.curve_steps:
        points = [p for r in results if (p := records.curve_at(r, step))]
        if not points:
            continue
        row: dict[str, Any] = {"step": step, "seeds": len(points)}
        for key in records.CURVE_KEYS:
            if all(key in p for p in points):
                row[key] = _stat([p[key] for p in points])
        out.append(row)
    return out


def collect(study: Study, root: str, results_dir: str | None = None) -> list[dict[str, Any]]:
    """One row per cell: the seeds' results (committed under ``results_dir``, else in the run
    directories under ``root``; the points left out) and each reported number's mean, std, min
    and max; with ``study.curve_steps`` also the curve (:func:`curve_rows`)."""
    rows = []
    for cell in study.cells:
        results = [r for s in range(cell.seeds) if (r := result_for(cell, s, root, results_dir))]
        row: dict[str, Any] = {
            "dataset": cell.dataset,
            "objective": cell.objective,
            "preset": cell.preset,
            "seeds_planned": cell.seeds,
            "seeds_done": len(results),
            "runs": [{k: v for k, v in r.items() if k != "samples"} for r in results],
        }
        if results:
            row["num_modes"] = results[0]["num_modes"]
            row["train_seconds_mean"] = float(np.mean([r["train_seconds"] for r in results]))
            for key in REPORTED:
                if key in results[0]:
                    row[key] = _stat([r[key] for r in results])
            if study.curve_steps:
                row["curve"] = curve_rows(study, results)
        rows.append(row)
    return rows


def real_reference(dataset: str, num_samples: int, seed: int = 0) -> dict[str, Any]:
    """The reported numbers for ``num_samples`` real samples of ``dataset``: what a perfect
    generator would score under the same count (for the toys about 98.9 % high quality, the
    share of a 2-D Gaussian within 3 std; for Stacked MNIST the classifier's own misreads)."""
    from jaxgan import evaluation as ev
    from jaxgan.data.toys import TOY_NAMES, get_toy

    if dataset in TOY_NAMES:
        real = get_toy(dataset).sample(np.random.default_rng(seed), num_samples)
    else:
        real = ev.real_images(dataset, num_samples, None, seed)
    m = ev.evaluate_images(real, dataset, metrics=["modes"])
    out = {k: m[f"modes/{k}"] for k in (*REPORTED, "num_modes") if f"modes/{k}" in m}
    return {"dataset": dataset, "num_samples": num_samples, **out}


def _cached_reference(root: str, dataset: str, num_samples: int) -> dict[str, Any]:
    """:func:`real_reference`, kept in ``root`` when it can be (Stacked MNIST's takes minutes on a
    CPU); a cached one that cannot be read is computed again."""
    path = os.path.join(root, f"real_data_{dataset}_{num_samples}.json")
    try:
        with open(path) as f:
            ref = json.load(f)
        if isinstance(ref, dict) and all(k in ref for k in ("modes_captured", "num_modes", "reverse_kl")):  # fmt: skip
            return ref
    except (FileNotFoundError, ValueError):
        pass
    ref = real_reference(dataset, num_samples)
    with contextlib.suppress(OSError):  # a read-only root: the report says so when it writes
        write_atomic(path, lambda f: json.dump(ref, f, indent=1))
    return ref


def _pm(stat: dict[str, float] | None, scale: float = 1.0, digits: int = 1) -> str:
    if stat is None:
        return "–"
    return f"{stat['mean'] * scale:.{digits}f} ± {stat['std'] * scale:.{digits}f}"


def markdown_table(
    study: Study, rows: list[dict[str, Any]], references: Sequence[dict[str, Any]] = ()
) -> str:
    """The study's table: one line per cell, mean ± std (population std) over the seeds done,
    then a "real data" line per dataset in ``references`` (see :func:`real_reference`)."""
    has_hq = any("high_quality_fraction" in r for r in rows)
    head = ["dataset", "objective", "seeds", "modes", *(["high quality %"] if has_hq else []),
            "reverse KL", "train s / run"]  # fmt: skip
    lines = [f"**{study.name}**: {study.description}; mean ± std over seeds.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]  # fmt: skip
    for r in rows:
        seeds = f"{r['seeds_done']}" + ("" if r["seeds_done"] == r["seeds_planned"] else
                                          f" of {r['seeds_planned']}")  # fmt: skip
        modes = _pm(r.get("modes_captured")) + (f" / {r['num_modes']}" if "num_modes" in r else "")
        cells = [r["dataset"], r["objective"], seeds, modes]
        if has_hq:
            cells.append(_pm(r.get("high_quality_fraction"), 100.0))
        cells += [_pm(r.get("reverse_kl"), digits=3),
                  f"{r['train_seconds_mean']:.0f}" if "train_seconds_mean" in r else "–"]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    for ref in references:
        cells = [ref["dataset"], f"real data ({ref['num_samples']:,} samples)", "–",
                 f"{ref['modes_captured']} / {ref['num_modes']}"]  # fmt: skip
        if has_hq:
            hq = ref.get("high_quality_fraction")
            cells.append("–" if hq is None else f"{100 * hq:.1f}")
        cells += [f"{ref['reverse_kl']:.3f}", "–"]
        lines.append("| " + " | ".join(cells) + " |")
    if study.curve_steps:
        lines += ["", *curve_table(study, rows)]
    return "\n".join(lines) + "\n"


def _steps(step: int) -> str:
    return f"{step // 1000}k" if step % 1000 == 0 else f"{step:,}"


def curve_table(study: Study, rows: list[dict[str, Any]]) -> list[str]:
    """The curve: per cell, the mean over the seeds that reached each of ``study.curve_steps`` of
    modes and high-quality % (modes and reverse KL where there is no high quality)."""
    has_hq = any("high_quality_fraction" in r for r in rows)
    what = "modes / high quality %" if has_hq else "modes / reverse KL"
    head = ["dataset", "objective", *(_steps(s) for s in study.curve_steps)]
    lines = [f"Along the way: {what} at each budget, the mean over the seeds that reached it (the "
             "evaluations logged during training: a toy's every log row, on 2,500 fixed latents; "
             "otherwise every `eval_every` steps); seeds in brackets when not all.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]  # fmt: skip
    for r in rows:
        points = {p["step"]: p for p in r.get("curve", ())}
        cells = [r["dataset"], r["objective"]]
        for step in study.curve_steps:
            p = points.get(step)
            if p is None or "modes_captured" not in p:
                cells.append("–")
                continue
            second = (f"{100 * p['high_quality_fraction']['mean']:.1f} %" if has_hq and
                      "high_quality_fraction" in p else f"{p['reverse_kl']['mean']:.3f}"
                      if "reverse_kl" in p else "–")  # fmt: skip
            seeds = "" if p["seeds"] == r["seeds_done"] else f" ({p['seeds']})"
            cells.append(f"{p['modes_captured']['mean']:.1f} / {second}{seeds}")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def build_report(study: Study, root: str, results_dir: str | None = None) -> tuple[dict[str, Any], str]:  # fmt: skip
    """The content of ``results.json`` and of ``table.md`` for the finished runs: committed under
    ``results_dir`` or in run directories under ``root`` (which keeps the real-data reference)."""
    rows = collect(study, root, results_dir)
    datasets = dict.fromkeys(r["dataset"] for r in rows if r["seeds_done"])
    references = [_cached_reference(root, d, study.num_samples) for d in datasets]
    results = {"study": study.name, "description": study.description,
               "num_samples": study.num_samples, "cells": rows, "real_data": references}  # fmt: skip
    return results, markdown_table(study, rows, references)


def report_study(root: str) -> str | None:
    """The name of the study whose ``results.json`` is in ``root`` (``None``: none there, or one
    that cannot be read, which the next report replaces)."""
    try:
        with open(os.path.join(root, "results.json")) as f:
            name = json.load(f).get("study")
    except (OSError, ValueError, AttributeError):
        return None
    return name if isinstance(name, str) else None


def write_report(
    study: Study,
    root: str,
    built: tuple[dict[str, Any], str] | None = None,
    results_dir: str | None = None,
) -> dict[str, str]:
    """``results.json`` and ``table.md`` under ``root`` (``built``: :func:`build_report`'s, when
    already made); returns their paths. Each file is replaced whole or left as it was."""
    results, table = built or build_report(study, root, results_dir)
    os.makedirs(root, exist_ok=True)
    paths = {"results": os.path.join(root, "results.json"), "table": os.path.join(root, "table.md")}
    write_atomic(paths["results"], lambda f: json.dump(results, f, indent=1))
    write_atomic(paths["table"], lambda f: f.write(table))
    return paths
