"""``experiments/run.py``: a preset (``--config``) plus flat flags as overrides, then train.

Every setting of :class:`jaxgan.training.config.Config` is a flag named after its field, with the
field's allowed values; a flag that is not given keeps the preset's value (``--help`` shows the
main preset's). Bad input ends with one line on stderr and exit status 2; an error about a value
the user did not type says which preset it came from. A failed save exits 1; Ctrl-C during
a signal stops the run (at start-up: nothing trains) with status 128 + N.
"""

from __future__ import annotations

import argparse
import errno
import re
import sys
import typing
from collections.abc import Callable, Sequence
from typing import Any

from jaxgan import configs
from jaxgan.errors import CheckpointError, ConfigError
from jaxgan.training import schedule as sched_lib
from jaxgan.training.config import FIELDS, Config, field_type, override, shown

PROG = "run.py"
_TITLES = {
    "data": "data", "model": "model", "loss": "objective", "optim": "optimizers",
    "schedule": "schedule (plain runs: steps and batch_size; progressive: the rest)",
    "output": "logging, samples, checkpoints, evaluation", "devices": "devices",
}  # fmt: skip


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag as one line and exits with status 2."""

    def error(self, message: str) -> typing.NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see --help)\n")
        sys.exit(2)


def _converter(name: str) -> Callable[[str], Any]:
    """The argparse ``type`` of a field: scalars, comma lists, RES:VALUE tables, ``none``."""
    typ, optional = field_type(name)
    origin, args = typing.get_origin(typ), typing.get_args(typ)
    hint = {dict: "RES:VALUE pairs such as 4:64,8:32", tuple: "comma-separated values"}.get(origin)

    def convert(text: str) -> Any:
        if text.strip().lower() == "none" and (optional or origin in (tuple, dict)):
            return {} if origin is dict else () if origin is tuple else None
        try:
            if name == "stage_schedule":
                return tuple(sched_lib.parse_stage_schedule(text))
            if origin is tuple:
                return tuple(args[0](t.strip()) for t in text.split(",") if t.strip())
            if origin is dict:
                return {
                    int(k): args[1](v) for k, v in (item.split(":") for item in text.split(","))
                }
            return typ(text)
        except ValueError as e:
            why = str(e).removeprefix(f"--stage_schedule={text!r}: ") if name == "stage_schedule" else f"write {hint or typ.__name__}"  # fmt: skip
            raise argparse.ArgumentTypeError(f"{text!r}: {why}") from None

    return convert


def build_parser() -> argparse.ArgumentParser:
    """The flags: ``--config``, run options, and one flag per config field."""
    main = configs.get("main")
    presets = "\n".join(f"  {n:<14} {doc}" for n, (_, doc) in configs.PRESETS.items())
    p = _Parser(
        prog=PROG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Train a GAN with jaxgan. With no flags: the 'main' preset, an offline progressive "
            "WGAN-GP on mnist5k, 4 -> 32, about 10 minutes on a 2-core CPU.\nEach flag overrides "
            "one field of the preset; defaults shown are the main preset's.\n\npresets:\n" + presets
        ),
        epilog="Running the same command again resumes the run from its latest checkpoint; "
        "a larger --steps or --kimg_total trains it longer.",
    )
    run = p.add_argument_group("run")
    run.add_argument("--config", default="main", help="a preset name or a config JSON file (default: main)")  # fmt: skip
    run.add_argument("--workdir", default=None, help="run directory (default: runs/<dataset>-<loss>-<model>)")  # fmt: skip
    run.add_argument("--print_config", action="store_true", help="print the resolved config as JSON and exit")  # fmt: skip
    run.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                     help="resume from the workdir's checkpoint; --no-resume refuses an existing run")  # fmt: skip
    run.add_argument("--allow_config_change", action="store_true",
                     help="resume with settings that change the optimisation (recorded in config_history.jsonl)")  # fmt: skip
    run.add_argument("--quiet", action="store_true", help="plain log lines instead of a progress bar")  # fmt: skip
    run.add_argument("--kimg_per_phase", type=float, default=argparse.SUPPRESS,
                     help="sets --kimg_stable and --kimg_fade together (and --kimg_total=0: "
                          "no extra training at the last resolution, unless given)")  # fmt: skip
    add_field_flags(p, defaults_from=main)
    return p


def add_field_flags(
    p: argparse.ArgumentParser, exclude: tuple[str, ...] = (), defaults_from: Config | None = None
) -> None:
    """One ``--<field>`` flag per config field (absent from the namespace unless given), grouped by
    section, with the field's choices; ``defaults_from``: a config whose values the help gives."""
    groups = {s: p.add_argument_group(t) for s, t in _TITLES.items()}
    flat = defaults_from.flat() if defaults_from is not None else {}
    for name, (section, f) in FIELDS.items():
        if name in exclude:
            continue
        choices = f.metadata["choices"]
        allowed = f" {{{','.join(choices)}}}" if choices else ""
        default = f" (main: {shown(flat[name])})" if flat else ""
        kw: dict[str, Any] = {"default": argparse.SUPPRESS, "help": f.metadata["help"] + allowed + default}  # fmt: skip
        if field_type(name)[0] is bool:
            kw["action"] = argparse.BooleanOptionalAction
        else:
            kw["type"] = _converter(name)
            if choices and not typing.get_origin(field_type(name)[0]):
                kw.update(choices=choices, metavar=name.upper())
        groups[section].add_argument(f"--{name}", **kw)


def parse(argv: list[str] | None = None) -> tuple[Config, argparse.Namespace]:
    """(resolved config, run options); ConfigError for values the config rejects, naming the
    preset when the value came from it. ``ns.typed``: the settings the user gave."""
    ns = build_parser().parse_args(argv)
    ns.typed = {k: v for k, v in vars(ns).items() if k in FIELDS}
    if hasattr(ns, "kimg_per_phase"):
        ns.typed.setdefault("kimg_stable", ns.kimg_per_phase)
        ns.typed.setdefault("kimg_fade", ns.kimg_per_phase)
        ns.typed.setdefault("kimg_total", 0.0)
    try:
        return override(configs.load(ns.config), **ns.typed), ns
    except ConfigError as e:
        raise ConfigError(_blame(str(e), ns.typed, ns.config)) from None


def _blame(message: str, typed: dict[str, Any], preset: str) -> str:
    """``message`` plus which of the settings it names came from the preset, not the user."""
    named = [n for n in dict.fromkeys(re.findall(r"--(\w+)", message)) if n in FIELDS and n not in typed]  # fmt: skip
    if not named:
        return message
    return (
        f"{message.rstrip('.')} ({', '.join('--' + n for n in named)} from the '{preset}' preset)."
    )


def main(argv: list[str] | None = None, caught: Sequence[int] = ()) -> int:
    """Parse, train; bad input -> one line on stderr and exit status 2; a signal -> 128 + N.
    ``caught``: signals the entry point's handler recorded before training started."""
    try:
        try:
            config, ns = parse(argv)
        except SystemExit as e:  # the parser has printed --help, or one error line (status 2)
            return 0 if e.code is None else e.code if isinstance(e.code, int) else 2
        if ns.print_config:
            print(config.dumps())
            return 0
        from jaxgan.training.loop import train

        try:
            summary = train(config, ns.workdir, resume=ns.resume, quiet=ns.quiet,
                            allow_changes=ns.allow_config_change, caught=caught)  # fmt: skip
        except ConfigError as e:  # found at start-up (the data, the run directory)
            raise ConfigError(_blame(str(e), ns.typed, ns.config)) from None
        return summary.exit_code
    except ConfigError as e:
        sys.stderr.write(f"{PROG}: error: {e}\n")
        return 2
    except CheckpointError as e:  # a save failed (disk full, ...): earlier checkpoints are intact
        sys.stderr.write(f"{PROG}: error: {e}\n")
        return 1
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
            raise
        # The disk filled up (or went read-only) writing logs or samples; checkpoints are written
        # atomically, so the newest complete one is intact and a rerun resumes from it.
        sys.stderr.write(f"{PROG}: error: writing {e.filename or 'the run directory'} failed: "
                         f"{e.strerror}; free space and rerun to resume.\n")  # fmt: skip
        return 1
