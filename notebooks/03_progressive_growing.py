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
# # Progressive growing on a TPU or GPU
#
# [![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/jaxgan/jaxgan/blob/main/notebooks/03_progressive_growing.ipynb)
# [![Open in Kaggle](https://kaggle.com/static/images/open-in-kaggle.svg)](https://kaggle.com/kernels/welcome?src=https://github.com/jaxgan/jaxgan/blob/main/notebooks/03_progressive_growing.ipynb)
#
# A PGGAN run (Karras et al. 2018) through the public API on whatever this runtime has: one TPU
# chip on Colab's v5e-1, eight on Kaggle's v5e-8, one or more GPUs, or the CPU. The batch is
# sharded over all devices (data parallel, `jax.jit` over a device mesh). The run directory lives
# in Drive (Colab) or `/kaggle/working` (Kaggle), so after a runtime restart running the notebook
# again resumes the run exactly where its last checkpoint left it.

# %%
# Install (skipped when jaxgan is already importable, e.g. in the project's CI).
import importlib.util
import os
import subprocess
import sys

TEST = os.environ.get("JAXGAN_NOTEBOOK_TEST") == "1"  # CI: a tiny run on (fake) CPU devices
if importlib.util.find_spec("jaxgan") is None:
    extra = "tpu" if os.path.exists("/dev/accel0") else "cuda12" if os.path.exists("/dev/nvidia0") else ""
    spec = f"jaxgan{'[' + extra + ']' if extra else ''} @ git+https://github.com/jaxgan/jaxgan"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", spec], check=True)

# %%
from jaxgan import xla_flags

xla_flags.apply(announce=True)  # jaxgan's XLA:CPU flag, before JAX starts
import jax

import jaxgan
from jaxgan import configs
from jaxgan.training import schedule

devices = jax.devices()
print(f"{len(devices)} x {devices[0].device_kind} ({jax.default_backend()}), JAX {jax.__version__}")

# %% [markdown]
# ## Where the run lives
# Colab: your Drive (mounted here); Kaggle: the working folder; elsewhere `runs/`.

# %%
if "google.colab" in sys.modules and not TEST:
    from google.colab import drive

    drive.mount("/content/drive")
    ROOT = "/content/drive/MyDrive/jaxgan-runs"
elif os.path.isdir("/kaggle/working") and not TEST:
    ROOT = "/kaggle/working/jaxgan-runs"
else:
    import tempfile

    ROOT = tempfile.mkdtemp(prefix="jaxgan-") if TEST else "runs"
WORKDIR = os.path.join(ROOT, "pggan")
print("run directory:", WORKDIR)

# %% [markdown]
# ## Data
# `tfds:celeb_a` read with grain (no TensorFlow at read time). Preparing it once needs TensorFlow
# and a download (`download=True`); without TensorFlow, upload a folder of images and point
# `IMAGES` at it (`folder:PATH`). On a CPU (and in the CPU test) it trains the offline `mnist5k`
# digits instead, at the `main` preset's CPU-sized schedule (4 -> 32, minutes rather than days).

# %%
IMAGES = os.environ.get("JAXGAN_IMAGES", "")  # e.g. "/content/faces": a folder of images
CPU = jax.default_backend() == "cpu"
if TEST or (CPU and not IMAGES):
    dataset, download = "mnist5k", False
elif IMAGES:
    dataset, download = f"folder:{IMAGES}", False
else:
    dataset, download = "tfds:celeb_a", importlib.util.find_spec("tensorflow") is not None

# %% [markdown]
# ## The config
# The paper's settings (the `pggan` preset), grown to 128×128 here: CelebA's 178×218 crops are
# resized. Per-resolution minibatches default to the paper's (16 up to 128²) rounded up to a
# multiple of the device count, so every device gets an equal share.

# %%
if TEST:
    config = jaxgan.override(
        configs.get("main"), stage_schedule=(4, 8), kimg_stable=0.064, kimg_fade=0.064,
        kimg_total=0.0, batch_per_res={4: 16, 8: 16}, fmap_base=32, fmap_max=16, latent_dim=16,
        log_every=2, sample_every=0, ckpt_every=4,
    )  # fmt: skip
elif dataset == "mnist5k":  # a CPU: the offline main job, 4 -> 32, then 32x32 to 100k images
    config = configs.get("main")
else:
    config = jaxgan.override(
        configs.get("pggan"), dataset=dataset, download=download,
        stage_schedule=(4, 8, 16, 32, 64, 128), kimg_stable=600.0, kimg_fade=600.0,
        log_every=200, sample_every=1000, ckpt_every=1000,
    )  # fmt: skip
batches = {p.resolution: p.batch_size for p in schedule.for_config(config, len(devices)).phases()}
print("global batch per resolution:", batches, "->", {r: b // len(devices) for r, b in batches.items()}, "per device")
if TEST and os.environ.get("XLA_FLAGS", "").count("device_count=8"):
    assert len(devices) == 8, devices  # CI runs this notebook on 8 fake CPU devices

# %% [markdown]
# ## Train (resumes when the run directory already holds a checkpoint)

# %%
summary = jaxgan.train(config, WORKDIR, quiet=TEST)
print(summary.step, "steps,", summary.images_seen, "images; last metrics:",
      {k: round(v, 4) for k, v in summary.metrics.items() if k in ("critic_loss", "w_estimate", "images_per_sec")})  # fmt: skip

# %% [markdown]
# ## The growth strip and the latest samples
# One row per stage (8 samples of the fixed latents, upscaled to the final resolution).

# %%
import matplotlib.pyplot as plt
from PIL import Image

fig, axes = plt.subplots(1, 2, figsize=(14, 7))
for ax, name in zip(axes, ("growth_strip.png", "latest.png"), strict=True):
    ax.imshow(Image.open(os.path.join(WORKDIR, "samples", name)))
    ax.set_title(name)
    ax.axis("off")
plt.show()

# %% [markdown]
# ## SWD and MS-SSIM
# Sliced Wasserstein distance per Laplacian level against the real images (lower is better; the
# noise floor is two real sets against each other), and MS-SSIM between random sample pairs
# (lower = more diverse; needs 16×16 or more).

# %%
run = jaxgan.open_run(WORKDIR)
result = run.evaluate(["swd", "ms_ssim"], num_images=256 if TEST else 4096)
for k, v in result.items():
    print(f"{k:<18}{v}")
