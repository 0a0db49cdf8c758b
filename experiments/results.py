"""Write the results page, ``experiments/results/README.md``, from the files in that folder.

    python experiments/results.py [--results experiments/results] [--out PATH]

Every current figure of the project lives in a file under ``experiments/results/`` and nowhere
else; this script turns them into one markdown page, each table with the command that reproduces
it. The sources:

- a folder per finished study (``results.json``, ``table.md`` and the figures that
  ``experiments/study.py`` writes under ``studies/<study>/``, copied here), described in
  ``studies.json`` (its command, when and how long, what it set up, its goals);
- the committed result files of the studies that accumulate across machines,
  ``<study>/runs/<dataset>/<objective>/seed<k>.json`` (one per finished run, written by
  ``experiments/study.py``), planned in ``accumulated.json`` (cells, seeds, budget, goals, the
  command that continues them);
- hand-maintained JSON for figures no tool writes into this folder: ``main_job.json`` (the main
  job's evaluation per seed), ``toys_budget.json``, ``stacked_mnist.json``, ``peers.json`` (the
  ``peers`` list of ``benchmarks/run.py --peers``), ``benchmarks.json`` and ``notebooks.json``.

A JSON file or a study folder the script does not know is an error, so nothing is silently left
off the page. Stdlib and numpy only (no jax). ``tests/test_results_page.py`` checks that the
committed page is what this script writes: after changing a result file, run it and commit both.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
PAGE = "README.md"
HAND_FILES = (
    "main_job.json",
    "studies.json",
    "accumulated.json",
    "toys_budget.json",
    "stacked_mnist.json",
    "peers.json",
    "benchmarks.json",
    "notebooks.json",
)
FIGURES = ("samples", "bars", "critic", "weights", "w_estimate", "curve")  # study.py's PNGs
DASH = "–"


class ResultsError(Exception):
    """A result file is missing, unknown or malformed."""


# --- helpers ---------------------------------------------------------------------------------


def _load(root: str, name: str) -> dict[str, Any]:
    path = os.path.join(root, name)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise ResultsError(f"{path}: missing") from None
    except json.JSONDecodeError as e:
        raise ResultsError(f"{path}: not valid JSON ({e})") from None


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
        *("| " + " | ".join(r) + " |" for r in rows),
    ]


def _reproduce(command: str, measured: str | None = None) -> str:
    line = f"Reproduce: `{command}`."
    return line + (f" Measured: {measured}." if measured else "")


def _num(value: float | None, fmt: str) -> str:
    return DASH if value is None else format(value, fmt).replace("-", "−")


def _pm(values: list[float], fmt: str) -> str:
    """Mean ± sample standard deviation (n − 1)."""
    a = np.asarray(values, dtype=np.float64)
    return f"{_num(float(a.mean()), fmt)} ± {_num(float(a.std(ddof=1)), fmt)}"


def _span(values: list[float], fmt: str) -> str:
    lo, hi = format(min(values), fmt), format(max(values), fmt)
    return lo if lo == hi else f"{lo}-{hi}"


def _ms(value: float) -> str:
    return f"{value:,.0f}" if value >= 1000 else f"{value:.1f}"


def _seconds(value: float | None) -> str:
    if value is None:
        return DASH
    return f"{value:,.0f} s" if value < 120 else f"{value:,.0f} s ({value / 60:.1f} min)"


# --- sections --------------------------------------------------------------------------------


def main_job(root: str) -> list[str]:
    d = _load(root, "main_job.json")
    seeds, real, goals = d["seeds"], d["real"], d["goals"]
    metrics = (  # key, column title, format
        ("swd_x1e3", "SWD×1e3", ".2f"),
        ("confident_share", "confident share", ".3f"),
        ("fid", "FID", ".2f"),
        ("kid_x1e3", "KID×1e3", ".2f"),
    )
    head = ["seed", "SWD×1e3", "× floor", "confident share", "% of real", "FID", "KID×1e3"]

    def row(label: str, values: dict[str, str], swd: float | None, share: float | None):
        return [
            label,
            values["swd_x1e3"],
            DASH if swd is None else f"{swd / real['swd_x1e3']:.1f}×",
            values["confident_share"],
            DASH if share is None else f"{100 * share / real['confident_share']:.0f} %",
            values["fid"],
            values["kid_x1e3"],
        ]

    rows = []
    for s in seeds:
        values = {k: _num(s.get(k), fmt) for k, _, fmt in metrics}
        rows.append(row(str(s["seed"]), values, s.get("swd_x1e3"), s.get("confident_share")))
    mean: dict[str, float | None] = {}
    values = {}
    for k, _, fmt in metrics:
        have = [s[k] for s in seeds if k in s]
        mean[k] = float(np.mean(have)) if len(have) == len(seeds) else None
        values[k] = _pm(have, fmt) if len(have) == len(seeds) > 1 else DASH
    label = f"mean ± std over {len(seeds)} seeds"
    rows.append(row(label, values, mean["swd_x1e3"], mean["confident_share"]))
    real_values = {k: _num(real.get(k), fmt) for k, _, fmt in metrics}
    rows.append(row("real vs real", real_values, real["swd_x1e3"], real["confident_share"]))

    swd_ratios = [s["swd_x1e3"] / real["swd_x1e3"] for s in seeds]
    share_ratios = [s["confident_share"] / real["confident_share"] for s in seeds]

    def verdict(ok: bool) -> str:
        return "**met**" if ok else "**not met**"

    swd_goal = goals["swd_over_floor_max"]
    share_goal = goals["confident_share_of_real_min"]
    first = seeds[0]
    extra = []
    if "swd_levels_x1e3" in first:
        extra.append("SWD levels " + ", ".join(f"{v:.1f}" for v in first["swd_levels_x1e3"]))
    if "modes" in first:
        extra.append(f"{first['modes']}/10 digit modes")
    if "reverse_kl" in first:
        extra.append(f"reverse KL {first['reverse_kl']:.3f}")
    if "ms_ssim" in first:
        extra.append(f"MS-SSIM {first['ms_ssim']:.3f}")
    out = [
        "## The main job",
        "",
        f"`python experiments/run.py` (preset `{d['preset']}`): {d['setting']}. "
        f"Wall time alone: {_seconds(d['wall_seconds_alone'])}.",
        "",
        _reproduce(d["command"], d["measured"]) + f" Evaluation: `{d['evaluate']}`.",
        "",
        *_table(head, rows),
        "",
        "SWD against the real-vs-real floor (two disjoint real sets of the same size); the confident "
        "share is the share of samples the digit classifier gives one digit with probability ≥ 0.9; "
        "FID and KID are on the digit classifier's features (not comparable with Inception FIDs). "
        "Std with n − 1.",
    ]
    if extra:
        out += ["", f"Seed {first['seed']} also: " + "; ".join(extra) + "."]
    out += [
        "",
        f"Goals: SWD ≤ {swd_goal:g}× the floor: {verdict(max(swd_ratios) <= swd_goal)} "
        f"(best seed {min(swd_ratios):.1f}×, mean {np.mean(swd_ratios):.1f}×); confident share "
        f"≥ {100 * share_goal:.0f} % of real: {verdict(min(share_ratios) >= share_goal)} "
        f"({_span([100 * r for r in share_ratios], '.0f')} %).",
        "",
    ]
    if "levers" in d:
        lever_rows = [
            row(f"`{r['flags']}` ({r['what']})", {k: _num(r.get(k), fmt) for k, _, fmt in metrics},
                r.get("swd_x1e3"), r.get("confident_share"))
            for r in d["levers"]["runs"]
        ]  # fmt: skip
        out += [f"Levers: {d['levers']['about']}.", "",
                *_table(["change", *head[1:]], lever_rows), ""]  # fmt: skip
    return out


def _goal_line(goal: dict[str, Any], results: dict[str, Any]) -> str:
    dataset, need = goal["dataset"], goal["high_quality_min"]
    cells = [c for c in results["cells"] if c["dataset"] == dataset and c.get("seeds_done")]
    if not cells:
        raise ResultsError(f"goal for {dataset!r}: the study has no finished cell there")
    n = cells[0]["num_modes"]
    met = [
        c["objective"]
        for c in cells
        if c["modes_captured"]["mean"] >= n and c["high_quality_fraction"]["mean"] >= need
    ]
    best = max(cells, key=lambda c: c["high_quality_fraction"]["mean"])
    full = [c for c in cells if c["modes_captured"]["mean"] >= n]
    text = f"{dataset}: {n}/{n} modes with ≥ {100 * need:.0f} % high quality: "
    if met:
        return text + "**met** by " + ", ".join(met) + "."
    text += f"**not met** (highest share {100 * best['high_quality_fraction']['mean']:.1f} %, "
    text += f"{best['objective']}"
    if full:
        top = max(full, key=lambda c: c["high_quality_fraction"]["mean"])
        text += f"; among the arms with all {n} modes in every seed: {top['objective']}, "
        text += f"{100 * top['high_quality_fraction']['mean']:.1f} %"
    real = [r for r in results.get("real_data", []) if r["dataset"] == dataset]
    if real:
        text += f"; real data {100 * real[0]['high_quality_fraction']:.1f} %"
    return text + ")."


def studies(root: str) -> list[str]:
    about = _load(root, "studies.json")
    accumulating = set(_load(root, "accumulated.json"))  # their section reads runs/, not these
    folders = sorted(
        e
        for e in os.listdir(root)
        if os.path.isfile(os.path.join(root, e, "results.json")) and e not in accumulating
    )
    described = [k for k in about if k != "about"]
    if unknown := sorted(set(folders) - set(described)):
        raise ResultsError(f"studies.json does not describe the study folder(s) {unknown}")
    if missing := sorted(set(described) - set(folders)):
        raise ResultsError(f"studies.json describes {missing}, which have no results.json here")
    out = [
        "## The mode-collapse studies",
        "",
        "One table per study, as `experiments/study.py` writes it (`table.md`, from "
        "`results.json`): mean ± std (population) over seeds; 2,500 samples per run.",
        "",
    ]
    for name in described:
        info = about[name]
        results = _load(root, os.path.join(name, "results.json"))
        if results.get("study") != name:
            raise ResultsError(f"{name}/results.json is the study {results.get('study')!r}")
        with open(os.path.join(root, name, "table.md"), encoding="utf-8") as f:
            table = f.read().strip("\n").split("\n")
        runs = [r for c in results["cells"] for r in c["runs"]]
        train_h = sum(r["train_seconds"] for r in runs) / 3600
        out += [
            f"### {name}",
            "",
            _reproduce(info["command"], info["measured"])
            + f" {len(runs)} runs, {train_h:.1f} h of training in all. "
            + f"Then copy `studies/{name}/` here.",
            "",
            info["setup"],
            "",
            *table,
            "",
        ]
        goals = [_goal_line(g, results) for g in info["goals"]]
        if goals:
            out += ["Goals: " + " ".join(goals), ""]
        figures = [f for f in FIGURES if os.path.isfile(os.path.join(root, name, f + ".png"))]
        if "samples" in figures:
            out += [f"![{name}: samples per objective]({name}/samples.png)", ""]
        if figures:
            links = " · ".join(f"[{f}]({name}/{f}.png)" for f in figures)
            out += [f"Figures: {links}.", ""]
        out += [*(f"- {n}" for n in info["notes"]), *([""] if info["notes"] else [])]
    return out


def _population_pm(values: list[float], fmt: str, scale: float = 1.0) -> str:
    """Mean ± population std, as the study tables give them."""
    a = np.asarray(values, np.float64) * scale
    return f"{_num(float(a.mean()), fmt)} ± {_num(float(a.std(ddof=0)), fmt)}"


def _run_file(root: str, name: str, cell: dict[str, Any], seed: int) -> str:
    return os.path.join(root, name, "runs", cell["dataset"], cell["objective"], f"seed{seed}.json")


def _committed_runs(root: str, name: str, plan: dict[str, Any], cell: dict[str, Any]) -> list[dict]:
    """The committed results of one planned cell: its preset at the planned budget."""
    out = []
    for seed in range(cell["seeds"]):
        try:
            with open(_run_file(root, name, cell, seed), encoding="utf-8") as f:
                r = json.load(f)
        except FileNotFoundError:
            continue
        except json.JSONDecodeError as e:
            raise ResultsError(
                f"{_run_file(root, name, cell, seed)}: not valid JSON ({e})"
            ) from None
        if r.get("preset") == cell["preset"] and r.get("steps") == plan["steps"]:
            out.append(r)
    return out


def _curve_cell(runs: list[dict], step: int, hq: bool) -> str:
    points = [p for r in runs for p in r.get("curve", []) if p.get("step") == step]
    if not points:
        return DASH
    modes = np.mean([p["modes_captured"] for p in points])
    if hq:
        second = f"{100 * np.mean([p['high_quality_fraction'] for p in points]):.1f} %"
    else:
        second = f"{np.mean([p['reverse_kl'] for p in points]):.3f}"
    seeds = "" if len(points) == len(runs) else f" ({len(points)})"
    return f"{modes:.1f} / {second}{seeds}"


def _accumulated_goal(goal: dict[str, Any], cells: list[tuple[dict, list[dict]]]) -> str:
    """Met by which cells (means over their seeds), else the best cell and how far it is."""
    dataset = goal["dataset"]
    mine = [(c, runs) for c, runs in cells if c["dataset"] == dataset and runs]
    if not mine:
        return f"{dataset}: no run yet."

    def means(runs: list[dict]) -> dict[str, float]:
        keys = ("modes_captured", "high_quality_fraction", "reverse_kl")
        return {k: float(np.mean([r[k] for r in runs])) for k in keys if k in runs[0]}

    n = mine[0][1][0]["num_modes"]
    need_modes = goal.get("modes_min", n)
    want = [f"{need_modes:,}/{n:,} modes"]
    if "high_quality_min" in goal:
        want.append(f"≥ {100 * goal['high_quality_min']:.0f} % high quality")
    want.append(f"reverse KL ≤ {goal['reverse_kl_max']:g}")
    text = f"{dataset} ({', '.join(want)}): "
    met, gaps = [], []
    for c, runs in mine:
        m = means(runs)
        short = []
        if m["modes_captured"] < need_modes:
            short.append(f"{need_modes - m['modes_captured']:.1f} modes")
        if "high_quality_min" in goal and m["high_quality_fraction"] < goal["high_quality_min"]:
            short.append(f"{100 * (goal['high_quality_min'] - m['high_quality_fraction']):.1f} "
                         "points of high quality")  # fmt: skip
        if m["reverse_kl"] > goal["reverse_kl_max"]:
            short.append(f"reverse KL {m['reverse_kl'] - goal['reverse_kl_max']:.3f} too high")
        if short:
            gaps.append((len(short), c["objective"], short))
        else:
            so_far = (
                f" ({len(runs)} of {c['seeds']} seeds so far)" if len(runs) < c["seeds"] else ""
            )
            met.append(c["objective"] + so_far)
    if met:
        return text + "**met** by " + ", ".join(met) + "."
    fewest = min(gaps, key=lambda g: g[0])
    return text + f"**not met**; closest {fewest[1]}, short by " + ", ".join(fewest[2]) + "."


def _accumulated_study(root: str, name: str, plan: dict[str, Any]) -> list[str]:
    cells = [(c, _committed_runs(root, name, plan, c)) for c in plan["cells"]]
    planned = sum(c["seeds"] for c in plan["cells"])
    done = sum(len(runs) for _, runs in cells)
    train_h = sum(r["train_seconds"] for _, runs in cells for r in runs) / 3600
    hq = any("high_quality_min" in g for g in plan["goals"])  # the toys' protocol
    head = ["dataset", "objective", "seeds", "modes", *(["high quality %"] if hq else []),
            "reverse KL", "train min / run"]  # fmt: skip
    rows = []
    for c, runs in cells:
        seeds = f"{len(runs)} of {c['seeds']}"
        if not runs:
            rows.append([c["dataset"], c["objective"], seeds, *[DASH] * (len(head) - 3)])
            continue
        row = [c["dataset"], c["objective"], seeds,
               _population_pm([r["modes_captured"] for r in runs], ".1f")
               + f" / {runs[0]['num_modes']:,}"]  # fmt: skip
        if hq:
            row.append(_population_pm([r["high_quality_fraction"] for r in runs], ".1f", 100.0))
        row += [_population_pm([r["reverse_kl"] for r in runs], ".3f"),
                f"{np.mean([r['train_seconds'] for r in runs]) / 60:.0f}"]  # fmt: skip
        rows.append(row)
    steps = plan["curve_steps"]
    label = lambda s: f"{s // 1000}k" if s % 1000 == 0 else f"{s:,}"  # noqa: E731
    curve = [[c["dataset"], c["objective"], *(_curve_cell(runs, s, hq) for s in steps)]
             for c, runs in cells]  # fmt: skip
    out = [
        f"### {name}",
        "",
        f"**{done} of {planned} planned runs done** ({train_h:.1f} h of training in all), each "
        f"at {plan['steps']:,} generator steps. Continue: `{plan['command']}` (a committed run "
        "is not redone; the rest start as the budget allows).",
        "",
        plan["setup"],
        "",
        *_table(head, rows),
        "",
        f"Along the way: modes / {'high quality %' if hq else 'reverse KL'} at each budget, the "
        "mean over the seeds that reached it (seeds in brackets when not all).",
        "",
        *_table(["dataset", "objective", *map(label, steps)], curve),
        "",
    ]
    if done:
        goals = [_accumulated_goal(g, cells) for g in plan["goals"]]
        out += ["Goals (means over the seeds done): " + " ".join(goals), ""]
    figures = [f for f in FIGURES if os.path.isfile(os.path.join(root, name, f + ".png"))]
    if figures:
        links = " · ".join(f"[{f}]({name}/{f}.png)" for f in figures)
        out += [f"Figures (`python experiments/study.py --study={name} --report`, copied from "
                f"`studies/{name}/`): {links}.", ""]  # fmt: skip
    return out


def accumulated(root: str) -> list[str]:
    about = _load(root, "accumulated.json")
    names = [k for k in about if k != "about"]
    folders = sorted(e for e in os.listdir(root) if os.path.isdir(os.path.join(root, e, "runs")))
    if unknown := sorted(set(folders) - set(names)):
        raise ResultsError(f"accumulated.json does not describe the run folder(s) {unknown}")
    out = [
        "## The studies at the papers' budgets",
        "",
        "Built from the committed result files alone (`<study>/runs/`, one per finished run, "
        "with its commit, budget, wall time and curve), so a study goes on across machines: "
        "mean ± std (population) over the seeds done.",
        "",
    ]
    for name in names:
        out += _accumulated_study(root, name, about[name])
    return out


def toys_budget(root: str) -> list[str]:
    d = _load(root, "toys_budget.json")
    datasets = d["datasets"]

    def cell(v: list[float] | None) -> str:
        if v is None:
            return DASH
        modes, hq, kl = v
        return f"{modes:g} / {100 * hq:.1f} % / {kl:g}"

    rows = [[f"{r['steps']:,}", *(cell(r[ds]) for ds in datasets)] for r in d["rows"]]
    rows.append(["real data", *(cell(d["real"].get(ds)) for ds in datasets)])
    ref = d.get("reference")
    if ref:
        rows.append([ref["label"], *(cell(ref.get(ds)) for ds in datasets)])
    return [
        "## The budget on the toys",
        "",
        "The `modes-wgan-gp` preset of the toys study, trained longer (one seed each): modes / "
        "high-quality share / reverse KL on 2,500 samples.",
        "",
        _reproduce(d["command"], d["measured"]),
        "",
        *_table(["generator steps", *datasets], rows),
        "",
    ]


def stacked_mnist(root: str) -> list[str]:
    d = _load(root, "stacked_mnist.json")
    rows = [
        [
            r["objective"],
            DASH if r["modes"] is None else f"{r['modes']:,} / 1,000",
            _num(r["reverse_kl"], ".3f"),
            _seconds(r["train_seconds"]),
        ]
        for r in d["rows"]
    ]
    return [
        "## Stacked MNIST: the first cell",
        "",
        _reproduce(d["command"], d["measured"]) + f" Goal: {d['goal']}.",
        "",
        *_table(["objective", "modes", "reverse KL", "train time"], rows),
        "",
        *(f"- {n}" for n in d["notes"]),
        "",
    ]


def peers(root: str) -> list[str]:
    d = _load(root, "peers.json")
    about, cases = d["about"], d["peers"]
    labels = about.get("labels", {})
    peak = about.get("matmul_peak_gflops")

    def rate(c: dict, side: str) -> str:
        if f"{side}_gflops" not in c:
            return DASH
        return f"{c[f'{side}_gflops']:.0f} ({100 * c[f'{side}_peak_fraction']:.0f} %)"

    rows = [
        [
            labels.get(c["case"], c["case"]) + f" (`{c['case']}`)",
            str(c["batch"]),
            _ms(c["jaxgan_ms"]),
            _ms(c["pytorch_ms"]),
            f"{c['ratio']:.2f}",
            f"{c['flops_per_iter'] / 1e9:.1f}" if "flops_per_iter" in c else DASH,
            rate(c, "jaxgan"),
            rate(c, "pytorch"),
        ]
        for c in cases
    ]
    goals = about["goals"]
    below = [c["case"] for c in cases if c["ratio"] < goals["ratio"]]
    mlp_below = [c["case"] for c in cases if c["case"] in goals["mlp_cases"] and c["ratio"] < goals["mlp_ratio"]]  # fmt: skip
    conv = [c for c in cases if c["case"] not in goals["mlp_cases"]]
    peak_below = [c["case"] for c in conv if c.get("jaxgan_peak_fraction", 0) < goals["conv_peak_fraction"]]  # fmt: skip
    say = lambda xs: "met" if not xs else "**not met** by " + ", ".join(f"`{x}`" for x in xs)  # noqa: E731
    return [
        "## Train-step speed against PyTorch",
        "",
        "Each case beside its layer-for-layer PyTorch mirror (`benchmarks/peers/torch_models.py`; "
        "the external scripts' networks as NNX ports in `benchmarks/peers/external.py`), timed in "
        f"alternating rounds. Unit: {about['unit']}. GFLOP per iteration: XLA's count of jaxgan's "
        "compiled step, used for both sides; GFLOP/s with the share of the float32 matmul peak "
        + (f"({peak:.0f} GFLOP/s in this run)." if peak else "measured in the same run."),
        "",
        _reproduce(about["command"], about["measured"]),
        "",
        *_table(
            [
                "case",
                "batch",
                "jaxgan ms",
                "PyTorch ms",
                "ratio",
                "GFLOP / iter",
                "jaxgan GFLOP/s (% peak)",
                "PyTorch GFLOP/s (% peak)",
            ],
            rows,
        ),
        "",
        f"Goals: every case ≥ {goals['ratio']:g}× PyTorch: {say(below)}; the MLP cases ≥ "
        f"{goals['mlp_ratio']:g}×: {say(mlp_below)}; every convolutional case ≥ "
        f"{100 * goals['conv_peak_fraction']:.0f} % of the matmul peak: {say(peak_below)}.",
        "",
        *(f"- {n}" for n in about.get("notes", [])),
        "",
    ]


def benchmarks(root: str) -> list[str]:
    d = _load(root, "benchmarks.json")
    rows = [[r["case"], r["time"], r["note"] or DASH] for r in d["rows"]]
    return [
        "## The benchmark suite",
        "",
        "Train-step time per generator iteration ([benchmarks/README.md](../../benchmarks/README.md)).",
        "",
        _reproduce(d["command"], d["measured"]),
        "",
        *_table(["case", "time per iteration", "note"], rows),
        "",
    ]


def notebooks(root: str) -> list[str]:
    d = _load(root, "notebooks.json")
    rows = [
        [
            f"[{r['notebook']}](../../notebooks/{r['notebook']}.py)",
            _seconds(r["wall_seconds"]),
            r["conditions"],
            r["result"],
        ]
        for r in d["rows"]
    ]
    return [
        "## The notebooks at real size",
        "",
        _reproduce(d["command"], d["measured"]),
        "",
        *_table(["notebook", "wall time", "beside", "result"], rows),
        "",
    ]


SECTIONS = (main_job, studies, accumulated, toys_budget, stacked_mnist, peers, benchmarks,
            notebooks)  # fmt: skip


def render(root: str = RESULTS) -> str:
    """The page for the result files under ``root``."""
    unknown = sorted(
        e
        for e in os.listdir(root)
        if e.endswith(".json") and os.path.isfile(os.path.join(root, e)) and e not in HAND_FILES
    )
    if unknown:
        raise ResultsError(
            f"{root}: unknown result file(s) {unknown}: add a section to experiments/results.py"
        )
    lines = [
        "# Results",
        "",
        "<!-- Generated by `python experiments/results.py` from the files in this folder; "
        "edit those, not this page. -->",
        "",
        "The project's current figures, each table with the command that reproduces it. All on "
        "the project's shared 2-core CPU (no GPU) unless said; its speed drifts by up to ±30 % "
        "between hours, so compare timings only within one table. Why each setting is what it "
        "is: [BUILD_NOTES.md](../../BUILD_NOTES.md).",
        "",
    ]
    for section in SECTIONS:
        lines += section(root)
    while lines and lines[-1] == "":
        lines.pop()
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="results.py", description=__doc__.split("\n")[0])
    p.add_argument("--results", default=RESULTS, help="the folder of result files")
    p.add_argument("--out", default=None, help="the page to write (RESULTS/README.md)")
    a = p.parse_args(argv)
    try:
        page = render(a.results)
    except (ResultsError, KeyError, TypeError) as e:
        print(f"results.py: error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    out = a.out or os.path.join(a.results, PAGE)
    with open(out, "w", encoding="utf-8") as f:
        f.write(page)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
