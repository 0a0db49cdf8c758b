"""Multi-layer perceptron generator and critic (the WGAN-GP toy architecture and MNIST MLPs)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from jaxgan.models import CRITIC_NORMS_BY_MODEL

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": jax.nn.relu,
    "lrelu": lambda x: jax.nn.leaky_relu(x, 0.2),
    "tanh": jnp.tanh,
}


def _activation(name: str) -> Callable[[jax.Array], jax.Array]:
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(
            f"activation must be one of {sorted(ACTIVATIONS)}, got {name!r}."
        ) from None


class MLPGenerator(nnx.Module):
    """z (B, latent_dim) -> samples (B, *out_shape).

    Defaults are the WGAN-GP toy generator: 3 hidden layers of 512, ReLU, linear output.
    ``batchnorm`` puts BatchNorm after every hidden layer but the first (the MNIST MLP of the
    benchmarks); ``output="tanh"`` bounds image outputs to [-1, 1].
    """

    def __init__(
        self,
        latent_dim: int,
        out_shape: Sequence[int],
        *,
        hidden: Sequence[int] = (512, 512, 512),
        activation: str = "relu",
        batchnorm: bool = False,
        output: str = "linear",
        rngs: nnx.Rngs,
    ):
        if output not in ("linear", "tanh"):
            raise ValueError(f"output must be 'linear' or 'tanh', got {output!r}.")
        self.out_shape = tuple(int(s) for s in out_shape)
        self.act = _activation(activation)
        self.output = output
        widths = [latent_dim, *hidden]
        self.layers = nnx.List(
            [nnx.Linear(a, b, rngs=rngs) for a, b in zip(widths[:-1], widths[1:], strict=True)]
        )
        self.norms = nnx.List(
            [
                nnx.BatchNorm(w, momentum=0.9, rngs=rngs) if (batchnorm and i > 0) else None
                for i, w in enumerate(hidden)
            ]
        )
        self.out = nnx.Linear(widths[-1], math.prod(self.out_shape), rngs=rngs)

    def __call__(self, z: jax.Array) -> jax.Array:
        h = z
        for layer, norm in zip(self.layers, self.norms, strict=True):
            h = layer(h)
            if norm is not None:
                h = norm(h)
            h = self.act(h)
        x = self.out(h)
        if self.output == "tanh":
            x = jnp.tanh(x)
        return x.reshape((z.shape[0], *self.out_shape))


class MLPCritic(nnx.Module):
    """samples (B, *in_shape) -> scores (B,). Defaults: the WGAN-GP toy critic (3 × 512, ReLU).

    ``norm="layer"`` adds LayerNorm after each hidden layer (safe with a gradient penalty).
    """

    def __init__(
        self,
        in_shape: Sequence[int],
        *,
        hidden: Sequence[int] = (512, 512, 512),
        activation: str = "relu",
        norm: str = "none",
        rngs: nnx.Rngs,
    ):
        if norm not in CRITIC_NORMS_BY_MODEL["mlp"]:
            raise ValueError(
                f"MLPCritic norm must be one of {CRITIC_NORMS_BY_MODEL['mlp']}, got {norm!r}."
            )
        self.act = _activation(activation)
        widths = [math.prod(in_shape), *hidden]
        self.layers = nnx.List(
            [nnx.Linear(a, b, rngs=rngs) for a, b in zip(widths[:-1], widths[1:], strict=True)]
        )
        self.norms = nnx.List(
            [nnx.LayerNorm(w, rngs=rngs) if norm == "layer" else None for w in hidden]
        )
        self.out = nnx.Linear(widths[-1], 1, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        h = x.reshape(x.shape[0], -1)
        for layer, norm in zip(self.layers, self.norms, strict=True):
            h = layer(h)
            if norm is not None:
                h = norm(h)
            h = self.act(h)
        return self.out(h)[:, 0]
