"""Run a mode-collapse study and write its table and figures.

    python experiments/study.py --study=toys [--root=studies/toys] [--jobs=2]

Every run is a preset trained through ``jaxgan.train`` into ``ROOT/<dataset>/<objective>/seed<k>``;
stop it any time (Ctrl-C) and rerun the same command: unfinished runs resume from their latest
checkpoint, finished ones are not redone. At the end (or with ``--report``): ``results.json``,
``table.md`` and the figures under ``ROOT``. ``--list`` shows the studies and their cells.
"""

import argparse
import os
import signal
import subprocess
import sys
import time

_interrupted: list[int] = []

CELL_FIELDS = ("dataset", "loss", "seed")  # set by each cell and run, not study-wide


def _on_sigint(signum, frame):
    _interrupted.append(signum)


def _parser(study_names: list[str]) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="study.py", description=__doc__.split("\n")[0])
    p.add_argument("--study", default="toys", help="one of: " + ", ".join(study_names))
    p.add_argument("--root", default=None, help="where the runs and the report go (studies/STUDY)")
    p.add_argument("--jobs", type=int, default=1, help="runs trained at once, each a process")
    p.add_argument("--seeds", type=int, default=None, help="at most this many seeds per cell")
    p.add_argument("--cells", default="", help="only cells whose 'dataset/objective' contains one "
                   "of these comma-separated strings")  # fmt: skip
    p.add_argument("--report", action="store_true", help="only write the table and figures")
    p.add_argument("--list", action="store_true", help="list the studies and their cells")
    p.add_argument("--run", default=None, help=argparse.SUPPRESS)  # DATASET/OBJECTIVE/SEED (a job)
    from jaxgan.training.cli import add_field_flags

    add_field_flags(p, exclude=CELL_FIELDS)  # settings for every run, e.g. --steps=1000
    return p


def _selected(study, args):
    wanted = [w for w in args.cells.split(",") if w]
    out = []
    for cell, seed, workdir in study.runs(args.root):
        name = f"{cell.dataset}/{cell.objective}"
        if wanted and not any(w in name for w in wanted):
            continue
        if args.seeds is not None and seed >= args.seeds:
            continue
        out.append((cell, seed, workdir, f"{name}/{seed}"))
    return out


def _flag(name: str, value) -> str:
    from jaxgan.training.cli import shown

    if isinstance(value, bool):
        return f"--{name}" if value else f"--no-{name}"
    return f"--{name}={shown(value)}"


def _describe(r) -> str:
    hq = f", {100 * r['high_quality_fraction']:.1f}% HQ" if "high_quality_fraction" in r else ""
    return (f"{r['modes_captured']}/{r['num_modes']} modes{hq}, reverse KL "
            f"{r['reverse_kl']:.3f} ({r['train_seconds']:.0f} s)")  # fmt: skip


def main(argv=None) -> int:
    from jaxgan.study import runner as study_lib
    from jaxgan.training.config import FIELDS, ConfigError

    args = _parser(list(study_lib.STUDIES)).parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if k in FIELDS}
    args.passed = [_flag(k, v) for k, v in overrides.items()]  # for the jobs
    try:
        study = study_lib.get(args.study)
        if args.jobs < 1:
            raise ConfigError(f"--jobs must be a positive integer, got {args.jobs}.")
        if args.seeds is not None and args.seeds < 1:
            raise ConfigError(f"--seeds must be a positive integer, got {args.seeds}.")
        for cell in study.cells:  # bad overrides: one line now, not one per job
            cell.config(0, overrides)
    except ConfigError as e:
        sys.stderr.write(f"study.py: error: {e}\n")
        return 2
    args.root = args.root or os.path.join("studies", study.name)
    if args.list:
        for s in study_lib.STUDIES.values():
            print(f"{s.name}: {s.description}")
            for c in s.cells:
                print(f"  {c.dataset}/{c.objective}: preset {c.preset}, {c.seeds} seeds")
        return 0
    from jaxgan import xla_flags

    xla_flags.apply(announce=True)  # before JAX starts, here or in the jobs (they inherit it)
    runs = _selected(study, args)
    if args.run is not None:  # one job of a --jobs study
        cell, seed, _, _ = next(r for r in runs if r[3] == args.run)
        try:
            result = study_lib.run_one(study, cell, seed, args.root, overrides=overrides,
                                       interrupted=lambda: bool(_interrupted))  # fmt: skip
        except KeyboardInterrupt:  # Ctrl-C during start-up: nothing trained
            return 130
        return 0 if result is not None else 130
    code = 0 if args.report else _train(study, runs, args)
    if code == 130:
        return code
    paths = study_lib.write_report(study, args.root)
    from jaxgan.study import figures as study_figures

    paths |= study_figures.write_figures(study, args.root)
    print(open(paths["table"]).read())
    for name, p in paths.items():
        print(f"  {name:<11}{p}")
    return code


def _train(study, runs, args) -> int:
    from jaxgan.study import runner as study_lib

    todo = [r for r in runs if study_lib.read_result(r[2]) is None]
    print(f"{study.name}: {len(runs)} runs selected, {len(runs) - len(todo)} already done, "
          f"{len(todo)} to train under {args.root}", flush=True)  # fmt: skip
    base = [
        sys.executable,
        os.path.abspath(__file__),
        f"--study={study.name}",
        f"--root={args.root}",
        *args.passed,
    ]
    running: dict[str, tuple[subprocess.Popen, float]] = {}
    queue = list(todo)
    done = failed = 0
    while queue or running:
        while queue and len(running) < args.jobs and not _interrupted:
            *_, name = queue.pop(0)
            proc = subprocess.Popen([*base, f"--run={name}"], stdout=subprocess.DEVNULL)
            running[name] = (proc, time.perf_counter())
        if not running:
            break
        time.sleep(0.5)
        for name, (proc, _) in list(running.items()):
            if proc.poll() is None:
                continue
            del running[name]
            workdir = next(r[2] for r in todo if r[3] == name)
            result = study_lib.read_result(workdir)
            done += 1
            if result is not None:
                print(f"[{done}/{len(todo)}] {name}: {_describe(result)}", flush=True)
            elif proc.returncode not in (0, 130):
                print(f"[{done}/{len(todo)}] {name}: failed (exit {proc.returncode}); "
                      f"see {workdir}", flush=True)  # fmt: skip
                failed += 1
    if _interrupted:
        print("interrupted: rerun the same command to continue (finished runs are kept).")
        return 130
    if failed:
        print(f"{failed} run(s) failed (their errors are above); the report covers the rest.")
        return 1
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGINT, _on_sigint)
    sys.exit(main())
