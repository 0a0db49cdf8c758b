"""Critic regularisers as pure functions of a critic callable and arrays.

``critic_fn`` maps a batch ``(B, ...)`` of any rank to scores ``(B,)`` or ``(B, 1)``. Gradients are
taken with ``jax.grad`` of the *summed* scores, as the official WGAN-GP and PGGAN code do. That sum
gives each sample's own input gradient only when the critic does not couple the samples of a batch:
**no BatchNorm in a penalised critic** (LayerNorm or no normalisation is fine). PGGAN's
minibatch-stddev layer couples samples too; the official code accepts that, and so do we.

All results are scalars (means over the batch) in float32 for bf16/f16/f32 inputs (float64 stays
float64, for reference checks).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

CriticFn = Callable[[jax.Array], jax.Array]


def _compute_dtype(dtype: jnp.dtype) -> jnp.dtype:
    """float32 for bf16/f16/f32 inputs; float64 stays float64."""
    return jnp.promote_types(dtype, jnp.float32)


def _summed_scores(critic_fn: CriticFn) -> Callable[[jax.Array], jax.Array]:
    def total(x: jax.Array) -> jax.Array:
        scores = critic_fn(x)
        if scores.ndim == 2 and scores.shape[1] == 1:
            scores = scores[:, 0]
        if scores.ndim != 1 or scores.shape[0] != x.shape[0]:
            raise ValueError(
                f"critic_fn must map a batch of {x.shape[0]} to scores of shape ({x.shape[0]},) "
                f"or ({x.shape[0]}, 1); got {scores.shape}."
            )
        return jnp.sum(scores.astype(_compute_dtype(scores.dtype)))

    return total


def _safe_norm(sq: jax.Array) -> jax.Array:
    """sqrt with a zero (not NaN) derivative at 0, so double backprop stays finite."""
    positive = sq > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)


def per_sample_grad_sq_norms(critic_fn: CriticFn, x: jax.Array) -> jax.Array:
    """Squared L2 norm of the critic's input gradient, per sample: ``(B,)`` float32.

    The norm runs over every non-batch axis (a known bug in ports is ``norm(dim=1)`` on 4-D input).
    """
    grads = jax.grad(_summed_scores(critic_fn))(x)
    g = grads.astype(_compute_dtype(grads.dtype)).reshape(grads.shape[0], -1)
    return jnp.sum(g * g, axis=1)


def _epsilon(
    batch: int, key: jax.Array | None, epsilon: jax.Array | None, dtype: jnp.dtype
) -> jax.Array:
    """The per-sample ε ``(batch,)``: drawn U[0, 1) from ``key``, or ``epsilon`` as given."""
    if (key is None) == (epsilon is None):
        raise ValueError(
            "give exactly one of key (a PRNG key to draw ε ~ U[0, 1) from) and epsilon "
            f"(an array of shape ({batch},) with values in [0, 1)); got "
            f"key={'None' if key is None else 'a key'}, "
            f"epsilon={'None' if epsilon is None else 'an array'}."
        )
    if epsilon is None:
        return jax.random.uniform(key, (batch,), dtype=dtype)
    epsilon = jnp.asarray(epsilon)
    if epsilon.shape != (batch,):
        raise ValueError(
            f"epsilon must have shape ({batch},), one value per sample; got {epsilon.shape}."
        )
    return epsilon.astype(dtype)


def interpolates(
    real: jax.Array,
    fake: jax.Array,
    key: jax.Array | None = None,
    *,
    epsilon: jax.Array | None = None,
) -> jax.Array:
    """x̂ = ε·real + (1 − ε)·fake with ε ~ U[0, 1), one scalar per sample: shape of ``real``.

    ε is drawn from ``key``, or passed as ``epsilon`` ``(B,)`` (a train step that draws every
    random number of the step in one call does this). Exactly one of the two must be given.
    """
    if real.shape != fake.shape:
        raise ValueError(
            f"real and fake must have the same shape, got {real.shape} and {fake.shape}."
        )
    dtype = _compute_dtype(real.dtype)
    eps = _epsilon(real.shape[0], key, epsilon, dtype)
    eps = eps.reshape((real.shape[0],) + (1,) * (real.ndim - 1))
    mixed = eps * real.astype(dtype) + (1.0 - eps) * fake.astype(dtype)
    return mixed.astype(real.dtype)


def gradient_penalty_and_norms(
    critic_fn: CriticFn,
    real: jax.Array,
    fake: jax.Array,
    key: jax.Array | None = None,
    *,
    epsilon: jax.Array | None = None,
    target: float = 1.0,
    one_sided: bool = False,
) -> tuple[jax.Array, jax.Array]:
    """WGAN-GP penalty and the per-sample gradient norms at x̂ (for logging, no 2nd backward pass).

    Returns ``(penalty, norms)``: penalty = E[(‖∇f(x̂)‖₂ − target)²] (one-sided:
    E[max(0, ‖∇f(x̂)‖₂ − target)²]), a float32 scalar; norms ``(B,)`` float32.
    Gulrajani et al. 2017, Algorithm 1; PGGAN uses target γ and weight λ/γ². ε comes from
    ``key`` or ``epsilon`` as in :func:`interpolates`.
    """
    x_hat = interpolates(real, fake, key, epsilon=epsilon)
    norms = _safe_norm(per_sample_grad_sq_norms(critic_fn, x_hat))
    gap = norms - target
    if one_sided:
        gap = jnp.maximum(gap, 0.0)
    return jnp.mean(gap * gap), norms


def gradient_penalty(
    critic_fn: CriticFn,
    real: jax.Array,
    fake: jax.Array,
    key: jax.Array | None = None,
    *,
    epsilon: jax.Array | None = None,
    target: float = 1.0,
    one_sided: bool = False,
) -> jax.Array:
    """The WGAN-GP term E[(‖∇f(x̂)‖₂ − target)²] at real/fake interpolates (float32 scalar).

    ``real`` and ``fake``: ``(B, ...)`` of the same shape; ``key``: a PRNG key for ε, or
    ``epsilon``: ε itself, ``(B,)`` in [0, 1).
    See :func:`gradient_penalty_and_norms` to get the per-sample norms as well.
    """
    penalty, _ = gradient_penalty_and_norms(
        critic_fn, real, fake, key, epsilon=epsilon, target=target, one_sided=one_sided
    )
    return penalty


def drift_penalty(real_scores: jax.Array) -> jax.Array:
    """PGGAN's drift term E[D(x_real)²], which keeps critic scores near zero (float32 scalar)."""
    s = real_scores.astype(_compute_dtype(real_scores.dtype))
    return jnp.mean(s * s)


def r1_penalty(critic_fn: CriticFn, real: jax.Array) -> jax.Array:
    """R1 (Mescheder et al. 2018): E[‖∇f(x_real)‖²] (no γ/2 factor: apply it as the weight)."""
    return jnp.mean(per_sample_grad_sq_norms(critic_fn, real))


def r2_penalty(critic_fn: CriticFn, fake: jax.Array) -> jax.Array:
    """R2 (Mescheder et al. 2018): E[‖∇f(x_fake)‖²] (no γ/2 factor: apply it as the weight)."""
    return jnp.mean(per_sample_grad_sq_norms(critic_fn, fake))
