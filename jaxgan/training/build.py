"""From a :class:`Config` to the pieces of a run: objective, optimizers, models, phases, steps.

Shared by the training loop, :func:`jaxgan.open_run` and the benchmarks, so that all of them
train and sample exactly the same networks. A plain run is a one-phase schedule (resolution
``None``); a progressive run follows :class:`jaxgan.training.schedule.PhaseSchedule`, and each
(resolution, fading) pair gets its own jitted step with the fade-in α a traced argument.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh

from jaxgan import losses, optim, parallel
from jaxgan.training import schedule, step
from jaxgan.training.config import Config


def objective(config: Config) -> losses.Objective:
    """The registry's objective with the config's penalty weights and n_critic."""
    c = config.loss
    return dataclasses.replace(
        losses.get(c.loss),
        n_critic=c.n_critic,
        gp_weight=c.gp_weight,
        gp_target=c.gp_target,
        drift_weight=c.drift,
        clip=c.clip,
    )


def optimizers(
    config: Config, phase: schedule.Phase | None = None
) -> tuple[optax.GradientTransformation, optax.GradientTransformation]:
    """(generator_tx, critic_tx) of a phase (None: a plain run's one phase).

    A per-resolution learning rate overrides both nets' rates. With ``lr_rampdown_kimg`` every
    phase's rate is a schedule of the optimizer's update count (one state layout for all phases);
    it is constant except in the last phase, where it falls to 0 along a half cosine over the
    run's last ``lr_rampdown_kimg`` thousand images, counted from that phase's start (where the
    optimizer restarts). The critic updates ``n_critic`` times per generator step.
    """
    o, n_critic = config.optim, config.loss.n_critic
    resolution = phase.resolution if phase is not None else None
    lr_g, lr_d = o.lr_g, o.lr_d
    if resolution in o.lr_per_res:
        lr_g = lr_d = o.lr_per_res[resolution]
    if o.lr_rampdown_kimg > 0:
        lr_g = _rampdown(config, phase, lr_g, n_critic)
        lr_d = _rampdown(config, phase, lr_d, 1)
    g = optim.optimizer_from_defaults(o.optimizer, lr_g, b1=o.betas[0], b2=o.betas[1])
    d = optim.optimizer_from_defaults(o.optimizer, lr_d, b1=o.betas[0], b2=o.betas[1])
    if config.loss.clip is not None:
        d = optax.chain(d, optim.clip_weights(config.loss.clip))
    return g, d


def _rampdown(
    config: Config, phase: schedule.Phase | None, lr: float, batches_per_update: int
) -> optax.Schedule:
    """``lr`` as a schedule of update counts: constant, or in the last phase the half-cosine
    ramp to 0 over the run's last ``lr_rampdown_kimg`` kimg (all of the phase if shorter)."""
    last = schedule.for_config(config).phases()[-1]
    if phase is None:
        phase = last
    if phase.end != last.end:
        return lambda count: jnp.full((), lr, jnp.float32)
    images_per_update = phase.batch_size * batches_per_update
    ramp = min(round(config.optim.lr_rampdown_kimg * 1000), phase.end - phase.start)
    ramp_start = phase.end - ramp

    def rate(count: jax.Array) -> jax.Array:
        images = phase.start + count.astype(jnp.float32) * images_per_update
        t = jnp.clip((images - ramp_start) / ramp, 0.0, 1.0)
        return lr * 0.5 * (1.0 + jnp.cos(jnp.pi * t))

    return rate


def sample_shape(config: Config, native_resolution: int | None, channels: int) -> tuple[int, ...]:
    """One generated sample's shape: (2,) for toys, else (R, R, C) with R the schedule's last
    resolution (progressive) or the data's native one."""
    if config.is_toy:
        return (2,)
    res = config.schedule.stage_schedule[-1] if config.progressive else native_resolution
    return (int(res), int(res), int(channels))


def models(config: Config, shape: tuple[int, ...], seed: int) -> tuple[nnx.Module, nnx.Module]:
    """Generator and critic for one sample of ``shape`` ((2,) or (H, W, C))."""
    m = config.model
    rngs = nnx.Rngs(seed)
    if m.model == "mlp":
        from jaxgan.models.mlp import MLPCritic, MLPGenerator

        output = "linear" if config.is_toy else "tanh"
        g = MLPGenerator(m.latent_dim, shape, hidden=m.hidden, output=output, rngs=rngs)
        d = MLPCritic(shape, hidden=m.hidden, norm=m.critic_norm, rngs=rngs)
        return g, d
    res, channels = shape[0], shape[-1]
    if m.model == "dcgan":
        from jaxgan.models.dcgan import DCGANCritic, DCGANGenerator

        g = DCGANGenerator(res, channels, m.latent_dim, base_width=m.width, rngs=rngs)
        d = DCGANCritic(res, channels, norm=m.critic_norm, base_width=m.width, rngs=rngs)
        return g, d
    from jaxgan.models.progressive import ProgressiveCritic, ProgressiveGenerator

    dtype = jnp.bfloat16 if m.dtype == "bfloat16" else None
    kw = dict(channels=channels, fmap_base=m.fmap_base, fmap_max=m.fmap_max, dtype=dtype)
    g = ProgressiveGenerator(res, latent_dim=m.latent_dim, rngs=rngs, **kw)
    d = ProgressiveCritic(res, mbstd_group_size=m.mbstd_group, rngs=rngs, **kw)
    return g, d


def apply_fn(resolution: int | None, fading: bool) -> step.ApplyFn:
    """``apply(module, x, alpha)`` for a phase: progressive networks at a static resolution."""
    if resolution is None:
        return step.plain_apply

    def apply(module: nnx.Module, x: jax.Array, alpha: jax.Array) -> jax.Array:
        return module(x, resolution, alpha if fading else None)

    return apply


def init_state(
    config: Config, shape: tuple[int, ...], mesh: Mesh
) -> tuple[step.TrainState, nnx.GraphDef, nnx.GraphDef]:
    """The initial train state (replicated over ``mesh``) and the two graphdefs."""
    seed = config.output.seed
    g, d = models(config, shape, seed)
    g_tx, d_tx = optimizers(config, schedule.for_config(config).phase_at(0))
    state, g_def, d_def = step.init_train_state(
        g, d, g_tx, d_tx, jax.random.key(seed + 1), ema=config.optim.ema > 0
    )
    return parallel.replicate(state, mesh), g_def, d_def


def reset_optimizers(
    config: Config, state: step.TrainState, phase: schedule.Phase, mesh: Mesh
) -> step.TrainState:
    """Fresh optimizer states (PGGAN resets Adam when a fade and a stabilisation start)."""
    g_tx, d_tx = optimizers(config, phase)
    return state.replace(
        g_opt=parallel.replicate(g_tx.init(state.g_params), mesh),
        d_opt=parallel.replicate(d_tx.init(state.d_params), mesh),
    )


def train_step(
    config: Config, g_def: nnx.GraphDef, d_def: nnx.GraphDef, phase: schedule.Phase | None = None
) -> Callable:
    """The pure step of a phase (None: a plain run's one phase; see
    :func:`jaxgan.training.step.make_train_step`)."""
    from jaxgan.models.layers import fade_reals

    g_tx, d_tx = optimizers(config, phase)
    fading = phase is not None and phase.fading
    apply = apply_fn(phase.resolution if phase is not None else None, fading)
    return step.make_train_step(
        g_def, d_def, objective(config), g_tx, d_tx,
        latent_dim=config.model.latent_dim, ema_decay=config.optim.ema,
        g_apply=apply, d_apply=apply, real_transform=fade_reals if fading else None,
    )  # fmt: skip


def critic_fn(d_def: nnx.GraphDef, state: Any, phase: Any) -> Callable[[Any], np.ndarray]:
    """The critic of ``state`` at ``phase`` in inference mode: (N, ...) samples -> (N,) scores."""
    d = nnx.merge(d_def, state.d_params, state.d_rest)
    d.eval()
    apply, alpha = apply_fn(phase.resolution, phase.fading), jnp.float32(phase.alpha)
    return lambda x: np.asarray(
        jax.device_get(apply(d, jnp.asarray(x, jnp.float32), alpha))
    ).reshape(len(x))


def jit_step(fn: Callable, state: Any, mesh: Mesh) -> Callable:
    """``fn`` jitted with the state replicated over ``mesh`` and donated."""
    sharding = parallel.tree_shardings(state, mesh)
    return jax.jit(fn, out_shardings=(sharding, None), donate_argnums=0)


def sampler(g_def: nnx.GraphDef, resolution: int | None, fading: bool) -> Callable:
    """jitted ``sample(params, rest, z, alpha) -> images`` in inference mode."""
    apply = apply_fn(resolution, fading)
    return jax.jit(
        lambda params, rest, z, alpha: step.generate(g_def, params, rest, z, alpha, apply)
    )


def sample(fn: Callable, config: Config, state: Any, z: Any, alpha: float) -> np.ndarray:
    """``fn`` (a :func:`sampler`) on ``state``'s generator (its EMA when the run keeps one)."""
    params = state.ema if config.optim.ema > 0 else state.g_params
    return np.asarray(jax.device_get(fn(params, state.g_rest, jnp.asarray(z, jnp.float32), np.float32(alpha))))  # fmt: skip
