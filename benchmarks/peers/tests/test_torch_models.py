"""The PyTorch references of the benchmark cases (benchmarks/peers/torch_models.py): the same
parameter counts and settings as jaxgan's cases, a finite step per case, and, with jaxgan's weights
copied in, the same outputs layer for layer and the same train step; the same for the two external
references and their NNX mirrors (benchmarks/peers/external.py). Skipped without torch; CI's torch
leg runs them (.ci/run)."""

import dataclasses
import functools

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from flax import nnx  # noqa: E402
from peers import torch_models as P  # noqa: E402, N812  (benchmarks/ on sys.path: conftest)

from jaxgan import parallel  # noqa: E402
from jaxgan.models.dcgan import DCGANCritic, DCGANGenerator  # noqa: E402
from jaxgan.models.progressive import ProgressiveCritic, ProgressiveGenerator  # noqa: E402
from jaxgan.training import build, step  # noqa: E402
from jaxgan.training.config import override  # noqa: E402

# The parameter counts of the two repositories' scripts as published.
EXTERNAL_COUNTS = {
    "pytorch_gan_dcgan32": (1_049_985, 98_113),  # PyTorch-GAN dcgan.py, img_size 32, 1 channel
    "wgan_gp_mnist": (1_556_673, 1_030_145),  # caogang/wgan-gp gan_mnist.py, DIM 64
}


@pytest.fixture(autouse=True)
def _threads():
    old = torch.get_num_threads()
    torch.set_num_threads(1)  # OpenMP threads spin: on a shared 2-core host 2 cost 10x more
    torch.manual_seed(0)
    yield
    torch.set_num_threads(old)


def _nchw(x: np.ndarray) -> torch.Tensor:
    """NHWC (or flat) NumPy -> torch, NCHW."""
    return torch.from_numpy(np.array(x.transpose(0, 3, 1, 2) if x.ndim == 4 else x))


def _out(t: torch.Tensor) -> np.ndarray:
    """torch output -> NumPy, NHWC where images."""
    a = t.detach().numpy()
    return a.transpose(0, 2, 3, 1) if a.ndim == 4 else a


@pytest.mark.parametrize("name", P.JAXGAN_CASES)
def test_param_counts_equal_jaxgan(name):
    assert P.param_count(name) == P.jaxgan_param_count(name)


@pytest.mark.parametrize("name", P.EXTERNAL_CASES)
def test_param_counts_of_the_external_references(name):
    assert P.param_count(name) == EXTERNAL_COUNTS[name]


@pytest.mark.parametrize("name", P.JAXGAN_CASES)
def test_settings_equal_jaxgan(name):
    spec, case = P.get_spec(name), P.jaxgan_case(name)
    c, shape = case.config, case.shape
    if case.resolution is not None:
        shape = (case.resolution, case.resolution, shape[-1])
    assert spec.sample == (shape if len(shape) == 1 else (shape[2], shape[0], shape[1]))
    assert (spec.batch, spec.latent_dim, spec.ema) == (case.batch, c.model.latent_dim, c.optim.ema)
    loss = c.loss
    assert (spec.n_critic, spec.gp_weight, spec.drift, spec.clip) == (
        loss.n_critic, loss.gp_weight, loss.drift, loss.clip
    )  # fmt: skip
    assert c.loss.gp_target == 1.0 and c.optim.lr_g == c.optim.lr_d == spec.settings["lr"]
    assert not getattr(c.optim, "lr_decay", False) and case.resolution not in c.optim.lr_per_res
    if c.optim.optimizer == "adam":
        assert tuple(c.optim.betas) == spec.settings["betas"]
    else:
        assert c.optim.optimizer == "rmsprop" and name == "mnist_mlp_clip"
    d = P.make_peer(name).opt_d
    kind = "adam" if isinstance(d, torch.optim.Adam) else "rmsprop"
    assert kind == c.optim.optimizer


@pytest.mark.parametrize("name", P.CASES)
def test_one_small_step_is_finite(name):
    run = P.make_step(name, threads=1, batch=4)
    before = [p.detach().clone() for p in run.peer.d.parameters()]
    metrics = run()
    assert metrics and all(bool(torch.isfinite(v)) for v in metrics.values()), metrics
    assert float(metrics.get("skipped", 0.0)) == 0.0
    moved = any(not torch.equal(a, b) for a, b in zip(before, run.peer.d.parameters(), strict=True))
    assert moved and run.reals.shape[:2] == (run.peer.spec.n_critic, 4)


def _filled(ctor, seed: int = 0, *, equalized: bool = False):
    """jaxgan's module from ``ctor`` with every variable drawn here, none left at its init value
    and no JAX init ops compiled: kernels N(0, 1) (``equalized``) or N(0, 1/fan_in), biases
    N(0, 0.1²), norm scales and BatchNorm variances near 1."""
    graphdef, state = nnx.split(nnx.eval_shape(ctor))
    rng = np.random.default_rng(seed)

    def draw(path, leaf):
        name, x = path[-2].key, rng.standard_normal(leaf.shape).astype(np.float32)
        if name == "kernel":
            x = x if equalized else x / np.sqrt(np.prod(leaf.shape[:-1]))
        elif name in ("scale", "var"):
            x = 1 + 0.1 * (np.abs(x) if name == "var" else x)
        else:
            x = 0.1 * x
        return jnp.asarray(x)

    return nnx.merge(graphdef, jax.tree_util.tree_map_with_path(draw, state))


def _compare(g_j, d_j, g_t, d_t, x: np.ndarray, z: np.ndarray, tol: float, call=None) -> None:
    """Copy jaxgan's weights into the torch networks: the same scores and samples (both
    networks in train mode: BatchNorm normalises with the batch's statistics)."""
    call = nnx.jit(call or (lambda m, a: m(a)))
    P.copy_from_jaxgan(g_t, g_j)
    P.copy_from_jaxgan(d_t, d_j)
    s_j, f_j = np.asarray(call(d_j, jnp.asarray(x))), np.asarray(call(g_j, jnp.asarray(z)))
    with torch.no_grad():
        s_t, f_t = _out(d_t(_nchw(x))), _out(g_t(torch.from_numpy(z)))
    np.testing.assert_allclose(s_t, s_j, rtol=tol, atol=tol)
    np.testing.assert_allclose(f_t, f_j, rtol=tol, atol=tol)


def test_toy_same_weights_same_critic_scores():
    """jaxgan's toy networks as the benchmark builds them, their weights copied into torch."""
    g_j, d_j = P.jaxgan_models("toy")
    g_t, d_t = P.get_spec("toy").models()
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, (64, 2)).astype(np.float32)
    z = rng.standard_normal((64, 2)).astype(np.float32)
    _compare(g_j, d_j, g_t, d_t, x, z, 1e-5)


def test_dcgan_same_weights_same_outputs():
    """A small jaxgan DCGAN (16², 3 channels, LayerNorm critic) and its mirror: the transposed
    and strided convolutions, the NHWC flatten and reshape, BatchNorm and LayerNorm."""
    kw = {"base_width": 8}
    g_j = _filled(lambda: DCGANGenerator(16, 3, 16, rngs=nnx.Rngs(0), **kw))
    d_j = _filled(lambda: DCGANCritic(16, 3, norm="layer", rngs=nnx.Rngs(0), **kw), 1)
    g_t, d_t = P.DCGANGenerator(16, 3, 16, **kw), P.DCGANCritic(16, 3, norm="layer", **kw)
    rng = np.random.default_rng(2)
    x = rng.uniform(-1, 1, (4, 16, 16, 3)).astype(np.float32)
    z = rng.standard_normal((4, 16)).astype(np.float32)
    _compare(g_j, d_j, g_t, d_t, x, z, 1e-5)


@pytest.mark.parametrize("stage", [8, 16])
def test_progressive_same_weights_same_outputs(stage):
    """Small progressive networks built for 16², the stable network at ``stage``; batch 8 with
    minibatch-stddev groups of 4 (two strided groups)."""
    kw = {"channels": 3, "fmap_base": 64, "fmap_max": 16}
    g_j = _filled(
        lambda: ProgressiveGenerator(16, latent_dim=16, rngs=nnx.Rngs(0), **kw), equalized=True
    )
    d_j = _filled(lambda: ProgressiveCritic(16, rngs=nnx.Rngs(0), **kw), 1, equalized=True)
    g_t = P.ProgressiveGenerator(16, latent_dim=16, stage=stage, **kw)
    d_t = P.ProgressiveCritic(16, stage=stage, **kw)
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, (8, stage, stage, 3)).astype(np.float32)
    z = rng.standard_normal((8, 16)).astype(np.float32)
    _compare(g_j, d_j, g_t, d_t, x, z, 1e-5, call=lambda m, a: m(a, stage))


def _assert_params_close(module, mirror, nnx_module, max_diff: float) -> None:
    """``module``'s parameters equal the nnx module's (copied into ``mirror``, a network of the
    same class): all but a few elements to 1e-6 (a near-zero gradient's sign can flip an Adam
    step), none further apart than ``max_diff``."""
    P.copy_from_jaxgan(mirror, nnx_module)
    pairs = zip(module.parameters(), mirror.parameters(), strict=True)
    diffs = torch.cat([(a - b).detach().abs().flatten() for a, b in pairs])
    assert float(diffs.max()) <= max_diff
    assert float((diffs > 1e-6).float().mean()) < 1e-3


@pytest.mark.parametrize("name", ["toy", "mnist_mlp_clip", "wgan_gp_mnist"])
def test_step_equals_jaxgan_step(name):
    """One jaxgan train step (1 critic update, batch 16) and train_step from the same weights,
    reals, noise and ε: the same metrics and parameters (toy: Adam and the penalty; MNIST:
    BatchNorm, RMSProp and clipping; wgan_gp_mnist: the script's own iteration, which is
    jaxgan's, with its convolutions and transposed convolutions)."""
    case, b = P.jaxgan_case(name), 16
    c = override(case.config, n_critic=1)
    g_j, d_j = _filled(lambda: P.jaxgan_models(name, **_forms(name)))
    spec = P.get_spec(name)
    g_t, d_t = spec.models()
    P.copy_from_jaxgan(g_t, g_j)
    P.copy_from_jaxgan(d_t, d_j)
    g_tx, d_tx = build.optimizers(c)
    state, g_def, d_def = step.init_train_state(g_j, d_j, g_tx, d_tx, jax.random.key(1))
    reals = np.random.default_rng(0).uniform(-1, 1, (1, b, *case.shape)).astype(np.float32)
    new, metrics = jax.jit(build.train_step(c, g_def, d_def))(state, reals, 1.0)
    # jaxgan.training.step draws a step's noise and ε at its start from the state's key, in this order.
    _, k_z, k_eps = jax.random.split(jax.random.wrap_key_data(state.key), 3)
    zs = np.array(jax.random.normal(k_z, (2, b, c.model.latent_dim), jnp.float32))
    eps = np.array(jax.random.uniform(k_eps, (1, b), jnp.float32))
    peer = P.make_peer(name, (g_t, d_t))
    got = P.train_step(peer, _nchw5(reals), torch.from_numpy(zs), torch.from_numpy(eps))
    assert set(got) <= set(metrics)
    for k, v in got.items():
        np.testing.assert_allclose(float(v), float(metrics[k]), rtol=1e-4, atol=1e-6, err_msg=k)
    g_ref, d_ref = spec.models()
    lr = c.optim.lr_d
    _assert_params_close(peer.g, g_ref, nnx.merge(g_def, new.g_params, new.g_rest), 4 * lr)
    _assert_params_close(peer.d, d_ref, nnx.merge(d_def, new.d_params, new.d_rest), 4 * lr)


def _forms(name: str) -> dict:
    """An external case's networks in the convolution forms ``for_cpu`` chose on the build
    machine (fixed: nothing is timed in a test); {} for jaxgan's own cases."""
    return {"forms": P._external_module().FORMS_HERE[name]} if name in P.EXTERNAL_CASES else {}


def _nchw5(x: np.ndarray) -> torch.Tensor:
    """(n, B, H, W, C) -> (n, B, C, H, W); (n, B, D) unchanged."""
    return torch.from_numpy(np.array(x.transpose(0, 1, 4, 2, 3) if x.ndim == 5 else x))


def _logit(d_t, x: torch.Tensor) -> torch.Tensor:
    """The critic's score before any output sigmoid: PyTorch-GAN's D ends in Linear, Sigmoid."""
    if isinstance(d_t, P.PyTorchGANDCGANDiscriminator):
        return d_t.adv_layer[0](d_t.model(x).flatten(1))[:, 0]
    return d_t(x)


@pytest.mark.parametrize("name", P.EXTERNAL_CASES)
def test_external_same_weights_same_outputs(name):
    """The NNX mirrors of the external networks as the case builds them (every variable drawn by
    ``_filled``, BatchNorm statistics included) and the torch networks with those weights copied
    in: the same samples and the same critic logits (torch's ``adv_layer[0]``, before its
    Sigmoid; that sigmoid of the logit is torch's output), in two modes. Eval: both networks
    with BatchNorm on the copied running statistics; torch's Dropout2d is then off, as it is
    absent from the mirror. Train: BatchNorm on the batch's statistics in both, only torch's
    Dropout2d modules put in eval mode (dropout, not in jaxgan's mirror, is the one difference).
    Eval goes first: train-mode calls update the running statistics (torch's variance unbiased,
    flax's biased)."""
    g_j, d_j = _filled(lambda: P.jaxgan_models(name, **_forms(name)), 4)
    g_t, d_t = P.get_spec(name).models()
    P.copy_from_jaxgan(g_t, g_j)
    P.copy_from_jaxgan(d_t, d_j)
    shape, latent = P.jaxgan_case(name).shape, P.get_spec(name).latent_dim
    rng = np.random.default_rng(5)
    x = rng.uniform(-1, 1, (6, *shape)).astype(np.float32)
    z = rng.standard_normal((6, latent)).astype(np.float32)
    call = nnx.jit(lambda m, a: m(a))
    for mode in ("eval", "train"):
        for m in (g_t, d_t, g_j, d_j):
            m.eval() if mode == "eval" else m.train()
        for m in d_t.modules():
            if isinstance(m, torch.nn.Dropout2d):
                m.eval()
        s_j, f_j = np.asarray(call(d_j, jnp.asarray(x))), np.asarray(call(g_j, jnp.asarray(z)))
        with torch.no_grad():
            s_t, f_t = _out(_logit(d_t, _nchw(x))), _out(g_t(torch.from_numpy(z)))
            prob = d_t(_nchw(x)).numpy()
        assert s_t.shape == s_j.shape == (6,) and f_t.shape == f_j.shape == (6, *shape)
        np.testing.assert_allclose(s_t, s_j, rtol=1e-5, atol=1e-5, err_msg=mode)
        np.testing.assert_allclose(f_t, f_j, rtol=1e-5, atol=1e-5, err_msg=mode)
        if name == "pytorch_gan_dcgan32":
            np.testing.assert_allclose(prob[:, 0], 1 / (1 + np.exp(-s_j)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", P.EXTERNAL_CASES)
def test_external_jaxgan_step_is_finite(name):
    """The external case's jaxgan side as ``run.py --peers`` builds it (``cases.prepare`` of
    ``jaxgan_case``, batch 4): one step runs, finite, nothing skipped, the critic moved."""
    cases = P._cases_module()
    case = P.jaxgan_case(name)
    models = functools.partial(case.models, **_forms(name))
    case = dataclasses.replace(case, models=models, overrides={**case.overrides, "batch_size": 4})
    state, jitted, reals = cases.prepare(case, parallel.make_mesh(jax.devices()[:1]))
    assert reals.shape == (case.config.loss.n_critic, 4, *case.shape)
    before = jax.device_get(state.d_params)
    new, metrics = jitted(state, reals, cases.ALPHA)
    metrics = jax.device_get(metrics)
    assert all(np.isfinite(v) for v in metrics.values()), metrics
    assert float(metrics["skipped"]) == 0.0
    pairs = zip(jax.tree.leaves(before), jax.tree.leaves(jax.device_get(new.d_params)), strict=True)
    assert any(not np.array_equal(a, b) for a, b in pairs)
