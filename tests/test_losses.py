"""Every loss against a float64 numpy implementation of the paper's formula."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan import losses


def _softplus64(x):
    return np.logaddexp(0.0, x)


def _sigmoid64(x):
    return 1.0 / (1.0 + np.exp(-x))


# Reference formulas in probability space (Goodfellow 2014, Arjovsky 2017, Mao 2017, Lim & Ye 2017).
REFS = {
    "minimax_d": lambda r, f: -np.mean(np.log(_sigmoid64(r))) - np.mean(np.log(1 - _sigmoid64(f))),
    "minimax_g": lambda f: np.mean(np.log(1 - _sigmoid64(f))),
    "nonsat_g": lambda f: -np.mean(np.log(_sigmoid64(f))),
    "w_critic": lambda r, f: np.mean(f) - np.mean(r),
    "w_gen": lambda f: -np.mean(f),
    "w_est": lambda r, f: np.mean(r) - np.mean(f),
    "hinge_d": lambda r, f: np.mean(np.maximum(0, 1 - r)) + np.mean(np.maximum(0, 1 + f)),
    "hinge_g": lambda f: -np.mean(f),
    "ls_d": lambda r, f: 0.5 * np.mean((r - 1) ** 2) + 0.5 * np.mean(f**2),
    "ls_g": lambda f: 0.5 * np.mean((f - 1) ** 2),
}
PAIRS = {
    "minimax_d": losses.minimax_discriminator_loss,
    "w_critic": losses.wasserstein_critic_loss,
    "w_est": losses.wasserstein_estimate,
    "hinge_d": losses.hinge_discriminator_loss,
    "ls_d": losses.least_squares_discriminator_loss,
}
SINGLES = {
    "minimax_g": losses.minimax_generator_loss,
    "nonsat_g": losses.nonsaturating_generator_loss,
    "w_gen": losses.wasserstein_generator_loss,
    "hinge_g": losses.hinge_generator_loss,
    "ls_g": losses.least_squares_generator_loss,
}


@pytest.fixture
def logits():
    rng = np.random.default_rng(0)
    return rng.normal(0, 3, 64), rng.normal(0, 3, 64)


@pytest.mark.parametrize("name", sorted(PAIRS))
@pytest.mark.parametrize("shape", ["flat", "column"])
def test_pair_losses_match_float64_reference(name, shape, logits):
    r, f = logits
    ref = REFS[name](r, f)
    rj, fj = jnp.asarray(r, jnp.float32), jnp.asarray(f, jnp.float32)
    if shape == "column":
        rj, fj = rj[:, None], fj[:, None]
    out = PAIRS[name](rj, fj)
    assert out.shape == () and out.dtype == jnp.float32
    np.testing.assert_allclose(float(out), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", sorted(SINGLES))
def test_generator_losses_match_float64_reference(name, logits):
    _, f = logits
    out = SINGLES[name](jnp.asarray(f, jnp.float32)[:, None])
    assert out.shape == () and out.dtype == jnp.float32
    np.testing.assert_allclose(float(out), REFS[name](f), rtol=1e-5, atol=1e-5)


def test_softplus_forms_match_reference_on_extreme_logits_in_float64():
    # In float64 the reference is still exact at ±30; check the algebraic identity there too.
    r = np.array([-30.0, -1.0, 0.0, 2.0, 30.0])
    f = r[::-1].copy()
    want = np.mean(_softplus64(-r)) + np.mean(_softplus64(f))
    got = losses.minimax_discriminator_loss(jnp.asarray(r), jnp.asarray(f))
    np.testing.assert_allclose(float(got), want, rtol=1e-6)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("name", sorted(PAIRS) + sorted(SINGLES))
def test_extreme_logits_give_finite_values_and_grads(name, dtype):
    x = jnp.asarray([1e4, -1e4, 0.0, 5e3], dtype)
    if name in PAIRS:
        fn = lambda a: PAIRS[name](a, -a)
    else:
        fn = SINGLES[name]
    val, grad = jax.value_and_grad(fn)(x)
    assert val.dtype == jnp.float32
    assert bool(jnp.isfinite(val)), (name, val)
    assert bool(jnp.all(jnp.isfinite(grad))), (name, grad)


def test_minimax_d_loss_exact_at_extreme_logits():
    # softplus(-1e4) = 0, softplus(1e4) = 1e4 exactly in float32.
    out = losses.minimax_discriminator_loss(jnp.array([1e4]), jnp.array([1e4]))
    assert float(out) == pytest.approx(1e4)
    ns = losses.nonsaturating_generator_loss(jnp.array([-1e4]))
    assert float(ns) == pytest.approx(1e4)


def test_bf16_inputs_computed_in_float32():
    r = jnp.asarray(np.linspace(-3, 3, 16), jnp.bfloat16)
    out = losses.least_squares_discriminator_loss(r, r)
    ref = REFS["ls_d"](np.asarray(r, np.float64), np.asarray(r, np.float64))
    assert out.dtype == jnp.float32
    np.testing.assert_allclose(float(out), ref, rtol=1e-6)


def test_label_smoothing():
    r, f = np.array([0.3, -1.2]), np.array([0.5, 2.0])
    s = 0.25
    want = np.mean((1 - s) * _softplus64(-r) + s * _softplus64(r)) + np.mean(_softplus64(f))
    got = losses.minimax_discriminator_loss(jnp.asarray(r), jnp.asarray(f), label_smoothing=s)
    np.testing.assert_allclose(float(got), want, rtol=1e-6)


def test_losses_under_jit_and_vmap(logits):
    r, f = (jnp.asarray(a, jnp.float32).reshape(4, 16) for a in logits)
    batched = jax.jit(jax.vmap(losses.hinge_discriminator_loss))(r, f)
    want = [REFS["hinge_d"](np.asarray(a), np.asarray(b)) for a, b in zip(r, f, strict=True)]
    np.testing.assert_allclose(np.asarray(batched), want, rtol=1e-5)


def test_bad_shapes_are_clear_errors():
    with pytest.raises(ValueError, match="real_scores"):
        losses.wasserstein_critic_loss(jnp.zeros((4, 2)), jnp.zeros(4))
    with pytest.raises(TypeError, match="float"):
        losses.wasserstein_generator_loss(jnp.zeros(4, jnp.int32))


def test_registry():
    wgp = losses.get("wgan-gp")
    assert wgp.gp_weight == 10.0 and wgp.n_critic == 5 and wgp.clip is None
    assert (wgp.optimizer.name, wgp.optimizer.learning_rate) == ("adam", 1e-4)
    assert (wgp.optimizer.b1, wgp.optimizer.b2) == (0.0, 0.9)
    w = losses.get("wgan")
    assert w.clip == 0.01 and w.n_critic == 5 and w.optimizer.name == "rmsprop"
    assert w.optimizer.learning_rate == 5e-5 and w.gp_weight == 0
    for n in ("gan", "nsgan"):
        o = losses.get(n)
        assert o.n_critic == 1 and o.optimizer.learning_rate == 2e-4
        assert (o.optimizer.b1, o.optimizer.b2) == (0.5, 0.999)
    assert losses.get("gan").generator_loss is losses.minimax_generator_loss
    assert losses.get("nsgan").generator_loss is losses.nonsaturating_generator_loss
    assert set(losses.OBJECTIVES) == {"gan", "nsgan", "wgan", "wgan-gp", "hinge", "lsgan"}
    with pytest.raises(ValueError, match="valid names: gan, hinge, lsgan, nsgan, wgan, wgan-gp"):
        losses.get("wgangp")
