"""Sample images on disk: PNG grids of generated images and 2-D scatter plots with the critic, and
what a run leaves in its ``samples/`` folder (grids by step, per-stage grids, the growth strip)."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image

from jaxgan.arrays import to_uint8


def image_grid(images: np.ndarray, cols: int | None = None, pad: int = 1) -> np.ndarray:
    """(N, H, W, C) float in [-1, 1] -> one uint8 (rows·H, cols·W, 3) grid with ``pad`` px gaps."""
    x = to_uint8(np.asarray(images))
    if x.ndim != 4:
        raise ValueError(f"images must be (N, H, W, C), got shape {x.shape}.")
    if x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    n, h, w, _ = x.shape
    cols = cols or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    grid = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), 255, np.uint8)
    for i in range(n):
        r, c = divmod(i, cols)
        y0, x0 = pad + r * (h + pad), pad + c * (w + pad)
        grid[y0 : y0 + h, x0 : x0 + w] = x[i]
    return grid


def upscale(img: np.ndarray, min_size: int = 256) -> np.ndarray:
    """Nearest-neighbour upscale by an integer factor so that small grids are visible."""
    f = max(1, min_size // max(img.shape[:2]))
    return img.repeat(f, axis=0).repeat(f, axis=1) if f > 1 else img


def save_png(path: str, img: np.ndarray) -> None:
    """Write a uint8 HxWx3 image atomically (temp file + rename)."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = path + ".tmp"
    Image.fromarray(img).save(tmp, format="PNG")
    os.replace(tmp, path)


def toy_plot(
    real: np.ndarray,
    fake: np.ndarray,
    critic_values: np.ndarray,
    extent: float,
    size: int = 400,
) -> np.ndarray:
    """A scatter of real (orange) and generated (green) 2-D points over the critic's heat map.

    ``critic_values``: (G, G) critic scores on a grid spanning [-extent, extent]² (row 0 = top,
    largest y). Returns a uint8 (size, size, 3) image; a darker blue background = lower score.
    """
    v = np.asarray(critic_values, np.float64)
    span = v.max() - v.min()
    t = (v - v.min()) / span if span > 0 else np.zeros_like(v)
    heat = np.stack([40 + 150 * t, 60 + 160 * t, 120 + 135 * t], -1).astype(np.uint8)
    img = np.asarray(Image.fromarray(heat).resize((size, size), Image.Resampling.BILINEAR)).copy()
    # Iso-lines every tenth of the range: mark pixels where the decile changes.
    level = np.floor(
        np.asarray(Image.fromarray((t * 255).astype(np.uint8)).resize((size, size))) / 25.6
    )
    edge = (np.diff(level, axis=0, prepend=level[:1]) != 0) | (
        np.diff(level, axis=1, prepend=level[:, :1]) != 0
    )
    img[edge] = (230, 230, 230)

    def plot(points: np.ndarray, color: tuple[int, int, int]) -> None:
        p = np.asarray(points, np.float64)
        col = np.rint((p[:, 0] + extent) / (2 * extent) * (size - 1)).astype(int)
        row = np.rint((extent - p[:, 1]) / (2 * extent) * (size - 1)).astype(int)
        keep = (col >= 1) & (col < size - 1) & (row >= 1) & (row < size - 1)
        for dr in (-1, 0, 1):
            for dc in (-1, 0, 1):
                img[row[keep] + dr, col[keep] + dc] = color

    plot(real, (255, 140, 0))
    plot(fake, (20, 200, 60))
    return img


def write_grid(sample_dir: str, step: int, images: np.ndarray) -> str:
    """``grid_<step>.png`` and ``latest.png`` from (N, H, W, C) images in [-1, 1]; returns latest."""
    grid = upscale(image_grid(images, cols=8))
    save_png(os.path.join(sample_dir, f"grid_{step:07d}.png"), grid)
    latest = os.path.join(sample_dir, "latest.png")
    save_png(latest, grid)
    return latest


def write_stage(
    sample_dir: str, resolution: int, images: np.ndarray, schedule: Sequence[int]
) -> None:
    """At the end of a stage: ``stage_<res>.png`` and its row of the growth strip.

    The strip stacks the first 8 samples of every finished stage, each upscaled to the schedule's
    last resolution; rows are kept as ``strip_<res>.npy`` so a resumed run rebuilds the strip.
    """
    save_png(
        os.path.join(sample_dir, f"stage_{resolution:04d}.png"),
        upscale(image_grid(images, cols=8)),
    )
    f = schedule[-1] // resolution
    row = image_grid(images[:8].repeat(f, axis=1).repeat(f, axis=2), cols=8)
    np.save(os.path.join(sample_dir, f"strip_{resolution:04d}.npy"), row)
    paths = [os.path.join(sample_dir, f"strip_{r:04d}.npy") for r in schedule]
    rows = [np.load(p) for p in paths if os.path.exists(p)]
    save_png(os.path.join(sample_dir, "growth_strip.png"), upscale(np.concatenate(rows)))


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
    img = toy_plot(real, fake, scores, extent)
    save_png(os.path.join(sample_dir, f"toy_{step:07d}.png"), img)
    latest = os.path.join(sample_dir, "latest.png")
    save_png(latest, img)
    return latest
