"""The run configuration: one frozen, nested, typed object with a JSON round trip.

A :class:`Config` has seven sections (data, model, loss, optim, schedule, output, devices). Every
leaf has a name unique across sections, which is its flat command-line flag (``--batch_size`` sets
``schedule.batch_size``). Named presets live in :mod:`jaxgan.configs`; :func:`override` applies
flat overrides to a preset and :func:`validate` checks the result, raising :class:`ConfigError`
with one line naming the flag.

Changing ``loss`` through :func:`override` resets the objective's own settings (n_critic, penalty
weights, clipping, optimizer, learning rates, betas) to that loss's paper defaults, unless they are
overridden too: a preset's WGAN-GP learning rate is never silently kept for a BCE GAN.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any

from jaxgan import losses
from jaxgan.data.toys import TOY_NAMES

MODELS = ("mlp", "dcgan", "progressive")
CRITIC_NORMS = ("none", "batch", "layer")
DTYPES = ("float32", "bfloat16")
OPTIMIZERS = ("adam", "rmsprop")
EVAL_METRICS = ("swd", "ms_ssim", "modes")


class ConfigError(ValueError):
    """A setting has a value that is not allowed; the message names the flag."""


def _f(default: Any, help: str, **kw: Any) -> Any:
    """A dataclass field with its flag's help text."""
    if isinstance(default, (dict, list)):
        return dataclasses.field(
            default_factory=lambda: type(default)(default), metadata={"help": help, **kw}
        )
    return dataclasses.field(default=default, metadata={"help": help, **kw})


@dataclasses.dataclass(frozen=True)
class Data:
    dataset: str = _f(
        "mnist5k",
        "tfds:NAME[/CONFIG][:SPLIT], folder:PATH, digits, mnist5k, stacked_mnist, or a 2-D toy: "
        + ", ".join(TOY_NAMES),
    )
    data_dir: str | None = _f(
        None, "tfds data dir (none: $JAXGAN_DATA_DIR or ~/tensorflow_datasets)"
    )
    download: bool = _f(False, "prepare a tfds dataset (needs TensorFlow and internet)")
    mirror: bool = _f(False, "random horizontal flips")


@dataclasses.dataclass(frozen=True)
class Model:
    model: str = _f("progressive", "network family: " + ", ".join(MODELS))
    latent_dim: int = _f(512, "noise dimension")
    hidden: tuple[int, ...] = _f((512, 512, 512), "MLP hidden widths")
    width: int = _f(64, "DCGAN base width")
    critic_norm: str = _f("none", "critic normalisation: none, batch (no penalty), layer")
    fmap_base: int = _f(8192, "progressive widths: min(fmap_base / 2^stage, fmap_max)")
    fmap_max: int = _f(512, "progressive widest layer")
    mbstd_group: int = _f(4, "minibatch-stddev group size")
    dtype: str = _f("float32", "compute dtype (bfloat16 keeps float32 parameters and optimizer)")


@dataclasses.dataclass(frozen=True)
class Loss:
    loss: str = _f("wgan-gp", "the objective: " + ", ".join(sorted(losses.OBJECTIVES)))
    n_critic: int = _f(5, "critic updates per generator update")
    gp_weight: float = _f(10.0, "gradient-penalty weight lambda (0: none)")
    gp_target: float = _f(
        1.0, "gradient-penalty target gamma (the term is scaled by lambda/gamma^2)"
    )
    drift: float = _f(0.0, "drift penalty weight on E[D(real)^2] (PGGAN: 0.001)")
    clip: float | None = _f(None, "weight-clipping bound c (wgan only)")


@dataclasses.dataclass(frozen=True)
class Optim:
    optimizer: str = _f("adam", "adam or rmsprop")
    lr_g: float = _f(1e-4, "generator learning rate")
    lr_d: float = _f(1e-4, "critic learning rate")
    betas: tuple[float, float] = _f((0.0, 0.9), "Adam betas b1,b2")
    ema: float = _f(0.0, "generator EMA decay in [0, 1) (0: off)")
    lr_per_res: dict[int, float] = _f(
        {}, "per-resolution learning rate of both nets, e.g. 128:1.5e-3"
    )
    reset_adam: bool = _f(True, "reset optimizer moments when a fade and a stabilisation start")


@dataclasses.dataclass(frozen=True)
class Schedule:
    steps: int = _f(3000, "generator steps of a plain (non-progressive) run")
    batch_size: int = _f(64, "global batch of a plain run")
    stage_schedule: tuple[int, ...] = _f(
        (), "progressive resolutions, e.g. 4,8,16 or 4,8,...,1024 (none: a plain run)"
    )
    kimg_stable: float = _f(800.0, "thousands of images per stabilisation phase")
    kimg_fade: float = _f(800.0, "thousands of images per fade-in phase")
    kimg_total: float = _f(
        0.0,
        "thousands of images in all: the last resolution trains on until then "
        "(PGGAN's total_kimg; 0: one kimg_stable phase)",
    )
    batch_per_res: dict[int, int] = _f(
        {},
        "global batch per resolution, e.g. 4:64,8:64 (others: the paper's 16/14/6/3 per device count)",
    )


@dataclasses.dataclass(frozen=True)
class Output:
    seed: int = _f(0, "seed of the initial weights, the data order and every random draw")
    log_every: int = _f(100, "steps between metric logs")
    sample_every: int = _f(500, "steps between sample grids (0: only at the end)")
    ckpt_every: int = _f(1000, "steps between checkpoints (and one at the end)")
    keep_checkpoints: int = _f(3, "how many checkpoints to keep")
    max_skips: int = _f(20, "stop after this many consecutive steps with non-finite updates")
    eval_every: int = _f(0, "steps between evaluations (0: off)")
    eval_metrics: tuple[str, ...] = _f(("swd",), "evaluation metrics: " + ", ".join(EVAL_METRICS))
    eval_images: int = _f(1024, "images generated per evaluation")


@dataclasses.dataclass(frozen=True)
class Devices:
    num_devices: int = _f(0, "use the first N devices of this host (0: all)")
    coordinator_address: str | None = _f(None, "multi-host: host:port of process 0")
    num_processes: int | None = _f(None, "multi-host: number of processes")
    process_id: int | None = _f(None, "multi-host: this process's index")


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
        sections = {}
        for sec in dataclasses.fields(cls):
            typ = _SECTION_TYPES[sec.name]
            values = dict(d.get(sec.name, {}))
            known = {f.name: f for f in dataclasses.fields(typ)}
            unknown = set(values) - set(known)
            if unknown:
                raise ConfigError(
                    f"config section {sec.name!r} has unknown keys {sorted(unknown)}."
                )
            sections[sec.name] = typ(**{k: _coerce(known[k], v) for k, v in values.items()})
        extra = set(d) - set(sections)
        if extra:
            raise ConfigError(f"config has unknown sections {sorted(extra)}.")
        return cls(**sections)

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2)

    def flat(self) -> dict[str, Any]:
        """``{flag name: value}`` over every section."""
        return {f.name: getattr(getattr(self, sec), f.name) for sec, f in FIELDS.values()}


_SECTION_TYPES = {f.name: f.default_factory for f in dataclasses.fields(Config)}  # type: ignore[misc]

#: flag name -> (section name, dataclass field)
FIELDS: dict[str, tuple[str, dataclasses.Field]] = {
    f.name: (sec, f) for sec, typ in _SECTION_TYPES.items() for f in dataclasses.fields(typ)
}

# Settings that fix the shape of the train state: a checkpoint made with other values cannot be
# resumed. Everything else may change on resume when the user allows it (recorded in history).
STRUCTURAL = (
    "loss", "dataset", "model", "latent_dim", "hidden", "width", "critic_norm", "optimizer",
    "ema", "fmap_base", "fmap_max", "stage_schedule", "clip", "dtype",
)  # fmt: skip


def _field_type(f: dataclasses.Field) -> Any:
    hints = typing.get_type_hints(_owner(f))
    return hints[f.name]


def _owner(f: dataclasses.Field) -> type:
    for typ in _SECTION_TYPES.values():
        if any(g is f for g in dataclasses.fields(typ)):
            return typ
    raise KeyError(f.name)


def _coerce(f: dataclasses.Field, v: Any) -> Any:
    """A JSON value into the field's Python type (tuples, int-keyed dicts)."""
    typ = _field_type(f)
    origin = typing.get_origin(typ)
    if v is None:
        return None
    if origin is tuple:
        return tuple(typing.get_args(typ)[0](x) for x in v)
    if origin is dict:
        kt, vt = typing.get_args(typ)
        return {kt(k): vt(x) for k, x in v.items()}
    return v


def objective_defaults(loss: str) -> dict[str, Any]:
    """The paper settings that belong to an objective (flat names)."""
    obj = losses.get(loss)
    o = obj.optimizer
    return {
        "n_critic": obj.n_critic,
        "gp_weight": obj.gp_weight,
        "gp_target": obj.gp_target,
        "drift": obj.drift_weight,
        "clip": obj.clip,
        "optimizer": o.name,
        "lr_g": o.learning_rate,
        "lr_d": o.learning_rate,
        "betas": (o.b1, o.b2),
    }


def replace(config: Config, **flat: Any) -> Config:
    """``config`` with flat fields replaced (no validation, no loss defaults)."""
    by_section: dict[str, dict[str, Any]] = {}
    for name, value in flat.items():
        if name not in FIELDS:
            raise ConfigError(f"--{name} is not a setting; see --help for the list.")
        by_section.setdefault(FIELDS[name][0], {})[name] = value
    return dataclasses.replace(
        config,
        **{s: dataclasses.replace(getattr(config, s), **v) for s, v in by_section.items()},
    )


def override(config: Config, **flat: Any) -> Config:
    """``config`` with flat overrides applied, then validated.

    A new ``loss`` first resets the objective's settings to that loss's paper defaults (see the
    module docstring); the other overrides are applied after.
    """
    if "loss" in flat and flat["loss"] != config.loss.loss:
        try:
            defaults = objective_defaults(flat["loss"])
        except ValueError as e:
            raise ConfigError(f"--loss: {e}") from None
        config = replace(config, loss=flat["loss"], **defaults)
    return validate(replace(config, **flat))


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def check_per_res(c: Config, names: Iterable[str]) -> None:
    """The per-resolution tables ``names`` (as given by the user) name only scheduled resolutions.

    (A preset's table may cover more resolutions than a shortened schedule uses.)"""
    sched = c.schedule.stage_schedule
    for name in names:
        extra = sorted(set(c.flat()[name]) - set(sched))
        _check(
            not extra, f"--{name}: resolutions {extra} are not in --stage_schedule {list(sched)}."
        )


def validate(c: Config) -> Config:
    """Check every value and the combinations; returns ``c`` or raises ConfigError (one line)."""
    from jaxgan.training import schedule as prog

    v = c.flat()
    _check(
        v["loss"] in losses.OBJECTIVES,
        f"--loss={v['loss']!r}: allowed: {', '.join(sorted(losses.OBJECTIVES))}.",
    )
    for name, allowed in (("model", MODELS), ("critic_norm", CRITIC_NORMS), ("dtype", DTYPES),
                          ("optimizer", OPTIMIZERS)):  # fmt: skip
        _check(v[name] in allowed, f"--{name}={v[name]!r}: allowed: {', '.join(allowed)}.")
    for name in ("steps", "batch_size", "n_critic", "latent_dim", "width", "fmap_base", "fmap_max",
                 "mbstd_group", "log_every", "ckpt_every", "keep_checkpoints", "max_skips",
                 "eval_images"):  # fmt: skip
        _check(
            isinstance(v[name], int) and v[name] > 0,
            f"--{name} must be a positive integer, got {v[name]!r}.",
        )
    for name in ("sample_every", "eval_every", "num_devices"):
        _check(
            isinstance(v[name], int) and v[name] >= 0,
            f"--{name} must be an integer >= 0, got {v[name]!r}.",
        )
    for name in ("lr_g", "lr_d", "gp_target", "kimg_stable"):
        _check(
            _finite(v[name]) and v[name] > 0,
            f"--{name} must be a positive number, got {v[name]!r}.",
        )
    for name in ("gp_weight", "drift", "kimg_fade", "kimg_total"):
        _check(
            _finite(v[name]) and v[name] >= 0, f"--{name} must be a number >= 0, got {v[name]!r}."
        )
    _check(_finite(v["ema"]) and 0 <= v["ema"] < 1, f"--ema must be in [0, 1), got {v['ema']!r}.")
    b = v["betas"]
    _check(len(b) == 2 and all(_finite(x) and 0 <= x < 1 for x in b),
           f"--betas must be two numbers in [0, 1) like 0.5,0.9; got {b!r}.")  # fmt: skip
    _check(len(v["hidden"]) > 0 and all(h > 0 for h in v["hidden"]),
           f"--hidden must be positive integers, got {v['hidden']!r}.")  # fmt: skip
    bad = [m for m in v["eval_metrics"] if m not in EVAL_METRICS]
    _check(not bad, f"--eval_metrics allows {', '.join(EVAL_METRICS)}; got {','.join(bad)}.")

    obj = losses.get(v["loss"])
    if v["clip"] is not None:
        _check(obj.clip is not None,
               f"--clip applies only to a loss that clips weights (wgan); --loss={v['loss']} does not.")  # fmt: skip
        _check(
            _finite(v["clip"]) and v["clip"] > 0,
            f"--clip must be a positive number, got {v['clip']!r}.",
        )
    _check(not (v["critic_norm"] == "batch" and v["gp_weight"] > 0),
           "--critic_norm=batch cannot be used with a gradient penalty (--gp_weight > 0): BatchNorm "
           "couples the samples the penalty treats one by one; use --critic_norm=layer or none.")  # fmt: skip
    _check(not (v["critic_norm"] == "batch" and v["model"] != "dcgan"),
           f"--critic_norm=batch is available for --model=dcgan only, not {v['model']}.")  # fmt: skip
    _check(not (v["critic_norm"] == "layer" and v["model"] == "progressive"),
           "--critic_norm=layer is not available for --model=progressive (it has no critic norm).")  # fmt: skip

    toy = c.is_toy
    _check(not (toy and v["model"] != "mlp"),
           f"--model={v['model']} needs an image dataset; --dataset={v['dataset']} is 2-D points (use --model=mlp).")  # fmt: skip
    sched = v["stage_schedule"]
    if v["model"] == "progressive":
        _check(len(sched) > 0, "--model=progressive needs a --stage_schedule such as 4,8,16,32.")
        try:
            prog.parse_stage_schedule(",".join(map(str, sched)))
        except ValueError as e:
            raise ConfigError(str(e)) from None
        _check(all(isinstance(x, int) and x > 0 for x in v["batch_per_res"].values()),
               f"--batch_per_res values must be positive integers, got {v['batch_per_res']}.")  # fmt: skip
        _check(all(_finite(x) and x > 0 for x in v["lr_per_res"].values()),
               f"--lr_per_res values must be positive numbers, got {v['lr_per_res']}.")  # fmt: skip
        try:
            prog.PhaseSchedule(sched, v["kimg_stable"], v["kimg_fade"], v["kimg_total"])
        except ValueError as e:
            raise ConfigError(f"--{e}.") from None
    else:
        _check(not sched,
               f"--stage_schedule needs --model=progressive (got --model={v['model']}); use "
               "--stage_schedule=none for a plain run.")  # fmt: skip
    return c


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def is_optional(typ: Any) -> bool:
    """Whether a field type admits ``None``."""
    return (typing.get_origin(typ) in (typing.Union, types.UnionType)) and type(
        None
    ) in typing.get_args(typ)


def field_type(name: str) -> Any:
    """The Python type of the flat field ``name``."""
    return _field_type(FIELDS[name][1])
