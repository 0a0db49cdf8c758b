"""The GAN train step: a pure function over a state pytree, compiled once with ``jax.jit``.

One call runs ``n_critic`` critic updates — each on a fresh real batch from a stacked
``[n_critic, B, ...]`` batch and fresh noise — then one generator update, and the generator EMA.
Models are Flax NNX modules split into (graphdef, params, rest); the step merges them inside the
trace, so nothing is mutated outside it. Losses, penalties and weight clipping come from a
:class:`jaxgan.losses.Objective` and the optax transforms (clipping is in the critic's chain).

Non-finite guard: an update whose loss or gradients are not finite is skipped (that network's
parameters, optimizer state and batch statistics stay as they were) and counted; ``streak`` counts
consecutive train steps that skipped anything, for the run loop to stop on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax
from flax import nnx

from jaxgan import losses as losses_lib
from jaxgan import optim, penalties

# apply(module, x, alpha) -> output. alpha is the traced fade-in coefficient (ignored by
# non-progressive models).
ApplyFn = Callable[[nnx.Module, jax.Array, jax.Array], jax.Array]
RealTransform = Callable[[jax.Array, jax.Array], jax.Array]

#: ``make_train_step(critic_loop=...)``: "auto" lowers "unroll" for ``cpu`` and "scan" elsewhere.
CRITIC_LOOPS = ("auto", "unroll", "scan")


def plain_apply(module: nnx.Module, x: jax.Array, alpha: jax.Array) -> jax.Array:
    """Call a non-progressive model, ignoring alpha."""
    del alpha
    return module(x)


@flax.struct.dataclass
class TrainState:
    """Everything a step reads and writes. All leaves are arrays (replicated over the mesh).

    ``g_params``/``d_params``: nnx.Param states; ``g_rest``/``d_rest``: other variables (BatchNorm
    statistics). ``ema``: EMA of the generator's params (an empty dict when EMA is off).
    ``key``: raw uint32 PRNG key data. ``step``: train steps done. ``skipped``: total skipped updates.
    ``streak``: consecutive steps with a skipped update.
    """

    g_params: Any
    g_rest: Any
    d_params: Any
    d_rest: Any
    g_opt: Any
    d_opt: Any
    ema: Any
    key: jax.Array
    step: jax.Array
    skipped: jax.Array
    streak: jax.Array


def split_model(model: nnx.Module) -> tuple[nnx.GraphDef, nnx.State, nnx.State]:
    """(graphdef, params, rest) of an NNX module."""
    return nnx.split(model, nnx.Param, ...)


def init_train_state(
    generator: nnx.Module,
    critic: nnx.Module,
    g_tx: optax.GradientTransformation,
    d_tx: optax.GradientTransformation,
    key: jax.Array,
    *,
    ema: bool = False,
) -> tuple[TrainState, nnx.GraphDef, nnx.GraphDef]:
    """The initial state and the two graphdefs. ``key``: a PRNG key for the step's randomness."""
    g_def, g_params, g_rest = split_model(generator)
    d_def, d_params, d_rest = split_model(critic)
    state = TrainState(
        g_params=g_params,
        g_rest=g_rest,
        d_params=d_params,
        d_rest=d_rest,
        g_opt=g_tx.init(g_params),
        d_opt=d_tx.init(d_params),
        ema=jax.tree.map(jnp.copy, g_params) if ema else {},
        key=jax.random.key_data(key),
        step=jnp.zeros((), jnp.int32),
        skipped=jnp.zeros((), jnp.int32),
        streak=jnp.zeros((), jnp.int32),
    )
    return state, g_def, d_def


def _all_finite(tree: Any) -> jax.Array:
    """True iff every element of every leaf is finite (one and-reduction per leaf)."""
    leaves = jax.tree.leaves(tree)
    if not leaves:
        return jnp.array(True)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


def _select(ok: jax.Array, new: Any, old: Any) -> Any:
    """``new`` where ``ok`` else ``old``, leaf by leaf."""
    return jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, old)


def _update(tx: Any, grads: Any, opt: Any, params: Any, ok: jax.Array) -> tuple[Any, Any]:
    """(params, optimizer state) after one update of ``tx``, or as they were where not ``ok``."""
    if isinstance(tx, optim.SkipAwareTransformation):
        updates, new_opt = tx.update(grads, opt, params, ok=ok)
        return _select(ok, optax.apply_updates(params, updates), params), new_opt
    updates, new_opt = tx.update(grads, opt, params)
    return _select(ok, (optax.apply_updates(params, updates), new_opt), (params, opt))


def _run(graphdef: nnx.GraphDef, params: Any, rest: Any, fn: Callable, *args) -> tuple[Any, Any]:
    """Merge a module, call ``fn(module, *args)``, return (output, the module's new rest state)."""
    module = nnx.merge(graphdef, params, rest, copy=True)
    out = fn(module, *args)
    _, _, new_rest = split_model(module)
    return out, new_rest


def make_train_step(
    g_graphdef: nnx.GraphDef,
    d_graphdef: nnx.GraphDef,
    objective: losses_lib.Objective,
    g_tx: optax.GradientTransformation,
    d_tx: optax.GradientTransformation,
    *,
    latent_dim: int,
    ema_decay: float = 0.0,
    g_apply: ApplyFn = plain_apply,
    d_apply: ApplyFn = plain_apply,
    real_transform: RealTransform | None = None,
    critic_loop: str = "auto",
) -> Callable[[TrainState, jax.Array, jax.Array], tuple[TrainState, dict[str, jax.Array]]]:
    """Build ``step(state, reals, alpha) -> (state, metrics)`` (pure; jit it with the mesh).

    ``reals``: ``(n_critic, B, ...)`` real samples, one batch per critic update; ``alpha``: a float32
    scalar passed to ``g_apply``/``d_apply``/``real_transform`` (the fade-in coefficient).
    ``critic_loop``: how the n_critic updates run — "unroll" (n_critic copies: XLA:CPU runs
    convolutions inside a loop body on a slow path), "scan" (one ``lax.scan``: shorter compiles,
    and what GPUs and TPUs run) or "auto" (the default): both, through
    ``lax.platform_dependent``, so the choice is made per *lowering* platform — a ``cpu``
    lowering holds only the unrolled form, a ``cuda``/``rocm``/``tpu`` one only the scan — and one
    traced step exports for either (``jax.export``), whatever backend traced it. The price is
    tracing the critic update n_critic + 1 times. The noise batches and the penalty's ε of a
    whole step are drawn at its start, one draw per kind.
    ``metrics``: float32 scalars — critic and generator loss, W estimate (E[f(real)] − E[f(fake)]),
    each penalty term, gradient norms at x̂, mean real and fake scores, skipped updates; and
    ``streak`` (int32), the consecutive steps with a skipped update, for the loop to stop on.
    """
    gp_scale = objective.penalty_scale()
    use_gp = objective.gp_weight > 0
    use_drift = objective.drift_weight > 0
    if critic_loop not in CRITIC_LOOPS:
        raise ValueError(f"critic_loop must be one of {CRITIC_LOOPS}, got {critic_loop!r}.")

    def critic_loss(d_params, d_rest, x_real, fake, eps, alpha):
        d_module = nnx.merge(d_graphdef, d_params, d_rest, copy=True)
        s_real = d_apply(d_module, x_real, alpha)
        s_fake = d_apply(d_module, fake, alpha)
        loss = objective.critic_loss(s_real, s_fake)
        aux = {
            "critic_loss": loss,
            "w_estimate": losses_lib.wasserstein_estimate(s_real, s_fake),
            "real_score": jnp.mean(s_real.astype(jnp.float32)),
            "fake_score": jnp.mean(s_fake.astype(jnp.float32)),
        }
        if use_gp:
            gp, norms = penalties.gradient_penalty_and_norms(
                lambda x: d_apply(d_module, x, alpha),
                x_real,
                fake,
                epsilon=eps,
                target=objective.gp_target,
                one_sided=objective.gp_one_sided,
            )
            loss = loss + gp_scale * gp
            aux.update(gp=gp, grad_norm=jnp.mean(norms), grad_norm_max=jnp.max(norms))
        if use_drift:
            drift = penalties.drift_penalty(s_real)
            loss = loss + objective.drift_weight * drift
            aux["drift"] = drift
        _, _, new_rest = split_model(d_module)
        aux["critic_total"] = loss
        return loss, (aux, new_rest)

    def generator_loss(g_params, g_rest, d_params, d_rest, z, alpha):
        fake, new_g_rest = _run(g_graphdef, g_params, g_rest, g_apply, z, alpha)
        scores, _ = _run(d_graphdef, d_params, d_rest, d_apply, fake, alpha)
        return objective.generator_loss(scores), new_g_rest

    def step(state: TrainState, reals: jax.Array, alpha: jax.Array):
        alpha = jnp.asarray(alpha, jnp.float32)
        n_critic, batch = reals.shape[0], reals.shape[1]
        key = jax.random.wrap_key_data(state.key)
        key, k_z, k_eps = jax.random.split(key, 3)
        zs = jax.random.normal(k_z, (n_critic + 1, batch, latent_dim), jnp.float32)
        if use_gp:
            eps = jax.random.uniform(k_eps, (n_critic, batch), jnp.float32)
        else:
            eps = jnp.zeros((n_critic, batch), jnp.float32)  # unused

        def critic_update(carry, inputs):
            d_params, d_rest, d_opt, g_rest, skipped = carry
            x_real, eps_k, z = inputs
            if real_transform is not None:
                x_real = real_transform(x_real, alpha)
            fake, new_g_rest = _run(g_graphdef, state.g_params, g_rest, g_apply, z, alpha)
            fake = jax.lax.stop_gradient(fake).astype(x_real.dtype)
            grad_fn = jax.value_and_grad(critic_loss, has_aux=True)
            (loss, (aux, new_d_rest)), grads = grad_fn(d_params, d_rest, x_real, fake, eps_k, alpha)
            ok = jnp.isfinite(loss) & _all_finite(grads)
            d_params, d_opt = _update(d_tx, grads, d_opt, d_params, ok)
            d_rest, g_rest = _select(ok, (new_d_rest, new_g_rest), (d_rest, g_rest))
            return (d_params, d_rest, d_opt, g_rest, skipped + (~ok).astype(jnp.int32)), aux

        def unrolled(carry, per_update):  # the CPU form: n_critic copies of the update
            auxes = []
            for i in range(n_critic):
                carry, aux = critic_update(carry, jax.tree.map(lambda x, i=i: x[i], per_update))
                auxes.append(aux)
            return carry, jax.tree.map(lambda *xs: jnp.stack(xs), *auxes)

        def scanned(carry, per_update):  # the accelerator form: one loop body
            return jax.lax.scan(critic_update, carry, per_update)

        carry = (state.d_params, state.d_rest, state.d_opt, state.g_rest, jnp.zeros((), jnp.int32))
        per_update = (reals, eps, zs[:n_critic])
        if critic_loop == "auto":  # both traced; each lowering keeps its platform's form
            carry, d_aux = jax.lax.platform_dependent(
                carry, per_update, cpu=unrolled, default=scanned
            )
        else:
            carry, d_aux = (unrolled if critic_loop == "unroll" else scanned)(carry, per_update)
        d_params, d_rest, d_opt, g_rest, d_skipped = carry
        metrics = jax.tree.map(jnp.mean, d_aux)

        (g_loss, new_g_rest), g_grads = jax.value_and_grad(generator_loss, has_aux=True)(
            state.g_params, g_rest, d_params, d_rest, zs[n_critic], alpha
        )
        g_ok = jnp.isfinite(g_loss) & _all_finite(g_grads)
        g_params, g_opt = _update(g_tx, g_grads, state.g_opt, state.g_params, g_ok)
        g_rest = _select(g_ok, new_g_rest, g_rest)
        ema = state.ema
        if ema_decay > 0:
            ema = jax.tree.map(lambda e, p: ema_decay * e + (1.0 - ema_decay) * p, ema, g_params)

        skipped_now = d_skipped + (~g_ok).astype(jnp.int32)
        streak = jnp.where(skipped_now > 0, state.streak + 1, 0)
        metrics.update(
            generator_loss=g_loss, skipped=skipped_now.astype(jnp.float32), streak=streak
        )
        new_state = TrainState(
            g_params=g_params,
            g_rest=g_rest,
            d_params=d_params,
            d_rest=d_rest,
            g_opt=g_opt,
            d_opt=d_opt,
            ema=ema,
            key=jax.random.key_data(key),
            step=state.step + 1,
            skipped=state.skipped + skipped_now,
            streak=streak,
        )
        return new_state, metrics

    return step


def generate(
    graphdef: nnx.GraphDef,
    params: Any,
    rest: Any,
    z: jax.Array,
    alpha: jax.Array | float = 1.0,
    apply: ApplyFn = plain_apply,
) -> jax.Array:
    """Samples from a generator in inference mode (BatchNorm uses its running averages)."""
    module = nnx.merge(graphdef, params, rest)
    module.eval()
    return apply(module, z, jnp.asarray(alpha, jnp.float32))
