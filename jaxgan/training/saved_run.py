"""Open a finished or running run directory: sample, evaluate, interpolate — no trainer built.

``open_run(workdir)`` restores the newest checkpoint that restores (or ``step``) onto one device
and samples with the EMA generator when the run has one, at the phase the checkpoint was in.
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
from jaxgan.errors import ConfigError
from jaxgan.training import build
from jaxgan.training import checkpoint as ckpt_lib
from jaxgan.training import schedule as sched_lib
from jaxgan.training.config import Config
from jaxgan.training.rundir import RunDir


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

    def sample(self, num: int = 64, *, seed: int = 0, z: jax.Array | None = None) -> np.ndarray:
        """``num`` samples (or one per row of ``z``), (N, H, W, C) in [-1, 1] or (N, 2) points."""
        if z is None:
            z = jax.random.normal(jax.random.key(seed), (num, self.config.model.latent_dim))
        fn = build.sampler(self.g_def, self.phase.resolution, self.phase.fading)
        params = self.state.ema if self.config.optim.ema > 0 else self.state.g_params
        out = fn(
            params, self.state.g_rest, jnp.asarray(z, jnp.float32), np.float32(self.phase.alpha)
        )
        return np.asarray(jax.device_get(out))

    def critic(self, x: np.ndarray) -> np.ndarray:
        """The critic's scores of samples ``x`` (inference mode), shape (N,)."""
        return build.critic_fn(self.d_def, self.state, self.phase)(x)

    def interpolate(self, steps: int = 8, rows: int = 4, *, seed: int = 0) -> np.ndarray:
        """Samples along spherical paths between random latents: (rows·steps, ...), row-major."""
        k0, k1 = jax.random.split(jax.random.key(seed))
        d = self.config.model.latent_dim
        a, b = jax.random.normal(k0, (rows, 1, d)), jax.random.normal(k1, (rows, 1, d))
        z = slerp(a, b, jnp.linspace(0.0, 1.0, steps)[None, :, None])
        return self.sample(z=z.reshape(rows * steps, d))

    def evaluate(
        self,
        metrics: Sequence[str] = ("swd",),
        num_images: int = 2048,
        *,
        seed: int = 0,
        **kw: Any,
    ) -> dict[str, Any]:
        """Metrics of ``num_images`` samples against the run's data (see :mod:`jaxgan.evaluation`)."""
        from jaxgan import evaluation

        c = self.config
        result = evaluation.evaluate_generator(
            lambda z: self.sample(z=z), c.data.dataset, c.model.latent_dim, metrics=metrics,
            num_images=num_images, resolution=self.phase.resolution, seed=seed,
            data_dir=c.data.data_dir, **kw,
        )  # fmt: skip
        return {"step": self.step, "images_seen": self.images_seen, **result}


def open_run(workdir: str, step: int | None = None) -> SavedRun:
    """Restore a run directory's newest restorable checkpoint (or ``step``) on one device.

    Raises :class:`ConfigError` with one line when ``workdir`` is not a run or has no checkpoint.
    """
    rundir = RunDir(workdir)
    config = rundir.load_config()
    mesh = parallel.make_mesh(jax.local_devices()[:1])
    checkpointer = ckpt_lib.Checkpointer(rundir.checkpoints, create=False)
    try:
        steps = checkpointer.all_steps() if step is None else [step]
        if not steps:
            raise ConfigError(f"--workdir={rundir.path} has no checkpoint yet.")
        errors = []
        for s in reversed(steps):  # newest first; a damaged one is skipped
            try:
                shape = tuple(checkpointer.read_meta(s)["sample_shape"])
                state, g_def, d_def = build.init_state(config, shape, mesh)
                state, meta, step = checkpointer.restore(state, mesh, s)
                break
            except ckpt_lib.CheckpointError as e:
                errors.append(str(e))
        else:
            raise ConfigError(f"no checkpoint in {rundir.checkpoints} restores: {errors[0]}")
    finally:
        checkpointer.close()
    images = int(meta["images_seen"])
    phase = sched_lib.for_config(config).phase_at(max(images - 1, 0))
    return SavedRun(rundir.path, config, step, images, phase, state, g_def, d_def)
