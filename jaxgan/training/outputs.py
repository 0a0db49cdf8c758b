"""What a run leaves in ``samples/``: sample grids, per-stage grids, the growth strip, toy plots."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np

from jaxgan import samples


def write_grid(sample_dir: str, step: int, images: np.ndarray) -> str:
    """``grid_<step>.png`` and ``latest.png`` from (N, H, W, C) images in [-1, 1]; returns latest."""
    grid = samples.upscale(samples.image_grid(images, cols=8))
    samples.save_png(os.path.join(sample_dir, f"grid_{step:07d}.png"), grid)
    latest = os.path.join(sample_dir, "latest.png")
    samples.save_png(latest, grid)
    return latest


def write_stage(
    sample_dir: str, resolution: int, images: np.ndarray, schedule: Sequence[int]
) -> None:
    """At the end of a stage: ``stage_<res>.png`` and its row of the growth strip.

    The strip stacks the first 8 samples of every finished stage, each upscaled to the schedule's
    last resolution; rows are kept as ``strip_<res>.npy`` so a resumed run rebuilds the strip.
    """
    samples.save_png(
        os.path.join(sample_dir, f"stage_{resolution:04d}.png"),
        samples.upscale(samples.image_grid(images, cols=8)),
    )
    f = schedule[-1] // resolution
    row = samples.image_grid(images[:8].repeat(f, axis=1).repeat(f, axis=2), cols=8)
    np.save(os.path.join(sample_dir, f"strip_{resolution:04d}.npy"), row)
    paths = [os.path.join(sample_dir, f"strip_{r:04d}.npy") for r in schedule]
    rows = [np.load(p) for p in paths if os.path.exists(p)]
    samples.save_png(
        os.path.join(sample_dir, "growth_strip.png"), samples.upscale(np.concatenate(rows))
    )


def write_toy(
    sample_dir: str,
    step: int,
    real: np.ndarray,
    fake: np.ndarray,
    critic: Callable[[np.ndarray], np.ndarray],
    grid: int = 96,
) -> str:
    """``toy_<step>.png`` and ``latest.png``: real and generated points over the critic's values."""
    extent = float(np.abs(real).max()) * 1.5 + 0.1
    g = np.linspace(-extent, extent, grid, dtype=np.float32)
    xx, yy = np.meshgrid(g, g[::-1])
    scores = np.asarray(critic(np.stack([xx.ravel(), yy.ravel()], 1))).reshape(grid, grid)
    img = samples.toy_plot(real, fake, scores, extent)
    samples.save_png(os.path.join(sample_dir, f"toy_{step:07d}.png"), img)
    latest = os.path.join(sample_dir, "latest.png")
    samples.save_png(latest, img)
    return latest
