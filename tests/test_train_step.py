"""The jitted train step: compile once, guard non-finite steps, clip, and match across devices."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from jaxgan import losses, optim, parallel
from jaxgan.models.mlp import MLPCritic, MLPGenerator
from jaxgan.training import step as train


def _setup(objective, g_tx, d_tx, hidden=(32, 32), ema=0.0, seed=0):
    g = MLPGenerator(2, (2,), hidden=hidden, rngs=nnx.Rngs(seed))
    d = MLPCritic((2,), hidden=hidden, rngs=nnx.Rngs(seed + 1))
    state, g_def, d_def = train.init_train_state(
        g, d, g_tx, d_tx, jax.random.key(seed), ema=ema > 0
    )
    step = train.make_train_step(g_def, d_def, objective, g_tx, d_tx, latent_dim=2, ema_decay=ema)
    return state, step


def _setup_defs(hidden=(32, 32), seed=0):
    g = MLPGenerator(2, (2,), hidden=hidden, rngs=nnx.Rngs(seed))
    d = MLPCritic((2,), hidden=hidden, rngs=nnx.Rngs(seed + 1))
    return nnx.graphdef(g), nnx.graphdef(d)


def _reals(seed, n_critic=5, batch=64):
    return np.random.default_rng(seed).normal(size=(n_critic, batch, 2)).astype(np.float32)


def test_step_compiles_once_and_runs_n_critic_updates(compiles):
    obj = losses.get("wgan-gp")
    g_tx, d_tx = optim.paper_optimizers(obj)
    state, step = _setup(obj, g_tx, d_tx, ema=0.9)
    jitted = jax.jit(step, donate_argnums=0)
    for i in range(4):
        state, metrics = jitted(state, _reals(i), np.float32(1.0))
    assert compiles.of(step) == 1
    assert int(state.step) == 4
    for k in ("critic_loss", "generator_loss", "w_estimate", "gp", "grad_norm", "real_score",
              "fake_score", "skipped"):  # fmt: skip
        assert k in metrics and np.isfinite(float(metrics[k]))
    # The n_critic critic updates each moved the critic: Adam's first moments are non-zero, and
    # the EMA differs from the generator it tracks.
    ema_gap = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), state.ema, state.g_params)
    assert max(jax.tree.leaves(ema_gap)) > 0


def _make_step(*args, unroll=True, **kw):
    """make_train_step in the CPU form (unrolled) or the GPU/TPU one (lax.scan)."""
    return train.make_train_step(*args, critic_loop="unroll" if unroll else "scan", **kw)


@pytest.mark.parametrize("unroll", [True, False])
def test_critic_updates_equal_a_manual_loop(unroll):
    """n_critic sequential SGD steps, each on its own real batch (unrolled and lax.scan paths)."""
    obj = dataclasses.replace(losses.get("wgan"), clip=None)
    g_tx, d_tx = optax.sgd(0.0), optax.sgd(0.05)
    g = MLPGenerator(2, (2,), hidden=(32, 32), rngs=nnx.Rngs(0))
    d = MLPCritic((2,), hidden=(32, 32), rngs=nnx.Rngs(1))
    state, g_def, d_def = train.init_train_state(g, d, g_tx, d_tx, jax.random.key(0))
    step = _make_step(g_def, d_def, obj, g_tx, d_tx, latent_dim=2, unroll=unroll)
    reals = _reals(3, n_critic=3, batch=8)
    new_state, _ = jax.jit(step)(state, reals, np.float32(1.0))
    # Manual reference: regenerate the same noise and fakes, then 3 explicit updates. The step
    # draws all its noise at once: (n_critic + 1, B, latent) from the second of three keys.
    key = jax.random.wrap_key_data(state.key)
    _, k_z, _ = jax.random.split(key, 3)
    zs = jax.random.normal(k_z, (4, 8, 2))
    g = MLPGenerator(2, (2,), hidden=(32, 32), rngs=nnx.Rngs(0))
    d = MLPCritic((2,), hidden=(32, 32), rngs=nnx.Rngs(1))
    d_def, params = nnx.split(d)
    for i in range(3):
        fake = g(zs[i])

        def loss(p, x_real=reals[i], fake=fake):
            m = nnx.merge(d_def, p)
            return losses.wasserstein_critic_loss(m(x_real), m(fake))

        grads = jax.grad(loss)(params)
        params = jax.tree.map(lambda p, gr: p - 0.05 * gr, params, grads)
    got = jax.tree.leaves(new_state.d_params)
    want = jax.tree.leaves(params)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("unroll", [True, False])
def test_nonfinite_step_is_skipped_and_counted(unroll):
    obj = losses.get("wgan-gp")
    g_tx, d_tx = optim.paper_optimizers(obj)
    state, _ = _setup(obj, g_tx, d_tx)
    g_def, d_def = _setup_defs()
    step = _make_step(g_def, d_def, obj, g_tx, d_tx, latent_dim=2, unroll=unroll)
    jitted = jax.jit(step)
    bad = _reals(0)
    bad[2, 5, 0] = np.nan  # one critic update sees a NaN
    new, metrics = jitted(state, bad, np.float32(1.0))
    assert int(new.skipped) == 1 and int(new.streak) == 1 and float(metrics["skipped"]) == 1
    for leaf in jax.tree.leaves(new.d_params):
        assert bool(jnp.all(jnp.isfinite(leaf)))
    all_bad = np.full_like(bad, np.nan)
    again, _ = jitted(new, all_bad, np.float32(1.0))
    # Every critic update skipped: the critic and its Adam state (count, moments) are unchanged.
    for a, b in zip(jax.tree.leaves((again.d_params, again.d_opt)), jax.tree.leaves((new.d_params, new.d_opt)), strict=True):  # fmt: skip
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert int(again.streak) == 2 and int(again.skipped) == 1 + 5
    good, _ = jitted(again, _reals(1), np.float32(1.0))
    assert int(good.streak) == 0


def test_the_compile_count_catches_a_recompile(compiles):
    """What the count above guards against: alpha as a Python float (weakly typed) next to a
    float32 array is another signature, so the step compiles again."""
    obj = dataclasses.replace(losses.get("wgan"), n_critic=1)  # the cheapest step to compile
    state, step = _setup(obj, optax.sgd(1e-3), optax.sgd(1e-3), hidden=(8,))
    jitted = jax.jit(step)
    jitted(state, _reals(0, 1, 8), np.float32(1.0))
    jitted(state, _reals(1, 1, 8), np.float32(0.5))
    assert compiles.of(step) == 1
    jitted(state, _reals(2, 1, 8), 1.0)
    assert compiles.of(step) == 2


def test_weight_clipping_inside_the_step():
    obj = losses.get("wgan")
    g_tx, d_tx = optim.paper_optimizers(obj, lr_d=0.05)
    state, step = _setup(obj, g_tx, d_tx)
    state, _ = jax.jit(step)(state, _reals(0), np.float32(1.0))
    for leaf in jax.tree.leaves(state.d_params):
        assert float(jnp.max(jnp.abs(leaf))) <= 0.01


@pytest.mark.skipif(jax.device_count() < 8, reason="needs 8 (fake) devices")
def test_one_device_and_eight_devices_agree(compiles):
    """Same global batch and seed -> same parameters after k steps on 1 and on 8 devices."""

    def run(n_dev, objective, g_tx, d_tx, k=3):
        mesh = parallel.make_mesh(jax.devices()[:n_dev])
        state, step = _setup(objective, g_tx, d_tx)
        before = compiles.of(step)
        state = parallel.replicate(state, mesh)
        sharding = parallel.tree_shardings(state, mesh)
        jitted = jax.jit(step, out_shardings=(sharding, None))
        history = []
        for i in range(k):
            reals = parallel.shard_batch(_reals(i), mesh, batch_axis=1)
            assert len(reals.sharding.device_set) == n_dev
            state, metrics = jitted(state, reals, np.float32(1.0))
            history.append(jax.device_get(metrics))
        assert compiles.of(step) - before == 1
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


def _bn_setup(seed=0):
    """An MLP generator with BatchNorm (momentum 0.9) on its second hidden layer."""
    g = MLPGenerator(2, (2,), hidden=(8, 8), batchnorm=True, rngs=nnx.Rngs(seed))
    d = MLPCritic((2,), hidden=(16, 16), rngs=nnx.Rngs(seed + 1))
    obj = losses.get("wgan-gp")
    g_tx, d_tx = optax.sgd(1e-2), optax.sgd(1e-2)
    state, g_def, d_def = train.init_train_state(g, d, g_tx, d_tx, jax.random.key(seed))
    return g, state, g_def, d_def, obj, g_tx, d_tx


def _bn_reference(g, state, n_critic, batch, kept):
    """float64 numpy: the running mean/var of the generator's BatchNorm after one train step.

    The critic updates in ``kept`` and the generator update each ran the generator once in
    training mode on their own noise batch: r <- 0.9 r + 0.1 stat (biased batch variance).
    """
    _, k_z, _ = jax.random.split(jax.random.wrap_key_data(state.key), 3)
    zs = np.asarray(jax.random.normal(k_z, (n_critic + 1, batch, 2)), np.float64)
    w0, b0 = (np.asarray(v[...], np.float64) for v in (g.layers[0].kernel, g.layers[0].bias))
    w1, b1 = (np.asarray(v[...], np.float64) for v in (g.layers[1].kernel, g.layers[1].bias))
    mean = np.asarray(g.norms[1].mean[...], np.float64)
    var = np.asarray(g.norms[1].var[...], np.float64)
    for k in [*kept, n_critic]:
        h = np.maximum(zs[k] @ w0 + b0, 0.0) @ w1 + b1
        mean = 0.9 * mean + 0.1 * h.mean(axis=0)
        var = 0.9 * var + 0.1 * h.var(axis=0)
    return mean, var


@pytest.mark.parametrize("unroll", [True, False])
def test_batchnorm_statistics_follow_the_kept_updates(unroll):
    """A BatchNorm generator's running averages after one step equal a float64 recomputation of
    its n_critic + 1 calls; update 1 sees a NaN real batch and is skipped, so it does not count."""
    n_critic, batch = 4, 16
    g, state, g_def, d_def, obj, g_tx, d_tx = _bn_setup()
    reals = _reals(2, n_critic=n_critic, batch=batch)
    reals[1, 3, 1] = np.nan
    step = _make_step(g_def, d_def, obj, g_tx, d_tx, latent_dim=2, unroll=unroll)
    new, _ = jax.jit(step)(state, reals, np.float32(1.0))
    assert int(new.skipped) == 1
    want_mean, want_var = _bn_reference(g, state, n_critic, batch, kept=[0, 2, 3])
    got = new.g_rest["norms"][1]
    np.testing.assert_allclose(np.asarray(got["mean"][...]), want_mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(got["var"][...]), want_var, rtol=1e-5, atol=1e-6)


class _CountingGenerator(nnx.Module):
    """A generator with a non-BatchNorm variable that changes every call (a call counter)."""

    def __init__(self, rngs):
        self.lin = nnx.Linear(2, 2, rngs=rngs)
        self.calls = nnx.BatchStat(jnp.zeros((), jnp.float32))

    def __call__(self, z):
        self.calls[...] = self.calls[...] + 1.0
        return self.lin(z)


def test_generator_state_sees_every_call():
    """A generator variable that changes on each call (a counter) sees the n_critic fake batches
    and the generator update: one call each."""
    g = _CountingGenerator(nnx.Rngs(0))
    d = MLPCritic((2,), hidden=(16,), rngs=nnx.Rngs(1))
    obj = losses.get("wgan-gp")
    g_tx, d_tx = optax.sgd(1e-2), optax.sgd(1e-2)
    state, g_def, d_def = train.init_train_state(g, d, g_tx, d_tx, jax.random.key(0))
    step = train.make_train_step(g_def, d_def, obj, g_tx, d_tx, latent_dim=2)
    new, _ = jax.jit(step)(state, _reals(0, n_critic=3, batch=8), np.float32(1.0))
    assert float(new.g_rest["calls"][...]) == 3 + 1
