"""Optimizers for GANs: WGAN weight clipping as an optax transform, and the papers' optimizers.

``clip_weights(c)`` goes **last** in an optax chain. It rewrites the incoming updates so that
``params + updates`` is the projection of the unclipped step onto the box [−c, c]: it clips the
*parameters*, not the updates (``optax.clip`` clips updates; that is not weight clipping). This is
the "clip after each critic step" form of the WGAN-GP code and most ports.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxgan.losses import Objective

#: The optimizers :func:`optimizer_from_defaults` builds by name (the papers': Adam, WGAN's RMSProp).
OPTIMIZERS = ("adam", "rmsprop")


class ClipWeightsState(NamedTuple):
    """Weight clipping keeps no state."""


def _bound_in(dtype: Any, c: float) -> jax.Array:
    """The largest value of ``dtype`` that is <= c, so a clipped leaf never exceeds c itself."""
    bound = np.asarray(c, dtype=dtype)
    while float(bound) > c:
        bound = np.nextafter(bound, np.asarray(0, dtype=dtype))
    return jnp.asarray(bound, dtype)


def _project_update(u: jax.Array, p: jax.Array, c: float) -> jax.Array:
    c = _bound_in(p.dtype, c)
    target = jnp.clip(p + u, -c, c)
    new_u = target - p
    # p + (target - p) can round one ulp outside the box; step the update inward until it lands.
    # One step per pass, toward -inf above the box and +inf below it.
    for _ in range(2):
        landed = p + new_u
        inward = jnp.where(landed > 0, -jnp.inf, jnp.inf).astype(new_u.dtype)
        new_u = jnp.where(jnp.abs(landed) > c, jnp.nextafter(new_u, inward), new_u)
    return new_u.astype(u.dtype)


def clip_weights(c: float, mask: Any = None) -> optax.GradientTransformation:
    """WGAN weight clipping: the emitted updates land every selected parameter in [−c, c].

    Args:
      c: the bound, > 0 (the WGAN paper uses 0.01).
      mask: optional pytree of booleans (or a callable of params returning one) selecting the
        parameters to clip, as in ``optax.masked``; default: every parameter, biases and
        normalisation scales included, as in the paper.

    Use it last in a chain, e.g. ``optax.chain(optax.rmsprop(5e-5), clip_weights(0.01))``.
    ``update`` must be called with ``params``.
    """
    if not isinstance(c, (int, float)) or isinstance(c, bool) or not c > 0:
        raise ValueError(f"clip_weights: c must be a positive number, got {c!r}.")
    c = float(c)

    def init_fn(params: Any) -> ClipWeightsState:
        del params
        return ClipWeightsState()

    def update_fn(updates: Any, state: ClipWeightsState, params: Any = None):
        if params is None:
            raise ValueError(
                "clip_weights needs the current parameters: call update(updates, state, params). "
                "It clips parameters, so it cannot work on updates alone."
            )
        new_updates = jax.tree.map(lambda u, p: _project_update(u, p, c), updates, params)
        return new_updates, state

    tx = optax.GradientTransformation(init_fn, update_fn)
    return optax.masked(tx, mask) if mask is not None else tx


class SkipAwareTransformation(optax.GradientTransformationExtraArgs):
    """An optax transformation whose ``update(g, state, params, ok=ok)`` returns the state as it
    was where ``ok`` is False (a skipped step), so that its caller selects only the parameters."""


def adam(learning_rate: float | optax.Schedule, b1: float = 0.9, b2: float = 0.999,
         eps: float = 1e-8) -> SkipAwareTransformation:  # fmt: skip
    """``optax.adam`` (its state; its arithmetic, bit for bit when jitted alone) with the moments
    written once, before the step reads them.

    With optax's own Adam, XLA recomputes the new moments from the old ones inside the fusion
    that updates the parameters, so every old moment must outlive its in-place update and is
    copied first (an extra read and write of the whole optimizer state per update). An
    ``optimization_barrier`` between the moments and the step keeps them computed once. ``ok``
    (default True) is the train step's skip flag: where it is False the count and moments stay.
    """
    init = optax.adam(learning_rate, b1=b1, b2=b2, eps=eps).init

    def update_fn(g: Any, state: Any, params: Any = None, *, ok: Any = True, **extra: Any):
        del params, extra

        def keep(new: Any, old: Any) -> Any:
            return jax.tree.map(lambda n, o: jnp.where(ok, n, o), new, old)

        moments, rate = state
        count = optax.safe_increment(moments.count)
        mu = keep(optax.tree.update_moment(g, moments.mu, b1, 1), moments.mu)
        nu = keep(optax.tree.update_moment_per_elem_norm(g, moments.nu, b2, 2), moments.nu)
        mu, nu = jax.lax.optimization_barrier((mu, nu))
        mu_hat, nu_hat = optax.tree.bias_correction(mu, b1, count), optax.tree.bias_correction(nu, b2, count)  # fmt: skip
        u = jax.tree.map(lambda m, v: m / (jnp.sqrt(v + 0.0) + eps), mu_hat, nu_hat)  # + eps_root
        if callable(learning_rate):  # optax.scale_by_schedule: the rate at the count before
            u = jax.tree.map(lambda x: jnp.array(-learning_rate(rate.count), x.dtype) * x, u)
            rate = rate._replace(count=keep(optax.safe_increment(rate.count), rate.count))
        else:
            u = jax.tree.map(lambda x: x * -learning_rate, u)
        return u, (moments._replace(count=keep(count, moments.count), mu=mu, nu=nu), rate)

    return SkipAwareTransformation(init, update_fn)


def optimizer_from_defaults(
    name: str,
    learning_rate: float | optax.Schedule,
    *,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
) -> optax.GradientTransformation:
    """Adam or RMSProp by name (optax's RMSProp: decay 0.9, eps 1e-8 inside the sqrt); the rate a
    number or a schedule of the update count."""
    if not callable(learning_rate) and learning_rate <= 0:
        raise ValueError(f"learning rate must be positive, got {learning_rate}.")
    if name == "adam":
        return adam(learning_rate, b1=b1, b2=b2, eps=eps)
    if name == "rmsprop":
        return optax.rmsprop(learning_rate, decay=0.9, eps=eps)
    raise ValueError(f"unknown optimizer {name!r}; valid names: {', '.join(OPTIMIZERS)}.")


def paper_optimizers(
    objective: Objective,
    *,
    lr_g: float | None = None,
    lr_d: float | None = None,
    betas: tuple[float, float] | None = None,
    clip: float | None = None,
) -> tuple[optax.GradientTransformation, optax.GradientTransformation]:
    """(generator_tx, critic_tx) with the objective's paper defaults, optionally overridden.

    The critic's chain ends in :func:`clip_weights` when the objective clips (``clip`` overrides
    the bound). wgan: RMSProp 5e-5, clip 0.01; wgan-gp: Adam 1e-4, β (0, 0.9); gan/nsgan/hinge/
    lsgan: Adam 2e-4, β (0.5, 0.999).
    """
    d = objective.optimizer
    b1, b2 = betas if betas is not None else (d.b1, d.b2)
    gen = optimizer_from_defaults(
        d.name, lr_g if lr_g is not None else d.learning_rate, b1=b1, b2=b2, eps=d.eps
    )
    critic = optimizer_from_defaults(
        d.name, lr_d if lr_d is not None else d.learning_rate, b1=b1, b2=b2, eps=d.eps
    )
    bound = clip if clip is not None else objective.clip
    if bound is not None:
        critic = optax.chain(critic, clip_weights(bound))
    return gen, critic
