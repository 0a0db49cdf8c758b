"""jaxgan.models.for_cpu: every formulation computes the Flax layer's function, to the gradient
penalty's second derivative; parameters and their paths are untouched; accelerator lowerings
keep the native layer; the choice is timed once per shape."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxgan.models import cpu


class Net(nnx.Module):
    """One layer under test between two nonlinearities (so second derivatives are not zero)."""

    def __init__(self, layer: nnx.Module):
        self.layer = layer

    def __call__(self, x: jax.Array) -> jax.Array:
        return jnp.tanh(self.layer(jnp.tanh(x)))


LAYERS = {
    "conv k3 SAME": (lambda r: nnx.Conv(3, 4, (3, 3), padding="SAME", rngs=r), "im2col", 9),
    "conv k5 VALID": (lambda r: nnx.Conv(3, 4, (5, 5), padding="VALID", rngs=r), "im2col", 9),
    "conv k3 pads": (
        lambda r: nnx.Conv(3, 4, (3, 3), padding=((2, 0), (1, 1)), rngs=r),
        "im2col",
        8,
    ),  # fmt: skip
    "conv k4 s2 SAME": (
        lambda r: nnx.Conv(3, 4, (4, 4), strides=2, padding="SAME", rngs=r),
        "im2col",
        9,
    ),  # fmt: skip
    "conv k5 s2 pad2": (lambda r: nnx.Conv(3, 4, (5, 5), strides=2, padding=2, rngs=r), "s2d", 9),
    "convT k5 VALID": (
        lambda r: nnx.ConvTranspose(4, 3, (5, 5), padding="VALID", rngs=r),
        "im2col",
        4,
    ),  # fmt: skip
    "convT k4 SAME": (
        lambda r: nnx.ConvTranspose(4, 3, (4, 4), padding="SAME", rngs=r),
        "im2col",
        5,
    ),  # fmt: skip
    "convT k8 s2 VALID": (
        lambda r: nnx.ConvTranspose(4, 1, (8, 8), strides=2, padding="VALID", rngs=r),
        "phase",
        5,
    ),  # fmt: skip
    "convT k4 s2 SAME nobias": (
        lambda r: nnx.ConvTranspose(
            4, 3, (4, 4), strides=(2, 2), padding="SAME", use_bias=False, rngs=r
        ),
        "phase",
        4,
    ),  # fmt: skip
}


def _outputs(net: Net, x: jax.Array):
    """(y, d<y, r>/dx, d|d<y, r>/dx|^2 / dkernel): what a critic and its gradient penalty use."""
    r = jax.random.normal(jax.random.key(9), jax.eval_shape(net, x).shape)
    graphdef, params = nnx.split(net)

    @jax.jit
    def outputs(params, x):
        linear = lambda params, x: jnp.vdot(nnx.merge(graphdef, params)(x), r)  # noqa: E731
        grad_x = jax.grad(linear, 1)
        second = jax.grad(lambda p: jnp.sum(grad_x(p, x) ** 2))(params)
        return nnx.merge(graphdef, params)(x), grad_x(params, x), second["layer"]["kernel"][...]

    return outputs(params, x)


COL2IM = ["convT k5 VALID", "convT k4 SAME", "convT k8 s2 VALID", "convT k4 s2 SAME nobias"]
CASES = [(n, LAYERS[n][1]) for n in LAYERS] + [(n, "col2im") for n in COL2IM]
CASES += [("conv k5 s2 pad2", "im2col"), ("conv k5 s2 pad2", "native>s2d"), ("convT k5 VALID", "native>col2im")]  # fmt: skip


@pytest.mark.parametrize("name, form", CASES)
def test_each_form_computes_the_flax_layer_to_the_second_derivative(name, form):
    make, _, size = LAYERS[name]
    c_in = make(nnx.Rngs(0)).in_features
    x = jax.random.normal(jax.random.key(1), (2, size, size + 1, c_in))
    net = Net(make(nnx.Rngs(0)))
    want = _outputs(net, x)
    cpu.for_cpu(net, forms={"layer": form})
    assert cpu.cpu_forms(net) == {"layer": form}
    got = _outputs(net, x)
    for w, g in zip(want, got, strict=True):
        assert g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5 * float(jnp.abs(w).max()))


def test_parameters_and_paths_stay_and_accelerators_keep_the_native_layer():
    net = Net(nnx.ConvTranspose(4, 3, (5, 5), padding="VALID", rngs=nnx.Rngs(0)))
    before = jax.tree.map(np.asarray, nnx.to_pure_dict(nnx.state(net)))
    cpu.for_cpu(net, forms={"layer": "im2col"})
    after = jax.tree.map(np.asarray, nnx.to_pure_dict(nnx.state(net)))
    assert jax.tree.structure(before) == jax.tree.structure(after)
    jax.tree.map(np.testing.assert_array_equal, before, after)
    assert isinstance(net.layer, nnx.ConvTranspose)

    graphdef, state = nnx.split(net)
    fn = jax.jit(lambda s, x: nnx.merge(graphdef, s)(x))
    x = jnp.zeros((2, 4, 4, 4))
    hlo = {p: jax.export.export(fn, platforms=[p])(state, x).mlir_module() for p in ("cpu", "cuda", "tpu")}  # fmt: skip
    assert "dot_general" in hlo["cpu"] and "convolution" not in hlo["cpu"]
    for p in ("cuda", "tpu"):
        assert "convolution" in hlo[p] and "dot_general" not in hlo[p], p


def test_the_choice_is_timed_once_per_shape(monkeypatch):
    timed = []
    real = cpu._rank_layer
    monkeypatch.setattr(cpu, "_rank_layer", lambda *a: timed.append(a[2].shape) or real(*a))
    monkeypatch.setattr(cpu, "_CHOICES", {})

    def make():
        return Net(nnx.Conv(2, 3, (4, 4), strides=2, padding="SAME", rngs=nnx.Rngs(0)))

    a = cpu.for_cpu(make(), jax.ShapeDtypeStruct((8, 8, 8, 2), jnp.float32), order=2)
    assert cpu.cpu_forms(a)["layer"] in (
        "native",
        "s2d",
        "im2col",
        "native>s2d",
        "native>im2col",
    ) and timed == [(8, 8, 8, 2)]
    b = cpu.for_cpu(make(), jnp.zeros((8, 8, 8, 2)), order=2)
    assert cpu.cpu_forms(b) == cpu.cpu_forms(a) and len(timed) == 1  # cached
    cpu.for_cpu(make(), jnp.zeros((4, 8, 8, 2)), order=2)  # another batch: timed again
    assert len(timed) == 2


def test_a_rewrite_is_kept_when_it_saves_a_tenth_of_the_layers_own_time():
    # the whole model takes 1.0 s with the layer native; the layer alone, natively, 0.2 s
    assert cpu._keep({"native": 1.0, "im2col": 0.97}, 0.2) == "im2col"  # 15 % of the layer
    assert cpu._keep({"native": 1.0, "im2col": 0.99}, 0.2) == "native"  # 5 % of the layer
    assert cpu._keep({"s2d": 0.5, "native": 1.0, "im2col": 1.1}, 0.2) == "s2d"
    assert cpu._keep({"native": 0.9, "im2col": 1.0}, 0.01) == "native"


def test_layers_it_cannot_rewrite_stay_as_they_are_and_bad_forms_are_named():
    class Sub(nnx.Conv):
        def __call__(self, x):
            return 2 * super().__call__(x)

    net = nnx.Dict(
        dilated=nnx.Conv(2, 2, (3, 3), kernel_dilation=2, rngs=nnx.Rngs(0)),
        grouped=nnx.Conv(2, 2, (3, 3), feature_group_count=2, rngs=nnx.Rngs(0)),
        circular=nnx.Conv(2, 2, (3, 3), padding="CIRCULAR", rngs=nnx.Rngs(0)),
        sub=Sub(2, 2, (3, 3), rngs=nnx.Rngs(0)),
        plain=nnx.Conv(2, 2, (3, 3), rngs=nnx.Rngs(0)),
    )
    cpu.for_cpu(net, forms={"plain": "im2col"})
    assert cpu.cpu_forms(net) == {"plain": "im2col"}
    assert type(net["dilated"]) is nnx.Conv and type(net["sub"]) is Sub
    with pytest.raises(ValueError, match="'dilated'"):
        cpu.for_cpu(net, forms={"dilated": "im2col"})
    with pytest.raises(ValueError, match="'plain': 's2d'"):
        cpu.for_cpu(net, forms={"plain": "s2d"})
    with pytest.raises(ValueError, match="order must be 1 or 2"):
        cpu.for_cpu(net, jnp.zeros((1, 4, 4, 2)), order=3)


def _nearest(x: jax.Array) -> jax.Array:
    """A user's nearest-2x upsampling, written unlike jaxgan's (pixel centres: j -> j // 2)."""
    b, h, w, c = x.shape
    return jax.image.resize(x, (b, 2 * h, 2 * w, c), "nearest")


def test_an_upsampling_and_the_next_conv_fuse_into_four_phases():
    """An ``nnx.Sequential``'s nearest-2x upsampling + stride-1 conv runs as four phases at the
    input's resolution on CPU ("upsample"), the same function to the gradient penalty's second
    derivative; the list entry becomes ``fused_upsample`` and comes back with another form;
    cuda lowers the upsampling and the native 3x3 conv; a size-doubling that is not nearest
    upsampling (tiling) is never fused."""
    tile = lambda x: jnp.tile(x, (1, 2, 2, 1))  # noqa: E731
    net = nnx.Sequential(
        jnp.tanh, _nearest, nnx.Conv(3, 4, (3, 3), rngs=nnx.Rngs(0)), jnp.tanh,
        tile, nnx.Conv(4, 2, (3, 3), padding=1, rngs=nnx.Rngs(1)), jnp.tanh,
    )  # fmt: skip
    x = jax.random.normal(jax.random.key(2), (2, 3, 5, 3))
    r = jax.random.normal(jax.random.key(3), (2, 12, 20, 2))

    def outputs(net):
        graphdef, params = nnx.split(net)
        linear = lambda p, x: jnp.vdot(nnx.merge(graphdef, p)(x), r)  # noqa: E731
        grad_x = jax.grad(linear, 1)
        second = jax.grad(lambda p: jnp.sum(grad_x(p, x) ** 2))(params)
        return [nnx.merge(graphdef, params)(x), grad_x(params, x), second["layers"][2]["kernel"][...]]  # fmt: skip

    want = outputs(net)
    with pytest.raises(ValueError, match="'layers.5': 'upsample'"):
        cpu.for_cpu(net, forms={"layers.5": "upsample"})
    cpu.for_cpu(net, forms={"layers.2": "upsample"})
    assert net.layers[1] is cpu.fused_upsample and net.layers[4] is tile
    assert cpu.cpu_forms(net)["layers.2"] == "upsample"
    for w, g in zip(want, outputs(net), strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5 * float(jnp.abs(w).max()))
    graphdef, state = nnx.split(net)
    fn = jax.jit(lambda s, x: nnx.merge(graphdef, s)(x))
    hlo = {p: jax.export.export(fn, platforms=[p])(state, x).mlir_module() for p in ("cpu", "cuda")}
    assert "tensor<2x2x3x16xf32>" in hlo["cpu"]  # the four phases' 2x2 kernels on 4 x 4 maps
    assert "tensor<2x2x3x16xf32>" not in hlo["cuda"] and "tensor<2x6x10x3xf32>" in hlo["cuda"]
    cpu.for_cpu(net, forms={"layers.2": "native"})
    assert net.layers[1] is not cpu.fused_upsample
    for w, g in zip(want, outputs(net), strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5 * float(jnp.abs(w).max()))


def test_an_upsampling_is_recognised_also_inside_a_trace():
    """Models built under ``nnx.eval_shape`` (abstract, then filled) are rewritten there too."""
    seen = []
    jax.eval_shape(lambda: seen.append((cpu._upsamples(_nearest), cpu._upsamples(jnp.tanh))))
    assert seen == [(True, False)]


def test_a_fusable_pair_is_timed_from_the_input_before_the_upsampling():
    conv = nnx.Conv(3, 4, (3, 3), rngs=nnx.Rngs(0))
    shape = jax.ShapeDtypeStruct((2, 8, 8, 3), jnp.float32)  # the conv's input, upsampled
    ranked = cpu._rank_layer(conv, cpu._spec(conv), shape, 1, True)
    assert sorted(ranked) == sorted(cpu._candidates(cpu._spec(conv), True)) and "upsample" in ranked
