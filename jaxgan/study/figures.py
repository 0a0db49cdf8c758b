"""The figures of a mode-collapse study (matplotlib; ``pip install jaxgan[study]``).

Each function reads finished runs under a study's root and writes one PNG:
``samples.png`` (scatter per dataset x objective), ``critic.png`` (the critic's value surface,
clipping vs penalty), ``weights.png`` (the critic's weights, clipping vs penalty: WGAN-GP's
Figure 1b), ``w_estimate.png`` (the Wasserstein estimate over training), ``bars.png`` (modes and
high-quality share per objective, mean and spread over seeds), ``curve.png`` (high-quality share
against generator steps, for a study with ``curve_steps``). ``samples``, ``bars`` and ``curve``
are drawn from committed result files alone (``results_dir``) when there is no run directory;
the others need the run directories (checkpoints, the metrics log).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable

import numpy as np

from jaxgan.configs.modes import OBJECTIVES
from jaxgan.study.runner import SAMPLES_FILE, Study, collect, read_result, result_for

# One colour per objective, in losses.OBJECTIVES order (gan red, nsgan orange, wgan purple,
# wgan-gp green, hinge blue, lsgan brown); matplotlib's default for any objective added later.
_PALETTE = ("#d62728", "#ff7f0e", "#9467bd", "#2ca02c", "#1f77b4", "#8c564b")
_COLORS = dict(zip(OBJECTIVES, _PALETTE, strict=False))


def _thousands(ax) -> None:
    """Step ticks as 5k, 10k, ... (full numbers run into each other on a narrow panel)."""
    from matplotlib.ticker import FuncFormatter

    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v / 1000:g}k" if v else "0"))


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _datasets(study: Study) -> list[str]:
    return list(dict.fromkeys(c.dataset for c in study.cells))


def _toy(name: str):
    from jaxgan.data.toys import get_toy

    return get_toy(name)


def _samples(workdir: str) -> np.ndarray | None:
    """A run's kept samples, ``None`` when the file is missing or cannot be read as (N, 2)."""
    try:
        pts = np.load(os.path.join(workdir, SAMPLES_FILE))
    except (OSError, ValueError, EOFError):
        return None
    return pts if pts.ndim == 2 and pts.shape[1] == 2 else None


def _points(result: dict, workdir: str) -> np.ndarray | None:
    """A run's points: those its result keeps (a committed file), else its run directory's."""
    pts = result.get("samples")
    if pts:
        arr = np.asarray(pts, np.float32)
        return arr if arr.ndim == 2 and arr.shape[1] == 2 else None
    return _samples(workdir)


def _save(fig, path: str) -> str:
    """``fig`` as a PNG at ``path``, replaced whole (never a half-written image)."""
    tmp = path + ".tmp"
    try:
        fig.savefig(tmp, dpi=110, format="png")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    return path


def _finish(fig, path: str, drawn: int) -> str | None:
    """Save ``fig`` at ``path`` when it shows anything (``drawn`` panels or lines); close it."""
    try:
        if not drawn:
            return None
        fig.tight_layout()
        return _save(fig, path)
    finally:
        _plt().close(fig)


def samples_figure(study: Study, root: str, path: str, seed: int = 0,
                   results_dir: str | None = None) -> str | None:  # fmt: skip
    """Generated points (seed ``seed``) over the mode centres, one panel per dataset x objective."""
    datasets = _datasets(study)
    objectives = list(dict.fromkeys(c.objective for c in study.cells))
    cells = {(c.dataset, c.objective): c for c in study.cells}
    plt = _plt()
    fig, axes = plt.subplots(len(datasets), len(objectives), squeeze=False,
                             figsize=(2.6 * len(objectives), 2.7 * len(datasets)))  # fmt: skip
    drawn = shown = 0
    for i, d in enumerate(datasets):
        toy = _toy(d)
        extent = float(np.abs(toy.centers).max()) * 1.35
        for j, o in enumerate(objectives):
            ax = axes[i, j]
            ax.set_xlim(-extent, extent)
            ax.set_ylim(-extent, extent)
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{o} · {d}", fontsize=8)
            cell = cells.get((d, o))
            result = result_for(cell, seed, root, results_dir) if cell else None
            pts = _points(result, cell.workdir(root, seed)) if result else None
            if pts is None:
                text = "not run" if result is None else "samples unreadable"
                ax.text(0.5, 0.5, text, ha="center", transform=ax.transAxes)
                continue
            ax.scatter(pts[:, 0], pts[:, 1], s=1, alpha=0.4, color=_COLORS.get(o), label="samples")
            shown = max(shown, len(pts))
            ax.scatter(toy.centers[:, 0], toy.centers[:, 1], s=12, marker="x", color="k",
                       label="modes")  # fmt: skip
            ax.text(0.02, 0.02, f"{result['modes_captured']}/{result['num_modes']} modes, "
                    f"{100 * result['high_quality_fraction']:.0f}% HQ", fontsize=7,
                    transform=ax.transAxes)  # fmt: skip
            drawn += 1
    if not drawn:
        plt.close(fig)
        return None
    axes[0, 0].legend(loc="upper left", fontsize=6, markerscale=3)
    fig.suptitle(f"{study.name}: {shown} samples of seed {seed}", fontsize=9)  # committed: 1,000
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
    return path


def _critic_runs(study: Study, root: str, seed: int) -> dict[str, str]:
    """{"wgan": workdir, "wgan-gp": workdir} on the study's first dataset that has both."""
    for d in _datasets(study):
        runs = {c.objective: c.workdir(root, seed) for c in study.cells
                if c.dataset == d and c.objective in ("wgan", "wgan-gp")}  # fmt: skip
        if len(runs) == 2 and all(
            read_result(r) and _samples(r) is not None for r in runs.values()
        ):
            return runs
    return {}


def critic_figure(study: Study, root: str, path: str, seed: int = 0) -> str | None:
    """The critic's value surface with its samples: weight clipping vs gradient penalty."""
    import jaxgan

    runs = _critic_runs(study, root, seed)
    if not runs:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
    for ax, (objective, workdir) in zip(axes, sorted(runs.items()), strict=True):
        run = jaxgan.open_run(workdir)
        toy = _toy(run.config.data.dataset)
        extent = float(np.abs(toy.centers).max()) * 1.35
        g = np.linspace(-extent, extent, 120, dtype=np.float32)
        xx, yy = np.meshgrid(g, g)
        v = run.critic(np.stack([xx.ravel(), yy.ravel()], 1)).reshape(xx.shape)
        cs = ax.contourf(xx, yy, v, levels=20, cmap="viridis")
        fig.colorbar(cs, ax=ax, label="critic value")
        pts = _samples(workdir)
        ax.scatter(pts[:, 0], pts[:, 1], s=1, color="white", alpha=0.5, label="generated")
        ax.scatter(toy.centers[:, 0], toy.centers[:, 1], s=25, marker="x", color="red",
                   label="modes")  # fmt: skip
        ax.set_title(
            f"{objective} ({'weight clipping' if objective == 'wgan' else 'gradient penalty'})"
        )
        ax.set_xlim(-extent, extent)
        ax.set_ylim(-extent, extent)
        ax.set_aspect("equal")
        ax.legend(loc="upper left", fontsize=7, markerscale=3)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
    return path


def critic_weights(workdir: str) -> np.ndarray:
    """Every kernel weight of a run's critic (biases excluded), flattened."""
    import jax

    import jaxgan

    run = jaxgan.open_run(workdir)
    leaves = jax.tree_util.tree_leaves_with_path(run.state.d_params)
    kernels = [np.asarray(v).ravel() for p, v in leaves if "kernel" in jax.tree_util.keystr(p)]
    return np.concatenate(kernels)


def weights_figure(study: Study, root: str, path: str, seed: int = 0) -> str | None:
    """Histograms of the critic's weights: clipping piles them at ±c, the penalty does not."""
    runs = _critic_runs(study, root, seed)
    if not runs:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, (objective, workdir) in zip(axes, sorted(runs.items()), strict=True):
        w = critic_weights(workdir)
        ax.hist(w, bins=80, color=_COLORS.get(objective), label=f"{objective}: {w.size} weights")
        ax.set_xlabel("critic weight")
        ax.set_ylabel("count")
        ax.set_yscale("log")
        ax.legend(fontsize=7)
        ax.set_title("weight clipping" if objective == "wgan" else "gradient penalty")
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
    return path


def _w_estimates(workdir: str) -> list[tuple[float, float]]:
    """(step, W estimate) from a run's ``metrics.jsonl``; lines a kill cut short are passed over."""
    try:
        with open(os.path.join(workdir, "metrics.jsonl")) as f:
            lines = f.read().splitlines()
    except (FileNotFoundError, NotADirectoryError):
        return []
    out = []
    for line in lines:
        try:
            row = json.loads(line)
            out.append((float(row["step"]), float(row["w_estimate"])))
        except (ValueError, TypeError, KeyError, AttributeError):
            continue
    return out


def w_estimate_figure(study: Study, root: str, path: str) -> str | None:
    """The logged Wasserstein estimate (E D(real) - E D(fake)) over training, every seed."""
    datasets = _datasets(study)
    plt = _plt()
    fig, axes = plt.subplots(1, len(datasets), squeeze=False, figsize=(4.6 * len(datasets), 3.4))
    drawn = 0
    for ax, d in zip(axes[0], datasets, strict=True):
        for cell in study.cells:
            if cell.dataset != d or cell.objective not in ("wgan", "wgan-gp"):
                continue
            for s in range(cell.seeds):
                rows = _w_estimates(cell.workdir(root, s))
                if not rows:
                    continue
                ax.plot(*zip(*rows, strict=True), color=_COLORS.get(cell.objective), alpha=0.7, lw=1,
                        label=cell.objective if s == 0 else None)  # fmt: skip
                drawn += 1
        ax.set_title(d)
        ax.set_xlabel("generator step")
        _thousands(ax)
        ax.set_ylabel("W estimate")
        ax.set_yscale("symlog", linthresh=0.01)
        if ax.get_legend_handles_labels()[0]:  # a panel with no run has nothing to name
            ax.legend(fontsize=7)
    return _finish(fig, path, drawn)


def bars_figure(study: Study, root: str, path: str, results_dir: str | None = None) -> str | None:
    """Modes captured (share of all modes) and high-quality share per objective, ± std over seeds."""
    rows = [r for r in collect(study, root, results_dir) if r["seeds_done"]]
    if not rows:
        return None
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    plt = _plt()
    fig, axes = plt.subplots(1, len(datasets), squeeze=False, figsize=(4.8 * len(datasets), 3.4))
    for ax, d in zip(axes[0], datasets, strict=True):
        mine = [r for r in rows if r["dataset"] == d]
        x = np.arange(len(mine))
        modes = [r["modes_captured"] for r in mine]
        k = mine[0]["num_modes"]
        ax.bar(x - 0.2, [m["mean"] / k for m in modes], 0.4, yerr=[m["std"] / k for m in modes],
               color="#4c72b0", capsize=3, label="modes captured / all")  # fmt: skip
        if "high_quality_fraction" in mine[0]:
            hq = [r["high_quality_fraction"] for r in mine]
            ax.bar(x + 0.2, [h["mean"] for h in hq], 0.4, yerr=[h["std"] for h in hq],
                   color="#dd8452", capsize=3, label="high-quality share")  # fmt: skip
        ax.set_xticks(x, [f"{r['objective']}\n({r['seeds_done']} seeds)" for r in mine], fontsize=7)
        ax.set_ylim(0, 1.3)
        ax.set_title(d)
        ax.legend(fontsize=7, loc="upper center", ncol=2)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
    return path


def _by_step(results: list[dict], key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(steps, mean, std) of ``key`` over ``results``' curves, at each step that some of them
    logged (the mean over those that did); ``None`` with fewer than two steps."""
    by_step: dict[int, list[float]] = {}
    for r in results:
        for p in r.get("curve") or ():
            if key in p:
                by_step.setdefault(int(p["step"]), []).append(float(p[key]))
    if len(by_step) < 2:
        return None
    steps = np.array(sorted(by_step))
    vals = [np.asarray(by_step[s]) for s in steps]
    return steps, np.array([v.mean() for v in vals]), np.array([v.std() for v in vals])


def curve_figure(study: Study, root: str, path: str, results_dir: str | None = None) -> str | None:
    """High-quality share (modes captured where there is none, Stacked MNIST) against generator
    steps: one panel per dataset, one line per objective (the mean over seeds, ± std shaded),
    from the curves the results keep."""
    datasets = _datasets(study)
    found = {(c.dataset, c.objective): [r for s in range(c.seeds)
                                        if (r := result_for(c, s, root, results_dir))]
             for c in study.cells}  # fmt: skip
    points = [p for rs in found.values() for r in rs for p in r.get("curve") or ()]
    hq = any("high_quality_fraction" in p for p in points)
    key, scale = ("high_quality_fraction", 100.0) if hq else ("modes_captured", 1.0)
    plt = _plt()
    fig, axes = plt.subplots(1, len(datasets), squeeze=False, figsize=(4.8 * len(datasets), 3.4))
    drawn = 0
    for ax, d in zip(axes[0], datasets, strict=True):
        for cell in study.cells:
            results = found[(cell.dataset, cell.objective)] if cell.dataset == d else []
            got = _by_step(results, key)
            if got is None:
                continue
            steps, mean, std = got
            color = _COLORS.get(cell.objective)
            ax.plot(steps, scale * mean, color=color, lw=1.4,
                    label=f"{cell.objective} ({len(results)} seeds)")  # fmt: skip
            ax.fill_between(steps, scale * (mean - std), scale * (mean + std), color=color,
                            alpha=0.15)  # fmt: skip
            drawn += 1
        for step in study.curve_steps:
            ax.axvline(step, color="0.8", lw=0.6, ls=":")
        ax.set_title(d)
        ax.set_xlabel("generator step")
        _thousands(ax)
        ax.set_ylabel("high quality %" if hq else "modes captured")
        ax.set_ylim(0, 100 if hq else None)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="lower right")
    return _finish(fig, path, drawn)


def write_figures(
    study: Study,
    root: str,
    stop: Callable[[], bool] = lambda: False,
    results_dir: str | None = None,
) -> dict[str, str]:
    """Every figure the study's finished runs allow, under ``root``; returns {name: path}.
    ``stop()`` is asked before each figure: when it says so, the rest are not drawn.
    ``results_dir``: committed results, read before the run directories."""
    toys = all(c.dataset != "stacked_mnist" for c in study.cells)
    has_committed = results_dir is not None and os.path.isdir(results_dir)
    committed = {"results_dir": results_dir} if has_committed else {}
    makers = {"bars": (bars_figure, committed)}
    if toys:
        makers |= {"samples": (samples_figure, committed), "critic": (critic_figure, {}),
                   "weights": (weights_figure, {}), "w_estimate": (w_estimate_figure, {})}  # fmt: skip
    else:
        makers |= {"w_estimate": (w_estimate_figure, {})}
    if study.curve_steps:
        makers |= {"curve": (curve_figure, committed)}
    out = {}
    for name, (fn, kw) in makers.items():
        if stop():
            break
        p = fn(study, root, os.path.join(root, f"{name}.png"), **kw)
        if p:
            out[name] = p
    return out
