"""The run loop behind ``experiments/run.py``: data, models, jitted steps, logging, checkpoints.

Plain runs are one phase of ``config.steps`` generator steps. Progressive runs follow a
:class:`jaxgan.progressive.PhaseSchedule` by images shown; each (resolution, fading) pair gets its
own jitted step with α a traced argument, so a schedule compiles at most two steps per resolution.
The host touches device values only at log, sample and checkpoint ticks.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxgan import checkpoint as ckpt_lib
from jaxgan import losses, optim, parallel, samples, train
from jaxgan.config import Config, ConfigError, conflicts
from jaxgan.logs import RunLogger

EXIT_OK = 0
EXIT_NONFINITE = 3


@dataclasses.dataclass
class PhaseInfo:
    """What the loop needs to know about the current phase."""

    index: int
    resolution: int | None
    fading: bool
    alpha: float
    batch_size: int


class _StopFlag:
    """Set by SIGINT/SIGTERM; the loop finishes the current step, saves and exits 0."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __call__(self, signum: int, frame: Any) -> None:
        self.signum = signum


def build_objective(config: Config) -> losses.Objective:
    """The registry's objective with the run's penalty weights."""
    return dataclasses.replace(
        losses.get(config.loss),
        gp_weight=config.gp_weight,
        gp_target=config.gp_target,
        drift_weight=config.drift,
        clip=config.clip,
        n_critic=config.n_critic,
    )


def build_optimizers(config: Config, objective: losses.Objective, resolution: int | None = None):
    """(generator_tx, critic_tx); per-resolution learning rates override for progressive runs."""
    lr_g, lr_d = config.lr_g, config.lr_d
    if resolution is not None and resolution in config.lr_per_res:
        lr_g = lr_d = config.lr_per_res[resolution]
    return optim.paper_optimizers(
        objective, lr_g=lr_g, lr_d=lr_d, betas=config.betas, clip=config.clip
    )


def build_models(config: Config, data_shape: tuple[int, ...], seed: int):
    """Generator and critic for the config and the shape of one sample (H, W, C) or (2,)."""
    rngs = nnx.Rngs(seed)
    dtype = jnp.bfloat16 if config.dtype == "bfloat16" else None
    if config.model == "mlp":
        from jaxgan.models.mlp import MLPCritic, MLPGenerator

        output = "linear" if config.is_toy else "tanh"
        g = MLPGenerator(
            config.latent_dim, data_shape, hidden=config.hidden, output=output, rngs=rngs
        )
        norm = "layer" if config.critic_norm == "layer" else "none"
        d = MLPCritic(data_shape, hidden=config.hidden, norm=norm, rngs=rngs)
        return g, d
    res, channels = data_shape[0], data_shape[-1]
    if config.model == "dcgan":
        from jaxgan.models.dcgan import DCGANCritic, DCGANGenerator

        g = DCGANGenerator(res, channels, config.latent_dim, base_width=config.width, rngs=rngs)
        d = DCGANCritic(res, channels, norm=config.critic_norm, base_width=config.width, rngs=rngs)
        return g, d
    from jaxgan.models.progressive import ProgressiveCritic, ProgressiveGenerator

    final = config.stage_schedule[-1]
    kw = dict(channels=channels, fmap_base=config.fmap_base, fmap_max=config.fmap_max, dtype=dtype)
    g = ProgressiveGenerator(final, latent_dim=config.latent_dim, rngs=rngs, **kw)
    d = ProgressiveCritic(final, mbstd_group_size=config.mbstd_group, rngs=rngs, **kw)
    return g, d


def progressive_apply(res: int, fading: bool) -> train.ApplyFn:
    """apply(module, x, alpha) for a progressive network at a static ``res``."""

    def apply(module: nnx.Module, x: jax.Array, alpha: jax.Array) -> jax.Array:
        return module(x, res, alpha if fading else None)

    return apply


class Run:
    """One training run (constructed from a resolved :class:`Config`)."""

    def __init__(self, config: Config):
        self.config = config
        self.objective = build_objective(config)
        parallel.initialize_distributed(
            config.coordinator_address, config.num_processes, config.process_id
        )
        devices = jax.devices()
        if config.num_devices:
            if jax.process_count() > 1 or config.num_devices > len(devices):
                raise ConfigError(
                    f"--num_devices={config.num_devices}: this host has {len(devices)} devices "
                    "(and --num_devices is for single-host runs)."
                )
            devices = devices[: config.num_devices]
        self.mesh = parallel.make_mesh(devices)
        self.is_main = jax.process_index() == 0
        self.workdir = os.path.abspath(config.workdir)
        self.schedule = None
        if config.progressive:
            from jaxgan import progressive as prog

            self.schedule = prog.PhaseSchedule(
                config.stage_schedule, config.kimg_stable, config.kimg_fade
            )
        self._steps: dict[Any, Callable] = {}
        self._samplers: dict[Any, Callable] = {}

    # --- set-up ------------------------------------------------------------------------------

    def phase_at(self, images_seen: int) -> PhaseInfo:
        c = self.config
        if self.schedule is None:
            return PhaseInfo(0, None, False, 1.0, c.batch_size)
        p = self.schedule.phase_at(images_seen)
        return PhaseInfo(p.index, p.resolution, p.fading, p.alpha, c.batch_per_res[p.resolution])

    def _check_workdir(self, checkpointer: ckpt_lib.Checkpointer) -> int | None:
        latest = checkpointer.latest_step()
        cfg_path = os.path.join(self.workdir, "config.json")
        if latest is not None and not self.config.resume:
            raise ConfigError(
                f"--no-resume: {self.workdir} already holds a run (checkpoint at step {latest}); "
                "choose another --workdir or remove it."
            )
        if latest is not None and os.path.exists(cfg_path):
            with open(cfg_path) as f:
                saved = json.load(f)
            bad = conflicts(saved, self.config)
            if bad:
                raise ConfigError(
                    f"--workdir {self.workdir} holds a run with another configuration ("
                    + "; ".join(bad)
                    + "); use a new --workdir or the same settings."
                )
        return latest

    def _data(self, phase: PhaseInfo):
        from jaxgan import data

        c = self.config
        try:
            pipe = data.load(
                c.dataset,
                batch_size=phase.batch_size,
                resolution=phase.resolution,
                seed=c.seed,
                mesh=self.mesh,
                data_dir=c.data_dir,
                download=c.download,
                mirror=c.mirror,
                stack=c.n_critic,
            )
        except ValueError as e:
            raise ConfigError(f"--dataset={c.dataset}: {e}") from None
        if self.schedule is not None:
            from jaxgan import progressive as prog

            try:
                prog.check_schedule_against_source(c.stage_schedule, pipe.native_resolution)
            except ValueError as e:
                raise ConfigError(str(e)) from None
        return pipe

    def _compiled_step(self, phase: PhaseInfo, state_sharding: Any) -> Callable:
        key = (phase.resolution, phase.fading)
        if key not in self._steps:
            c = self.config
            g_tx, d_tx = build_optimizers(c, self.objective, phase.resolution)
            kw: dict[str, Any] = {}
            if self.schedule is not None:
                from jaxgan.layers import fade_reals

                apply = progressive_apply(phase.resolution, phase.fading)
                kw = dict(g_apply=apply, d_apply=apply)
                if phase.fading:
                    kw["real_transform"] = fade_reals
            fn = train.make_train_step(
                self.g_def, self.d_def, self.objective, g_tx, d_tx,
                latent_dim=c.latent_dim, ema_decay=c.ema, **kw,
            )  # fmt: skip
            self._steps[key] = jax.jit(fn, out_shardings=(state_sharding, None), donate_argnums=0)
        return self._steps[key]

    def _sampler(self, res: int | None, fading: bool) -> Callable:
        key = (res, fading)
        if key not in self._samplers:
            apply = train.plain_apply if res is None else progressive_apply(res, fading)
            self._samplers[key] = jax.jit(
                lambda params, rest, z, alpha: train.generate(
                    self.g_def, params, rest, z, alpha, apply
                )
            )
        return self._samplers[key]

    def _reset_optimizers(self, state: train.TrainState, phase: PhaseInfo) -> train.TrainState:
        g_tx, d_tx = build_optimizers(self.config, self.objective, phase.resolution)
        return state.replace(
            g_opt=parallel.replicate(g_tx.init(state.g_params), self.mesh),
            d_opt=parallel.replicate(d_tx.init(state.d_params), self.mesh),
        )

    # --- outputs -----------------------------------------------------------------------------

    def sample(self, state: train.TrainState, z: jax.Array, phase: PhaseInfo) -> np.ndarray:
        params = state.ema if self.config.ema > 0 else state.g_params
        fn = self._sampler(phase.resolution, phase.fading)
        return np.asarray(jax.device_get(fn(params, state.g_rest, z, np.float32(phase.alpha))))

    def write_samples(self, state, phase: PhaseInfo, step: int, pipe) -> None:
        if not self.is_main:
            return
        out = os.path.join(self.workdir, "samples")
        if self.config.is_toy:
            self._toy_plot(state, pipe, os.path.join(out, f"toy_{step:07d}.png"))
            return
        imgs = self.sample(state, self.z_fixed, phase)
        grid = samples.upscale(samples.image_grid(imgs, cols=8))
        samples.save_png(os.path.join(out, f"grid_{step:07d}.png"), grid)
        samples.save_png(os.path.join(out, "latest.png"), grid)

    def write_stage_outputs(self, state, phase: PhaseInfo) -> None:
        """At the end of a stage: keep its grid, and add its row to the growth strip."""
        if not self.is_main or phase.resolution is None:
            return
        out = os.path.join(self.workdir, "samples")
        imgs = self.sample(state, self.z_fixed, phase)
        samples.save_png(
            os.path.join(out, f"stage_{phase.resolution:04d}.png"),
            samples.upscale(samples.image_grid(imgs, cols=8)),
        )
        final = self.config.stage_schedule[-1]
        f = final // phase.resolution
        row = samples.image_grid(imgs[:8].repeat(f, axis=1).repeat(f, axis=2), cols=8)
        np.save(os.path.join(out, f"strip_{phase.resolution:04d}.npy"), row)
        rows = [
            np.load(os.path.join(out, f"strip_{r:04d}.npy"))
            for r in self.config.stage_schedule
            if os.path.exists(os.path.join(out, f"strip_{r:04d}.npy"))
        ]
        samples.save_png(
            os.path.join(out, "growth_strip.png"), samples.upscale(np.concatenate(rows))
        )

    def _toy_plot(self, state, pipe, path: str) -> None:
        toy = pipe.toy
        rng = np.random.default_rng(self.config.seed + 17)
        real = toy.sample(rng, 1000)
        fake = self.sample(state, self.z_toy[:1000], self.phase_at(0))
        extent = float(np.abs(real).max()) * 1.5 + 0.1
        g = np.linspace(-extent, extent, 96, dtype=np.float32)
        xx, yy = np.meshgrid(g, g[::-1])
        pts = np.stack([xx.ravel(), yy.ravel()], 1)
        d_mod = nnx.merge(self.d_def, state.d_params, state.d_rest)
        d_mod.eval()
        scores = np.asarray(jax.device_get(d_mod(jnp.asarray(pts)))).reshape(96, 96)
        samples.save_png(path, samples.toy_plot(real, fake, scores, extent))

    def toy_metrics(self, state, pipe) -> dict[str, float]:
        toy = pipe.toy
        if toy is None or toy.centers is None or len(toy.centers) == 0:
            return {}
        from jaxgan.metrics.modes import toy_mode_metrics

        pts = self.sample(state, self.z_toy, self.phase_at(0))
        m = toy_mode_metrics(pts, toy.centers, toy.std)
        return {k: float(v) for k, v in m.items()}

    def build(self):
        """Data pipeline, models and the initial replicated state (sets graphdefs and latents)."""
        c = self.config
        phase = self.phase_at(0)
        pipe = self._data(phase)
        shape = (2,) if pipe.kind == "points" else (
            pipe.native_resolution, pipe.native_resolution, pipe.channels
        )  # fmt: skip
        if self.schedule is not None:
            shape = (c.stage_schedule[-1], c.stage_schedule[-1], pipe.channels)
        g, d = build_models(c, shape, c.seed)
        g_tx, d_tx = build_optimizers(c, self.objective, phase.resolution)
        state, self.g_def, self.d_def = train.init_train_state(
            g, d, g_tx, d_tx, jax.random.key(c.seed + 1), ema=c.ema > 0
        )
        state = parallel.replicate(state, self.mesh)
        zkey = jax.random.key(c.seed + 2)
        self.z_fixed = jax.random.normal(zkey, (64, c.latent_dim))
        self.z_toy = jax.random.normal(zkey, (2500, c.latent_dim))
        return pipe, state

    # --- the loop ----------------------------------------------------------------------------

    def run(self) -> int:
        c = self.config
        os.makedirs(self.workdir, exist_ok=True)
        checkpointer = ckpt_lib.Checkpointer(
            os.path.join(self.workdir, "checkpoints"), keep=c.keep_checkpoints
        )
        latest = self._check_workdir(checkpointer)
        if self.is_main:
            with open(os.path.join(self.workdir, "config.json"), "w") as f:
                json.dump(c.to_json(), f, indent=2)

        phase = self.phase_at(0)
        pipe, state = self.build()
        state_sharding = parallel.tree_shardings(state, self.mesh)

        step, images_seen, last_phase = 0, 0, phase.index
        if latest is not None:
            state, meta, step = checkpointer.restore(state, self.mesh)
            images_seen = int(meta["images_seen"])
            last_phase = int(meta.get("phase_index", 0))
            pipe.set_state(meta["data_state"])
        total_steps = c.steps if self.schedule is None else None

        logger = RunLogger(
            self.workdir,
            total_steps or self._estimate_total_steps(),
            step,
            quiet=c.quiet,
            enabled=self.is_main,
        )
        if latest is not None:
            logger.message(
                f"resumed from {checkpointer.directory} at step {step}, {images_seen} images seen"
            )
        stop = _StopFlag()
        old_handlers = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}

        def meta() -> dict[str, Any]:
            return {
                "step": step,
                "images_seen": images_seen,
                "phase_index": last_phase,
                "data_state": pipe.get_state(),
                "config": c.to_json(),
            }

        pending: list[dict[str, jax.Array]] = []
        t_log, img_log = time.perf_counter(), images_seen
        exit_code = EXIT_OK
        try:
            while True:
                if self.schedule is None:
                    if step >= c.steps:
                        break
                elif self.schedule.done(images_seen):
                    break
                phase = self.phase_at(images_seen)
                if phase.index != last_phase:
                    prev = self.schedule.phases()[last_phase]
                    if prev.resolution != phase.resolution:
                        self.write_stage_outputs(state, self.phase_at(prev.start_images))
                    pipe.configure(resolution=phase.resolution, batch_size=phase.batch_size)
                    if c.reset_adam:
                        state = self._reset_optimizers(state, phase)
                    last_phase = phase.index
                    logger.message(
                        f"phase {phase.index}: {'fade into' if phase.fading else 'stabilise'} "
                        f"{phase.resolution}x{phase.resolution}, batch {phase.batch_size}"
                    )
                step_fn = self._compiled_step(phase, state_sharding)
                reals = next(pipe)["x"]
                state, metrics = step_fn(state, reals, np.float32(phase.alpha))
                step += 1
                images_seen += c.n_critic * phase.batch_size
                pending.append(metrics)

                done = (
                    (step >= c.steps) if self.schedule is None else self.schedule.done(images_seen)
                )
                if step % c.log_every == 0 or done or stop.signum is not None:
                    record, streak = self._summarise(pending, state, step, images_seen, phase)
                    now = time.perf_counter()
                    record["images_per_sec"] = (images_seen - img_log) / max(now - t_log, 1e-9)
                    if c.is_toy:
                        record.update(self.toy_metrics(state, pipe))
                    t_log, img_log = time.perf_counter(), images_seen
                    logger.log(record)
                    pending = []
                    if streak >= c.max_skips:
                        logger.message(
                            f"stopping: {streak} consecutive steps had non-finite gradients "
                            f"(--max_skips={c.max_skips}); the last good checkpoint is kept in "
                            f"{checkpointer.directory}."
                        )
                        exit_code = EXIT_NONFINITE
                        break
                if c.sample_every and step % c.sample_every == 0:
                    self.write_samples(state, phase, step, pipe)
                if c.eval_every and step % c.eval_every == 0:
                    self._evaluate(state, phase, step, logger)
                if step % c.ckpt_every == 0:
                    checkpointer.save(step, state, meta())
                if stop.signum is not None:
                    logger.message(f"signal {stop.signum}: saving at step {step} and exiting.")
                    break
            if exit_code == EXIT_OK:
                checkpointer.save(step, state, meta(), force=True)
                self.write_samples(state, phase, step, pipe)
                if self.schedule is not None:
                    self.write_stage_outputs(state, phase)
        finally:
            checkpointer.close()
            logger.close()
            pipe.close()
            for s, h in old_handlers.items():
                signal.signal(s, h)
        self.final_state = state
        self.final_step = step
        self.final_images = images_seen
        return exit_code

    def _estimate_total_steps(self) -> int:
        total, n = 0, 0
        for p in self.schedule.phases():
            b = self.config.batch_per_res[p.resolution] * self.config.n_critic
            total += math.ceil((p.end_images - max(p.start_images, n)) / b)
            n = p.start_images + math.ceil((p.end_images - p.start_images) / b) * b
        return total

    def _summarise(self, pending, state, step, images_seen, phase: PhaseInfo):
        host = jax.device_get((pending, state.skipped, state.streak))
        metrics, skipped, streak = host
        record: dict[str, Any] = {"step": step, "images_seen": images_seen}
        for k in metrics[0]:
            vals = np.asarray([m[k] for m in metrics], np.float64)
            record[k] = float(vals.sum() if k == "skipped" else vals.mean())
        record["skipped_total"] = int(skipped)
        record["skip_streak"] = int(streak)
        if phase.resolution is not None:
            record.update(resolution=phase.resolution, phase="fade" if phase.fading else "stable",
                          alpha=phase.alpha)  # fmt: skip
        return record, int(streak)

    def _evaluate(self, state, phase: PhaseInfo, step: int, logger: RunLogger) -> None:
        from jaxgan import evaluation

        record = evaluation.evaluate_generator(
            lambda z: self.sample(state, z, phase),
            self.config,
            metrics=self.config.eval_metrics,
            num_images=self.config.eval_images,
            resolution=phase.resolution,
        )
        record = {"step": step, **{f"eval/{k}": v for k, v in record.items()}}
        logger.log(record)


def main(argv: list[str] | None = None) -> int:
    """CLI entry: parse flags, run; bad input -> one line on stderr and exit status 2."""
    from jaxgan.config import parse_args

    prog = "run.py"
    try:
        config = parse_args(argv, prog)
        return Run(config).run()
    except ConfigError as e:
        sys.stderr.write(f"{prog}: error: {e}\n")
        return 2
