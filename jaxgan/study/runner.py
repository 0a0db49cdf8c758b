"""Mode-collapse studies: objectives x datasets x seeds, every run a preset through ``jaxgan.train``.

A :class:`Study` is a list of :class:`Cell` (one dataset, one objective's preset, N seeds).
:func:`run_one` trains one run (resuming an unfinished one; a finished one is not redone) and
evaluates it once into ``<run>/study_result.json``; :func:`collect` gathers those files into the
per-cell mean ± std that :func:`write_report` puts in ``results.json`` and ``table.md``.
The protocols (sample counts, high quality, modes, reverse KL) are in :mod:`jaxgan.metrics.modes`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Sequence
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


def read_result(workdir: str) -> dict[str, Any] | None:
    """A finished run's evaluation (``None`` while it has none)."""
    try:
        with open(os.path.join(workdir, RESULT_FILE)) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def _add_time(workdir: str, seconds: float) -> float:
    path = os.path.join(workdir, TIME_FILE)
    try:
        with open(path) as f:
            seconds += json.load(f)["train_seconds"]
    except FileNotFoundError:
        pass
    with open(path, "w") as f:
        json.dump({"train_seconds": seconds}, f)
    return seconds


def run_one(study: Study, cell: Cell, seed: int, root: str, *,
            overrides: dict[str, Any] | None = None, quiet: bool = True,
            interrupted: Any = lambda: False) -> dict[str, Any] | None:  # fmt: skip
    """Train (or resume) one run and evaluate it once; ``None`` when it was stopped early.

    ``overrides``: flat config fields applied to every run of the study (say a shorter budget).
    Returns the stored result of a run that already has one without touching it.
    """
    import jaxgan

    workdir = cell.workdir(root, seed)
    done = read_result(workdir)
    if done is not None:
        return done
    config = cell.config(seed, overrides)
    start = time.perf_counter()
    try:
        summary = jaxgan.train(config, workdir, quiet=quiet, interrupted=interrupted)
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
    tmp = os.path.join(workdir, RESULT_FILE + ".tmp")
    with open(tmp, "w") as f:
        json.dump(result, f, indent=1)
    os.replace(tmp, os.path.join(workdir, RESULT_FILE))
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
    """:func:`real_reference`, kept in ``root`` (Stacked MNIST's takes minutes on a CPU)."""
    path = os.path.join(root, f"real_data_{dataset}_{num_samples}.json")
    try:
        with open(path) as f:
            return json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        ref = real_reference(dataset, num_samples)
    with open(path + ".tmp", "w") as f:
        json.dump(ref, f, indent=1)
    os.replace(path + ".tmp", path)
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


def write_report(study: Study, root: str) -> dict[str, str]:
    """``results.json`` and ``table.md`` under ``root``; returns their paths."""
    rows = collect(study, root)
    os.makedirs(root, exist_ok=True)
    datasets = dict.fromkeys(r["dataset"] for r in rows if r["seeds_done"])
    references = [_cached_reference(root, d, study.num_samples) for d in datasets]
    paths = {"results": os.path.join(root, "results.json"), "table": os.path.join(root, "table.md")}
    with open(paths["results"], "w") as f:
        json.dump({"study": study.name, "description": study.description,
                   "num_samples": study.num_samples, "cells": rows,
                   "real_data": references}, f, indent=1)  # fmt: skip
    with open(paths["table"], "w") as f:
        f.write(markdown_table(study, rows, references))
    return paths
