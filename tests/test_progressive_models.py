"""ProgressiveGenerator / ProgressiveCritic: shapes, widths, fades at both ends and in between."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxgan.arrays import downsample2x, lerp, upsample2x
from jaxgan.models.progressive import ProgressiveCritic, ProgressiveGenerator, nf

TINY = dict(fmap_base=64, fmap_max=16)
LATENT = 16
BATCH = 4


@pytest.fixture(scope="module")
def nets():
    g = ProgressiveGenerator(16, latent_dim=LATENT, rngs=nnx.Rngs(0), **TINY)
    d = ProgressiveCritic(16, rngs=nnx.Rngs(1), **TINY)
    z = jax.random.normal(jax.random.key(2), (BATCH, LATENT))
    return g, d, z


def _images(res: int, seed: int = 3) -> jax.Array:
    return jax.random.normal(jax.random.key(seed), (BATCH, res, res, 3))


def test_nf_matches_reference():
    assert [nf(r - 1) for r in range(2, 11)] == [512, 512, 512, 512, 256, 128, 64, 32, 16]
    assert nf(3, 64, 16) == 8 and nf(1, 64, 16) == 16


def test_full_size_parameter_counts():
    """Paper Table 2: 23.1M trainable parameters in both G and D at 1024x1024 (abstract init)."""
    g = nnx.eval_shape(lambda: ProgressiveGenerator(1024, rngs=nnx.Rngs(0)))
    d = nnx.eval_shape(lambda: ProgressiveCritic(1024, rngs=nnx.Rngs(0)))
    for net in (g, d):
        n = sum(x.size for x in jax.tree.leaves(nnx.state(net, nnx.Param)))
        assert round(n / 1e5) == 231, n
    assert set(g.to_rgb.keys()) == {f"res{2**r}" for r in range(2, 11)}
    assert set(d.from_rgb.keys()) == {f"res{2**r}" for r in range(2, 11)}


def test_shapes_every_stage(nets):
    g, d, z = nets
    n_params = len(jax.tree.leaves(nnx.state(g, nnx.Param)))
    for res in (4, 8, 16):
        x = g(z, res)
        assert x.shape == (BATCH, res, res, 3) and x.dtype == jnp.float32
        s = d(x, res)
        assert s.shape == (BATCH,) and s.dtype == jnp.float32
        if res > 4:
            assert g(z, res, 0.5).shape == (BATCH, res, res, 3)
            assert d(x, res, 0.5).shape == (BATCH,)
    assert len(jax.tree.leaves(nnx.state(g, nnx.Param))) == n_params  # nothing built lazily
    with pytest.raises(ValueError):
        g(z, 4, 0.5)  # no previous stage
    with pytest.raises(ValueError):
        g(z, 32)
    with pytest.raises(ValueError):
        d(_images(8), 16)


def test_generator_fade_ends_and_middle(nets):
    g, _, z = nets
    for res in (8, 16):
        prev = g(z, res // 2)
        np.testing.assert_allclose(np.asarray(g(z, res, 0.0)), np.asarray(upsample2x(prev)))
        np.testing.assert_allclose(np.asarray(g(z, res, 1.0)), np.asarray(g(z, res)))
        mid = g(z, res, 0.3)
        want = 0.7 * upsample2x(prev) + 0.3 * g(z, res)
        np.testing.assert_allclose(np.asarray(mid), np.asarray(want), rtol=1e-5, atol=1e-5)


def test_critic_fade_ends(nets):
    _, d, _ = nets
    for res in (8, 16):
        x = _images(res)
        np.testing.assert_allclose(
            np.asarray(d(x, res, 0.0)),
            np.asarray(d(downsample2x(x), res // 2)),
            rtol=1e-5,
            atol=1e-6,
        )
        np.testing.assert_allclose(
            np.asarray(d(x, res, 1.0)), np.asarray(d(x, res)), rtol=1e-5, atol=1e-6
        )


def test_critic_fade_runs_in_between(nets):
    """For 0 < alpha < 1 the critic blends features: differs from both ends, moves with alpha."""
    _, d, _ = nets
    res = 16
    x = _images(res)
    end0, end1 = np.asarray(d(x, res, 0.0)), np.asarray(d(x, res, 1.0))
    assert not np.allclose(end0, end1, atol=1e-3)
    outs = [np.asarray(d(x, res, a)) for a in (0.25, 0.5, 0.75)]
    for o in outs:
        assert np.abs(o - end0).max() > 1e-3 and np.abs(o - end1).max() > 1e-3
    # continuity: a small step in alpha makes a small change
    small = np.abs(np.asarray(d(x, res, 0.501)) - outs[1]).max()
    assert 0 < small < 0.05 * np.abs(end1 - end0).max() + 1e-6
    # exact feature-level blend, recomputed from the critic's own submodules
    a = 0.4
    h_new = d.blocks["res16"](d.from_rgb["res16"](x))
    h_prev = d.from_rgb["res8"](downsample2x(x))
    h = d.blocks["res8"](lerp(h_prev, h_new, a))
    np.testing.assert_allclose(
        np.asarray(d(x, res, a)), np.asarray(d.final(h)), rtol=1e-5, atol=1e-6
    )


def test_jit_compiles_once_per_stage(nets, compiles):
    g, d, z = nets
    gdef, gstate = nnx.split(g)
    ddef, dstate = nnx.split(d)
    traces = []

    @functools.partial(jax.jit, static_argnames="res")
    def step(gstate, dstate, z, alpha, res):
        traces.append(res)
        gen = nnx.merge(gdef, gstate)
        crit = nnx.merge(ddef, dstate)
        return crit(gen(z, res, alpha), res, alpha)

    outs = [step(gstate, dstate, z, jnp.float32(a), res=8) for a in (0.0, 0.3, 0.9, 1.0)]
    assert traces == [8] and compiles.of(step) == 1
    assert not np.allclose(np.asarray(outs[0]), np.asarray(outs[2]))
    step(gstate, dstate, z, jnp.float32(0.5), res=16)
    assert traces == [8, 16] and compiles.of(step) == 2
    # nnx.jit works the same way
    ntraces = []

    @functools.partial(nnx.jit, static_argnames="res")
    def gen_fwd(gen, z, alpha, res):
        ntraces.append(res)
        return gen(z, res, alpha)

    for a in (0.1, 0.6):
        gen_fwd(g, z, jnp.float32(a), res=8)
    assert ntraces == [8] and compiles.of(gen_fwd) == 1


def test_bf16_forward_close_to_f32():
    kw = dict(rngs=nnx.Rngs(0), **TINY)
    g32 = ProgressiveGenerator(8, latent_dim=LATENT, **kw)
    g16 = ProgressiveGenerator(
        8, latent_dim=LATENT, dtype=jnp.bfloat16, **dict(kw, rngs=nnx.Rngs(0))
    )
    d32 = ProgressiveCritic(8, rngs=nnx.Rngs(1), **TINY)
    d16 = ProgressiveCritic(8, dtype=jnp.bfloat16, rngs=nnx.Rngs(1), **TINY)
    for leaf in jax.tree.leaves(nnx.state(g16, nnx.Param)) + jax.tree.leaves(
        nnx.state(d16, nnx.Param)
    ):
        assert leaf.dtype == jnp.float32
    z = jax.random.normal(jax.random.key(0), (BATCH, LATENT))
    for alpha in (None, 0.5):
        y32, y16 = g32(z, 8, alpha), g16(z, 8, alpha)
        assert y16.dtype == jnp.float32
        tol = 0.05 * float(jnp.abs(y32).max())
        np.testing.assert_allclose(np.asarray(y16), np.asarray(y32), atol=tol)
        s32, s16 = d32(y32, 8, alpha), d16(y32, 8, alpha)
        assert s16.dtype == jnp.float32
        tol = 0.05 * float(jnp.abs(s32).max()) + 0.02
        np.testing.assert_allclose(np.asarray(s16), np.asarray(s32), atol=tol)
