"""One traced train step lowers the CPU form for ``cpu`` and the accelerator form for GPUs/TPUs.

jaxgan chooses two formulations per lowering platform (``jax.lax.platform_dependent``): the
n_critic critic updates unrolled for ``cpu`` and in one ``lax.scan`` elsewhere, and DCGAN's
stride-2 layers rewritten without strides for ``cpu`` and native elsewhere. ``jax.export`` lowers
for ``cuda`` and ``tpu`` on this CPU-only machine, so the accelerator path is checked here: the
train steps of the toy, the DCGAN and the PGGAN presets (PGGAN at its 1024² stage, the paper's
per-device batch of 3, bfloat16), built as the run builds them, are exported for
``("cuda", "tpu")`` and for ``cpu`` and their StableHLO read with ``benchmarks/accelerator.py``:
a ``while`` loop whose body holds the critic's convolutions / matmuls (the scan), native
stride-2 convolutions (``stride`` / ``lhs_dilate`` / ``rhs_dilate`` 2) and none of the CPU
rewrites' 2x2 folds. Both forms still compute the same step: the "auto" choice is bitwise the CPU
form on CPU, and the accelerator form, run on CPU by asking for it ("scan", "native"), agrees
to float tolerance.
"""

import importlib
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from jaxgan import losses
from jaxgan.models import strided
from jaxgan.models.dcgan import DCGANCritic, DCGANGenerator
from jaxgan.models.mlp import MLPCritic, MLPGenerator
from jaxgan.training import step as train

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")


def _accelerator():
    """``benchmarks/accelerator.py``: its StableHLO readers and the presets' steps (``sys.path``
    restored after the import: the script prepends its own folders)."""
    saved = list(sys.path)
    sys.path.insert(0, BENCH)
    try:
        return importlib.import_module("accelerator")
    finally:
        sys.path[:] = saved


A = _accelerator()
ACCELERATORS = ("cuda", "tpu")


@pytest.fixture(scope="module", params=list(A.CASES))
def exported(request):
    """(case name, {"accelerator": StableHLO for cuda+tpu, "cpu": StableHLO for cpu})."""
    preset, overrides, shape, resolution = A.CASES[request.param]
    jitted, args = A.step_and_specs(preset, overrides, shape, resolution)
    if request.param.startswith("pggan"):  # the paper's 1024² stage: batch 3, bfloat16
        state, reals, _ = args
        assert reals.shape == (1, 3, 1024, 1024, 3)
        assert any(x.dtype == jnp.float32 for x in jax.tree.leaves(state.g_params))
    texts = {
        "accelerator": A.export_text(jitted, args, ACCELERATORS),
        "cpu": A.export_text(jitted, args, ("cpu",)),
    }
    return request.param, texts


def test_accelerator_export_holds_the_scan_and_native_convolutions(exported):
    name, texts = exported
    acc = texts["accelerator"]
    assert A.critic_loop(acc) == "scan", "no while loop holding the critic update"
    if name == "dcgan":
        s = A.strided_convs(acc)
        # critic convolutions (forward), generator transposed convolutions (forward) and the
        # critic's input gradient, the critic's kernel gradient: all native
        assert s["stride"] > 0 and s["lhs_dilate"] > 0 and s["rhs_dilate"] > 0, s
        assert A.rewrite_folds(acc) == 0
    if name.startswith("pggan"):  # no stride-2 layers; bfloat16 compute
        assert A.conv_windows(acc) and not any(A.strided_convs(acc).values())
        assert "bf16" in acc


def test_cpu_export_holds_only_the_cpu_form(exported):
    name, texts = exported
    cpu = texts["cpu"]
    assert A.critic_loop(cpu) == "unrolled"
    if name == "dcgan":
        assert not any(A.strided_convs(cpu).values()), A.conv_windows(cpu)
        assert A.rewrite_folds(cpu) > 0
    if name.startswith("pggan"):  # no stride-2 layers: the same convolutions as for cuda/tpu
        assert not any(A.strided_convs(cpu).values())
        assert set(A.conv_windows(cpu)) == set(A.conv_windows(texts["accelerator"]))


def _mlp_step(critic_loop: str, seed: int = 0):
    """The toy's WGAN-GP step on small MLPs (SGD: rounding differences stay that size)."""
    obj = losses.get("wgan-gp")
    g_tx, d_tx = optax.sgd(1e-2), optax.sgd(1e-2)
    g = MLPGenerator(2, (2,), hidden=(16, 16), rngs=nnx.Rngs(seed))
    d = MLPCritic((2,), hidden=(16, 16), rngs=nnx.Rngs(seed + 1))
    state, g_def, d_def = train.init_train_state(g, d, g_tx, d_tx, jax.random.key(seed))
    step = train.make_train_step(
        g_def, d_def, obj, g_tx, d_tx, latent_dim=2, critic_loop=critic_loop
    )
    return state, step


def _dcgan_step(conv_impl: str, critic_loop: str):
    """A small DCGAN WGAN-GP step (16x16, width 4, layer-norm critic) with the given forms."""
    obj = losses.get("wgan-gp")  # n_critic: the leading axis of the real batch
    g_tx, d_tx = optax.sgd(1e-2), optax.sgd(1e-2)
    g = DCGANGenerator(16, 1, 8, base_width=4, conv_impl=conv_impl, rngs=nnx.Rngs(0))
    d = DCGANCritic(16, 1, norm="layer", base_width=4, conv_impl=conv_impl, rngs=nnx.Rngs(1))
    state, g_def, d_def = train.init_train_state(g, d, g_tx, d_tx, jax.random.key(0))
    step = train.make_train_step(
        g_def, d_def, obj, g_tx, d_tx, latent_dim=8, critic_loop=critic_loop
    )
    return state, step


def _reals(seed, shape=(3, 16, 2)):
    return np.random.default_rng(seed).uniform(-1, 1, shape).astype(np.float32)


def _two_steps(state, step, reals):
    """Parameters, optimizer states and metrics after two jitted steps, as numpy arrays."""
    jitted, metrics = jax.jit(step), []
    for r in reals:
        state, m = jitted(state, r, np.float32(1.0))
        metrics.append(m)
    return [np.asarray(x) for x in jax.tree.leaves(jax.device_get((state, metrics)))]


def test_the_default_backend_lowers_its_own_form():
    """``jit(step).lower`` on this process's backend: unrolled on CPU, the scan on a GPU/TPU."""
    state, step = _mlp_step(critic_loop="auto")
    text = jax.jit(step).lower(state, _reals(0), np.float32(1.0)).as_text()
    assert A.critic_loop(text) == ("unrolled" if jax.default_backend() == "cpu" else "scan")


@pytest.mark.parametrize("model", ["mlp", "dcgan"])
def test_both_forms_compute_the_same_step(model):
    """The default, "auto" (both forms traced, ``platform_dependent`` picking one at lowering), is
    bitwise the CPU form on CPU (``critic_loop="unroll"``, ``conv_impl="phase"``); the accelerator form run
    here (``"scan"``, ``"native"``: the branches cuda/tpu get) agrees with it to float
    tolerance. Two steps (3 critic updates each for the MLPs, 2 for DCGAN), with the gradient
    penalty."""
    if model == "mlp":
        build = {"auto": lambda: _mlp_step("auto"), "cpu": lambda: _mlp_step("unroll"),
                 "accelerator": lambda: _mlp_step("scan")}  # fmt: skip
        reals = [_reals(i) for i in range(2)]
    else:
        build = {"auto": lambda: _dcgan_step("auto", "auto"),
                 "cpu": lambda: _dcgan_step("phase", "unroll"),
                 "accelerator": lambda: _dcgan_step("native", "scan")}  # fmt: skip
        reals = [_reals(i, (2, 4, 16, 16, 1)) for i in range(2)]
    got = {form: _two_steps(*make(), reals) for form, make in build.items()}
    for auto, cpu, acc in zip(got["auto"], got["cpu"], got["accelerator"], strict=True):
        if jax.default_backend() == "cpu":
            np.testing.assert_array_equal(auto, cpu)
        np.testing.assert_allclose(acc, cpu, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("cls", [strided.StridedConv, strided.StridedConvTranspose])
def test_strided_layer_auto_is_the_rewrite_here_and_lowers_native_elsewhere(cls):
    """A stride-2 layer with impl "auto": bitwise the rewrite on CPU (eager and jitted), and
    exported for cuda/tpu a single native strided convolution without the rewrite's folds."""
    x = jax.random.normal(jax.random.key(0), (2, 8, 8, 3))
    layers = {impl: cls(3, 4, (4, 4), impl=impl, rngs=nnx.Rngs(7)) for impl in ("auto", "phase")}
    if jax.default_backend() == "cpu":
        np.testing.assert_array_equal(layers["auto"](x), layers["phase"](x))
        gdef, params = nnx.split(layers["auto"])
        fn = jax.jit(lambda p, x: nnx.merge(gdef, p)(x))
        np.testing.assert_array_equal(fn(params, x), layers["phase"](x))
    gdef, params = nnx.split(layers["auto"])
    fn = jax.jit(lambda p, x: nnx.merge(gdef, p)(x))
    acc = jax.export.export(fn, platforms=ACCELERATORS)(params, x).mlir_module()
    cpu = jax.export.export(fn, platforms=("cpu",))(params, x).mlir_module()
    key = "stride" if cls is strided.StridedConv else "lhs_dilate"
    assert A.strided_convs(acc)[key] > 0 and A.rewrite_folds(acc) == 0
    assert not any(A.strided_convs(cpu).values()) and A.rewrite_folds(cpu) > 0


def test_unknown_critic_loop_is_rejected():
    obj = losses.get("wgan")
    g = MLPGenerator(2, (2,), hidden=(4,), rngs=nnx.Rngs(0))
    d = MLPCritic((2,), hidden=(4,), rngs=nnx.Rngs(1))
    with pytest.raises(ValueError, match="critic_loop must be one of"):
        train.make_train_step(
            nnx.graphdef(g), nnx.graphdef(d), obj, optax.sgd(0.1), optax.sgd(0.1),
            latent_dim=2, critic_loop="while",
        )  # fmt: skip
