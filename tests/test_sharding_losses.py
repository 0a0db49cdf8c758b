"""Losses and the penalty give the same value with the batch sharded over 8 devices."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan import losses, parallel


@pytest.fixture(scope="module")
def mesh():
    if jax.device_count() < 8:
        pytest.skip("needs 8 (fake) devices: XLA_FLAGS=--xla_force_host_platform_device_count=8")
    return parallel.make_mesh(jax.devices()[:8])


def test_losses_sharded_equal_single_device(mesh):
    rng = np.random.default_rng(0)
    r = rng.normal(size=(64,)).astype(np.float32)
    f = rng.normal(size=(64,)).astype(np.float32)
    rs, fs = parallel.shard_batch((r, f), mesh)
    assert len(rs.sharding.device_set) == 8
    for name in ["gan", "nsgan", "wgan", "hinge", "lsgan"]:
        o = losses.get(name)
        fn = jax.jit(lambda a, b, o=o: (o.critic_loss(a, b), o.generator_loss(b)))
        got = fn(rs, fs)
        want = fn(jnp.asarray(r), jnp.asarray(f))
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-6, atol=1e-6)


def test_gradient_penalty_sharded_equals_single_device(mesh):
    rng = np.random.default_rng(1)
    real = rng.normal(size=(16, 8, 8, 3)).astype(np.float32)
    fake = rng.normal(size=(16, 8, 8, 3)).astype(np.float32)
    w = jnp.asarray(rng.normal(size=(8 * 8 * 3, 1)) * 0.1, jnp.float32)
    critic = lambda x: jnp.tanh(x.reshape(x.shape[0], -1) @ w)
    key = jax.random.key(4)
    fn = jax.jit(lambda a, b, k: losses.gradient_penalty_and_norms(critic, a, b, k))
    rs, fs = parallel.shard_batch((real, fake), mesh)
    gp_s, n_s = fn(rs, fs, key)
    gp_1, n_1 = fn(jnp.asarray(real), jnp.asarray(fake), key)
    np.testing.assert_allclose(float(gp_s), float(gp_1), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(n_s), np.asarray(n_1), rtol=1e-5)
