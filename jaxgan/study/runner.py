"""Mode-collapse studies: objectives x datasets x seeds, every run a preset through ``jaxgan.train``.

A :class:`Study` is a list of :class:`Cell` (one dataset, one objective's preset, N seeds).
:func:`run_one` trains one run (resuming an unfinished one; a finished one is not redone) and
evaluates it once into ``<run>/study_result.json``; :func:`collect` gathers those files into the
per-cell mean ± std that :func:`write_report` puts in ``results.json`` and ``table.md``.
The protocols (sample counts, high quality, modes, reverse KL) are in :mod:`jaxgan.metrics.modes`.
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

from jaxgan.configs.modes import OBJECTIVES
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
    """Cells evaluated with ``num_samples`` generated samples each (the protocol's count)."""

    name: str
    description: str
    cells: tuple[Cell, ...]
    num_samples: int

    def runs(self, root: str) -> list[tuple[Cell, int, str]]:
        """Every (cell, seed, workdir) of the study, cell by cell, seeds in order."""
        return [(c, s, c.workdir(root, s)) for c in self.cells for s in range(c.seeds)]


_HEADLINE = ("gan", "nsgan", "wgan", "wgan-gp")  # 5 seeds; hinge and lsgan 3 (exploratory)


def _toy_cells(datasets: tuple[str, ...], seeds: dict[str, int]) -> tuple[Cell, ...]:
    return tuple(
        Cell(d, f"modes-{o}", seeds[o]) for d in datasets for o in OBJECTIVES if o in seeds
    )


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
            "stacked-mnist",
            "Stacked MNIST, 1,000 modes counted with the digit classifier (26,000 samples)",
            tuple(Cell("stacked_mnist", f"stacked-{o}", 1) for o in ("nsgan", "wgan-gp")),
            26000,
        ),
    )
}


def get(name: str) -> Study:
    """The study called ``name``; ConfigError listing the names otherwise."""
    if name not in STUDIES:
        raise ConfigError(f"--study={name!r}: choose one of {', '.join(STUDIES)}.")
    return STUDIES[name]


# What a result must hold to be shown (the table, the progress lines).
_NEEDED = ("modes_captured", "num_modes", "reverse_kl", "train_seconds")


def read_result(workdir: str) -> dict[str, Any] | None:
    """A finished run's evaluation (``None`` while it has none, or one that cannot be read: the
    run is then evaluated again, see :func:`damaged_results`)."""
    try:
        with open(os.path.join(workdir, RESULT_FILE)) as f:
            result = json.load(f)
    except (FileNotFoundError, NotADirectoryError, ValueError):
        return None
    return result if isinstance(result, dict) and all(k in result for k in _NEEDED) else None


def damaged_results(study: Study, root: str) -> list[str]:
    """The result files of ``study`` under ``root`` that are there but cannot be read."""
    paths = [os.path.join(w, RESULT_FILE) for *_, w in study.runs(root)]
    return [p for p in paths if os.path.isfile(p) and read_result(os.path.dirname(p)) is None]


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
            caught: Sequence[int] = ()) -> dict[str, Any] | None:  # fmt: skip
    """Train (or resume) one run and evaluate it once; ``None`` when it was stopped by a signal.

    ``overrides``: flat config fields applied to every run of the study (say a shorter budget).
    ``caught``: signals the caller's handler recorded before this call (then nothing trains and a
    new run directory is removed). Returns the stored result of a run that already has one
    without touching it; a result file that cannot be read is replaced by a new evaluation.
    """
    import jaxgan

    workdir = cell.workdir(root, seed)
    done = read_result(workdir)
    if done is not None:
        return done
    config = cell.config(seed, overrides)
    start = time.perf_counter()
    try:
        summary = jaxgan.train(config, workdir, quiet=quiet, caught=caught)
    finally:
        if os.path.isdir(workdir):
            seconds = _add_time(workdir, time.perf_counter() - start)
    if summary.exit_code >= 128:
        return None  # stopped by a signal: the checkpoint resumes it next time
    from jaxgan import evaluation as ev

    run = jaxgan.open_run(workdir)
    fake = ev.generate_images(lambda z: run.sample(z=z), config.model.latent_dim, study.num_samples)
    evaluation = ev.evaluate_images(fake, cell.dataset, metrics=["modes"])
    if fake.ndim == 2:  # 2-D toys: kept for the figures
        np.save(os.path.join(workdir, SAMPLES_FILE), fake.astype(np.float32))
    result = {
        "study": study.name,
        "dataset": cell.dataset,
        "objective": cell.objective,
        "preset": cell.preset,
        "seed": seed,
        "step": summary.step,
        "exit_code": summary.exit_code,  # 3: stopped on non-finite updates (still evaluated)
        "train_seconds": round(seconds, 1),
        **{k.removeprefix("modes/"): v for k, v in evaluation.items() if k.startswith("modes/")},
    }
    write_atomic(os.path.join(workdir, RESULT_FILE), lambda f: json.dump(result, f, indent=1))
    return result


def collect(study: Study, root: str) -> list[dict[str, Any]]:
    """One row per cell: the seeds' results and each reported number's mean, std, min and max."""
    rows = []
    for cell in study.cells:
        results = [r for s in range(cell.seeds) if (r := read_result(cell.workdir(root, s)))]
        row: dict[str, Any] = {
            "dataset": cell.dataset,
            "objective": cell.objective,
            "preset": cell.preset,
            "seeds_planned": cell.seeds,
            "seeds_done": len(results),
            "runs": results,
        }
        if results:
            row["num_modes"] = results[0]["num_modes"]
            row["train_seconds_mean"] = float(np.mean([r["train_seconds"] for r in results]))
            for key in REPORTED:
                if key in results[0]:
                    v = np.array([r[key] for r in results], np.float64)
                    row[key] = {"mean": float(v.mean()), "std": float(v.std(ddof=0)),
                                "min": float(v.min()), "max": float(v.max())}  # fmt: skip
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
    return "\n".join(lines) + "\n"


def build_report(study: Study, root: str) -> tuple[dict[str, Any], str]:
    """The content of ``results.json`` and of ``table.md`` for the finished runs under ``root``."""
    rows = collect(study, root)
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
    study: Study, root: str, built: tuple[dict[str, Any], str] | None = None
) -> dict[str, str]:
    """``results.json`` and ``table.md`` under ``root`` (``built``: :func:`build_report`'s, when
    already made); returns their paths. Each file is replaced whole or left as it was."""
    results, table = built or build_report(study, root)
    os.makedirs(root, exist_ok=True)
    paths = {"results": os.path.join(root, "results.json"), "table": os.path.join(root, "table.md")}
    write_atomic(paths["results"], lambda f: json.dump(results, f, indent=1))
    write_atomic(paths["table"], lambda f: f.write(table))
    return paths
