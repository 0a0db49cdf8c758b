"""The run configuration: one frozen, nested, typed object with a JSON round trip.

A :class:`Config` has seven sections (data, model, loss, optim, schedule, output, devices). Every
leaf has a name unique across sections, which is its flat command-line flag (``--batch_size`` sets
``schedule.batch_size``). Each field declares its help, its allowed values (``choices``) or range
(``check``), and what changing it on resume means (``resume``): ``"structural"`` (another run),
``"free"`` (training longer, other intervals: resumes as is) or, by default, a change of the
optimisation (needs ``--allow_config_change``). The CLI's flags and :func:`validate` are both made
from these declarations.

:func:`override` composes a preset with flat overrides: a new ``loss`` brings its paper's settings
(n_critic, penalties, clipping, optimizer, learning rates, betas), a new ``stage_schedule`` that
grows past the preset's brings the paper's phase lengths and batches, a plain ``model`` drops the
preset's schedule, and a ``kimg_total`` the new schedule makes meaningless is dropped; anything
typed wins.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from collections.abc import Mapping
from typing import Any

from jaxgan import losses, optim
from jaxgan.data import SPEC_FORMS
from jaxgan.data.toys import TOY_NAMES
from jaxgan.errors import ConfigError
from jaxgan.metrics import IN_TRAINING
from jaxgan.models import CRITIC_NORMS, CRITIC_NORMS_BY_MODEL
from jaxgan.training import schedule as sched_lib

__all__ = ["Config", "ConfigError", "FIELDS", "override", "replace", "validate"]


def _f(default: Any, help: str, *, choices: tuple = (), check: str = "", resume: str = "") -> Any:
    """A field with its flag's help text, allowed values or range, and resume class."""
    meta = {"help": help, "choices": choices, "check": check, "resume": resume}
    if isinstance(default, dict):
        return dataclasses.field(default_factory=dict, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


S, FREE = "structural", "free"


@dataclasses.dataclass(frozen=True)
class Data:
    dataset: str = _f(
        "mnist5k",
        f"{', '.join(f for f in SPEC_FORMS if f not in TOY_NAMES)}, or a 2-D toy: "
        + ", ".join(TOY_NAMES),
        resume=S,
    )
    data_dir: str | None = _f(
        None, "tfds data dir (none: $JAXGAN_DATA_DIR or ~/tensorflow_datasets)", resume=FREE
    )
    download: bool = _f(False, "prepare a tfds dataset (needs TensorFlow and internet)")
    mirror: bool = _f(False, "random horizontal flips")


@dataclasses.dataclass(frozen=True)
class Model:
    model: str = _f(
        "progressive", "network family", choices=("mlp", "dcgan", "progressive"), resume=S
    )
    latent_dim: int = _f(512, "noise dimension", check="int>0", resume=S)
    hidden: tuple[int, ...] = _f((512, 512, 512), "MLP hidden widths", check="int>0", resume=S)
    width: int = _f(64, "DCGAN base width", check="int>0", resume=S)
    critic_norm: str = _f("none", "critic normalisation", choices=CRITIC_NORMS, resume=S)
    fmap_base: int = _f(8192, "progressive widths: min(fmap_base / 2^stage, fmap_max)",
                        check="int>0", resume=S)  # fmt: skip
    fmap_max: int = _f(512, "progressive widest layer", check="int>0", resume=S)
    mbstd_group: int = _f(4, "minibatch-stddev group size", check="int>0")
    dtype: str = _f("float32", "compute dtype (bfloat16 keeps float32 parameters and optimizer)",
                    choices=("float32", "bfloat16"), resume=S)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Loss:
    loss: str = _f("wgan-gp", "the objective", choices=tuple(losses.OBJECTIVES), resume=S)
    n_critic: int = _f(5, "critic updates per generator update", check="int>0")
    gp_weight: float = _f(10.0, "gradient-penalty weight lambda (0: none)", check=">=0")
    gp_target: float = _f(
        1.0, "gradient-penalty target gamma (the term is scaled by lambda/gamma^2)", check=">0"
    )
    drift: float = _f(0.0, "drift penalty weight on E[D(real)^2] (PGGAN: 0.001)", check=">=0")
    clip: float | None = _f(None, "weight-clipping bound c (wgan only)", check=">0", resume=S)


@dataclasses.dataclass(frozen=True)
class Optim:
    optimizer: str = _f("adam", "the optimizer", choices=optim.OPTIMIZERS, resume=S)
    lr_g: float = _f(1e-4, "generator learning rate", check=">0")
    lr_d: float = _f(1e-4, "critic learning rate", check=">0")
    betas: tuple[float, float] = _f((0.0, 0.9), "Adam betas b1,b2", check="[0,1)")
    ema: float = _f(0.0, "generator EMA decay in [0, 1) (0: off)", check="[0,1)", resume=S)
    lr_per_res: dict[int, float] = _f(
        {}, "per-resolution learning rate of both nets, e.g. 128:1.5e-3", check=">0"
    )
    reset_adam: bool = _f(True, "reset optimizer moments when a fade and a stabilisation start")
    lr_rampdown_kimg: float = _f(
        0.0,
        "both learning rates fall to 0 along a half cosine over the run's last thousands of "
        "images (all of the last phase if that is shorter; 0: off)",
        check=">=0",
        resume=S,
    )


@dataclasses.dataclass(frozen=True)
class Schedule:
    steps: int = _f(3000, "generator steps of a plain (non-progressive) run", check="int>0",
                    resume=FREE)  # fmt: skip
    batch_size: int = _f(64, "global batch of a plain run", check="int>0")
    stage_schedule: tuple[int, ...] = _f(
        (),
        "progressive resolutions, e.g. 4,8,16 or 4,8,...,1024 (none: a plain run); past the "
        "preset's last resolution it brings PGGAN's phase lengths and batches",
        resume=S,
    )
    kimg_stable: float = _f(800.0, "thousands of images per stabilisation phase", check=">0")
    kimg_fade: float = _f(800.0, "thousands of images per fade-in phase", check=">=0")
    kimg_total: float = _f(
        0.0,
        "thousands of images in all: the last resolution trains on until then "
        "(PGGAN's total_kimg; 0: one kimg_stable phase)",
        check=">=0",
        resume=FREE,
    )
    batch_per_res: dict[int, int] = _f(
        {},
        "global batch per resolution, e.g. 4:64,8:64 (others: the paper's 16/14/6/3 per device count)",
        check="int>0",
    )


@dataclasses.dataclass(frozen=True)
class Output:
    seed: int = _f(0, "seed of the initial weights, the data order and every random draw")
    log_every: int = _f(100, "steps between metric logs", check="int>0", resume=FREE)
    sample_every: int = _f(500, "steps between sample grids (0: only at the end)",
                           check="int>=0", resume=FREE)  # fmt: skip
    ckpt_every: int = _f(1000, "steps between checkpoints (and one at the end)", check="int>0",
                         resume=FREE)  # fmt: skip
    keep_checkpoints: int = _f(3, "how many checkpoints to keep", check="int>0", resume=FREE)
    max_skips: int = _f(20, "stop after this many consecutive steps with non-finite updates",
                        check="int>0", resume=FREE)  # fmt: skip
    eval_every: int = _f(0, "steps between evaluations (0: off)", check="int>=0", resume=FREE)
    eval_metrics: tuple[str, ...] = _f((), "evaluation metrics (none: those of them that apply to the data)",
                                       choices=IN_TRAINING, resume=FREE)  # fmt: skip
    eval_images: int = _f(1024, "images generated per evaluation", check="int>0", resume=FREE)


@dataclasses.dataclass(frozen=True)
class Devices:
    num_devices: int = _f(0, "use the first N devices of this host (0: all)", check="int>=0")
    coordinator_address: str | None = _f(None, "multi-host: host:port of process 0", resume=FREE)
    num_processes: int | None = _f(None, "multi-host: number of processes", resume=FREE)
    process_id: int | None = _f(None, "multi-host: this process's index", resume=FREE)


@dataclasses.dataclass(frozen=True)
class Config:
    """Every setting of a run. Saved as ``config.json`` in the run directory."""

    data: Data = dataclasses.field(default_factory=Data)
    model: Model = dataclasses.field(default_factory=Model)
    loss: Loss = dataclasses.field(default_factory=Loss)
    optim: Optim = dataclasses.field(default_factory=Optim)
    schedule: Schedule = dataclasses.field(default_factory=Schedule)
    output: Output = dataclasses.field(default_factory=Output)
    devices: Devices = dataclasses.field(default_factory=Devices)

    @property
    def is_toy(self) -> bool:
        return self.data.dataset in TOY_NAMES

    @property
    def progressive(self) -> bool:
        return self.model.model == "progressive"

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe nested dict (dict keys as strings)."""
        out: dict[str, Any] = {}
        for sec in dataclasses.fields(self):
            d = dataclasses.asdict(getattr(self, sec.name))
            out[sec.name] = {
                k: ({str(r): x for r, x in v.items()} if isinstance(v, dict) else v)
                for k, v in d.items()
            }
        return out

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Config:
        """Rebuild from :meth:`to_json`'s dict; unknown keys are an error."""
        if not isinstance(d, Mapping):
            raise ConfigError(f"a config is a JSON object of sections {list(SECTIONS)}, not {type(d).__name__}.")  # fmt: skip
        if extra := set(d) - set(SECTIONS):
            raise ConfigError(f"config has unknown sections {sorted(extra)}.")
        sections = {}
        for name, typ in SECTIONS.items():
            if not isinstance(values := d.get(name, {}), Mapping):
                raise ConfigError(f"config section {name!r} is not a JSON object.")
            unknown = set(values) - {f.name for f in dataclasses.fields(typ)}
            if unknown:
                raise ConfigError(f"config section {name!r} has unknown keys {sorted(unknown)}.")
            sections[name] = typ(**{k: _coerce(k, v) for k, v in values.items()})
        return cls(**sections)

    @classmethod
    def read(cls, path: str) -> Config:
        """The (validated) config in JSON file ``path``; ConfigError (one line) naming the file."""
        try:
            with open(path) as f:
                return validate(cls.from_json(json.load(f)))
        except OSError as e:
            raise ConfigError(f"{path} cannot be read: {e.strerror or e}.") from None
        except ValueError as e:  # not JSON; ConfigError (a ValueError) says what is wrong in it
            why = e if isinstance(e, ConfigError) else f"not valid JSON ({e})"
            raise ConfigError(f"{path}: {str(why).rstrip('.')}.") from None

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2)

    def flat(self) -> dict[str, Any]:
        """``{flag name: value}`` over every section."""
        return {name: getattr(getattr(self, sec), name) for name, (sec, _) in FIELDS.items()}


SECTIONS: dict[str, type] = {f.name: f.default_factory for f in dataclasses.fields(Config)}  # type: ignore[misc]
#: flag name -> (section name, dataclass field)
FIELDS: dict[str, tuple[str, dataclasses.Field]] = {
    f.name: (sec, f) for sec, typ in SECTIONS.items() for f in dataclasses.fields(typ)
}
_TYPES = {n: typing.get_type_hints(SECTIONS[s])[n] for n, (s, _) in FIELDS.items()}


def field_type(name: str) -> tuple[Any, bool]:
    """(the Python type of the flat field ``name`` without ``None``, whether it admits None)."""
    typ = _TYPES[name]
    if typing.get_origin(typ) in (typing.Union, types.UnionType):
        return next(t for t in typing.get_args(typ) if t is not type(None)), True
    return typ, False


def _coerce(name: str, v: Any) -> Any:
    """A JSON value into the field's Python type (tuples, int-keyed dicts)."""
    typ, _ = field_type(name)
    if v is None:
        return None
    kind = typing.get_origin(typ)
    if kind in (tuple, dict) and not isinstance(v, list if kind is tuple else dict):
        raise ConfigError(f"config key {name!r}: {v!r} is not a {'list' if kind is tuple else 'mapping'}.")  # fmt: skip
    if kind is tuple:
        return tuple(typing.get_args(typ)[0](x) for x in v)
    if kind is dict:
        kt, vt = typing.get_args(typ)
        return {kt(k): vt(x) for k, x in v.items()}
    return v


def replace(config: Config, **flat: Any) -> Config:
    """``config`` with flat fields replaced (no validation, no composition)."""
    by_section: dict[str, dict[str, Any]] = {}
    for name, value in flat.items():
        if name not in FIELDS:
            raise ConfigError(f"--{name} is not a setting; see --help for the list.")
        by_section.setdefault(FIELDS[name][0], {})[name] = value
    return dataclasses.replace(
        config, **{s: dataclasses.replace(getattr(config, s), **v) for s, v in by_section.items()}
    )


def objective_defaults(loss: str) -> dict[str, Any]:
    """The paper settings that belong to an objective (flat names)."""
    obj = losses.get(loss)
    o = obj.optimizer
    return {
        "n_critic": obj.n_critic, "gp_weight": obj.gp_weight, "gp_target": obj.gp_target,
        "drift": obj.drift_weight, "clip": obj.clip, "optimizer": o.name,
        "lr_g": o.learning_rate, "lr_d": o.learning_rate, "betas": (o.b1, o.b2),
    }  # fmt: skip


def _phases(c: Config) -> sched_lib.PhaseSchedule:
    s = c.schedule
    return sched_lib.PhaseSchedule(s.stage_schedule, s.kimg_stable, s.kimg_fade, s.kimg_total)


def override(config: Config, **flat: Any) -> Config:
    """``config`` with flat overrides applied, composed (see the module docstring), validated."""
    if "loss" in flat and flat["loss"] != config.loss.loss:
        try:
            config = replace(config, loss=flat["loss"], **objective_defaults(flat["loss"]))
        except ValueError as e:
            raise ConfigError(f"--loss: {e}") from None
    if flat.get("model", "progressive") != "progressive":
        config = replace(config, stage_schedule=())
    old = config.schedule.stage_schedule
    new = tuple(flat.get("stage_schedule", old))
    if new and (not old or new[-1] > old[-1]):  # growing past the preset: the paper's phases
        config = replace(config, **sched_lib.PAPER_PHASES)
    out = replace(config, **flat)
    if "kimg_total" not in flat and out.progressive and out.schedule.kimg_total > 0:
        try:
            _phases(out)
        except ValueError:  # the preset's total ends before the new schedule's last phase
            out = replace(out, kimg_total=0.0)
    return validate(out, given=flat)


_CHECKS: dict[str, tuple[Any, str]] = {
    "int>0": (lambda v: _int(v) and v > 0, "a positive integer"),
    "int>=0": (lambda v: _int(v) and v >= 0, "an integer >= 0"),
    ">0": (lambda v: _num(v) and v > 0, "a positive number"),
    ">=0": (lambda v: _num(v) and v >= 0, "a number >= 0"),
    "[0,1)": (lambda v: _num(v) and 0 <= v < 1, "a number in [0, 1)"),
}


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def shown(value: Any) -> str:
    """A value as it is written on the command line."""
    if isinstance(value, tuple):
        return ",".join(map(str, value)) or "none"
    if isinstance(value, dict):
        return ",".join(f"{k}:{v}" for k, v in value.items()) or "none"
    return str(value)


def _check_field(name: str, v: Any) -> None:
    meta, (typ, optional) = FIELDS[name][1].metadata, field_type(name)
    if v is None and optional:
        return
    kind = typing.get_origin(typ) or typ
    if kind in (tuple, dict, str, bool) and not isinstance(v, kind):
        raise ConfigError(f"--{name}={v!r}: must be {'comma-separated values' if kind is tuple else kind.__name__}.")  # fmt: skip
    items = list(v.values()) if isinstance(v, dict) else list(v) if isinstance(v, tuple) else [v]
    if meta["choices"]:
        bad = [x for x in items if x not in meta["choices"]]
        if bad:
            raise ConfigError(
                f"--{name}={shown(v)}: allowed: {', '.join(map(str, meta['choices']))}."
            )
    if meta["check"]:
        ok, what = _CHECKS[meta["check"]]
        if not all(ok(x) for x in items) or (isinstance(v, tuple) and not v):
            each = " each" if isinstance(v, (tuple, dict)) else ""
            raise ConfigError(f"--{name}={shown(v)}: must be{each} {what}.")


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def validate(c: Config, given: Mapping[str, Any] = types.MappingProxyType({})) -> Config:
    """Check every value and the combinations; returns ``c`` or raises ConfigError (one line).

    ``given``: the flags the user typed; their per-resolution tables must name only scheduled
    resolutions (a preset's table may cover more than a shortened schedule uses)."""
    v = c.flat()
    for name in FIELDS:
        _check_field(name, v[name])
    _check(len(v["betas"]) == 2, f"--betas={shown(v['betas'])}: write two numbers like 0.5,0.9.")
    _check(v["clip"] is None or losses.get(v["loss"]).clip is not None,
           f"--clip applies only to a loss that clips weights (wgan); --loss={v['loss']} does not.")  # fmt: skip
    _check(not (v["critic_norm"] == "batch" and v["gp_weight"] > 0),
           "--critic_norm=batch cannot be used with a gradient penalty (--gp_weight > 0): BatchNorm "
           "couples the samples the penalty treats one by one; use --critic_norm=layer or none.")  # fmt: skip
    norms = CRITIC_NORMS_BY_MODEL[v["model"]]
    _check(v["critic_norm"] in norms, f"--critic_norm={v['critic_norm']} is not available for "
           f"--model={v['model']} (its critic takes: {', '.join(norms)}).")  # fmt: skip
    _check(not (c.is_toy and v["model"] != "mlp"),
           f"--model={v['model']} needs an image dataset; --dataset={v['dataset']} is 2-D points "
           "(use --model=mlp, or a toy preset such as --config=toy-wgan-gp).")  # fmt: skip
    if v["eval_metrics"]:
        from jaxgan.evaluation import applicable_metrics

        ok = applicable_metrics(v["dataset"])
        bad = [m for m in v["eval_metrics"] if m not in ok]
        _check(not bad, f"--eval_metrics={shown(v['eval_metrics'])}: {', '.join(bad)} do not apply to --dataset={v['dataset']} (those that apply: {', '.join(ok) or 'none'}).")  # fmt: skip
    _check(not (c.progressive and v["lr_rampdown_kimg"] > 0 and not v["reset_adam"]),
           f"--lr_rampdown_kimg={shown(v['lr_rampdown_kimg'])} counts the last phase's updates from "
           "its start, so it needs --reset_adam (got --no-reset_adam).")  # fmt: skip
    sched = v["stage_schedule"]
    if not c.progressive:
        _check(not sched, f"--stage_schedule needs --model=progressive (got --model={v['model']}).")
        return c
    _check(len(sched) > 0, "--model=progressive needs a --stage_schedule such as 4,8,16,32 "
                           "(presets with one: main, pggan).")  # fmt: skip
    try:
        sched_lib.parse_stage_schedule(",".join(map(str, sched)))
        _phases(c)
    except ValueError as e:
        raise ConfigError(str(e) if str(e).startswith("--") else f"--{e}.") from None
    for name in ("batch_per_res", "lr_per_res"):
        extra = sorted(set(v[name]) - set(sched)) if name in given else []
        _check(
            not extra, f"--{name}: resolutions {extra} are not in --stage_schedule {list(sched)}."
        )
    return c
