"""GAN objectives as pure functions of logits / critic scores, and a registry of named objectives.

Every loss takes scores of shape ``(B,)`` or ``(B, 1)`` in any float dtype and returns a float32
scalar (float64 for float64 input), the mean over the batch. Computations run in float32 (bf16
inputs are upcast) and use
``softplus`` on logits, never ``log(sigmoid(x))``, so they stay finite for logits of ±1e4.

Importing this module pulls in only jax, optax and chex (no data, checkpoint or model code).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxgan.penalties import (
    drift_penalty,
    gradient_penalty,
    gradient_penalty_and_norms,
    interpolates,
    per_sample_grad_sq_norms,
    r1_penalty,
    r2_penalty,
)

__all__ = [
    "OBJECTIVES",
    "Objective",
    "drift_penalty",
    "get",
    "gradient_penalty",
    "gradient_penalty_and_norms",
    "hinge_discriminator_loss",
    "hinge_generator_loss",
    "interpolates",
    "least_squares_discriminator_loss",
    "least_squares_generator_loss",
    "minimax_discriminator_loss",
    "minimax_generator_loss",
    "nonsaturating_generator_loss",
    "per_sample_grad_sq_norms",
    "r1_penalty",
    "r2_penalty",
    "wasserstein_critic_loss",
    "wasserstein_estimate",
    "wasserstein_generator_loss",
]


def _scores(x: jax.Array, name: str) -> jax.Array:
    """Validate ``(B,)`` / ``(B, 1)`` (or a scalar under vmap) and return float32 ``(B,)``."""
    x = jnp.asarray(x)
    if x.ndim == 2 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim > 1:
        raise ValueError(f"{name} must have shape (B,) or (B, 1), got {x.shape}.")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"{name} must be a float array, got dtype {x.dtype}.")
    return x.astype(jnp.promote_types(x.dtype, jnp.float32))


# --- Minimax GAN (Goodfellow et al. 2014) --------------------------------------------------


def minimax_discriminator_loss(
    real_logits: jax.Array, fake_logits: jax.Array, *, label_smoothing: float = 0.0
) -> jax.Array:
    """−E[log D(x)] − E[log(1 − D(G(z)))] = E[softplus(−l_real)] + E[softplus(l_fake)].

    ``label_smoothing`` s (one-sided, default 0) uses the target 1 − s for real samples.
    """
    r = _scores(real_logits, "real_logits")
    f = _scores(fake_logits, "fake_logits")
    t = 1.0 - label_smoothing
    real_term = t * jax.nn.softplus(-r) + (1.0 - t) * jax.nn.softplus(r)
    return jnp.mean(real_term) + jnp.mean(jax.nn.softplus(f))


def minimax_generator_loss(fake_logits: jax.Array) -> jax.Array:
    """The saturating generator loss E[log(1 − D(G(z)))] = −E[softplus(l_fake)]."""
    return -jnp.mean(jax.nn.softplus(_scores(fake_logits, "fake_logits")))


def nonsaturating_generator_loss(fake_logits: jax.Array) -> jax.Array:
    """The non-saturating generator loss −E[log D(G(z))] = E[softplus(−l_fake)]."""
    return jnp.mean(jax.nn.softplus(-_scores(fake_logits, "fake_logits")))


# --- Wasserstein (Arjovsky et al. 2017) ----------------------------------------------------


def wasserstein_critic_loss(real_scores: jax.Array, fake_scores: jax.Array) -> jax.Array:
    """E[f(fake)] − E[f(real)] (the critic minimises it)."""
    return jnp.mean(_scores(fake_scores, "fake_scores")) - jnp.mean(
        _scores(real_scores, "real_scores")
    )


def wasserstein_generator_loss(fake_scores: jax.Array) -> jax.Array:
    """−E[f(G(z))]."""
    return -jnp.mean(_scores(fake_scores, "fake_scores"))


def wasserstein_estimate(real_scores: jax.Array, fake_scores: jax.Array) -> jax.Array:
    """E[f(real)] − E[f(fake)]: the critic's estimate of W(P_r, P_g), to be logged."""
    return -wasserstein_critic_loss(real_scores, fake_scores)


# --- Hinge and least squares ----------------------------------------------------------------


def hinge_discriminator_loss(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
    """E[relu(1 − l_real)] + E[relu(1 + l_fake)]."""
    r = _scores(real_logits, "real_logits")
    f = _scores(fake_logits, "fake_logits")
    return jnp.mean(jax.nn.relu(1.0 - r)) + jnp.mean(jax.nn.relu(1.0 + f))


def hinge_generator_loss(fake_logits: jax.Array) -> jax.Array:
    """−E[l_fake]."""
    return -jnp.mean(_scores(fake_logits, "fake_logits"))


def least_squares_discriminator_loss(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
    """LSGAN (Mao et al. 2017, a=0, b=1): ½E[(l_real − 1)²] + ½E[l_fake²]."""
    r = _scores(real_logits, "real_logits")
    f = _scores(fake_logits, "fake_logits")
    return 0.5 * jnp.mean((r - 1.0) ** 2) + 0.5 * jnp.mean(f**2)


def least_squares_generator_loss(fake_logits: jax.Array) -> jax.Array:
    """LSGAN generator (c=1): ½E[(l_fake − 1)²]."""
    return 0.5 * jnp.mean((_scores(fake_logits, "fake_logits") - 1.0) ** 2)


# --- Registry of named objectives -----------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class OptimizerDefaults:
    """The paper's optimizer for one objective: ``name`` is "adam" or "rmsprop"."""

    name: str
    learning_rate: float
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8


@dataclasses.dataclass(frozen=True)
class Objective:
    """A named GAN objective: losses, penalties with their weights, clipping, paper defaults.

    ``critic_loss(real_scores, fake_scores)`` and ``generator_loss(fake_scores)`` are the pure
    losses above. ``gp_weight`` λ multiplies the gradient penalty (with ``gp_target`` γ the term is
    scaled by λ/γ² as in PGGAN), ``drift_weight`` the drift term. ``clip`` is the weight-clipping
    bound c (``None``: no clipping). Use ``dataclasses.replace`` to change a field.
    """

    name: str
    critic_loss: Callable[[jax.Array, jax.Array], jax.Array]
    generator_loss: Callable[[jax.Array], jax.Array]
    optimizer: OptimizerDefaults
    n_critic: int = 1
    gp_weight: float = 0.0
    gp_target: float = 1.0
    gp_one_sided: bool = False
    drift_weight: float = 0.0
    clip: float | None = None

    def penalty_scale(self) -> float:
        """The factor on E[(‖∇‖ − γ)²]: λ/γ² (= λ for γ = 1)."""
        return self.gp_weight / (self.gp_target**2)


_GAN_ADAM = OptimizerDefaults("adam", 2e-4, b1=0.5, b2=0.999)

OBJECTIVES: dict[str, Objective] = {
    o.name: o
    for o in (
        # Minimax GAN with the saturating generator loss (Goodfellow et al. 2014).
        Objective("gan", minimax_discriminator_loss, minimax_generator_loss, _GAN_ADAM),
        Objective("nsgan", minimax_discriminator_loss, nonsaturating_generator_loss, _GAN_ADAM),
        # WGAN with weight clipping (Arjovsky et al. 2017).
        Objective(
            "wgan",
            wasserstein_critic_loss,
            wasserstein_generator_loss,
            OptimizerDefaults("rmsprop", 5e-5),
            n_critic=5,
            clip=0.01,
        ),
        # WGAN-GP (Gulrajani et al. 2017, Algorithm 1).
        Objective(
            "wgan-gp",
            wasserstein_critic_loss,
            wasserstein_generator_loss,
            OptimizerDefaults("adam", 1e-4, b1=0.0, b2=0.9),
            n_critic=5,
            gp_weight=10.0,
        ),
        # Hinge (Lim & Ye 2017; Miyato et al. 2018) and least squares (Mao et al. 2017).
        Objective("hinge", hinge_discriminator_loss, hinge_generator_loss, _GAN_ADAM),
        Objective(
            "lsgan", least_squares_discriminator_loss, least_squares_generator_loss, _GAN_ADAM
        ),
    )
}


def get(name: str) -> Objective:
    """The objective registered under ``name``; ValueError listing the valid names otherwise."""
    try:
        return OBJECTIVES[name]
    except (KeyError, TypeError):
        valid = ", ".join(sorted(OBJECTIVES))
        raise ValueError(f"unknown loss {name!r}; valid names: {valid}.") from None
