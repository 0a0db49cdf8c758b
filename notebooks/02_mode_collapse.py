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
# # Mode collapse, from the BCE GAN to WGAN-GP
#
# [![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/jaxgan/jaxgan/blob/main/notebooks/02_mode_collapse.ipynb)
# [![Open in Kaggle](https://kaggle.com/static/images/open-in-kaggle.svg)](https://kaggle.com/kernels/welcome?src=https://github.com/jaxgan/jaxgan/blob/main/notebooks/02_mode_collapse.ipynb)
#
# The same generator and critic (2 → 512 → 512 → 512 MLPs, latent 2, batch 256) trained with three
# objectives on the 8-Gaussian ring and the 25-Gaussian grid, through `jaxgan.train` with the toy
# presets. For each: the samples over the modes, the modes captured, the share of high-quality
# samples (within 3 standard deviations of a mode), the reverse KL of the mode histogram to
# uniform, and the critic's value surface.
#
# **Why the BCE GAN collapses.** Its discriminator is a classifier: once it separates the data,
# the generator's gradient comes only from the modes it already sits near, and nothing pulls mass
# toward a mode it has missed (or the saturating loss gives no gradient at all). The generator
# chases the discriminator from mode to mode and settles on a few.
# **What the Wasserstein critic changes.** The critic estimates the Wasserstein distance, whose
# gradient points from every generated sample toward the data, also toward far-away modes. Weight
# clipping keeps the critic Lipschitz but makes it too simple (weights pile up at ±c); the
# gradient penalty keeps it Lipschitz without that, and covers every mode.

# %%
# Install (skipped when jaxgan is already importable, e.g. in the project's CI).
import importlib.util
import os
import subprocess
import sys

TEST = os.environ.get("JAXGAN_NOTEBOOK_TEST") == "1"  # CI: shrink everything to CPU size
MULTI_SEED = False  # True: a table over several seeds (minutes per seed on a CPU)
if importlib.util.find_spec("jaxgan") is None:
    extra = "tpu" if os.path.exists("/dev/accel0") else "cuda12" if os.path.exists("/dev/nvidia0") else ""
    spec = f"jaxgan{'[' + extra + ']' if extra else ''} @ git+https://github.com/jaxgan/jaxgan"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", spec], check=True)

# %%
from jaxgan import xla_flags

xla_flags.apply(announce=True)  # jaxgan's XLA:CPU flag, before JAX starts
import tempfile

import jax
import matplotlib.pyplot as plt
import numpy as np

import jaxgan
from jaxgan import configs
from jaxgan.data.toys import get_toy
from jaxgan.metrics.modes import toy_mode_metrics

print("JAX", jax.__version__, "on", jax.default_backend(), jax.devices())
OBJECTIVES = {"BCE GAN": "toy-gan", "WGAN (clipping)": "toy-wgan", "WGAN-GP": "toy-wgan-gp"}
DATASETS = ("ring8", "grid25")
SIZE = dict(steps=30, hidden=(32, 32), log_every=30) if TEST else dict(steps=3000)
WORKDIR = tempfile.mkdtemp(prefix="jaxgan-mode-collapse-")


def train(preset: str, dataset: str, seed: int = 0) -> jaxgan.SavedRun:
    """One run (resumed if it is already in WORKDIR) and the restored result."""
    config = jaxgan.override(configs.get(preset), dataset=dataset, seed=seed, sample_every=0, **SIZE)
    workdir = os.path.join(WORKDIR, f"{preset}-{dataset}-{seed}")
    jaxgan.train(config, workdir, quiet=True)
    return jaxgan.open_run(workdir)


runs = {(name, ds): train(preset, ds) for name, preset in OBJECTIVES.items() for ds in DATASETS}

# %% [markdown]
# ## Samples, modes and the critic

# %%
rows = []
fig, axes = plt.subplots(len(DATASETS), len(OBJECTIVES), figsize=(4 * len(OBJECTIVES), 4 * len(DATASETS)))
for i, ds in enumerate(DATASETS):
    toy = get_toy(ds)
    real = toy.sample(np.random.default_rng(1), 1000)
    extent = float(np.abs(real).max()) * 1.3
    g = np.linspace(-extent, extent, 80, dtype=np.float32)
    xx, yy = np.meshgrid(g, g)
    for j, name in enumerate(OBJECTIVES):
        run = runs[name, ds]
        fake = run.sample(2500, seed=2)
        m = toy_mode_metrics(fake, toy.centers, toy.std)
        rows.append((ds, name, m["modes_captured"], m["num_modes"], m["high_quality_fraction"], m["reverse_kl"]))
        ax = axes[i, j]
        surface = run.critic(np.stack([xx.ravel(), yy.ravel()], 1)).reshape(xx.shape)
        contour = ax.contourf(xx, yy, surface, levels=20, cmap="Blues")
        ax.scatter(real[:, 0], real[:, 1], s=2, c="tab:orange", alpha=0.5, label="real")
        ax.scatter(fake[:1000, 0], fake[:1000, 1], s=2, c="tab:green", alpha=0.5, label="generated")
        ax.set_title(f"{name} on {ds}: {m['modes_captured']}/{m['num_modes']} modes")
        ax.set_aspect("equal")
        ax.legend(loc="lower right", fontsize=7)
        fig.colorbar(contour, ax=ax, shrink=0.7, label="critic value")
plt.tight_layout()
plt.show()

# %%
print(f"{'data':<8}{'objective':<18}{'modes':>8}{'high quality':>14}{'reverse KL':>12}")
for ds, name, got, total, hq, kl in rows:
    print(f"{ds:<8}{name:<18}{got:>5}/{total:<3}{hq:>13.1%}{kl:>12.3f}")

# %% [markdown]
# ## Over several seeds
# One seed can be lucky. With `MULTI_SEED = True` (set at the top) each objective runs on three
# more seeds and the table gives the mean ± standard deviation of the modes captured.

# %%
if MULTI_SEED and not TEST:
    for ds in DATASETS:
        toy = get_toy(ds)
        for name, preset in OBJECTIVES.items():
            got = [toy_mode_metrics(train(preset, ds, s).sample(2500, seed=2), toy.centers, toy.std)
                   for s in (1, 2, 3)]  # fmt: skip
            modes = np.array([m["modes_captured"] for m in got])
            hq = np.array([m["high_quality_fraction"] for m in got])
            print(f"{ds:<8}{name:<18} modes {modes.mean():.1f} ± {modes.std():.1f}, "
                  f"high quality {hq.mean():.1%} ± {hq.std():.1%}")  # fmt: skip
