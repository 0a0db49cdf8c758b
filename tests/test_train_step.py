"""The jitted train step: compile once, guard non-finite steps, clip, and match across devices."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from jaxgan import losses, optim, parallel, train
from jaxgan.models.mlp import MLPCritic, MLPGenerator


def _setup(objective, g_tx, d_tx, hidden=(32, 32), ema=0.0, seed=0):
    g = MLPGenerator(2, (2,), hidden=hidden, rngs=nnx.Rngs(seed))
    d = MLPCritic((2,), hidden=hidden, rngs=nnx.Rngs(seed + 1))
    state, g_def, d_def = train.init_train_state(
        g, d, g_tx, d_tx, jax.random.key(seed), ema=ema > 0
    )
    step = train.make_train_step(g_def, d_def, objective, g_tx, d_tx, latent_dim=2, ema_decay=ema)
    return state, step


def _reals(seed, n_critic=5, batch=64):
    return np.random.default_rng(seed).normal(size=(n_critic, batch, 2)).astype(np.float32)


def test_step_compiles_once_and_runs_n_critic_updates():
    obj = losses.get("wgan-gp")
    g_tx, d_tx = optim.paper_optimizers(obj)
    state, step = _setup(obj, g_tx, d_tx, ema=0.9)
    jitted = jax.jit(step, donate_argnums=0)
    for i in range(4):
        state, metrics = jitted(state, _reals(i), np.float32(1.0))
    assert jitted._cache_size() == 1
    assert int(state.step) == 4
    for k in ("critic_loss", "generator_loss", "w_estimate", "gp", "grad_norm", "real_score",
              "fake_score", "skipped"):  # fmt: skip
        assert k in metrics and np.isfinite(float(metrics[k]))
    # The n_critic critic updates each moved the critic: Adam's first moments are non-zero, and
    # the EMA differs from the generator it tracks.
    ema_gap = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), state.ema, state.g_params)
    assert max(jax.tree.leaves(ema_gap)) > 0


@pytest.mark.parametrize("unroll", [True, False])
def test_critic_updates_equal_a_manual_loop(unroll):
    """n_critic sequential SGD steps, each on its own real batch (unrolled and lax.scan paths)."""
    obj = dataclasses.replace(losses.get("wgan"), clip=None)
    g_tx, d_tx = optax.sgd(0.0), optax.sgd(0.05)
    g = MLPGenerator(2, (2,), hidden=(32, 32), rngs=nnx.Rngs(0))
    d = MLPCritic((2,), hidden=(32, 32), rngs=nnx.Rngs(1))
    state, g_def, d_def = train.init_train_state(g, d, g_tx, d_tx, jax.random.key(0))
    step = train.make_train_step(g_def, d_def, obj, g_tx, d_tx, latent_dim=2, unroll_critic=unroll)
    reals = _reals(3, n_critic=3, batch=8)
    new_state, _ = jax.jit(step)(state, reals, np.float32(1.0))
    # Manual reference: regenerate the same noise and fakes, then 3 explicit updates.
    key = jax.random.wrap_key_data(state.key)
    _, k_critic, _ = jax.random.split(key, 3)
    keys = jax.random.split(k_critic, 3)
    g = MLPGenerator(2, (2,), hidden=(32, 32), rngs=nnx.Rngs(0))
    d = MLPCritic((2,), hidden=(32, 32), rngs=nnx.Rngs(1))
    d_def, params = nnx.split(d)
    for i in range(3):
        kz, _ = jax.random.split(keys[i])
        fake = g(jax.random.normal(kz, (8, 2)))

        def loss(p, x_real=reals[i], fake=fake):
            m = nnx.merge(d_def, p)
            return losses.wasserstein_critic_loss(m(x_real), m(fake))

        grads = jax.grad(loss)(params)
        params = jax.tree.map(lambda p, gr: p - 0.05 * gr, params, grads)
    got = jax.tree.leaves(new_state.d_params)
    want = jax.tree.leaves(params)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


def test_nonfinite_step_is_skipped_and_counted():
    obj = losses.get("wgan-gp")
    g_tx, d_tx = optim.paper_optimizers(obj)
    state, step = _setup(obj, g_tx, d_tx)
    jitted = jax.jit(step)
    bad = _reals(0)
    bad[2, 5, 0] = np.nan  # one critic update sees a NaN
    new, metrics = jitted(state, bad, np.float32(1.0))
    assert int(new.skipped) == 1 and int(new.streak) == 1 and float(metrics["skipped"]) == 1
    for leaf in jax.tree.leaves(new.d_params):
        assert bool(jnp.all(jnp.isfinite(leaf)))
    all_bad = np.full_like(bad, np.nan)
    again, _ = jitted(new, all_bad, np.float32(1.0))
    # Every critic update skipped: the critic is exactly unchanged.
    for a, b in zip(jax.tree.leaves(again.d_params), jax.tree.leaves(new.d_params), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert int(again.streak) == 2 and int(again.skipped) == 1 + 5
    good, _ = jitted(again, _reals(1), np.float32(1.0))
    assert int(good.streak) == 0


def test_weight_clipping_inside_the_step():
    obj = losses.get("wgan")
    g_tx, d_tx = optim.paper_optimizers(obj, lr_d=0.05)
    state, step = _setup(obj, g_tx, d_tx)
    state, _ = jax.jit(step)(state, _reals(0), np.float32(1.0))
    for leaf in jax.tree.leaves(state.d_params):
        assert float(jnp.max(jnp.abs(leaf))) <= 0.01


@pytest.mark.skipif(jax.device_count() < 8, reason="needs 8 (fake) devices")
def test_one_device_and_eight_devices_agree():
    """Same global batch and seed -> same parameters after k steps on 1 and on 8 devices."""

    def run(n_dev, objective, g_tx, d_tx, k=3):
        mesh = parallel.make_mesh(jax.devices()[:n_dev])
        state, step = _setup(objective, g_tx, d_tx)
        state = parallel.replicate(state, mesh)
        sharding = parallel.tree_shardings(state, mesh)
        jitted = jax.jit(step, out_shardings=(sharding, None))
        history = []
        for i in range(k):
            reals = parallel.shard_batch(_reals(i), mesh, batch_axis=1)
            assert len(reals.sharding.device_set) == n_dev
            state, metrics = jitted(state, reals, np.float32(1.0))
            history.append(jax.device_get(metrics))
        assert jitted._cache_size() == 1
        return jax.device_get(state), history

    # SGD: parameters agree to float tolerance.
    obj = losses.get("wgan-gp")
    one, _ = run(1, obj, optax.sgd(1e-3), optax.sgd(1e-3))
    eight, _ = run(8, obj, optax.sgd(1e-3), optax.sgd(1e-3))
    for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(eight), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)
    # The paper's Adam: the first step's losses agree. (Adam with β1 = 0 turns a near-zero
    # gradient's rounding-level difference into a full ±lr step, so later parameters may not.)
    g_tx, d_tx = optim.paper_optimizers(obj)
    _, h1 = run(1, obj, g_tx, d_tx, k=1)
    _, h8 = run(8, obj, g_tx, d_tx, k=1)
    for key in ("critic_loss", "gp", "generator_loss", "w_estimate"):
        np.testing.assert_allclose(h1[0][key], h8[0][key], rtol=1e-4, atol=1e-6)


def test_batchnorm_generator_and_critic_train():
    """A BatchNorm generator and critic (DCGAN, gan loss) trace and update their statistics."""
    from jaxgan.models.dcgan import DCGANCritic, DCGANGenerator

    obj = losses.get("gan")
    g_tx, d_tx = optim.paper_optimizers(obj)
    g = DCGANGenerator(16, 1, 8, base_width=4, rngs=nnx.Rngs(0))
    d = DCGANCritic(16, 1, norm="batch", base_width=4, rngs=nnx.Rngs(1))
    state, g_def, d_def = train.init_train_state(g, d, g_tx, d_tx, jax.random.key(0))
    step = train.make_train_step(g_def, d_def, obj, g_tx, d_tx, latent_dim=8)
    reals = np.random.default_rng(0).uniform(-1, 1, (1, 8, 16, 16, 1)).astype(np.float32)
    new, metrics = jax.jit(step)(state, reals, np.float32(1.0))
    assert np.isfinite(float(metrics["critic_loss"])) and int(new.skipped) == 0
    moved = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), new.g_rest, state.g_rest)
    assert max(jax.tree.leaves(moved)) > 0  # running statistics were updated


def test_joint_critic_batch_equals_separate_calls():
    """Scoring reals and fakes in one call (the MLP critic's default) changes nothing but speed."""
    obj = losses.get("wgan-gp")
    g_tx, d_tx = optax.sgd(1e-2), optax.sgd(1e-2)
    g = MLPGenerator(2, (2,), hidden=(32, 32), rngs=nnx.Rngs(0))
    d = MLPCritic((2,), hidden=(32, 32), rngs=nnx.Rngs(1))
    state, g_def, d_def = train.init_train_state(g, d, g_tx, d_tx, jax.random.key(0))
    out = {}
    for joint in (True, False):
        step = train.make_train_step(
            g_def, d_def, obj, g_tx, d_tx, latent_dim=2, joint_critic_batch=joint
        )
        out[joint] = jax.jit(step)(state, _reals(5, n_critic=2, batch=16), np.float32(1.0))
    for a, b in zip(jax.tree.leaves(out[True]), jax.tree.leaves(out[False]), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


def test_batchnorm_critic_is_scored_in_separate_calls():
    """A BatchNorm critic's scores depend on the whole batch: the default must not join them."""
    from jaxgan.models.dcgan import DCGANCritic, DCGANGenerator

    obj = losses.get("gan")
    g_tx, d_tx = optim.paper_optimizers(obj)
    g = DCGANGenerator(16, 1, 8, base_width=4, rngs=nnx.Rngs(0))
    d = DCGANCritic(16, 1, norm="batch", base_width=4, rngs=nnx.Rngs(1))
    assert not d.scores_per_sample
    state, g_def, d_def = train.init_train_state(g, d, g_tx, d_tx, jax.random.key(0))
    reals = np.random.default_rng(0).uniform(-1, 1, (1, 8, 16, 16, 1)).astype(np.float32)
    res = {}
    for joint in (None, False, True):
        step = train.make_train_step(
            g_def, d_def, obj, g_tx, d_tx, latent_dim=8, joint_critic_batch=joint
        )
        res[joint] = float(jax.jit(step)(state, reals, np.float32(1.0))[1]["critic_loss"])
    assert res[None] == res[False] and res[True] != res[False]
