"""A trained generator as a serialized ``jax.export`` artifact that runs with ``jax`` alone.

:func:`export_run` (``jaxgan.open_run(RUN).export(PATH)``) traces the generator a run samples
with (its EMA when the run keeps one) at the checkpoint's phase (resolution, and the fade-in
``alpha`` of a fade, both baked in), with the weights as constants, and exports it once for
several platforms (``cpu``, ``cuda``, ``tpu`` by default) with a symbolic batch dimension ``n``:
``z`` float32 (n, latent_dim) -> images float32 (n, H, W, C), NHWC, in the data's range [-1, 1]
(or (n, 2) points for the 2-D toys). ``PATH`` holds the serialized module, ``PATH.json`` what a
user needs to call it (latent size, output shape and range, the run's config and step).

Loading needs ``jax`` (with ``flatbuffers``, which ``jax.export`` serialization uses) and nothing
of jaxgan or Flax::

    exported = jax.export.deserialize(open(PATH, "rb").read())
    images = exported.call(z)  # z: (n, latent_dim) float32, any n >= 1

Why the weights are baked in: the loading snippet stays a few lines (no parameter tree to
rebuild), and the generators here are small: the main preset's 32x32 one is 0.85 MB, its weights'
float32 bytes plus about 10 kB of program (the module is lowered once for all platforms).
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxgan.errors import ConfigError

#: The platforms an artifact is exported for by default (one module lowered for each).
PLATFORMS = ("cpu", "cuda", "tpu")
_KNOWN = ("cpu", "cuda", "rocm", "tpu")


def generator_fn(run: Any) -> Callable[[jax.Array], jax.Array]:
    """``z`` (n, latent_dim) -> the samples ``run.sample(z=z)`` gives, as a pure function of ``z``
    with ``run``'s (a :class:`~jaxgan.training.saved_run.SavedRun`) generator weights (the EMA
    ones when the run keeps an EMA, as :func:`jaxgan.training.build.sample` picks them), its
    non-trainable state and its phase's resolution and fade-in alpha as constants."""
    from jaxgan.training import build, step

    state, phase = run.state, run.phase
    params = jax.device_get(state.ema if run.config.optim.ema > 0 else state.g_params)
    rest = jax.device_get(state.g_rest)
    apply = build.apply_fn(phase.resolution, phase.fading)
    alpha, g_def = np.float32(phase.alpha), run.g_def

    def generator(z: jax.Array) -> jax.Array:
        return step.generate(g_def, params, rest, z, alpha, apply)

    return generator


def export_generator(
    fn: Callable[[jax.Array], jax.Array], latent_dim: int, platforms: Sequence[str] = PLATFORMS
) -> jax.export.Exported:
    """``fn`` (z: float32 (n, latent_dim) -> samples) exported for ``platforms`` in one
    multi-platform module, with the batch ``n`` symbolic (any n >= 1 at call time)."""
    (n,) = jax.export.symbolic_shape("n")
    spec = jax.ShapeDtypeStruct((n, int(latent_dim)), jnp.float32)
    return jax.export.export(jax.jit(fn), platforms=tuple(platforms))(spec)


def _write_atomic(path: str, data: bytes) -> None:
    """``data`` to ``path`` through a temporary file beside it and a rename (never half a file)."""
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def check_path(path: str, flag: str | None = None) -> str:
    """``path`` as an absolute file path an artifact can be written to, else ConfigError naming
    it (as ``flag=path`` when a command-line ``flag`` gave it): not a directory, and below a
    directory (made if missing) that can be written in."""
    if not isinstance(path, str | os.PathLike) or not str(path):
        raise ConfigError(f"{flag or 'the export path'} must be a file name such as generator.jax, got {path!r}.")  # fmt: skip
    path = os.path.abspath(os.fspath(path))
    label = f"{flag}={path}" if flag else f"export path {path}"
    if os.path.isdir(path):
        raise ConfigError(f"{label} is a directory; give a file name such as {os.path.join(path, 'generator.jax')}.")  # fmt: skip
    writable_below(os.path.dirname(path), label)
    return path


def writable_below(path: str, label: str) -> None:
    """ConfigError (naming ``label``) unless the nearest existing folder at or above ``path`` is a
    directory this process can write in (the folders below it are made when written)."""
    parent = path
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise ConfigError(f"{label} is below {parent}, which is a file, not a directory.")
    if not os.access(parent, os.W_OK):
        raise ConfigError(f"{label}: cannot write in {parent}.")


def metadata(run: Any, exported: jax.export.Exported, artifact: str) -> dict[str, Any]:
    """The JSON written beside an artifact: how to call it and what it came from."""
    c, p = run.config, run.phase
    out = [int(d) for d in exported.out_avals[0].shape[1:]]
    images = not c.is_toy
    return {
        "artifact": os.path.basename(artifact),
        "load": "jax.export.deserialize(open(artifact, 'rb').read()).call(z)",
        "platforms": list(exported.platforms),
        "latent_dim": c.model.latent_dim,
        "input": {
            "shape": ["n", c.model.latent_dim],
            "dtype": "float32",
            "distribution": "standard normal, one latent per row; any n >= 1",
        },
        "output": {
            "shape": ["n", *out],
            "dtype": "float32",
            "layout": "NHWC" if images else "points (x, y)",
            "range": [-1.0, 1.0] if images else None,
            "note": "the training data's range; clip before converting to 8 bits (a linear "
            "output layer can overshoot it)"
            if images
            else "2-D points, unbounded",
        },  # fmt: skip
        "generator": "ema" if c.optim.ema > 0 else "generator",
        "phase": {"resolution": p.resolution, "fading": p.fading, "alpha": p.alpha},
        "step": run.step,
        "images_seen": run.images_seen,
        "workdir": run.workdir,
        "config": c.to_json(),
        "jax_version": jax.__version__,
        "calling_convention_version": exported.calling_convention_version,
    }


def export_run(run: Any, path: str, platforms: Sequence[str] = PLATFORMS) -> dict[str, Any]:
    """Write ``run``'s generator (see :func:`generator_fn`) to ``path`` (serialized
    ``jax.export`` module) and ``path + ".json"`` (:func:`metadata`, plus ``size_bytes``);
    returns that JSON's dict. ConfigError (one line) for a path or platform that cannot be used;
    ImportError when ``flatbuffers`` (serialization) is missing; OSError when a write fails."""
    plats = (platforms,) if isinstance(platforms, str) else tuple(platforms)
    if not plats or any(q not in _KNOWN for q in plats):
        raise ConfigError(f"platforms must be a non-empty list of {', '.join(_KNOWN)}, got {platforms!r}.")  # fmt: skip
    path = check_path(path)
    if importlib.util.find_spec("flatbuffers") is None:
        raise ImportError("exporting needs the flatbuffers package (pip install flatbuffers).")
    exported = export_generator(generator_fn(run), run.config.model.latent_dim, plats)
    blob = bytes(exported.serialize())
    meta = {**metadata(run, exported, path), "size_bytes": len(blob)}
    os.makedirs(os.path.dirname(path), exist_ok=True)
    _write_atomic(path, blob)
    text = json.dumps(meta, indent=2) + "\n"
    _write_atomic(path + ".json", text.encode())
    return json.loads(text)  # as a reader of the file gets it (lists, not tuples)
