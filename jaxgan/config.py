"""The run configuration: command-line flags, their defaults per objective, and their validation.

``parse_args(argv)`` turns flags into a frozen :class:`Config`, resolving every ``None`` default:
per-loss defaults come from the objective registry (the papers' settings), per-model defaults from
the model family, progressive defaults from PGGAN (reference: Karras et al. 2018). Bad input raises
:class:`ConfigError`, which the CLI prints as one line naming the flag and exits with status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Any

from jaxgan import losses

TOY_DATASETS = ("ring8", "grid25", "swissroll", "ring8-veegan", "grid25-veegan")
MODELS = ("auto", "mlp", "dcgan", "progressive")
# The offline default job: progressive WGAN-GP on mnist5k, 4 -> 32, sized for ~10 min on 2 CPU cores.
DEFAULT_DATASET = "mnist5k"


class ConfigError(ValueError):
    """A flag has a value that is not allowed; the message names the flag."""


@dataclasses.dataclass(frozen=True)
class Config:
    """Every setting of a run (all defaults resolved). Saved as ``config.json`` in the workdir."""

    loss: str
    dataset: str
    model: str
    steps: int
    batch_size: int
    n_critic: int
    gp_weight: float
    gp_target: float
    drift: float
    clip: float | None
    lr_g: float
    lr_d: float
    betas: tuple[float, float]
    optimizer: str
    ema: float
    latent_dim: int
    workdir: str
    seed: int
    log_every: int
    sample_every: int
    ckpt_every: int
    keep_checkpoints: int
    resume: bool
    quiet: bool
    max_skips: int
    critic_norm: str
    hidden: tuple[int, ...]
    width: int
    data_dir: str | None
    download: bool
    mirror: bool
    dtype: str
    # progressive growing
    stage_schedule: tuple[int, ...]
    kimg_stable: float
    kimg_fade: float
    batch_per_res: dict[int, int]
    lr_per_res: dict[int, float]
    fmap_base: int
    fmap_max: int
    mbstd_group: int
    reset_adam: bool
    # evaluation during training
    eval_every: int
    eval_metrics: tuple[str, ...]
    eval_images: int
    # distributed
    num_devices: int
    coordinator_address: str | None
    num_processes: int | None
    process_id: int | None

    @property
    def is_toy(self) -> bool:
        return self.dataset in TOY_DATASETS

    @property
    def progressive(self) -> bool:
        return self.model == "progressive"

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["batch_per_res"] = {str(k): v for k, v in self.batch_per_res.items()}
        d["lr_per_res"] = {str(k): v for k, v in self.lr_per_res.items()}
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Config:
        """Rebuild a Config from ``config.json`` (as written by :meth:`to_json`)."""
        d = dict(d)
        for k in ("betas", "hidden", "stage_schedule", "eval_metrics"):
            d[k] = tuple(d[k])
        d["batch_per_res"] = {int(k): int(v) for k, v in d["batch_per_res"].items()}
        d["lr_per_res"] = {int(k): float(v) for k, v in d["lr_per_res"].items()}
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in fields})

    # Settings that define the shape of the state: a checkpoint made with other values of these
    # cannot be resumed, and resuming must refuse rather than silently overwrite.
    STRUCTURAL = (
        "loss", "dataset", "model", "latent_dim", "hidden", "width", "critic_norm", "optimizer",
        "ema", "fmap_base", "fmap_max", "stage_schedule", "clip", "dtype",
    )  # fmt: skip


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag as one line and exits with status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message} (see --help)\n")
        sys.exit(2)


def build_parser(prog: str = "run.py") -> argparse.ArgumentParser:
    """The flags of ``experiments/run.py``; ``None`` defaults are resolved by :func:`resolve`."""
    p = _Parser(
        prog=prog,
        description=(
            "Train a GAN with jaxgan. With no flags: an offline progressive WGAN-GP on mnist5k, "
            "4 -> 8 -> 16 -> 32 (the quick preset: fmap_base 256, fmap_max 64, latent 64, 16 kimg "
            "per phase, EMA 0.99), sized for about 10 minutes on a 2-core CPU. The quick preset "
            "applies to --dataset=mnist5k without --stage_schedule; --model=dcgan on mnist5k has "
            "one too (base width 32, 2000 steps). Each flag still overrides its own value, and "
            "other datasets get the paper's settings."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    a = p.add_argument
    a("--loss", default="wgan-gp", choices=sorted(losses.OBJECTIVES), help="the objective")
    a(
        "--dataset",
        default=DEFAULT_DATASET,
        help="tfds:NAME[/CONFIG][:SPLIT], folder:PATH, digits, mnist5k, stacked_mnist, or a 2-D toy: "
        + ", ".join(TOY_DATASETS),
    )
    a(
        "--model",
        default="auto",
        choices=MODELS,
        help="auto: mlp for 2-D toys, progressive for images (dcgan when --stage_schedule=none)",
    )
    a(
        "--steps",
        type=int,
        default=None,
        help="generator steps (default: 3000 toys, 5000 dcgan (2000 on mnist5k); progressive: "
        "from the kimg schedule)",
    )
    a(
        "--batch_size",
        type=int,
        default=None,
        help="global batch (default: 256 toys, 64 dcgan/mlp images; progressive: --batch_per_res)",
    )
    a(
        "--n_critic",
        type=int,
        default=None,
        help="critic steps per generator step (default: loss's)",
    )
    a("--gp_weight", type=float, default=None, help="gradient-penalty weight λ (default: loss's)")
    a("--gp_target", type=float, default=1.0, help="gradient-penalty target γ (PGGAN; λ/γ² scale)")
    a(
        "--drift",
        type=float,
        default=None,
        help="drift penalty ε·E[D(x)²] (default: 0.001 progressive wgan-gp, else 0)",
    )
    a("--clip", type=float, default=None, help="weight clipping bound c (wgan only; default 0.01)")
    a("--lr_g", type=float, default=None, help="generator learning rate (default: loss's)")
    a("--lr_d", type=float, default=None, help="critic learning rate (default: loss's)")
    a("--betas", default=None, help="Adam betas 'b1,b2' (default: loss's)")
    a(
        "--ema",
        type=float,
        default=None,
        help="generator EMA decay β; 0 = off (default: 0; progressive 0.999, 0.99 in the quick preset)",
    )
    a(
        "--latent_dim",
        type=int,
        default=None,
        help="noise dimension (default: 2 toys, 128 dcgan/mlp, progressive 512 or the quick preset's)",
    )
    a("--workdir", default=None, help="run directory (default: runs/<dataset>-<loss>-<model>)")
    a("--seed", type=int, default=0)
    a("--log_every", type=int, default=100, help="steps between metric logs (host syncs only here)")
    a("--sample_every", type=int, default=500, help="steps between sample grids (0 = only at end)")
    a("--ckpt_every", type=int, default=1000, help="steps between checkpoints (and at the end)")
    a("--keep_checkpoints", type=int, default=3, help="how many checkpoints to keep")
    a(
        "--resume",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="resume from the run directory's latest checkpoint; --no-resume refuses an existing run",
    )
    a("--quiet", action="store_true", help="plain log lines instead of a progress bar")
    a(
        "--max_skips",
        type=int,
        default=20,
        help="stop after this many consecutive steps with non-finite gradients",
    )
    a(
        "--critic_norm",
        default="auto",
        choices=("auto", "batch", "layer", "none"),
        help="critic normalisation (auto: batch for gan/nsgan/wgan dcgan, none with a penalty)",
    )
    a("--hidden", default="512,512,512", help="MLP hidden widths")
    a("--width", type=int, default=None, help="DCGAN base width (default: 64; 32 on mnist5k)")
    a(
        "--data_dir",
        default=None,
        help="tfds data dir (default: $JAXGAN_DATA_DIR or ~/tensorflow_datasets)",
    )
    a(
        "--download",
        action="store_true",
        help="prepare a tfds dataset (needs TensorFlow + internet)",
    )
    a("--mirror", action="store_true", help="random horizontal flips")
    a(
        "--dtype",
        default="float32",
        choices=("float32", "bfloat16"),
        help="compute dtype (bf16: float32 params and optimizer state)",
    )
    g = p.add_argument_group("progressive growing")
    g.add_argument(
        "--stage_schedule",
        default=None,
        help="resolutions, e.g. 4,8,16 or 4,8,...,1024 (default for images: 4,8,...,<native>)",
    )
    g.add_argument(
        "--kimg_per_phase",
        type=float,
        default=None,
        help="thousands of images per stabilise and per fade phase (paper: 800)",
    )
    g.add_argument("--kimg_stable", type=float, default=None, help="overrides --kimg_per_phase")
    g.add_argument("--kimg_fade", type=float, default=None, help="overrides --kimg_per_phase")
    g.add_argument(
        "--batch_per_res",
        default=None,
        help="e.g. 4:64,8:64 (default: 16 up to 128, 14 at 256, 6 at 512, 3 at 1024)",
    )
    g.add_argument(
        "--lr_per_res", default=None, help="per-resolution learning rates, e.g. 128:1.5e-3"
    )
    g.add_argument(
        "--fmap_base", type=int, default=None, help="widths min(fmap_base/2^stage, fmap_max)"
    )
    g.add_argument("--fmap_max", type=int, default=None)
    g.add_argument("--mbstd_group", type=int, default=4, help="minibatch-stddev group size")
    g.add_argument(
        "--reset_adam",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="reset Adam moments when a fade and a stabilisation start",
    )
    e = p.add_argument_group("evaluation")
    e.add_argument("--eval_every", type=int, default=0, help="steps between evaluations (0 = off)")
    e.add_argument("--eval_metrics", default="swd", help="comma list of: swd, ms_ssim, modes")
    e.add_argument("--eval_images", type=int, default=1024, help="images generated per evaluation")
    a(
        "--num_devices",
        type=int,
        default=0,
        help="use the first N devices of this host (0 = all); the batch must divide by it",
    )
    d = p.add_argument_group("distributed (multi-host)")
    d.add_argument("--coordinator_address", default=None, help="host:port of process 0")
    d.add_argument("--num_processes", type=int, default=None)
    d.add_argument("--process_id", type=int, default=None)
    return p


def _positive(name: str, value: float | int | None, allow_zero: bool = False) -> None:
    if value is None:
        return
    if value < 0 or (value == 0 and not allow_zero):
        rule = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"--{name} must be {rule}, got {value}.")


def _int_tuple(text: str, flag: str) -> tuple[int, ...]:
    try:
        vals = tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise ConfigError(f"--{flag} must be comma-separated integers, got {text!r}.") from None
    if not vals or any(v <= 0 for v in vals):
        raise ConfigError(f"--{flag} must be positive integers, got {text!r}.")
    return vals


def resolve(ns: argparse.Namespace) -> Config:
    """Fill per-loss, per-model and progressive defaults and validate everything."""
    obj = losses.get(ns.loss)
    model = ns.model
    is_toy = ns.dataset in TOY_DATASETS
    if model == "auto":
        if is_toy:
            model = "mlp"
        elif ns.stage_schedule is not None and ns.stage_schedule.lower() == "none":
            model = "dcgan"
        else:
            model = "progressive"
    if is_toy and model in ("dcgan", "progressive"):
        raise ConfigError(f"--model={model} needs an image dataset; --dataset={ns.dataset} is 2-D.")
    if (
        ns.stage_schedule is not None
        and ns.stage_schedule.lower() != "none"
        and model != "progressive"
    ):
        raise ConfigError(f"--stage_schedule needs --model=progressive (got --model={model}).")
    progressive = model == "progressive"

    for name in ("steps", "batch_size", "n_critic", "latent_dim", "log_every", "ckpt_every",
                 "keep_checkpoints", "max_skips", "width", "fmap_base", "fmap_max", "mbstd_group",
                 "eval_images"):  # fmt: skip
        _positive(name, getattr(ns, name))
    for name in ("sample_every", "eval_every", "gp_weight", "drift", "ema", "num_devices"):
        _positive(name, getattr(ns, name), allow_zero=True)
    for name in ("kimg_per_phase", "kimg_stable", "kimg_fade", "lr_g", "lr_d", "clip", "gp_target"):
        _positive(name, getattr(ns, name))
    if ns.ema is not None and ns.ema >= 1:
        raise ConfigError(f"--ema must be in [0, 1), got {ns.ema}.")

    if ns.clip is not None and obj.clip is None:
        raise ConfigError(
            f"--clip applies only to a loss that clips weights (wgan); --loss={ns.loss} does not."
        )
    if ns.betas is None:
        betas = (obj.optimizer.b1, obj.optimizer.b2)
    else:
        try:
            betas = tuple(float(b) for b in ns.betas.split(","))
        except ValueError:
            betas = ()
        if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
            raise ConfigError(
                f"--betas must be two numbers in [0, 1) like 0.5,0.9; got {ns.betas!r}."
            )
    optimizer = obj.optimizer.name
    lr = obj.optimizer.learning_rate
    n_critic = ns.n_critic or obj.n_critic
    ema = ns.ema if ns.ema is not None else 0.0
    drift = ns.drift if ns.drift is not None else 0.0
    gp_weight = ns.gp_weight if ns.gp_weight is not None else obj.gp_weight
    if is_toy and ns.loss == "wgan-gp":
        # The WGAN-GP toy script (gan_toy.py): λ 0.1, Adam β (0.5, 0.9), batch 256. Algorithm 1's
        # β1 = 0 with λ 10 oscillates on the 2-D toys (measured: W estimate flips sign).
        gp_weight = ns.gp_weight if ns.gp_weight is not None else 0.1
        betas = betas if ns.betas is not None else (0.5, 0.9)

    critic_norm = ns.critic_norm
    if critic_norm == "auto":
        critic_norm = "batch" if (model == "dcgan" and gp_weight == 0) else "none"
    if critic_norm == "batch" and gp_weight > 0:
        raise ConfigError(
            "--critic_norm=batch cannot be used with a gradient penalty: BatchNorm couples the "
            "samples the penalty treats one by one; use --critic_norm=layer or none."
        )
    if critic_norm == "batch" and model != "dcgan":
        raise ConfigError(f"--critic_norm=batch is available for --model=dcgan only, not {model}.")

    stage_schedule: tuple[int, ...] = ()
    batch_per_res: dict[int, int] = {}
    lr_per_res: dict[int, float] = {}
    kimg_stable = kimg_fade = 0.0
    fmap_base = ns.fmap_base or 0
    fmap_max = ns.fmap_max or 0
    latent_default = 2 if is_toy else 128
    if progressive:
        from jaxgan import progressive as prog

        quick = ns.dataset == DEFAULT_DATASET and ns.stage_schedule is None
        try:
            text = ns.stage_schedule or ("4,8,16,32" if quick else "4,8,...,32")
            stage_schedule = tuple(prog.parse_stage_schedule(text))
            batch_per_res = prog.parse_batch_per_res(
                ns.batch_per_res or ("4:64,8:64,16:32,32:32" if quick else None), stage_schedule
            )
            lr_per_res = (
                prog.parse_per_res_float(ns.lr_per_res, "--lr_per_res") if ns.lr_per_res else {}
            )
        except ValueError as e:
            raise ConfigError(str(e)) from None
        per_phase = ns.kimg_per_phase or (16.0 if quick else 800.0)
        kimg_stable = ns.kimg_stable or per_phase
        kimg_fade = ns.kimg_fade or per_phase
        fmap_base = ns.fmap_base or (256 if quick else 8192)
        fmap_max = ns.fmap_max or (64 if quick else 512)
        latent_default = 64 if quick else 512
        if ns.loss == "wgan-gp":
            # PGGAN: Adam 1e-3, β (0, 0.99), n_critic 1, drift 0.001, EMA 0.999.
            lr = 1e-3
            betas = betas if ns.betas is not None else (0.0, 0.99)
            n_critic = ns.n_critic or 1
            drift = ns.drift if ns.drift is not None else 0.001
        # PGGAN's 0.999 (half-life ~700 steps) suits its ~10^5-10^6 steps; the quick preset runs
        # ~2,000 steps, where 0.999 still carries ~1/3 of the initial weights: use 0.99 there.
        ema = ns.ema if ns.ema is not None else (0.99 if quick else 0.999)
    batch_default = 256 if is_toy else 64
    steps_default = 3000 if is_toy else 5000
    width = ns.width or 64
    if model == "dcgan" and ns.dataset == DEFAULT_DATASET:
        # The DCGAN quick preset: digits after ~15-20 min on the 2-core CPU (BUILD_NOTES).
        steps_default = 2000
        width = ns.width or 32
    workdir = (
        ns.workdir or f"runs/{ns.dataset.replace(':', '_').replace('/', '_')}-{ns.loss}-{model}"
    )
    eval_metrics = tuple(m.strip() for m in ns.eval_metrics.split(",") if m.strip())
    bad = [m for m in eval_metrics if m not in ("swd", "ms_ssim", "modes")]
    if bad:
        raise ConfigError(f"--eval_metrics allows swd, ms_ssim, modes; got {','.join(bad)}.")
    return Config(
        loss=ns.loss,
        dataset=ns.dataset,
        model=model,
        steps=ns.steps or (0 if progressive else steps_default),
        batch_size=ns.batch_size or batch_default,
        n_critic=n_critic,
        gp_weight=gp_weight,
        gp_target=ns.gp_target,
        drift=drift,
        clip=(ns.clip or obj.clip) if obj.clip is not None else None,
        lr_g=ns.lr_g or lr,
        lr_d=ns.lr_d or lr,
        betas=(float(betas[0]), float(betas[1])),
        optimizer=optimizer,
        ema=float(ema),
        latent_dim=ns.latent_dim or latent_default,
        workdir=workdir,
        seed=ns.seed,
        log_every=ns.log_every,
        sample_every=ns.sample_every,
        ckpt_every=ns.ckpt_every,
        keep_checkpoints=ns.keep_checkpoints,
        resume=ns.resume,
        quiet=ns.quiet,
        max_skips=ns.max_skips,
        critic_norm=critic_norm,
        hidden=_int_tuple(ns.hidden, "hidden"),
        width=width,
        data_dir=ns.data_dir,
        download=ns.download,
        mirror=ns.mirror,
        dtype=ns.dtype,
        stage_schedule=stage_schedule,
        kimg_stable=kimg_stable,
        kimg_fade=kimg_fade,
        batch_per_res=batch_per_res,
        lr_per_res=lr_per_res,
        fmap_base=fmap_base,
        fmap_max=fmap_max,
        mbstd_group=ns.mbstd_group,
        reset_adam=ns.reset_adam,
        eval_every=ns.eval_every,
        eval_metrics=eval_metrics,
        eval_images=ns.eval_images,
        num_devices=ns.num_devices,
        coordinator_address=ns.coordinator_address,
        num_processes=ns.num_processes,
        process_id=ns.process_id,
    )


def parse_args(argv: list[str] | None = None, prog: str = "run.py") -> Config:
    """Parse and resolve; raises ConfigError for values argparse itself cannot check."""
    return resolve(build_parser(prog).parse_args(argv))


def conflicts(saved: dict[str, Any], config: Config) -> list[str]:
    """The structural settings on which a saved config.json and ``config`` disagree."""
    now = json.loads(json.dumps(config.to_json()))
    return [
        f"{k}: checkpoint has {saved.get(k)!r}, now {now.get(k)!r}"
        for k in Config.STRUCTURAL
        if k in saved and saved.get(k) != now.get(k)
    ]
