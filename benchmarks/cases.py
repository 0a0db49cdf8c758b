"""The cases of ``benchmarks/run.py`` and how each is measured.

A case is a preset plus flag overrides, built as the training loop builds it: ``build.init_state``
on a one-device mesh, ``build.train_step`` of its phase, ``build.jit_step``. The MNIST MLP cases'
networks (LeakyReLU, BatchNorm in the generator) are not expressible as a config: they come from
``jaxgan.models.mlp`` through ``step.init_train_state``, all else from their config. The real
batch is a fixed device array: step times exclude the input pipeline (the ``input`` case).
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import jax
import measure as M  # noqa: N812
import numpy as np
import optax
from flax import nnx

from jaxgan import configs, data, parallel
from jaxgan.models.mlp import MLPCritic, MLPGenerator
from jaxgan.training import build, schedule, step
from jaxgan.training.config import Config, override

PGGAN_STAGES = (4, 8, 16, 32, 64, 128, 256, 512, 1024)
ALPHA = np.float32(1.0)  # the stable phase's fade-in coefficient
MNIST = {"model": "mlp", "latent_dim": 100, "hidden": (512, 256)}
MNIST_MODELS = (
    "jaxgan.models.mlp: G 100 -> 128 -> 256 -> 512 -> 1024 -> 28x28x1, LeakyReLU 0.2, BatchNorm "
    "after hidden layers 2-4, tanh; critic 784 -> 512 -> 256 -> 1, LeakyReLU 0.2"
)


def mnist_models(c: Config) -> tuple[nnx.Module, nnx.Module]:
    rngs, shape = nnx.Rngs(c.output.seed), (28, 28, 1)
    g = MLPGenerator(c.model.latent_dim, shape, hidden=(128, 256, 512, 1024), activation="lrelu",
                     batchnorm=True, output="tanh", rngs=rngs)  # fmt: skip
    return g, MLPCritic(shape, hidden=c.model.hidden, activation="lrelu", rngs=rngs)


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    group: str
    preset: str
    overrides: dict[str, Any]
    shape: tuple[int, ...]  # one sample, as build.sample_shape gives it for the case's data
    input: tuple[str, int | None]  # (dataset, resolution) of the input case at this batch
    resolution: int | None = None  # progressive: the stage measured (stable phase)
    models: Callable[[Config], tuple[nnx.Module, nnx.Module]] | None = None
    models_doc: str = "jaxgan.training.build.models"

    @property
    def config(self) -> Config:
        return override(configs.get(self.preset), **self.overrides)

    @property
    def phase(self) -> schedule.Phase:
        """The stable phase at the case's resolution (a plain run's one phase)."""
        phases = schedule.for_config(self.config).phases()
        return next(p for p in phases if p.resolution == self.resolution and not p.fading)

    @property
    def batch(self) -> int:
        return self.phase.batch_size

    def flags(self) -> str:
        val = lambda v: ",".join(map(str, v)) if isinstance(v, tuple) else v  # noqa: E731
        return " ".join([f"--config={self.preset}"] + [f"--{k}={val(v)}" for k, v in self.overrides.items()])  # fmt: skip

    def describe(self) -> dict[str, Any]:
        c = self.config
        return {"preset": self.preset, "overrides": self.overrides, "flags": self.flags(),
                "models": self.models_doc, "sample_shape": self.shape, "resolution": self.resolution,
                "batch": self.batch, "n_critic": c.loss.n_critic, "dtype": c.model.dtype,
                "resolved": c.to_json()}  # fmt: skip


def parse_pggan(name: str) -> tuple[int, str] | None:
    res, _, dt = name.removeprefix("pggan").partition("_")
    if not name.startswith("pggan") or not res.isdigit() or dt not in ("f32", "bf16"):
        return None
    return int(res), "bfloat16" if dt == "bf16" else "float32"


def get_case(name: str, pggan_final: int | None = None) -> Case:
    """A case by name; ``NAME_nogp``: that step with ``--gp_weight=0``. PGGAN networks are built
    for ``--stage_schedule=4,...,pggan_final`` (default: up to the stage itself)."""
    if name.endswith("_nogp"):
        c = get_case(name.removesuffix("_nogp"), pggan_final)
        return dataclasses.replace(c, name=name, group="gp", overrides={**c.overrides, "gp_weight": 0.0})  # fmt: skip
    if name == "toy":
        return Case(name, "toy", "toy-wgan-gp", {}, (2,), ("ring8", None))
    if name in ("mnist_mlp_gp", "mnist_mlp_clip"):  # wgan: its paper RMSProp 5e-5 and c = 0.01
        gp = {"lr_g": 2e-4, "lr_d": 2e-4, "betas": (0.5, 0.999)}
        o = {**MNIST, **gp} if name == "mnist_mlp_gp" else {"loss": "wgan", **MNIST}
        return Case(name, "mnist", "dcgan-mnist5k", o, (28, 28, 1), ("mnist5k", None),
                    models=mnist_models, models_doc=MNIST_MODELS)  # fmt: skip
    if name == "dcgan64":  # 64x64 RGB: the shape build.sample_shape gives for such a folder
        o = {"latent_dim": 128, "width": 64, "critic_norm": "layer"}
        return Case(name, "dcgan64", "dcgan-mnist5k", o, (64, 64, 3), ("folder", 64))
    if (stage := parse_pggan(name)) is None:
        raise ValueError(f"unknown case {name!r}")
    res, dtype = stage
    final = max(res, pggan_final or res)
    o = {"stage_schedule": tuple(r for r in PGGAN_STAGES if r <= final), "dtype": dtype}
    return Case(name, "pggan", "pggan", o, (final, final, 3), ("folder", res), resolution=res)


def prepare(case: Case, mesh, sgd_lr: float | None = None):
    """(state, jitted step, stacked real batch) on ``mesh``, as the training loop builds them;
    ``sgd_lr``: plain SGD for both networks in place of the config's optimizers."""
    c = case.config
    if case.models is None and sgd_lr is None:  # the training loop's own path
        state, g_def, d_def = build.init_state(c, case.shape, mesh)
    else:  # what build.init_state does, with other networks or optimizers
        g, d = case.models(c) if case.models else build.models(c, case.shape, c.output.seed)
        txs = (optax.sgd(sgd_lr),) * 2 if sgd_lr else build.optimizers(c, case.phase)
        key = jax.random.key(c.output.seed + 1)
        state, g_def, d_def = step.init_train_state(g, d, *txs, key, ema=c.optim.ema > 0)
        state = parallel.replicate(state, mesh)
    if sgd_lr:  # what build.train_step does, with SGD
        kw = {"latent_dim": c.model.latent_dim, "ema_decay": c.optim.ema}
        fn = step.make_train_step(g_def, d_def, build.objective(c), *txs, **kw)
    else:
        fn = build.train_step(c, g_def, d_def, case.phase)
    r = case.resolution
    shape = (c.loss.n_critic, case.batch, *(case.shape if r is None else (r, r, case.shape[-1])))
    host = np.random.default_rng(0).uniform(-1, 1, shape).astype(np.float32)
    return state, build.jit_step(fn, state, mesh), parallel.shard_batch(host, mesh, batch_axis=1)


def lower(case: Case, state, jitted, reals) -> tuple[Any, bool]:
    """(lowered step, whether its critic updates are a ``lax.scan`` in what lowered for this
    backend: the step holds both forms until a platform's lowering keeps one)."""
    import accelerator  # noqa: PLC0415 (it imports this module)

    lowered = jitted.lower(state, reals, ALPHA)
    return lowered, case.config.loss.n_critic > 1 and accelerator.critic_loop(
        lowered.as_text()
    ) == "scan"


def stepper(jitted, state, reals) -> tuple[Callable[[int], Any], list]:
    """``run(k)``: k back-to-back steps from the held ``[state, metrics]``."""
    held = [state, None]

    def run(k: int) -> list:
        for _ in range(k):
            held[:] = jitted(held[0], reals, ALPHA)
        return held

    return run, held


def run_case(case: Case, mesh, *, unrolled_flops: Callable[[str], float | None], **timing_kw):
    """Compile, count FLOPs, time (``measure.time_steps(**timing_kw)``) and measure the memory
    of one train step. XLA counts a loop body once: where the backend runs the critic updates
    in ``lax.scan``, ``unrolled_flops(name)`` (the step lowered on CPU, unrolled) supplies the
    missing n_critic - 1 updates."""
    out: dict[str, Any] = {"name": case.name, "group": case.group, "config": case.describe()}
    with M.peak_memory(mem := {}):
        t0 = time.perf_counter()
        state, jitted, reals = prepare(case, mesh)
        t1 = time.perf_counter()
        lowered, scanned = lower(case, state, jitted, reals)
        t2 = time.perf_counter()
        compiled = lowered.compile()
        t3 = time.perf_counter()
        out["config"]["critic_loop"] = "lax.scan" if scanned else "unrolled"
        out["setup_s"] = t1 - t0
        out["compile"] = {"lower_s": t2 - t1, "compile_s": t3 - t2, "total_s": t3 - t1}
        out["xla_memory"] = M.xla_memory(compiled)
        fl = out["flops"] = {"lowered": M.xla_flops(lowered), "compiled": M.xla_flops(compiled)}
        fl["per_iter"], fl["method"] = fl["compiled"], "compiled cost analysis"
        if scanned:
            cpu = fl["lowered_unrolled_cpu"] = unrolled_flops(case.name)
            ok = None not in (cpu, fl["compiled"], fl["lowered"])
            fl["per_iter"] = fl["compiled"] + cpu - fl["lowered"] if ok else None
            fl["method"] = "compiled + (unrolled lowering on CPU - scanned lowering)"
        run, held = stepper(jitted, state, reals)
        del state
        t = out["timing"] = M.time_steps(run, **timing_kw)
        out["compile"].update(first_call_s=t["first_call_s"], compiles_in_first_call=t["compiles_in_first_call"])  # fmt: skip
        out["last_metrics"] = {k: float(v) for k, v in jax.device_get(held[1]).items()}
        held.clear()
    out["memory"], per_iter = mem, fl["per_iter"]
    out["images_per_iter"] = case.config.loss.n_critic * case.batch
    out.update(iters_per_s=1 / t["median_s"], images_per_s=out["images_per_iter"] / t["median_s"])
    if per_iter:
        out["flops_per_s"] = per_iter / t["median_s"]
        pairs = zip(t["rep_times_s"], t.get("pair_samples", []), strict=False)
        ratios = [per_iter / s / p for s, p in pairs]
        out["paired"] = {"ratios": ratios, "median": statistics.median(ratios)} if ratios else None
    return out


def toy_hand_flops(c: Config) -> dict[str, int]:
    """Matmul FLOPs of one toy WGAN-GP iteration counted by hand (derivation: README.md).

    M = 2·B·in·out per layer, F a forward pass: a critic update is F_G + 10 F_D - 2 M_D1 - M_D4,
    a generator update 3 F_G + 2 F_D - M_G1."""
    b, h = c.schedule.batch_size, c.model.hidden
    mg = [2 * b * x * y for x, y in zip((c.model.latent_dim, *h), (*h, 2), strict=True)]
    md = [2 * b * x * y for x, y in zip((2, *h), (*h, 1), strict=True)]
    critic = sum(mg) + 10 * sum(md) - 2 * md[0] - md[-1]
    gen = 3 * sum(mg) + 2 * sum(md) - mg[0]
    return {"critic": critic, "generator": gen, "per_iter": c.loss.n_critic * critic + gen}


def jpeg_folder(root: str, n: int, size: int) -> None:
    """``n`` smooth random RGB JPEGs of ``size`` px under ``root``."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(n):
        img = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
        img.resize((size, size), Image.BILINEAR).save(os.path.join(root, f"{i}.jpg"), quality=90)


def measure_input(spec: str, resolution: int | None, batch: int, stack: int, mesh, batches: int):
    """Images/s of ``jaxgan.data.load`` opened as the loop opens it (``next(pipe)`` until on
    device, after 3 warm-up batches)."""
    t0 = time.perf_counter()
    pipe = data.load(spec, batch_size=batch, resolution=resolution, seed=0, mesh=mesh, stack=stack)
    setup = time.perf_counter() - t0
    try:
        for _ in range(3):
            next(pipe)
        dt = M.timed(lambda: [next(pipe)["x"] for _ in range(batches)])
    finally:
        pipe.close()
    return {"images_per_s": batches * batch * stack / dt, "setup_s": setup, "batches": batches}


def dp_rows(case: Case, devices: list[int], steps: int, **timing_kw) -> list[dict[str, Any]]:
    """The step on meshes of n devices from the same state, reals and key (SGD lr 1e-3: Adam
    turns reduction-order noise in near-zero gradients into full-size steps): its time, and the
    largest differences from the first mesh's parameters and metrics after ``steps`` steps."""
    rows: list[dict[str, Any]] = []
    for n in devices:
        state, jitted, reals = prepare(case, parallel.make_mesh(jax.devices()[:n]), sgd_lr=1e-3)
        metrics = []
        for _ in range(steps):
            state, m = jitted(state, reals, ALPHA)
            metrics.append(m)
        tree = jax.device_get([(state.g_params, state.d_params), metrics])
        vecs = [np.concatenate([np.ravel(x) for x in jax.tree.leaves(t)]) for t in tree]
        ref = rows[0]["_vecs"] if rows else vecs
        run, _ = stepper(jitted, state, reals)
        del state
        rows.append({"devices": n, "timing": M.time_steps(run, **timing_kw), "_vecs": vecs,
                     "max_abs_diff_params": float(np.max(np.abs(vecs[0] - ref[0]))),
                     "max_abs_diff_metrics": float(np.max(np.abs(vecs[1] - ref[1]))),
                     "bitwise_equal": all(map(np.array_equal, vecs, ref))})  # fmt: skip
    for r in rows:
        r["overhead_vs_1"] = r["timing"]["median_s"] / rows[0]["timing"]["median_s"]
        del r["_vecs"]
    return rows
