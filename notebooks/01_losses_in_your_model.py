# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # jaxgan losses in your own model
#
# [![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/jaxgan/jaxgan/blob/main/notebooks/01_losses_in_your_model.ipynb)
# [![Open in Kaggle](https://kaggle.com/static/images/open-in-kaggle.svg)](https://kaggle.com/kernels/welcome?src=https://github.com/jaxgan/jaxgan/blob/main/notebooks/01_losses_in_your_model.ipynb)
#
# `jaxgan.losses` and `jaxgan.penalties` are pure functions of arrays and of a critic callable
# (`critic(x) -> scores`), so they drop into any JAX training step: Flax NNX (here), Linen,
# Equinox or plain JAX. This notebook writes its own small NNX generator, critic and training step,
# trains a WGAN-GP on the 8-Gaussian ring, and shows weight clipping as an optax transform.

# %%
# Install (skipped when jaxgan is already importable, e.g. in the project's CI).
import importlib.util
import os
import subprocess
import sys

TEST = os.environ.get("JAXGAN_NOTEBOOK_TEST") == "1"  # CI: shrink everything to CPU size
if importlib.util.find_spec("jaxgan") is None:
    extra = "tpu" if os.path.exists("/dev/accel0") else "cuda12" if os.path.exists("/dev/nvidia0") else ""
    spec = f"jaxgan{'[' + extra + ']' if extra else ''} @ git+https://github.com/jaxgan/jaxgan"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", spec], check=True)

# %%
from jaxgan import xla_flags

xla_flags.apply(announce=True)  # jaxgan's XLA:CPU flag, before JAX starts
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
from flax import nnx

from jaxgan import losses
from jaxgan.data.toys import get_toy
from jaxgan.metrics.modes import toy_mode_metrics
from jaxgan.optim import clip_weights

print("JAX", jax.__version__, "on", jax.default_backend(), jax.devices())

# %% [markdown]
# ## Your models
# Two small MLPs in Flax NNX: the generator maps 2-D noise to points, the critic maps points to
# one unbounded score per sample (no sigmoid: a Wasserstein critic).


# %%
class MLP(nnx.Module):
    def __init__(self, sizes, rngs: nnx.Rngs):
        self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(sizes[:-1], sizes[1:])])

    def __call__(self, x):
        for layer in self.layers[:-1]:
            x = jax.nn.relu(layer(x))
        return self.layers[-1](x)


WIDTH = 64 if TEST else 256
STEPS = 60 if TEST else 3000
N_CRITIC, BATCH, GP_WEIGHT = 5, 256, 0.1  # the WGAN-GP toy script's settings

generator = MLP([2, WIDTH, WIDTH, 2], nnx.Rngs(0))
critic = MLP([2, WIDTH, WIDTH, 1], nnx.Rngs(1))
score = lambda model, x: model(x)[:, 0]  # noqa: E731  (B, 1) -> (B,)
g_opt = nnx.Optimizer(generator, optax.adam(1e-4, b1=0.5, b2=0.9), wrt=nnx.Param)
d_opt = nnx.Optimizer(critic, optax.adam(1e-4, b1=0.5, b2=0.9), wrt=nnx.Param)

# %% [markdown]
# ## The training step
# The critic minimises `E[f(fake)] − E[f(real)] + λ·GP`, where `losses.gradient_penalty` takes the
# critic as a callable and differentiates it at random interpolates between real and fake samples
# (ε ~ U[0, 1) per sample, the gradient norm per sample). The generator minimises `−E[f(fake)]`.


# %%
@nnx.jit
def train_step(generator, critic, g_opt, d_opt, reals, key):
    keys = jax.random.split(key, 2 * N_CRITIC + 1)
    for i in range(N_CRITIC):
        fake = generator(jax.random.normal(keys[2 * i], (BATCH, 2)))

        def critic_loss(critic, real=reals[i], fake=fake, k=keys[2 * i + 1]):
            f = lambda x: score(critic, x)  # noqa: E731
            w = losses.wasserstein_critic_loss(f(real), f(fake))
            return w + GP_WEIGHT * losses.gradient_penalty(f, real, fake, k), -w

        (_, w_estimate), grads = nnx.value_and_grad(critic_loss, has_aux=True)(critic)
        d_opt.update(critic, grads)

    def generator_loss(generator):
        fake = generator(jax.random.normal(keys[-1], (BATCH, 2)))
        return losses.wasserstein_generator_loss(score(critic, fake))

    g_opt.update(generator, nnx.grad(generator_loss)(generator))
    return w_estimate


# %% [markdown]
# ## Train on the 8-Gaussian ring

# %%
ring = get_toy("ring8")
rng = np.random.default_rng(0)
key = jax.random.key(0)
w_curve = []
for step in range(STEPS):
    key, sub = jax.random.split(key)
    reals = jnp.asarray(ring.sample(rng, N_CRITIC * BATCH).reshape(N_CRITIC, BATCH, 2))
    w_curve.append(float(train_step(generator, critic, g_opt, d_opt, reals, sub)))
samples = np.asarray(generator(jax.random.normal(jax.random.key(1), (2500, 2))))
metrics = toy_mode_metrics(samples, ring.centers, ring.std)
print({k: metrics[k] for k in ("modes_captured", "high_quality_fraction", "reverse_kl")})

# %%
fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10, 4.5))
real = ring.sample(rng, 1000)
ax0.scatter(real[:, 0], real[:, 1], s=3, alpha=0.4, label="real")
ax0.scatter(samples[:, 0], samples[:, 1], s=3, alpha=0.4, label="generated")
ax0.scatter(ring.centers[:, 0], ring.centers[:, 1], marker="x", c="k", label="modes")
ax0.set_title(f"{metrics['modes_captured']}/8 modes, {metrics['high_quality_fraction']:.0%} high quality")
ax0.set_aspect("equal")
ax0.legend()
ax1.plot(w_curve, label="W estimate E[f(real)] − E[f(fake)]")
ax1.set_xlabel("generator step")
ax1.legend()
plt.show()

# %% [markdown]
# ## Weight clipping instead of the penalty
# WGAN's weight clipping is an optax `GradientTransformation`, placed **last** in the chain: it
# rewrites the updates so that every parameter lands in [−c, c]. It clips parameters, not updates
# (that would be `optax.clip`).

# %%
clipped = MLP([2, WIDTH, WIDTH, 1], nnx.Rngs(2))
clip_opt = nnx.Optimizer(clipped, optax.chain(optax.rmsprop(5e-5), clip_weights(0.01)), wrt=nnx.Param)


@nnx.jit
def clipped_step(critic, opt, real, fake):
    loss_fn = lambda c: losses.wasserstein_critic_loss(score(c, real), score(c, fake))  # noqa: E731
    opt.update(critic, nnx.grad(loss_fn)(critic))


real = jnp.asarray(ring.sample(rng, BATCH))
clipped_step(clipped, clip_opt, real, generator(jax.random.normal(jax.random.key(3), (BATCH, 2))))
largest = max(float(jnp.max(jnp.abs(p))) for p in jax.tree.leaves(nnx.state(clipped, nnx.Param)))
print(f"largest |weight| after one clipped step: {largest:.4f} (bound 0.01)")
assert largest <= 0.01
