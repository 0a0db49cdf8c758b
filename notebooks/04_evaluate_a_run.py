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
# # Evaluate a run
#
# [![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/jaxgan/jaxgan/blob/main/notebooks/04_evaluate_a_run.ipynb)
#
# Open a run directory (finished or still running), sample with the EMA generator, compute metrics,
# and look at a sample grid and a latent interpolation. No trainer is built: `jaxgan.open_run`
# restores the newest checkpoint that restores.

# %%
# Install (skipped when jaxgan is already importable, e.g. in the project's CI).
import importlib.util
import os
import subprocess
import sys

TEST = os.environ.get("JAXGAN_NOTEBOOK_TEST") == "1"  # CI: evaluate a tiny run made here
if importlib.util.find_spec("jaxgan") is None:
    extra = "tpu" if os.path.exists("/dev/accel0") else "cuda12" if os.path.exists("/dev/nvidia0") else ""
    spec = f"jaxgan{'[' + extra + ']' if extra else ''} @ git+https://github.com/jaxgan/jaxgan"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", spec], check=True)

# %%
from jaxgan import xla_flags

xla_flags.apply(announce=True)  # jaxgan's XLA:CPU flag, before JAX starts
import matplotlib.pyplot as plt

import jaxgan
from jaxgan import configs
from jaxgan.samples import image_grid

# The main job's run directory (`python experiments/run.py`); set JAXGAN_RUN to use another.
WORKDIR = os.environ.get("JAXGAN_RUN", "runs/mnist5k-wgan-gp-progressive")
if TEST or not os.path.isdir(os.path.join(WORKDIR, "checkpoints")):
    # No run there yet: train a small one (the main preset shortened) so the notebook stands alone.
    import tempfile

    WORKDIR = tempfile.mkdtemp(prefix="jaxgan-eval-") if TEST else WORKDIR
    if TEST:
        short = dict(stage_schedule=(4, 8, 16), kimg_stable=0.064, kimg_fade=0.064, latent_dim=16,
                     batch_per_res={4: 16, 8: 16, 16: 16}, fmap_base=32, fmap_max=16)  # fmt: skip
    else:
        short = dict(stage_schedule=(4, 8, 16, 32), kimg_stable=4.0, kimg_fade=4.0)
    short.update(kimg_total=0.0, sample_every=0, log_every=100)
    jaxgan.train(jaxgan.override(configs.get("main"), **short), WORKDIR, quiet=True)
run = jaxgan.open_run(WORKDIR)
c = run.config
print(f"{WORKDIR}: step {run.step}, {run.images_seen} images, {c.loss.loss} {c.model.model} on "
      f"{c.data.dataset}, phase at {run.phase.resolution}x{run.phase.resolution}; "
      f"EMA generator: {c.optim.ema > 0}")  # fmt: skip

# %% [markdown]
# ## Samples

# %%
images = run.sample(64, seed=0)
plt.figure(figsize=(6, 6))
plt.imshow(image_grid(images, cols=8))
plt.axis("off")
plt.title(f"64 samples at step {run.step}")
plt.show()

# %% [markdown]
# ## Metrics
# SWD against the real data (with the real-vs-real noise floor to judge it by), MS-SSIM between
# random sample pairs, and for digits at 28² or 32² the classifier's mode histogram (`modes/...`).

# %%
metrics = ["swd", "ms_ssim"]
if c.data.dataset in ("mnist5k", "digits") and run.phase.resolution in (28, 32):
    metrics.append("modes")
result = run.evaluate(metrics, num_images=256 if TEST else 2048)
for k, v in result.items():
    print(f"{k:<32}{v}")

# %% [markdown]
# ## A latent interpolation
# Each row walks a great circle between two random latents; a smooth row means the generator maps
# nearby latents to nearby images.

# %%
rows, steps = 4, 8
path = run.interpolate(steps=steps, rows=rows, seed=3)
plt.figure(figsize=(8, 4))
plt.imshow(image_grid(path, cols=steps))
plt.axis("off")
plt.show()
