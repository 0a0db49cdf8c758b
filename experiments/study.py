"""Run a mode-collapse study and write its table and figures.

    python experiments/study.py --study=toys [--root=studies/toys] [--jobs=2] [--budget_minutes=M]

Every run is a preset trained through ``jaxgan.train`` into ``ROOT/<dataset>/<objective>/seed<k>``;
stop it any time (Ctrl-C) and rerun the same command: unfinished runs resume from their latest
checkpoint, finished ones are not redone. A finished run also writes a small result file,
``RESULTS/runs/<dataset>/<objective>/seed<k>.json`` (``RESULTS``: experiments/results/STUDY, to be
committed): such a file counts as done, so a fresh clone goes on with the runs not yet in git.
Run flags that change the runs (``--steps=1000``) make a variant whose results stay in ROOT.
At the end (or with ``--report``): ``results.json``, ``table.md`` and the figures under ``ROOT``,
from the committed results and the run directories. ``--list`` shows the studies and their cells.

``--budget_minutes=M`` starts only the runs that fit in what is left of M minutes of wall time:
a run's time is seconds per step x its steps left (plus its evaluation), from the committed
results of the same cell, else from any committed run of the same preset; a run with no such
result starts only while at least half the budget is left. When the budget is spent the running
trainings checkpoint and stop as on Ctrl-C; the next invocation resumes them. With ``--jobs=2``
two runs train at once, each against the same wall-clock budget.
"""

import argparse
import contextlib
import math
import os
import signal
import subprocess
import sys
import tempfile
import time

PROG = "study.py"
# Where the committed result files go: RESULTS_ROOT/<study>/runs/... (--results overrides).
RESULTS_ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
# SIGINT/SIGTERM are recorded, never raised (an exception inside an import or an orbax call leaves
# half-built modules or threads behind): training stops at the next check, its jobs with it.
_interrupted: list[int] = []

CELL_FIELDS = ("dataset", "loss", "seed")  # set by each cell and run, not study-wide


def _on_signal(signum, frame):
    _interrupted.append(signum)


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag as one line and exits with status 2."""

    def error(self, message: str):
        sys.stderr.write(f"{self.prog}: error: {message} (see --help)\n")
        sys.exit(2)


def _parser(study_names: list[str]) -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description=__doc__.split("\n")[0], allow_abbrev=False)
    p.add_argument("--study", default="toys", help="one of: " + ", ".join(study_names))
    p.add_argument("--root", default=None, help="where the runs and the report go, a directory "
                   "made if missing (studies/STUDY)")  # fmt: skip
    p.add_argument("--jobs", type=int, default=1, help="runs trained at once, each a process")
    p.add_argument("--seeds", type=int, default=None, help="at most this many seeds per cell")
    p.add_argument("--cells", default="", help="only cells whose 'dataset/objective' contains one "
                   "of these comma-separated strings")  # fmt: skip
    p.add_argument("--results", default=None, help="where each finished run's small result file "
                   "goes, to be committed; a file there counts as done (experiments/results/"
                   "STUDY); runs with flags that change them (--steps=...) keep theirs in ROOT "
                   "only")  # fmt: skip
    p.add_argument("--budget_minutes", type=float, default=None, metavar="M", help="start only "
                   "runs that fit in what is left of M minutes (a run's time: seconds per step x "
                   "its steps left, from committed results of its cell, else of its preset; with "
                   "none, it starts only while half the budget is left); then stop the running "
                   "ones as on Ctrl-C (they checkpoint; the next invocation resumes them)")  # fmt: skip
    p.add_argument("--report", action="store_true", help="only write the table and figures")
    p.add_argument("--list", action="store_true", help="list the studies and their cells")
    p.add_argument("--run", default=None, help=argparse.SUPPRESS)  # DATASET/OBJECTIVE/SEED (a job)
    from jaxgan.training.cli import add_field_flags

    add_field_flags(p, exclude=CELL_FIELDS)  # settings for every run, e.g. --steps=1000
    return p


def _parse(argv, study_names: list[str]) -> argparse.Namespace:
    p = _parser(study_names)
    args, extra = p.parse_known_args(argv)
    if extra:
        name = extra[0].split("=", 1)[0]
        if name.startswith("--") and name[2:] in CELL_FIELDS:
            p.error(f"{name} is set by each cell and run of the study; choose them with --cells "
                    "and --seeds")  # fmt: skip
        p.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def _cell_names(study) -> str:
    """The cells' 'dataset/objective' names for a message, shortened when there are many."""
    names = [f"{c.dataset}/{c.objective}" for c in study.cells]
    if len(names) <= 4:
        return "cells' names: " + ", ".join(names)
    datasets = "|".join(dict.fromkeys(c.dataset for c in study.cells))
    objectives = "|".join(dict.fromkeys(c.objective for c in study.cells))
    return (f"{len(names)} cells' names, DATASET/OBJECTIVE with DATASET {datasets} and "
            f"OBJECTIVE {objectives} (--list shows them)")  # fmt: skip


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


def _check_cells(study, args) -> None:
    from jaxgan.errors import ConfigError

    names = [f"{c.dataset}/{c.objective}" for c in study.cells]
    unmatched = [w for w in args.cells.split(",") if w and not any(w in n for n in names)]
    if unmatched:
        raise ConfigError(f"--cells={args.cells!r}: {', '.join(map(repr, unmatched))} matches no "
                          f"cell of study {study.name!r}; use parts of its {_cell_names(study)}.")  # fmt: skip


def _check_root(study, args) -> None:
    """--root is a directory or can become one; it holds no other study's report; with --report
    there are finished runs (committed or in --root). Nothing is created here."""
    from jaxgan.errors import ConfigError
    from jaxgan.study import runner as study_lib

    root, made = args.root, "give a directory (made if missing)"
    if os.path.exists(root) and not os.path.isdir(root):
        raise ConfigError(f"--root={root} is a file, not a directory; {made}.")
    above = os.path.dirname(os.path.abspath(root))
    while not os.path.exists(above):
        above = os.path.dirname(above)
    if not os.path.isdir(above):
        raise ConfigError(f"--root={root}: {above} is a file, not a directory; {made}.")
    other = study_lib.report_study(root)
    if other is not None and other != study.name:
        raise ConfigError(f"--root={root} holds the report of study {other!r} (results.json); "
                          f"give --study={other}, or another --root for {study.name!r}.")  # fmt: skip
    committed = _committed(study, args)
    if committed and os.path.exists(committed) and not os.path.isdir(committed):
        raise ConfigError(f"--results={committed} is a file, not a directory; give a directory "
                          "(made if missing).")  # fmt: skip
    if not args.report:
        return
    found = [c for c, s, _ in study.runs(root) if study_lib.committed(c, s, committed)]
    if not found and not os.path.isdir(root):
        raise ConfigError(f"--root={root} does not exist: nothing to report; train first (the "
                          "same command without --report).")  # fmt: skip
    if not found and not any(study_lib.read_result(w) for *_, w in study.runs(root)):
        raise ConfigError(f"--report: no finished run of study {study.name!r} under {root} yet; "
                          "train some first (the same command without --report).")  # fmt: skip


def _overrides(args) -> dict:
    """The run flags given (fields of the config), for every run of the study."""
    from jaxgan.training.config import FIELDS

    return {k: v for k, v in vars(args).items() if k in FIELDS}


def _results(study, args) -> str:
    """--results, or the study's folder of committed results."""
    return args.results or os.path.join(RESULTS_ROOT, study.name)


def _committed(study, args) -> str | None:
    """Where committed results are read and written for these runs: ``None`` for a variant (run
    flags that change the runs), whose results stay in --root."""
    from jaxgan.study import runner as study_lib

    return study_lib.committed_dir(_results(study, args), _overrides(args))


def _make_root(root: str) -> None:
    """Make --root (training writes there) and try writing in it."""
    from jaxgan.errors import ConfigError

    try:
        os.makedirs(root, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".study-", dir=root)
        os.close(fd)
        os.remove(probe)
    except OSError as e:
        raise ConfigError(f"--root={root}: cannot write there ({e.strerror}); give a directory "
                          "you can write (made if missing).") from None  # fmt: skip


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
    """Bad input: one line on stderr, exit status 2, nothing created or changed under --root.
    A signal: stop (the jobs too), exit 128 + N; a report not written is left as it was."""
    from jaxgan import xla_flags
    from jaxgan.errors import ConfigError, DataError
    from jaxgan.study import runner as study_lib
    from jaxgan.training.config import FIELDS

    try:
        args = _parse(argv, list(study_lib.STUDIES))
    except SystemExit as e:  # --help (0), or one error line (2)
        return 0 if e.code is None else e.code if isinstance(e.code, int) else 2
    # Before JAX starts, here or in the jobs (they inherit it); on stdout: stderr is for errors.
    xla_flags.apply(announce=True, stream=sys.stdout)
    overrides = {k: v for k, v in vars(args).items() if k in FIELDS}
    args.passed = [_flag(k, v) for k, v in overrides.items()]  # for the jobs
    try:
        study = study_lib.get(args.study)
        if args.jobs < 1:
            raise ConfigError(f"--jobs must be a positive integer, got {args.jobs}.")
        if args.seeds is not None and args.seeds < 1:
            raise ConfigError(f"--seeds must be a positive integer, got {args.seeds}.")
        if args.root is not None and not args.root.strip():
            raise ConfigError("--root is empty; give a directory (made if missing).")
        if args.results is not None and not args.results.strip():
            raise ConfigError("--results is empty; give a directory (made if missing).")
        budget = args.budget_minutes
        if budget is not None and not (math.isfinite(budget) and budget > 0):
            raise ConfigError(f"--budget_minutes={budget:g}: give a positive number of minutes.")
        for cell in study.cells:  # bad overrides: one line now, not one per job
            cell.config(0, overrides)
        args.root = args.root or os.path.join("studies", study.name)
        if args.list:
            return _list(study_lib.STUDIES)
        if args.run is not None:  # one job of a --jobs study
            return _job(study, args, overrides)
        _check_cells(study, args)
        _check_root(study, args)
        if _interrupted:  # before anything is written
            print(f"stopped by {signal.Signals(_interrupted[0]).name} before anything was done.")
            return 128 + _interrupted[0]
        if not args.report or not os.path.isdir(args.root):  # a report of committed results alone
            _make_root(args.root)
    except (ConfigError, DataError) as e:
        sys.stderr.write(f"{PROG}: error: {e}\n")
        return 2
    except BrokenPipeError:  # --list | head
        return 0
    except OSError as e:  # reading --root (permissions, I/O)
        where = f" ({e.filename})" if e.filename else ""
        sys.stderr.write(f"{PROG}: error: --root={args.root}: {e.strerror}{where}\n")
        return 1
    runs = _selected(study, args)
    code = 0 if args.report else _train(study, runs, args)
    if code >= 128:
        return code
    return _report(study, args.root, _committed(study, args)) or code


def _list(studies) -> int:
    for s in studies.values():
        print(f"{s.name}: {s.description}")
        for c in s.cells:
            flags = "".join(f" {_flag(k, v)}" for k, v in c.overrides)
            print(f"  {c.dataset}/{c.objective}: preset {c.preset}{flags}, {c.seeds} seeds")
    return 0


def _job(study, args, overrides) -> int:
    """``--run=NAME``: train and evaluate one run (a process of ``_train``)."""
    from jaxgan.errors import CheckpointError, ConfigError, DataError
    from jaxgan.study import runner as study_lib

    found = [r for r in _selected(study, args) if r[3] == args.run]
    if not found:
        raise ConfigError(f"--run={args.run!r} is not a run of study {study.name!r} "
                          "(DATASET/OBJECTIVE/SEED; an internal flag of the jobs).")  # fmt: skip
    cell, seed, _, _ = found[0]
    try:
        result = study_lib.run_one(study, cell, seed, args.root, overrides=overrides,
                                   caught=_interrupted, results_dir=_results(study, args))  # fmt: skip
    except (ConfigError, DataError) as e:  # found at start-up: the data, the run directory
        sys.stderr.write(f"{PROG}: error: {args.run}: {e}\n")
        return 2
    except (CheckpointError, OSError) as e:  # a save or a write failed; earlier ones are intact
        sys.stderr.write(f"{PROG}: error: {args.run}: {e}\n")
        return 1
    if result is not None:
        return 0
    return 128 + (_interrupted[0] if _interrupted else signal.SIGINT)


def _report(study, root: str, committed: str | None = None) -> int:
    """results.json, table.md and the figures (the table also on stdout), from the results
    committed under ``committed`` and the run directories under ``root``. A write that fails: one
    line, exit 1, each file whole or as it was; a signal: stop before the next file."""
    from jaxgan.study import figures as study_figures
    from jaxgan.study import runner as study_lib

    damaged = study_lib.damaged_results(study, root, committed)
    if damaged:
        sys.stderr.write(f"{PROG}: warning: {len(damaged)} result file(s) cannot be read and are "
                         f"left out ({damaged[0]}{' and others' if len(damaged) > 1 else ''}); "
                         "rerun without --report to evaluate those runs again.\n")  # fmt: skip
    built = study_lib.build_report(study, root, committed)
    stop = lambda: bool(_interrupted)  # noqa: E731
    paths: dict[str, str] = {}
    try:
        if not stop():
            print(built[1])
            paths = study_lib.write_report(study, root, built)
        try:
            paths |= {} if stop() else study_figures.write_figures(study, root, stop=stop,
                                                                   results_dir=committed)  # fmt: skip
        except ModuleNotFoundError as e:
            if e.name != "matplotlib":
                raise
            sys.stderr.write(f"{PROG}: warning: no figures: matplotlib is not installed (pip "
                             "install 'jaxgan[study]'); the table is written.\n")  # fmt: skip
    except OSError as e:
        sys.stderr.write(f"{PROG}: error: --root={root}: cannot write the report there "
                         f"({e.strerror}); each file there is whole, as it was or new.\n")  # fmt: skip
        return 1
    for name, p in paths.items():
        print(f"  {name:<11}{p}")
    if stop():
        print(f"stopped by {signal.Signals(_interrupted[0]).name}: the report under {root} is not "
              "complete (each file there is whole); rerun with --report to finish it.")  # fmt: skip
        return 128 + _interrupted[0]
    return 0


def _children_cpu_seconds() -> float | None:
    """CPU seconds (user + system) of the finished jobs so far; ``None`` where unknown."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _minutes(seconds: float | None) -> str:
    return "unknown" if seconds is None else f"{seconds / 60:.1f} min"


class _Budget:
    """``--budget_minutes``: which queued run may start now, and whether time is up."""

    def __init__(self, study, args, overrides: dict) -> None:
        self.study, self.args, self.overrides = study, args, overrides
        self.total = None if args.budget_minutes is None else 60.0 * args.budget_minutes
        self.start = time.perf_counter()
        self.known: list | None = None  # committed results, read again after each finished run

    def left(self) -> float | None:
        return None if self.total is None else self.total - (time.perf_counter() - self.start)

    def spent(self) -> bool:
        return self.total is not None and self.left() <= 0

    def estimate(self, cell, seed: int, workdir: str) -> float | None:
        from jaxgan.study import budget, records

        if self.known is None:
            self.known = records.load_all(os.path.dirname(os.path.abspath(_results(self.study, self.args))))  # fmt: skip
        steps = cell.config(seed, self.overrides).schedule.steps - records.steps_done(workdir)
        return budget.estimate_seconds(self.known, study=self.study.name, dataset=cell.dataset,
                                       preset=cell.preset, steps_left=steps)  # fmt: skip

    def pick(self, queue: list) -> tuple[int, float | None] | None:
        """(index in ``queue``, estimate in s) of the first run that fits; ``None``: none does."""
        from jaxgan.study import budget

        for i, (cell, seed, workdir, _) in enumerate(queue):
            if self.total is None:
                return i, None
            guess = self.estimate(cell, seed, workdir)
            if budget.fits(guess, self.left(), self.total):
                return i, guess
        return None

    def started(self, guess: float | None) -> str:
        if self.total is None:
            return ""
        return f" (estimate {_minutes(guess)}; {_minutes(self.left())} of the budget left)"


def _train(study, runs, args) -> int:
    """Train the runs not yet done, ``--jobs`` at a time, each a process; one line per run
    started and finished, and a closing line (done, pending, CPU minutes)."""
    from jaxgan.study import runner as study_lib

    overrides = _overrides(args)

    def finished(run) -> bool:
        cell, seed, *_ = run
        return study_lib.done(cell, seed, args.root, overrides=overrides,
                              results_dir=_results(study, args)) is not None  # fmt: skip

    todo = [r for r in runs if not finished(r)]
    print(f"{study.name}: {len(runs)} runs selected, {len(runs) - len(todo)} already done, "
          f"{len(todo)} to train under {args.root}", flush=True)  # fmt: skip
    base = [
        sys.executable,
        os.path.abspath(__file__),
        f"--study={study.name}",
        f"--root={args.root}",
        f"--results={_results(study, args)}",
        *args.passed,
    ]
    budget = _Budget(study, args, overrides)
    cpu_before = _children_cpu_seconds()
    running: dict[str, tuple[subprocess.Popen, float]] = {}
    queue = list(todo)
    done = failed = 0
    told: set[str] = set()
    out_of_time = False
    while queue or running:
        if budget.spent() and not out_of_time:
            out_of_time = True
            if running:
                print(f"budget of {args.budget_minutes:g} min spent: the {len(running)} running "
                      "run(s) checkpoint and stop; the same command resumes them", flush=True)  # fmt: skip
        for name, (proc, _) in running.items():  # a signal to study.py alone reaches its jobs
            stop = _interrupted[0] if _interrupted else signal.SIGINT if out_of_time else None
            if stop is not None and name not in told:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(stop)
                told.add(name)
        while queue and len(running) < args.jobs and not _interrupted and not out_of_time:
            picked = budget.pick(queue)
            if picked is None:
                break
            i, guess = picked
            *_, name = queue.pop(i)
            proc = subprocess.Popen([*base, f"--run={name}"], stdout=subprocess.DEVNULL)
            running[name] = (proc, time.perf_counter())
            print(f"start {name}{budget.started(guess)}", flush=True)
        if not running:
            break
        time.sleep(0.5)
        for name, (proc, _) in list(running.items()):
            if proc.poll() is None:
                continue
            del running[name]
            budget.known = None  # a new committed result may sharpen the estimates
            workdir = next(r[2] for r in todo if r[3] == name)
            result = study_lib.read_result(workdir)
            done += 1
            if result is not None:
                print(f"[{done}/{len(todo)}] {name}: {_describe(result)}", flush=True)
            elif proc.returncode >= 128 and out_of_time and not _interrupted:
                print(f"[{done}/{len(todo)}] {name}: stopped at the end of the budget "
                      "(checkpointed); the same command resumes it", flush=True)  # fmt: skip
            elif proc.returncode >= 128 and not _interrupted:
                print(f"[{done}/{len(todo)}] {name}: stopped by a signal (exit {proc.returncode}); "
                      "rerun to continue it", flush=True)  # fmt: skip
            elif proc.returncode != 0 and proc.returncode < 128:
                print(f"[{done}/{len(todo)}] {name}: failed (exit {proc.returncode}); "
                      f"see {workdir}", flush=True)  # fmt: skip
                failed += 1
    _closing_line(study, runs, todo, finished, budget, cpu_before)
    if _interrupted:
        print(f"stopped by {signal.Signals(_interrupted[0]).name}: rerun the same command to "
              "continue (finished runs are kept).")  # fmt: skip
        return 128 + _interrupted[0]
    if failed:
        print(f"{failed} run(s) failed (their errors are above); the report covers the rest.")
        return 1
    return 0


def _closing_line(study, runs, todo, finished, budget: _Budget, cpu_before: float | None) -> None:
    """What is done and pending of the selected runs, and the CPU time the jobs took."""
    from jaxgan.study import records

    pending = [r for r in todo if not finished(r)]
    started = sum(1 for r in pending if records.steps_done(r[2]) > 0)
    cpu_after = _children_cpu_seconds()
    cpu = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    wall = time.perf_counter() - budget.start
    print(f"{study.name}: {len(runs) - len(pending)} of {len(runs)} selected runs done "
          f"({len(todo) - len(pending)} now), {len(pending)} pending ({started} of them "
          f"checkpointed, to resume); {_minutes(cpu)} of CPU in the jobs, {_minutes(wall)} wall",
          flush=True)  # fmt: skip


if __name__ == "__main__":
    for _s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(_s, _on_signal)
    sys.exit(main())
