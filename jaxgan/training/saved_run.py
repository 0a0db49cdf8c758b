"""Open a finished or running run directory: sample, evaluate, interpolate — no trainer built.

``open_run(workdir)`` restores the newest checkpoint that restores (or ``step``) onto one device
and samples with the EMA generator when the run has one, at the phase the checkpoint was in.
Misuse (a count that is not a positive int, a latent ``z`` of another width, a metric that is
unknown or does not apply to the run's data) raises :class:`ConfigError` with one sentence.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxgan import parallel
from jaxgan.arrays import slerp
from jaxgan.errors import CheckpointError, ConfigError
from jaxgan.training import build
from jaxgan.training import schedule as sched_lib
from jaxgan.training.checkpoint import Checkpointer
from jaxgan.training.config import Config
from jaxgan.training.rundir import RunDir


def _int(name: str, v: Any, low: int = -(2**63)) -> int:
    """``v`` as an int in [low, 2**63); else ConfigError naming the argument."""
    if (
        isinstance(v, bool | np.bool_)
        or not isinstance(v, int | np.integer)
        or not low <= v < 2**63
    ):
        raise ConfigError(f"{name} must be an int{f' >= {low}' if low > -(2**63) else ''}, got {v!r}.")  # fmt: skip
    return int(v)


@dataclasses.dataclass
class SavedRun:
    """A run's config, its restored state at ``step``, and what can be done with them."""

    workdir: str
    config: Config
    step: int
    images_seen: int
    phase: sched_lib.Phase
    state: Any
    g_def: Any
    d_def: Any
    samplers: dict = dataclasses.field(default_factory=dict, repr=False)  # by (resolution, fading)

    def sample(self, num: int = 64, *, seed: int = 0, z: Any = None) -> np.ndarray:
        """``num`` (>= 1) samples, or one per row of ``z`` (N, latent_dim): (N, H, W, C) in
        [-1, 1] or (N, 2) points."""
        d = self.config.model.latent_dim
        if z is None:
            z = jax.random.normal(jax.random.key(_int("seed", seed)), (_int("num", num, 1), d))
        try:
            z = jnp.asarray(z, jnp.float32)
        except (TypeError, ValueError):
            raise ConfigError(f"z must be numbers of shape (N, {d}).") from None
        if z.ndim != 2 or z.shape[0] < 1 or z.shape[1] != d:
            raise ConfigError(f"z must have shape (N, {d}) with N >= 1 (one latent of this run's latent_dim {d} per row), got {tuple(z.shape)}.")  # fmt: skip
        p = self.phase
        if (key := (p.resolution, p.fading)) not in self.samplers:
            self.samplers[key] = build.sampler(self.g_def, *key)
        return build.sample(self.samplers[key], self.config, self.state, z, p.alpha)

    def critic(self, x: np.ndarray) -> np.ndarray:
        """The critic's scores of samples ``x`` (inference mode), shape (N,)."""
        return build.critic_fn(self.d_def, self.state, self.phase)(x)

    def interpolate(self, steps: int = 8, rows: int = 4, *, seed: int = 0) -> np.ndarray:
        """Samples along spherical paths between random latents: (rows·steps, ...), row-major."""
        steps, rows = _int("steps", steps, 1), _int("rows", rows, 1)
        k0, k1 = jax.random.split(jax.random.key(_int("seed", seed)))
        d = self.config.model.latent_dim
        a, b = jax.random.normal(k0, (rows, 1, d)), jax.random.normal(k1, (rows, 1, d))
        z = slerp(a, b, jnp.linspace(0.0, 1.0, steps)[None, :, None])
        return self.sample(z=z.reshape(rows * steps, d))

    def export(self, path: str, platforms: Sequence[str] = ("cpu", "cuda", "tpu")) -> dict[str, Any]:  # fmt: skip
        """Write the generator :meth:`sample` uses (EMA when kept; this phase's resolution and
        fade-in alpha baked in) as one serialized ``jax.export`` module for ``platforms`` to
        ``path``, and ``path + ".json"`` (latent size, output shape (n, H, W, C) NHWC in [-1, 1],
        config, step); returns that JSON's dict. Loading needs only ``jax``:
        ``jax.export.deserialize(open(path, "rb").read()).call(z)`` with ``z`` float32
        (n, latent_dim), any n. See :mod:`jaxgan.export`."""
        from jaxgan import export as export_lib

        return export_lib.export_run(self, path, platforms)

    def evaluate(self, metrics: Sequence[str] | str | None = None, num_images: int = 2048, *,
                 seed: int = 0, **kw: Any) -> dict[str, Any]:  # fmt: skip
        """Metrics of ``num_images`` (>= 2) samples against the run's data: ``step``,
        ``images_seen``, ``num_images`` and the values (see :mod:`jaxgan.evaluation`).
        ``metrics``: names (a string: a comma list) that apply to the run's data; None: those of
        swd, ms_ssim and modes that apply at this checkpoint's resolution."""
        from jaxgan import evaluation

        c = self.config
        if metrics is None:
            metrics = evaluation.default_metrics(c.data.dataset, self.phase.resolution)
        metrics = evaluation.check_metrics(metrics, c.data.dataset, inception_weights=kw.get("inception_weights"))  # fmt: skip
        result = evaluation.evaluate_generator(
            lambda z: self.sample(z=z), c.data.dataset, c.model.latent_dim, metrics=metrics,
            num_images=_int("num_images", num_images, 2), resolution=self.phase.resolution,
            seed=_int("seed", seed), data_dir=c.data.data_dir, **kw,
        )  # fmt: skip
        return {"step": self.step, "images_seen": self.images_seen, **result}


def open_run(workdir: str, step: int | None = None) -> SavedRun:
    """Restore a run directory's newest restorable checkpoint (or ``step``) on one device.

    Raises :class:`ConfigError` with one line when ``workdir`` is not a run, has no checkpoint,
    none at ``step`` (the message lists those that exist) or none that restores.
    """
    step = None if step is None else _int("step", step, 0)
    rundir = RunDir(workdir)
    config = rundir.load_config()
    mesh = parallel.make_mesh(jax.local_devices()[:1])
    checkpointer = Checkpointer(rundir.checkpoints, create=False)
    try:
        steps = [s for s in checkpointer.existing(step) if step in (None, s)]
        errors = []
        for s in reversed(steps):  # newest first; a damaged one is skipped
            try:
                shape = tuple(checkpointer.read_meta(s)["sample_shape"])
                state, g_def, d_def = build.init_state(config, shape, mesh)
                state, meta, step = checkpointer.restore(state, mesh, s)
                break
            except CheckpointError as e:
                errors.append(str(e))
        else:
            raise ConfigError(f"no checkpoint in {rundir.checkpoints} restores: {errors[0]}")
    except CheckpointError as e:  # none, or not at ``step``
        raise ConfigError(str(e)) from None
    finally:
        checkpointer.close()
    images = int(meta["images_seen"])
    phase = sched_lib.for_config(config).phase_at(max(images - 1, 0))
    return SavedRun(rundir.path, config, step, images, phase, state, g_def, d_def)
