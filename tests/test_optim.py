"""WGAN weight clipping as an optax transform, and the paper optimizers."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from jaxgan import losses
from jaxgan.optim import adam, clip_weights, paper_optimizers


def _params(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "dense": {
            "kernel": jnp.asarray(rng.normal(0, 0.5, (8, 4)), jnp.float32),
            "bias": jnp.asarray(rng.normal(0, 0.5, (4,)), jnp.float32),
        },
        "norm_scale": jnp.ones((4,), jnp.float32),
    }


def test_all_leaves_land_in_box_after_rmsprop_chain():
    c = 0.01
    tx = optax.chain(optax.rmsprop(5e-5), clip_weights(c))
    params = _params()
    state = tx.init(params)
    rng = np.random.default_rng(1)
    for _ in range(3):
        grads = jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), jnp.float32), params)
        updates, state = tx.update(grads, state, params)
        params = optax.apply_updates(params, updates)
        for leaf in jax.tree.leaves(params):
            assert float(jnp.max(jnp.abs(leaf))) <= c


def test_params_inside_the_box_move_exactly_as_without_clip():
    params = jax.tree.map(lambda p: p * 1e-3, _params(2))  # |p| << 0.01
    grads = jax.tree.map(lambda p: jnp.full_like(p, 0.3), params)
    plain = optax.rmsprop(5e-5)
    clipped = optax.chain(optax.rmsprop(5e-5), clip_weights(0.01))
    u1, _ = plain.update(grads, plain.init(params), params)
    u2, _ = clipped.update(grads, clipped.init(params), params)
    p1, p2 = optax.apply_updates(params, u1), optax.apply_updates(params, u2)
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)), p1, p2)


def test_projection_is_the_clip_of_the_unclipped_step():
    params = {"w": jnp.array([0.5, -0.5, 0.009, -0.0095, 0.0])}
    updates = {"w": jnp.array([0.0, 0.0, 0.005, 0.0, -0.02])}
    out, _ = clip_weights(0.01).update(updates, (), params)
    new = np.asarray(optax.apply_updates(params, out)["w"], np.float64)
    want = np.clip(np.array([0.5, -0.5, 0.014, -0.0095, -0.02]), -0.01, 0.01)
    # Within one float32 ulp of 0.5 (6e-8): p + (q - p) is rounded once more.
    np.testing.assert_allclose(new, want, atol=1e-7)
    assert np.all(np.abs(new) <= 0.01)


def test_mask_selects_leaves():
    params = {"a": jnp.array([0.5]), "b": jnp.array([0.5])}
    tx = clip_weights(0.01, mask={"a": True, "b": False})
    upd, _ = tx.update({"a": jnp.zeros(1), "b": jnp.zeros(1)}, tx.init(params), params)
    new = optax.apply_updates(params, upd)
    assert float(new["a"][0]) == pytest.approx(0.01) and float(new["b"][0]) == 0.5


def test_errors():
    tx = clip_weights(0.01)
    with pytest.raises(ValueError, match="needs the current parameters"):
        tx.update({"w": jnp.zeros(2)}, tx.init({"w": jnp.zeros(2)}))
    for bad in (0, -0.1, float("nan")):
        with pytest.raises(ValueError, match="c must be a positive number"):
            clip_weights(bad)


def test_under_jit():
    tx = optax.chain(optax.sgd(1.0), clip_weights(0.05))
    params = _params(3)

    @jax.jit
    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    grads = jax.tree.map(lambda p: -p * 10, params)
    new, _ = step(params, tx.init(params), grads)
    for leaf in jax.tree.leaves(new):
        assert float(jnp.max(jnp.abs(leaf))) <= 0.05


def test_through_nnx_optimizer_on_a_small_critic():
    class Critic(nnx.Module):
        def __init__(self, rngs):
            self.l1 = nnx.Linear(3, 16, rngs=rngs)
            self.ln = nnx.LayerNorm(16, rngs=rngs)
            self.l2 = nnx.Linear(16, 1, rngs=rngs)

        def __call__(self, x):
            return self.l2(jax.nn.leaky_relu(self.ln(self.l1(x)), 0.2))[:, 0]

    critic = Critic(nnx.Rngs(0))
    opt = nnx.Optimizer(critic, optax.chain(optax.rmsprop(5e-2), clip_weights(0.01)), wrt=nnx.Param)
    x_real, x_fake = jnp.ones((8, 3)), -jnp.ones((8, 3))

    @nnx.jit
    def step(critic, opt):
        def loss(m):
            return losses.wasserstein_critic_loss(m(x_real), m(x_fake))

        grads = nnx.grad(loss)(critic)
        opt.update(critic, grads)

    step(critic, opt)
    step(critic, opt)
    leaves = jax.tree.leaves(nnx.state(critic, nnx.Param))
    assert leaves and all(float(jnp.max(jnp.abs(x))) <= 0.01 for x in leaves)
    # LayerNorm scale (initially 1) is clipped too, as in the paper.
    assert float(critic.ln.scale[...].max()) <= 0.01


def test_paper_optimizers_chain_clip_only_for_wgan():
    params = {"w": jnp.full((3,), 0.5)}
    grads = {"w": jnp.zeros(3)}
    _, d = paper_optimizers(losses.get("wgan"))
    upd, _ = d.update(grads, d.init(params), params)
    assert float(optax.apply_updates(params, upd)["w"].max()) == pytest.approx(0.01)
    _, d = paper_optimizers(losses.get("wgan-gp"))
    upd, _ = d.update(grads, d.init(params), params)
    assert float(optax.apply_updates(params, upd)["w"].max()) == 0.5


def _two_sided_reference(u, p, c):
    """The projection in numpy float32, one-sided passes (the form before the fused one)."""
    c = np.float32(c)
    while c > 0.01:
        c = np.nextafter(c, np.float32(0))
    new_u = np.clip(p + u, -c, c) - p
    for _ in range(2):
        landed = p + new_u
        new_u = np.where(landed > c, np.nextafter(new_u, np.float32(-np.inf)), new_u)
        new_u = np.where(landed < -c, np.nextafter(new_u, np.float32(np.inf)), new_u)
    return new_u


def test_rounding_correction_lands_every_value_in_the_box():
    """Many parameters far outside and near the box edge: every one lands within [-c, c].

    Also bit-for-bit the numpy float32 reference of two one-sided correction passes.
    """
    rng = np.random.default_rng(5)
    n = 200_000
    scale_p = 10.0 ** rng.uniform(-4, 1, n)
    scale_u = 10.0 ** rng.uniform(-6, 1, n)
    p = (rng.choice([-1, 1], n) * scale_p).astype(np.float32)
    p[: n // 4] = (0.01 * rng.uniform(0.9, 1.1, n // 4) * rng.choice([-1, 1], n // 4)).astype(
        np.float32
    )
    u = (rng.normal(size=n) * scale_u).astype(np.float32)
    out, _ = jax.jit(clip_weights(0.01).update)({"w": jnp.asarray(u)}, (), {"w": jnp.asarray(p)})
    new_u = np.asarray(out["w"])
    landed = p + new_u  # float32, as optax.apply_updates computes it
    assert np.all(np.abs(landed) <= np.float32(0.01))
    np.testing.assert_array_equal(new_u, _two_sided_reference(u, p, 0.01))
    # The box is reached where the unclipped step leaves it, and nothing moves inside it.
    inside = np.abs(p.astype(np.float64) + u) < 0.0099
    np.testing.assert_allclose(landed[inside], (p + u)[inside], rtol=0, atol=1e-6)


@pytest.mark.parametrize("lr", [3e-3, optax.cosine_decay_schedule(1e-2, 5)], ids=["constant", "schedule"])  # fmt: skip
def test_adam_is_optax_adam_bit_for_bit(lr):
    """jaxgan's Adam against optax's: the same state layout and, jitted, the same bits for
    parameters and state over several updates; a skipped update (``ok`` False, NaN gradients)
    leaves the state as it was, counts included."""
    ref, ours = optax.adam(lr, b1=0.5, b2=0.9), adam(lr, b1=0.5, b2=0.9)
    p_ref = p_ours = _params()
    s_ref, s_ours = ref.init(p_ref), ours.init(p_ours)
    assert jax.tree.structure(s_ref) == jax.tree.structure(s_ours)

    @jax.jit
    def step_ref(g, s, p):
        u, s = ref.update(g, s, p)
        return optax.apply_updates(p, u), s

    @jax.jit
    def step_ours(g, s, p, ok):
        u, s = ours.update(g, s, p, ok=ok)
        return optax.apply_updates(p, u), s

    for i in range(6):
        g = jax.tree.map(lambda x, i=i: x * (i - 2.5) + 0.1, _params(i + 1))
        p_ref, s_ref = step_ref(g, s_ref, p_ref)
        nan = jax.tree.map(lambda x: x * jnp.nan, g)
        _, s_kept = step_ours(nan, s_ours, p_ours, jnp.array(False))
        for a, b in zip(jax.tree.leaves(s_kept), jax.tree.leaves(s_ours), strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        p_ours, s_ours = step_ours(g, s_ours, p_ours, jnp.array(True))
        for a, b in zip(jax.tree.leaves((p_ref, s_ref)), jax.tree.leaves((p_ours, s_ours)), strict=True):  # fmt: skip
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_adam_in_an_optax_chain_without_ok():
    """Outside the train step it is a plain optax transformation: in a chain, called without ``ok``."""
    params = _params()
    g = jax.tree.map(lambda x: x * 0.3 - 0.1, _params(5))
    ours = optax.chain(adam(0.1), optax.scale(2.0))
    ref = optax.chain(optax.adam(0.1), optax.scale(2.0))
    got, _ = ours.update(g, ours.init(params), params)
    want, _ = ref.update(g, ref.init(params), params)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6)
