"""Sample a trained run: ``python experiments/sample.py --workdir RUN [--num N] [--interpolate RxS] [--export PATH]``.

Restores the newest (or ``--checkpoint STEP``) checkpoint and samples with the generator
``jaxgan.open_run`` uses (the EMA one when the run keeps it) at the checkpoint's resolution and
phase (a fade's alpha included). With none of ``--num``, ``--interpolate``, ``--export``: 64
samples.

- ``--num N``: ``sample_0000.png`` ... (N images at the run's resolution, 8-bit grayscale or RGB)
  and ``grid.png`` (the first 256, upscaled to be seen) in ``--out``. The latents are those of
  ``open_run(RUN).sample(N, seed=SEED)``. Toy runs (2-D points): one ``scatter.png``, the N
  points in green over the critic's values (darker = lower score).
- ``--interpolate ROWSxSTEPS``: ROWS spherical paths (slerp) of STEPS latents between random
  endpoints, as ``open_run(RUN).interpolate(STEPS, ROWS, seed=SEED)``: ``interpolation.png`` (one
  path per row) and ``interpolation.gif`` (animated, forth and back). Toy runs refuse it.
- ``--truncation T`` (> 0): latent entries with |z| > T are resampled until inside (the truncation
  trick), the endpoints only for ``--interpolate``; 0 (default) leaves the latents alone.
- ``--export PATH``: the generator as a serialized ``jax.export`` module for cpu, cuda and tpu at
  PATH and ``PATH.json`` beside it; it runs with ``jax`` alone (see ``jaxgan.export``).

Bad input (a flag's value, ``--out`` a file, a workdir that is not a run, a checkpoint that does
not exist) is one line on stderr and exit status 2, and nothing is written; a write that fails is
one line and status 1.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from typing import Any

from jaxgan import xla_flags
from jaxgan.errors import CheckpointError, ConfigError

PROG = "sample.py"
GRID_MAX = 256  # samples shown in grid.png
CHUNK = 1024  # latents sampled at once


class _BadFlag(Exception):
    """A flag argparse refused; the message is argparse's (it names the flag)."""


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are raised, so that :func:`main` says them in one line, status 2."""

    def error(self, message: str):
        raise _BadFlag(f"{message} (see --help)")


def truncate(key: Any, z: Any, threshold: float) -> Any:
    """``z`` with every entry |z| > ``threshold`` resampled from the standard normal until it
    lands in [-threshold, threshold]; entries already inside are returned unchanged.

    Pure in ``key`` (a ``jax.random`` key): the same key, latents and threshold give the same
    result. Resampling until inside draws from the standard normal truncated to
    [-threshold, threshold], so one draw of ``jax.random.truncated_normal`` per entry is exactly
    that, without a loop whose length grows as the threshold shrinks. ``threshold`` <= 0: off.
    """
    import jax
    import jax.numpy as jnp

    z = jnp.asarray(z, jnp.float32)
    if threshold <= 0:
        return z
    t = jnp.float32(threshold)
    fresh = jax.random.truncated_normal(key, -t, t, z.shape, jnp.float32)
    return jnp.where(jnp.abs(z) > t, jnp.clip(fresh, -t, t), z)


def _count(low: int, what: str, high: int = 2**63):
    """An argparse type: an int in [low, high)."""

    def convert(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            v = None
        if v is None or not low <= v < high:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
        return v

    return convert


def _grid_spec(text: str) -> tuple[int, int]:
    """``ROWSxSTEPS`` (ROWS >= 1, STEPS >= 2) -> (rows, steps)."""
    parts = text.lower().split("x")
    try:
        rows, steps = (int(p) for p in parts) if len(parts) == 2 else (0, 0)
    except ValueError:
        rows, steps = 0, 0
    if not (1 <= rows <= 4096 and 2 <= steps <= 4096):
        raise argparse.ArgumentTypeError(
            f"must be ROWSxSTEPS with ROWS in 1..4096 and STEPS in 2..4096, such as 4x8; got {text!r}"
        )
    return rows, steps


def _threshold(text: str) -> float:
    """A finite float >= 0."""
    try:
        v = float(text)
    except ValueError:
        v = math.nan
    if not (math.isfinite(v) and v >= 0):
        raise argparse.ArgumentTypeError(f"must be a number >= 0 (0: off), got {text!r}")
    return v


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description=__doc__, allow_abbrev=False,
                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--workdir", required=True, help="a run directory of experiments/run.py")
    p.add_argument("--num", type=_count(1, "an int >= 1"), default=None,
                   help="write N sample PNGs and a grid (default 64 when nothing else is asked)")  # fmt: skip
    p.add_argument("--interpolate", type=_grid_spec, default=None, metavar="ROWSxSTEPS",
                   help="write a GIF and a PNG strip of ROWS latent paths of STEPS images")  # fmt: skip
    p.add_argument("--out", default=None, help="output directory, made if missing (default: RUN/generated)")  # fmt: skip
    p.add_argument("--seed", type=_count(0, "an int in 0..2**32-1", 2**32), default=0)
    p.add_argument("--checkpoint", type=_count(0, "a step >= 0"), default=None,
                   help="step (default: the newest that restores)")  # fmt: skip
    p.add_argument("--truncation", type=_threshold, default=0.0, metavar="T",
                   help="resample latent entries with |z| > T until inside (0: off)")  # fmt: skip
    p.add_argument("--export", default=None, metavar="PATH",
                   help="write the generator as a jax.export artifact (+ PATH.json)")  # fmt: skip
    return p


def _check_out(out: str) -> str:
    """``out`` as an absolute directory that is or can be made and written; else ValueError."""
    out = os.path.abspath(out)
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"--out={out} is a file; give a directory (made if missing).")
    from jaxgan.export import writable_below

    writable_below(out, f"--out={out}")
    return out


def _latents(run: Any, num: int, seed: int, threshold: float) -> Any:
    """(num, latent_dim): the latents of ``run.sample(num, seed=seed)``, truncated."""
    import jax

    key = jax.random.key(seed)
    z = jax.random.normal(key, (num, run.config.model.latent_dim))
    return truncate(jax.random.fold_in(key, 1), z, threshold)


def interpolation_latents(run: Any, rows: int, steps: int, seed: int, threshold: float) -> Any:
    """(rows·steps, latent_dim), row-major: ``run.interpolate(steps, rows, seed=seed)``'s latents
    with the endpoints truncated first (a path between them may leave the threshold)."""
    import jax
    import jax.numpy as jnp

    from jaxgan.arrays import slerp

    key = jax.random.key(seed)
    k0, k1 = jax.random.split(key)
    d = run.config.model.latent_dim
    a, b = jax.random.normal(k0, (rows, 1, d)), jax.random.normal(k1, (rows, 1, d))
    a = truncate(jax.random.fold_in(key, 1), a, threshold)
    b = truncate(jax.random.fold_in(key, 2), b, threshold)
    z = slerp(a, b, jnp.linspace(0.0, 1.0, steps)[None, :, None])
    return z.reshape(rows * steps, d)


def _sample(run: Any, z: Any) -> Any:
    """``run.sample(z=z)`` in chunks of :data:`CHUNK` rows."""
    import numpy as np

    return np.concatenate([run.sample(z=z[i : i + CHUNK]) for i in range(0, len(z), CHUNK)])


def write_samples(run: Any, out: str, num: int, seed: int, threshold: float) -> str:
    """``--num``: N PNGs and ``grid.png`` (images) or ``scatter.png`` (toys); says what it wrote."""
    import numpy as np

    from jaxgan import samples
    from jaxgan.arrays import to_uint8

    x = _sample(run, _latents(run, num, seed, threshold))
    os.makedirs(out, exist_ok=True)
    if run.config.is_toy:
        extent = float(np.abs(x).max()) * 1.1 + 0.1
        g = np.linspace(-extent, extent, 96, dtype=np.float32)
        xx, yy = np.meshgrid(g, g[::-1])
        scores = run.critic(np.stack([xx.ravel(), yy.ravel()], 1)).reshape(96, 96)
        path = os.path.join(out, "scatter.png")
        samples.save_png(path, samples.toy_plot(np.zeros((0, 2)), x, scores, extent))
        return f"wrote {num} points (green, over the critic's values): {path}"
    width = max(4, len(str(num - 1)))
    images = to_uint8(x)
    for i, img in enumerate(images):
        samples.save_png(os.path.join(out, f"sample_{i:0{width}d}.png"), img[..., 0] if img.shape[-1] == 1 else img)  # fmt: skip
    grid = os.path.join(out, "grid.png")
    samples.save_png(grid, samples.upscale(samples.image_grid(x[:GRID_MAX])))
    first, last = f"sample_{0:0{width}d}.png", f"sample_{num - 1:0{width}d}.png"
    names = first if num == 1 else f"{first} .. {last}"
    size = "x".join(map(str, x.shape[1:]))
    return f"wrote {num} samples ({size}) to {out}/ ({names}) and the grid of the first {min(num, GRID_MAX)}: {grid}"  # fmt: skip


def write_interpolation(run: Any, out: str, rows: int, steps: int, seed: int, threshold: float) -> str:  # fmt: skip
    """``--interpolate``: ``interpolation.png`` (a path per row) and ``interpolation.gif``."""
    from PIL import Image

    from jaxgan import samples

    x = _sample(run, interpolation_latents(run, rows, steps, seed, threshold))
    os.makedirs(out, exist_ok=True)
    strip = os.path.join(out, "interpolation.png")
    samples.save_png(strip, samples.upscale(samples.image_grid(x, cols=steps)))
    x = x.reshape(rows, steps, *x.shape[1:])
    frames = [samples.upscale(samples.image_grid(x[:, t])) for t in range(steps)]
    frames += frames[-2:0:-1]  # and back
    gif = os.path.join(out, "interpolation.gif")
    tmp = gif + ".tmp"
    pil = [Image.fromarray(f) for f in frames]
    pil[0].save(tmp, format="GIF", save_all=True, append_images=pil[1:], duration=120, loop=0)
    os.replace(tmp, gif)
    return f"wrote {rows} paths of {steps} latents: {gif} (animated) and {strip} (one path a row)"


def main(argv: list[str] | None = None) -> int:
    try:
        a = build_parser().parse_args(argv)
    except _BadFlag as e:
        sys.stderr.write(f"{PROG}: error: {e}\n")
        return 2
    except SystemExit as e:  # --help
        return e.code if isinstance(e.code, int) else 0
    from jaxgan import export as export_lib

    num = a.num if a.num is not None or a.interpolate or a.export else 64
    try:
        out = _check_out(a.out) if a.out is not None else None
        export_path = export_lib.check_path(a.export, "--export") if a.export is not None else None
        # Before open_run starts JAX; said on stdout, so that stderr holds one line for an error.
        xla_flags.apply(announce=True, stream=sys.stdout)
        from jaxgan import open_run

        run = open_run(a.workdir, a.checkpoint)
        out = out or _check_out(os.path.join(run.workdir, "generated"))
        if a.interpolate and run.config.is_toy:
            raise ValueError(f"--interpolate needs an image run; {run.workdir} generates 2-D points ({run.config.data.dataset}): use --num for a scatter plot.")  # fmt: skip
    except (ValueError, ConfigError) as e:  # ConfigError: a workdir that is no run, a checkpoint
        sys.stderr.write(f"{PROG}: error: {e}\n")
        return 2
    except CheckpointError as e:
        sys.stderr.write(f"{PROG}: error: {e}\n")
        return 1
    p = run.phase
    what = "2-D points" if run.config.is_toy else "images"
    if p.resolution:
        what = f"{p.resolution}x{p.resolution} {what}"
    if p.fading:
        what += f" (fading in, alpha {p.alpha:.3f})"
    gen = "EMA generator" if run.config.optim.ema > 0 else "generator"
    print(f"{run.workdir}: step {run.step}, {what}, {gen}")
    try:
        if num:
            print(write_samples(run, out, num, a.seed, a.truncation))
        if a.interpolate:
            print(write_interpolation(run, out, *a.interpolate, a.seed, a.truncation))
        if export_path:
            meta = run.export(export_path)
            print(f"wrote the {gen} for {', '.join(meta['platforms'])} "
                  f"({meta['size_bytes'] / 1e6:.2f} MB): {export_path} and {export_path}.json")  # fmt: skip
    except (OSError, ImportError) as e:
        why = getattr(e, "strerror", None) or str(e)
        where = getattr(e, "filename", None)
        sys.stderr.write(f"{PROG}: could not write{f' {where}' if where else ''}: {why}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
