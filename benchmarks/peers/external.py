"""Flax NNX mirrors of the two external reference networks of :mod:`peers.torch_models`: the jaxgan side
of the ``pytorch_gan_dcgan32`` and ``wgan_gp_mnist`` peer cases, trained by jaxgan's own step.

Each module has the attribute paths of its torch counterpart (``torch_models.PyTorchGANDCGAN*``,
``torch_models.WGANGPMNIST*``): a torch ``nn.Sequential`` is an ``nnx.List`` whose entries keep
torch's indices, parameter-free layers there being plain functions, so that
``torch_models.copy_from_jaxgan(torch_module, nnx_module)`` maps every variable (``l1.weight`` <->
``l1.kernel``, ``conv_blocks.0.weight`` <-> ``conv_blocks.0.scale``, ...). Images are NHWC; the
dense layers that write or read feature maps reshape in NHWC order (the torch mirrors carry the
``nhwc_out`` / ``nhwc_in`` shapes that reorder their weights). Padding is explicit where torch's
symmetric padding differs from ``"SAME"`` at stride 2; transposed convolutions are ``"VALID"``
(torch's ``padding=0``) and their kernels are used unflipped (``copy_from_jaxgan`` flips them).
The layers are plain ``nnx.Conv`` / ``nnx.ConvTranspose``, as a user ports the scripts; the
cases' model functions then make one call, ``jaxgan.models.for_cpu``, which picks each layer's
fastest XLA:CPU formulation at the case's batch shape (``cpu=False``: the plain port as is).

Initial weights follow the external scripts' distributions (torch defaults: kernel and bias
U(±1/√fan_in), fan_in of a transposed convolution taken from its output maps as torch does;
PyTorch-GAN's conv kernels N(0, 0.02) and BatchNorm scales N(1, 0.02)), drawn from JAX's RNG.
BatchNorm: torch momentum 0.1 = flax momentum 0.9, torch's ``BatchNorm2d(n, 0.8)`` is eps 0.8.

Left out of the jaxgan mirrors: PyTorch-GAN's discriminator applies ``Dropout2d(0.25)`` after
each LeakyReLU. jaxgan's step calls the critic without an RNG, so its mirror has
:func:`dropout_left_out` (the identity) at those positions; dropout has no parameters, its cost
in torch is one random channel mask and one multiply per block. The discriminator returns the
logit (torch's ``adv_layer`` is Linear then Sigmoid): jaxgan's BCE objectives take logits.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from jaxgan.models.cpu import for_cpu

Init = nnx.initializers.Initializer


# --- parameter-free layers (NHWC) ------------------------------------------------------------


def lrelu(x: jax.Array) -> jax.Array:
    """``nn.LeakyReLU(0.2)``."""
    return jax.nn.leaky_relu(x, 0.2)


def relu(x: jax.Array) -> jax.Array:
    return jax.nn.relu(x)


def tanh(x: jax.Array) -> jax.Array:
    return jnp.tanh(x)


def upsample2x(x: jax.Array) -> jax.Array:
    """``nn.Upsample(scale_factor=2)`` (nearest): (B, H, W, C) -> (B, 2H, 2W, C)."""
    return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def dropout_left_out(x: jax.Array) -> jax.Array:
    """Where torch has ``nn.Dropout2d(0.25)``: the identity (jaxgan's step passes no RNG)."""
    return x


# --- layers with torch's initialisations -------------------------------------------------------


def _uniform(bound: float) -> Init:
    """U(−bound, bound): torch's default init of weights (kaiming_uniform, a=√5) and biases."""

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def _normal(mean: float, std: float) -> Init:
    def init(key, shape, dtype=jnp.float32):
        return mean + std * jax.random.normal(key, shape, dtype)

    return init


def linear(a: int, b: int, *, rngs: nnx.Rngs) -> nnx.Linear:
    """``nn.Linear(a, b)`` as torch initialises it."""
    u = _uniform(1 / math.sqrt(a))
    return nnx.Linear(a, b, kernel_init=u, bias_init=u, rngs=rngs)


def conv(
    a: int, b: int, k: int, stride: int = 1, pad: int = 0, *,
    kernel_init: Init | None = None, rngs: nnx.Rngs,
) -> nnx.Conv:  # fmt: skip
    """``nn.Conv2d(a, b, k, stride, pad)`` (symmetric zero padding ``pad``)."""
    u = _uniform(1 / math.sqrt(a * k * k))
    kw = {"padding": ((pad, pad), (pad, pad)), "kernel_init": kernel_init or u, "bias_init": u}
    return nnx.Conv(a, b, (k, k), strides=(stride, stride), rngs=rngs, **kw)


def conv_transpose(a: int, b: int, k: int, stride: int = 1, *, rngs: nnx.Rngs) -> nnx.ConvTranspose:
    """``nn.ConvTranspose2d(a, b, k, stride)`` (padding 0: output (H − 1)·stride + k). torch's
    fan_in of its weight (a, b, k, k) is b·k²."""
    u = _uniform(1 / math.sqrt(b * k * k))
    kw = {"padding": "VALID", "kernel_init": u, "bias_init": u}
    return nnx.ConvTranspose(a, b, (k, k), strides=(stride, stride), rngs=rngs, **kw)


def batchnorm(n: int, eps: float = 1e-5, *, scale_init: Init | None = None, rngs: nnx.Rngs):
    """``nn.BatchNorm2d(n, eps)`` (momentum 0.1): batch statistics in train mode."""
    kw = {"scale_init": scale_init} if scale_init is not None else {}
    return nnx.BatchNorm(n, epsilon=eps, momentum=0.9, rngs=rngs, **kw)


def _sequential(layers: nnx.List, x: jax.Array) -> jax.Array:
    for layer in layers:
        x = layer(x)
    return x


# --- PyTorch-GAN implementations/dcgan/dcgan.py ------------------------------------------------

_DCGAN_CONV = _normal(0.0, 0.02)  # PyTorch-GAN's weights_init_normal
_DCGAN_BN = _normal(1.0, 0.02)


class PyTorchGANDCGANGenerator(nnx.Module):
    """z (B, latent) -> (B, S, S, C) in [-1, 1]: Linear to (S/4)²·128 (NHWC), BatchNorm (eps 1e-5),
    [nearest 2x, conv3 SAME, BatchNorm (eps 0.8), LReLU 0.2] x 2 (128, 64 maps), conv3 to C, tanh.
    ``conv_blocks`` keeps torch's Sequential indices (0 BN, 1 up, 2 conv, 3 BN, 4 LReLU, ...)."""

    def __init__(
        self, img_size: int = 32, channels: int = 1, latent_dim: int = 100, *, rngs: nnx.Rngs
    ) -> None:
        self.init_size = img_size // 4
        self.l1 = linear(latent_dim, 128 * self.init_size**2, rngs=rngs)
        c3 = lambda a, b: conv(a, b, 3, 1, 1, kernel_init=_DCGAN_CONV, rngs=rngs)  # noqa: E731
        bn = lambda n, eps: batchnorm(n, eps, scale_init=_DCGAN_BN, rngs=rngs)  # noqa: E731
        self.conv_blocks = nnx.List(
            [bn(128, 1e-5), upsample2x, c3(128, 128), bn(128, 0.8), lrelu,
             upsample2x, c3(128, 64), bn(64, 0.8), lrelu, c3(64, channels), tanh]
        )  # fmt: skip

    def __call__(self, z: jax.Array) -> jax.Array:
        s = self.init_size
        return _sequential(self.conv_blocks, self.l1(z).reshape(z.shape[0], s, s, 128))


class PyTorchGANDCGANDiscriminator(nnx.Module):
    """(B, S, S, C) -> logits (B,): [conv3 stride 2 pad 1, LReLU 0.2, (dropout left out),
    BatchNorm (eps 0.8) but on the first] x 4 (16, 32, 64, 128 maps: S -> S/16), Linear to 1.
    ``model`` keeps torch's Sequential indices; ``adv_layer[0]`` is torch's Linear (its Sigmoid,
    ``adv_layer[1]``, is in jaxgan's loss)."""

    def __init__(self, img_size: int = 32, channels: int = 1, *, rngs: nnx.Rngs) -> None:
        layers: list = []
        for a, b, bn in ((channels, 16, False), (16, 32, True), (32, 64, True), (64, 128, True)):
            layers += [conv(a, b, 3, 2, 1, kernel_init=_DCGAN_CONV, rngs=rngs), lrelu,
                       dropout_left_out]  # fmt: skip
            layers += [batchnorm(b, 0.8, scale_init=_DCGAN_BN, rngs=rngs)] if bn else []
        self.model = nnx.List(layers)
        self.adv_layer = nnx.List([linear(128 * (img_size // 16) ** 2, 1, rngs=rngs)])

    def __call__(self, img: jax.Array) -> jax.Array:
        h = _sequential(self.model, img)
        return self.adv_layer[0](h.reshape(h.shape[0], -1))[:, 0]


# --- caogang/wgan-gp gan_mnist.py ----------------------------------------------------------------


class WGANGPMNISTGenerator(nnx.Module):
    """z (B, latent) -> (B, 784) in (0, 1), as the script's generator: Linear to 4·4·4D (NHWC),
    ReLU, ConvT5 4D -> 2D (4 -> 8), cropped to 7x7, ReLU, ConvT5 2D -> D (7 -> 11), ReLU,
    ConvT8 stride 2 D -> 1 (11 -> 28), sigmoid, flattened (one channel: NHWC = NCHW order)."""

    def __init__(self, dim: int = 64, latent_dim: int = 128, *, rngs: nnx.Rngs) -> None:
        self.dim = dim
        self.preprocess = nnx.List([linear(latent_dim, 64 * dim, rngs=rngs), relu])
        self.block1 = nnx.List([conv_transpose(4 * dim, 2 * dim, 5, rngs=rngs), relu])
        self.block2 = nnx.List([conv_transpose(2 * dim, dim, 5, rngs=rngs), relu])
        self.deconv_out = conv_transpose(dim, 1, 8, 2, rngs=rngs)

    def __call__(self, z: jax.Array) -> jax.Array:
        h = _sequential(self.preprocess, z).reshape(z.shape[0], 4, 4, 4 * self.dim)
        h = _sequential(self.block1, h)[:, :7, :7]
        h = _sequential(self.block2, h)
        return jax.nn.sigmoid(self.deconv_out(h)).reshape(z.shape[0], 784)


class WGANGPMNISTCritic(nnx.Module):
    """(B, 784) or (B, 28, 28, 1) -> scores (B,): [conv5 stride 2 pad 2, ReLU] x 3 (D, 2D, 4D
    maps: 28 -> 14 -> 7 -> 4), Linear 4·4·4D -> 1."""

    def __init__(self, dim: int = 64, *, rngs: nnx.Rngs) -> None:
        c5 = lambda a, b: conv(a, b, 5, 2, 2, rngs=rngs)  # noqa: E731
        self.main = nnx.List([c5(1, dim), relu, c5(dim, 2 * dim), relu, c5(2 * dim, 4 * dim), relu])
        self.output = linear(64 * dim, 1, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        h = _sequential(self.main, x.reshape(x.shape[0], 28, 28, 1))
        return self.output(h.reshape(h.shape[0], -1))[:, 0]


# --- the cases' networks (cases.Case.models) -----------------------------------------------------

PYTORCH_GAN_DOC = (
    "benchmarks/peers/external.py: PyTorch-GAN dcgan.py at 32x32x1, latent 100 (G: Linear, BN, "
    "[up 2x, conv3, BN eps 0.8, LReLU] x 2, conv3, tanh; D: [conv3 s2, LReLU, BN eps 0.8 but "
    "the first] x 4, Linear to a logit; Dropout2d left out)"
)
WGAN_GP_MNIST_DOC = (
    "benchmarks/peers/external.py: caogang/wgan-gp gan_mnist.py, DIM 64, latent 128 (G: Linear, "
    "ReLU, ConvT5, crop 7x7, ReLU, ConvT5, ReLU, ConvT8 s2, sigmoid, 784; D: [conv5 s2 p2, ReLU] "
    "x 3, Linear)"
)


#: The forms ``for_cpu`` chose for the cases' networks on this 2-core build machine (whole-model
#: timing at the cases' batches; another machine may choose others): the parity tests build the
#: mirrors in these forms, without timing anything, and check them against torch.
FORMS_HERE = {
    "wgan_gp_mnist": (
        {"block1.0": "col2im", "block2.0": "col2im", "deconv_out": "native>col2im"},
        {"main.0": "im2col", "main.2": "native>im2col", "main.4": "im2col"},
    ),
    "pytorch_gan_dcgan32": (
        {"conv_blocks.2": "upsample", "conv_blocks.6": "upsample", "conv_blocks.9": "native"},
        {
            "model.0": "im2col",
            "model.3": "native",
            "model.7": "native",
            "model.11": "native>im2col",
        },
    ),
}


def on_cpu(g: nnx.Module, d: nnx.Module, c, sample: tuple[int, ...], forms=None):
    """``for_cpu`` on both networks at the run's batch (the critic differentiated twice under a
    gradient penalty); ``forms``: (G forms, D forms) to apply instead of timing."""
    b = c.schedule.batch_size
    g_forms, d_forms = forms or (None, None)
    for_cpu(g, jax.ShapeDtypeStruct((b, c.model.latent_dim), jnp.float32), forms=g_forms)
    order = 2 if c.loss.gp_weight > 0 else 1
    for_cpu(d, jax.ShapeDtypeStruct((b, *sample), jnp.float32), order=order, forms=d_forms)
    return g, d


def pytorch_gan_dcgan32_models(c, cpu: bool = True, forms=None) -> tuple[nnx.Module, nnx.Module]:
    """(G, D) of ``pytorch_gan_dcgan32`` for config ``c`` (its latent_dim, seed and batch);
    ``cpu``: through ``for_cpu`` (``forms``: its per-layer forms, else timed)."""
    rngs = nnx.Rngs(c.output.seed)
    g = PyTorchGANDCGANGenerator(32, 1, c.model.latent_dim, rngs=rngs)
    d = PyTorchGANDCGANDiscriminator(32, 1, rngs=rngs)
    return on_cpu(g, d, c, (32, 32, 1), forms) if cpu else (g, d)


def wgan_gp_mnist_models(c, cpu: bool = True, forms=None) -> tuple[nnx.Module, nnx.Module]:
    """(G, D) of ``wgan_gp_mnist`` for config ``c`` (its latent_dim, seed and batch); ``cpu``:
    through ``for_cpu`` (``forms``: its per-layer forms, else timed)."""
    rngs = nnx.Rngs(c.output.seed)
    g, d = WGANGPMNISTGenerator(64, c.model.latent_dim, rngs=rngs), WGANGPMNISTCritic(64, rngs=rngs)
    return on_cpu(g, d, c, (784,), forms) if cpu else (g, d)
