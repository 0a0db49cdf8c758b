"""The gradient penalty and friends, against hand-derived values and per-example references."""

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan import losses


def _linear_critic(w):
    return lambda x: jnp.sum(x * w, axis=tuple(range(1, x.ndim)))


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_linear_critic_penalty_is_norm_gap_for_any_key(seed):
    rng = np.random.default_rng(seed)
    w = jnp.asarray(rng.normal(size=(6, 5, 3)) * 0.1, jnp.float32)
    real = jnp.asarray(rng.normal(size=(4, 6, 5, 3)), jnp.float32)
    fake = jnp.asarray(rng.normal(size=(4, 6, 5, 3)), jnp.float32)
    wn = float(np.linalg.norm(np.asarray(w, np.float64)))
    critic = _linear_critic(w)
    key = jax.random.key(seed)
    gp = losses.gradient_penalty(critic, real, fake, key)
    np.testing.assert_allclose(float(gp), (wn - 1.0) ** 2, rtol=1e-5)
    gp3 = losses.gradient_penalty(critic, real, fake, key, target=3.0)
    np.testing.assert_allclose(float(gp3), (wn - 3.0) ** 2, rtol=1e-5)
    # One-sided: zero when the norm is below the target, the square gap above it.
    assert float(losses.gradient_penalty(critic, real, fake, key, target=3.0, one_sided=True)) == 0
    gp_os = losses.gradient_penalty(critic, real, fake, key, target=0.5, one_sided=True)
    np.testing.assert_allclose(float(gp_os), (wn - 0.5) ** 2, rtol=1e-5)
    _, norms = losses.gradient_penalty_and_norms(critic, real, fake, key)
    np.testing.assert_allclose(np.asarray(norms), np.full(4, wn), rtol=1e-5)


def test_epsilon_is_uniform_per_sample_and_on_the_segment():
    b = 4096
    real = jnp.ones((b, 3, 2, 2))
    fake = jnp.zeros((b, 3, 2, 2))
    seen = {}

    def spy(x):
        seen["x_hat"] = x
        return jnp.sum(x, axis=(1, 2, 3))

    jax.eval_shape(lambda k: losses.gradient_penalty(spy, real, fake, k), jax.random.key(0))
    x_hat = losses.interpolates(real, fake, jax.random.key(3))
    eps = np.asarray(x_hat)  # real=1, fake=0 -> x_hat = eps, broadcast
    # One scalar per sample, broadcast over every other axis.
    assert np.all(eps == eps[:, :1, :1, :1])
    e = eps[:, 0, 0, 0]
    assert e.min() >= 0.0 and e.max() < 1.0
    assert len(np.unique(e)) > b * 0.99  # differs per sample
    # Uniform: mean 1/2, variance 1/12, and a Kolmogorov-Smirnov distance near 0.
    assert abs(e.mean() - 0.5) < 0.02 and abs(e.var() - 1 / 12) < 0.01
    ks = np.max(np.abs(np.sort(e) - (np.arange(1, b + 1) / b)))
    assert ks < 0.03
    assert seen["x_hat"].shape == real.shape


def test_penalty_observed_through_critic_exposes_x_hat():
    real = jnp.full((8, 2), 2.0)
    fake = jnp.full((8, 2), -2.0)
    key = jax.random.key(11)
    captured = []

    def critic(x):
        captured.append(x)
        return x[:, 0]

    losses.gradient_penalty(critic, real, fake, key)
    x_hat = np.asarray(jax.device_get(losses.interpolates(real, fake, key)))
    # Interpolates lie on the real-fake segment: x = 4 eps - 2 in [-2, 2).
    assert np.all(x_hat >= -2) and np.all(x_hat < 2)
    assert len(np.unique(x_hat[:, 0])) == 8
    assert captured[0].shape == (8, 2)


def test_norm_is_per_sample_for_a_nonlinear_critic():
    # f(x) = sum(x^3)/3 has gradient x^2, so samples with large values sit on a steep part.
    critic = lambda x: jnp.sum(x**3, axis=(1, 2, 3)) / 3.0
    rng = np.random.default_rng(0)
    real = jnp.asarray(rng.normal(size=(5, 4, 4, 2)), jnp.float32).at[2].multiply(6.0)
    fake = jnp.asarray(rng.normal(size=(5, 4, 4, 2)), jnp.float32)
    key = jax.random.key(5)
    gp = losses.gradient_penalty(critic, real, fake, key)
    x_hat = losses.interpolates(real, fake, key)

    def one(x):  # per-example reference through vmap
        g = jax.grad(lambda y: critic(y[None])[0])(x)
        return (jnp.sqrt(jnp.sum(g**2)) - 1.0) ** 2

    want = np.mean(np.asarray(jax.vmap(one)(x_hat), np.float64))
    np.testing.assert_allclose(float(gp), want, rtol=1e-5)
    # A batch-wide norm (a known bug) gives a different number.
    g = np.asarray(x_hat, np.float64) ** 2
    assert abs((np.linalg.norm(g) - 1) ** 2 - want) > 1.0


def test_double_backprop_matches_central_finite_differences_float64():
    with jax.enable_x64(True):
        rng = np.random.default_rng(1)
        w1 = jnp.asarray(rng.normal(size=(3, 4)) * 0.5)
        w2 = jnp.asarray(rng.normal(size=(4,)) * 0.5)
        real = jnp.asarray(rng.normal(size=(6, 3)))
        fake = jnp.asarray(rng.normal(size=(6, 3)))
        key = jax.random.key(2)

        def penalty(params):
            a, b = params
            critic = lambda x: jnp.tanh(x @ a) @ b
            return losses.gradient_penalty(critic, real, fake, key)

        grads = jax.grad(penalty)((w1, w2))
        flat, unravel = jax.flatten_util.ravel_pytree((w1, w2))
        h = 1e-6
        fd = []
        for i in range(flat.size):
            e = jnp.zeros_like(flat).at[i].set(h)
            fd.append((penalty(unravel(flat + e)) - penalty(unravel(flat - e))) / (2 * h))
        got = jax.flatten_util.ravel_pytree(grads)[0]
        np.testing.assert_allclose(np.asarray(got), np.asarray(fd), rtol=1e-6, atol=1e-9)


def test_zero_gradient_gives_finite_double_backprop():
    critic = lambda x: jnp.sum(x * 0.0, axis=1)
    real, fake = jnp.ones((3, 2)), jnp.zeros((3, 2))
    g = jax.grad(
        lambda s: losses.gradient_penalty(lambda x: s * critic(x), real, fake, jax.random.key(0))
    )(1.0)
    assert bool(jnp.isfinite(g))


def test_drift_r1_r2():
    s = jnp.array([1.0, -2.0, 3.0])
    assert float(losses.drift_penalty(s)) == pytest.approx(14 / 3)
    w = jnp.array([[3.0], [4.0]])
    critic = lambda x: (x @ w)[:, 0]
    x = jnp.ones((5, 2))
    assert float(losses.r1_penalty(critic, x)) == pytest.approx(25.0)
    quad = lambda x: jnp.sum(x**2, axis=1)  # gradient 2x, squared norm 4|x|^2
    y = jnp.array([[1.0, 0.0], [0.0, 2.0]])
    assert float(losses.r2_penalty(quad, y)) == pytest.approx((4 + 16) / 2)


def test_bad_critic_output_and_shape_mismatch_are_clear():
    with pytest.raises(ValueError, match="critic_fn must map"):
        losses.gradient_penalty(lambda x: x, jnp.ones((2, 3)), jnp.ones((2, 3)), jax.random.key(0))
    with pytest.raises(ValueError, match="same shape"):
        losses.gradient_penalty(
            lambda x: x[:, 0], jnp.ones((2, 3)), jnp.ones((3, 3)), jax.random.key(0)
        )


def test_epsilon_can_be_given_instead_of_a_key():
    rng = np.random.default_rng(4)
    real = jnp.asarray(rng.normal(size=(3, 2, 2)), jnp.float32)
    fake = jnp.asarray(rng.normal(size=(3, 2, 2)), jnp.float32)
    eps = np.array([0.0, 0.25, 0.9], np.float32)
    got = np.asarray(losses.interpolates(real, fake, epsilon=eps), np.float64)
    r, f = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    want = eps[:, None, None] * r + (1 - eps[:, None, None]) * f
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    # The key form draws eps = U[0, 1) of shape (B,) from the key: same numbers.
    key = jax.random.key(9)
    drawn = jax.random.uniform(key, (3,))
    np.testing.assert_array_equal(
        np.asarray(losses.interpolates(real, fake, key)),
        np.asarray(losses.interpolates(real, fake, epsilon=drawn)),
    )
    critic = lambda x: jnp.sum(x**3, axis=(1, 2))
    np.testing.assert_array_equal(
        np.asarray(losses.gradient_penalty(critic, real, fake, key)),
        np.asarray(losses.gradient_penalty(critic, real, fake, epsilon=drawn)),
    )


def test_epsilon_and_key_errors():
    real = jnp.zeros((3, 2))
    with pytest.raises(ValueError, match="exactly one of key .* and epsilon"):
        losses.interpolates(real, real)
    with pytest.raises(ValueError, match="exactly one of key .* and epsilon"):
        losses.gradient_penalty(
            lambda x: x[:, 0], real, real, jax.random.key(0), epsilon=jnp.ones(3)
        )
    with pytest.raises(ValueError, match=r"epsilon must have shape \(3,\)"):
        losses.interpolates(real, real, epsilon=jnp.ones((3, 1)))
