"""Checkpoints with orbax-checkpoint: the train state as arrays, the run's bookkeeping as JSON.

Each checkpoint ``checkpoints/<step>/`` holds two items: ``state`` (the :class:`TrainState` pytree:
both models, both optimizer states, EMA, RNG key, counters) and ``meta`` (JSON: images seen, the
data iterator's state, the progressive phase, the config). Saves are asynchronous: the arrays are
copied off the device, then written in the background while training goes on. Orbax writes into a
temporary folder and renames it when complete, so a checkpoint half-written by a kill is never
listed and the previous one is used. Restores go against an abstract target carrying shardings, so
a run saved on N devices resumes on M.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp
from jax.sharding import Mesh

from jaxgan import parallel


class CheckpointError(RuntimeError):
    """A checkpoint cannot be restored into the requested configuration."""


def abstract_state(state: Any, mesh: Mesh) -> Any:
    """ShapeDtypeStructs of ``state`` (arrays or structs), replicated over ``mesh``."""
    return jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(
            x.shape, x.dtype, sharding=parallel.replicated_sharding(mesh, len(x.shape))
        ),
        state,
    )


class Checkpointer:
    """A CheckpointManager in ``directory`` keeping the last ``keep`` checkpoints."""

    def __init__(self, directory: str, *, keep: int = 3, async_save: bool = True):
        if keep < 1:
            raise ValueError(f"--keep_checkpoints must be >= 1, got {keep}.")
        self.directory = os.path.abspath(directory)
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep, enable_async_checkpointing=async_save, create=True
        )
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    def all_steps(self) -> list[int]:
        """Steps of the complete checkpoints, ascending."""
        return sorted(self._manager.all_steps())

    def latest_step(self) -> int | None:
        steps = self.all_steps()
        return steps[-1] if steps else None

    def save(self, step: int, state: Any, meta: dict[str, Any], *, force: bool = False) -> bool:
        """Start saving ``state`` and ``meta`` at ``step`` (returns once arrays are off-device)."""
        if step in self._manager.all_steps():
            return False
        args = ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta))
        return bool(self._manager.save(step, args=args, force=force))

    def restore(
        self, target: Any, mesh: Mesh, step: int | None = None
    ) -> tuple[Any, dict[str, Any], int]:
        """Restore (state, meta, step); ``target`` is a state (or abstract state) of the same shape.

        Raises CheckpointError with a clear message when no checkpoint exists or its arrays do not
        fit ``target`` (another model shape, another loss's optimizer).
        """
        step = self.latest_step() if step is None else step
        if step is None or step not in self.all_steps():
            raise CheckpointError(
                f"no complete checkpoint {'' if step is None else step} in {self.directory}; "
                f"available steps: {self.all_steps()}."
            )
        args = ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state(target, mesh)),
            meta=ocp.args.JsonRestore(),
        )
        try:
            restored = self._manager.restore(step, args=args)
        except (ValueError, KeyError, TypeError) as e:
            raise CheckpointError(
                f"the checkpoint at step {step} in {self.directory} does not match this run's "
                f"model/optimizer (other widths, loss or optimizer?): {e}"
            ) from e
        return restored.state, dict(restored.meta), step

    def read_meta(self, step: int | None = None) -> dict[str, Any]:
        """Only the JSON part of a checkpoint (no arrays read)."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise CheckpointError(f"no complete checkpoint in {self.directory}.")
        out = self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
        return dict(out.meta)

    def wait(self) -> None:
        """Block until every pending save is on disk."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()
