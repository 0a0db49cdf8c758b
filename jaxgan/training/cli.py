"""``experiments/run.py``: a preset (``--config``) plus flat flags as overrides, then train.

Every setting of :class:`jaxgan.training.config.Config` is a flag named after its field; a flag that is not
given keeps the preset's value (``--help`` shows the main preset's). Bad input ends with one line
on stderr and exit status 2; Ctrl-C during start-up exits 130 quietly.
"""

from __future__ import annotations

import argparse
import errno
import sys
import typing
from collections.abc import Callable
from typing import Any

from jaxgan import configs
from jaxgan.training.checkpoint import CheckpointError
from jaxgan.training.config import (
    FIELDS,
    Config,
    ConfigError,
    check_per_res,
    field_type,
    is_optional,
    override,
)

PROG = "run.py"
_DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)
_SECTION_TITLES = {
    "data": "data", "model": "model", "loss": "objective", "optim": "optimizers",
    "schedule": "schedule (plain runs: steps and batch_size; progressive: the rest)",
    "output": "logging, samples, checkpoints, evaluation", "devices": "devices",
}  # fmt: skip


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag as one line and exits with status 2."""

    def error(self, message: str) -> typing.NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see --help)\n")
        sys.exit(2)


def _res_map(kind: type) -> Any:
    def parse(text: str) -> dict[int, Any]:
        out: dict[int, Any] = {}
        if text.strip().lower() in ("", "none"):
            return out
        for item in text.split(","):
            res, sep, val = item.partition(":")
            try:
                out[int(res)] = kind(val)
            except ValueError:
                raise argparse.ArgumentTypeError(
                    f"{text!r}: write RES:VALUE pairs such as 4:64,8:32"
                ) from None
            if not sep:
                raise argparse.ArgumentTypeError(
                    f"{text!r}: write RES:VALUE pairs such as 4:64,8:32"
                )
        return out

    return parse


def _stage_schedule(text: str) -> tuple[int, ...]:
    from jaxgan.training import schedule as prog

    if text.strip().lower() == "none":
        return ()
    try:
        return tuple(prog.parse_stage_schedule(text))
    except ValueError as e:
        raise argparse.ArgumentTypeError(
            str(e).removeprefix(f"--stage_schedule={text!r}: ")
        ) from None


def _converter(name: str) -> Any:
    """The argparse ``type`` of a field."""
    if name == "stage_schedule":
        return _stage_schedule
    typ = field_type(name)
    optional = is_optional(typ)
    if optional:
        typ = next(t for t in typing.get_args(typ) if t is not type(None))
    origin, args = typing.get_origin(typ), typing.get_args(typ)
    if origin is dict:
        base = _res_map(args[1])
    elif origin is tuple:
        item = args[0]

        def base(text: str) -> tuple:
            try:
                return tuple(item(t.strip()) for t in text.split(",") if t.strip())
            except ValueError:
                raise argparse.ArgumentTypeError(
                    f"{text!r}: write comma-separated {item.__name__} values"
                ) from None
    else:
        base = typ
    if not optional:
        return base
    return lambda text: None if text.strip().lower() == "none" else base(text)


def shown(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value)) or "none"
    if isinstance(value, dict):
        return ",".join(f"{k}:{v}" for k, v in value.items()) or "none"
    return str(value)


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
        epilog="Running the same command again resumes the run from its latest checkpoint.",
    )
    run = p.add_argument_group("run")
    run.add_argument(
        "--config", default="main", help="a preset name or a config JSON file (default: main)"
    )
    run.add_argument(
        "--workdir", default=None, help="run directory (default: runs/<dataset>-<loss>-<model>)"
    )
    run.add_argument(
        "--print_config", action="store_true", help="print the resolved config as JSON and exit"
    )
    run.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                     help="resume from the workdir's checkpoint; --no-resume refuses an existing run")  # fmt: skip
    run.add_argument("--allow_config_change", action="store_true",
                     help="resume with changed non-structural settings (recorded in config_history.jsonl)")  # fmt: skip
    run.add_argument(
        "--quiet", action="store_true", help="plain log lines instead of a progress bar"
    )
    run.add_argument("--kimg_per_phase", type=float, default=argparse.SUPPRESS,
                     help="sets --kimg_stable and --kimg_fade together (and --kimg_total=0: "
                          "no extra training at the last resolution, unless given)")  # fmt: skip
    add_field_flags(p, defaults_from=main)
    return p


def add_field_flags(
    p: argparse.ArgumentParser, exclude: tuple[str, ...] = (), defaults_from: Config | None = None
) -> None:
    """One ``--<field>`` flag per config field (absent from the namespace unless given), grouped
    by section; ``defaults_from``: a config whose values the help text gives as defaults."""
    groups = {s: p.add_argument_group(t) for s, t in _SECTION_TITLES.items()}
    flat = defaults_from.flat() if defaults_from is not None else {}
    for name, (section, f) in FIELDS.items():
        if name in exclude:
            continue
        kw: dict[str, Any] = {"default": argparse.SUPPRESS}
        help_text = f.metadata["help"] + (f" (main: {shown(flat[name])})" if flat else "")
        if field_type(name) is bool:
            kw["action"] = argparse.BooleanOptionalAction
        else:
            kw["type"] = _converter(name)
        groups[section].add_argument(f"--{name}", help=help_text, **kw)


def parse(argv: list[str] | None = None) -> tuple[Config, argparse.Namespace]:
    """(resolved config, run options); ConfigError for values the config rejects."""
    ns = build_parser().parse_args(argv)
    flags = {k: v for k, v in vars(ns).items() if k in FIELDS}
    if hasattr(ns, "kimg_per_phase"):
        flags.setdefault("kimg_stable", ns.kimg_per_phase)
        flags.setdefault("kimg_fade", ns.kimg_per_phase)
        flags.setdefault("kimg_total", 0.0)
    config = override(configs.load(ns.config), **flags)
    check_per_res(config, [n for n in ("batch_per_res", "lr_per_res") if n in flags])
    return config, ns


def main(argv: list[str] | None = None, interrupted: Callable[[], bool] = lambda: False) -> int:
    """Parse, train; bad input -> one line on stderr and exit status 2. ``interrupted`` tells
    whether Ctrl-C came during start-up (then nothing trains, exit 130)."""
    try:
        try:
            config, ns = parse(argv)
        except SystemExit as e:  # the parser has printed --help, or one error line (status 2)
            return 0 if e.code is None else e.code if isinstance(e.code, int) else 2
        if ns.print_config:
            print(config.dumps())
            return 0
        from jaxgan.training.loop import train

        summary = train(config, ns.workdir, resume=ns.resume, allow_changes=ns.allow_config_change,
                        quiet=ns.quiet, interrupted=interrupted)  # fmt: skip
        return summary.exit_code
    except ConfigError as e:
        sys.stderr.write(f"{PROG}: error: {e}\n")
        return 2
    except CheckpointError as e:  # a save failed (disk full, ...): earlier checkpoints are intact
        sys.stderr.write(f"{PROG}: error: {e}\n")
        return 1
    except OSError as e:
        if e.errno not in _DISK_ERRORS:
            raise
        # The disk filled up (or went read-only) while writing logs or samples; checkpoints are
        # written atomically, so the newest complete one is intact and a rerun resumes from it.
        sys.stderr.write(f"{PROG}: error: writing {e.filename or 'the run directory'} failed: "
                         f"{e.strerror}; free space and rerun to resume.\n")  # fmt: skip
        return 1
    except KeyboardInterrupt:  # a new run directory was removed on the way out
        sys.stderr.write(f"{PROG}: interrupted\n")
        return 130
