"""jaxgan: GANs the way the literature grew them, in JAX and Flax NNX.

The public API, loaded on first use so that ``import jaxgan.losses`` pulls in only jax, optax and
chex:

- ``jaxgan.train(config, workdir)`` trains a :class:`Config` into a run directory and returns a
  :class:`Summary`; running it again resumes.
- ``jaxgan.open_run(workdir)`` restores a run to sample, interpolate and evaluate.
- ``jaxgan.configs.get(name)`` / ``jaxgan.configs.names()``: the presets;
  ``jaxgan.override(config, **flags)`` changes fields by their flag names.

Importing jaxgan changes nothing in ``os.environ``: its XLA:CPU flag is added to ``XLA_FLAGS`` by
the programs that start JAX and by ``jaxgan.train`` (:func:`jaxgan.xla_flags.apply`).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = {
    "train": ("jaxgan.training.loop", "train"),
    "Summary": ("jaxgan.training.loop", "Summary"),
    "open_run": ("jaxgan.training.saved_run", "open_run"),
    "SavedRun": ("jaxgan.training.saved_run", "SavedRun"),
    "Config": ("jaxgan.training.config", "Config"),
    "ConfigError": ("jaxgan.errors", "ConfigError"),
    "CheckpointError": ("jaxgan.errors", "CheckpointError"),
    "DataError": ("jaxgan.errors", "DataError"),
    "override": ("jaxgan.training.config", "override"),
}

__all__ = [*_API, "configs"]


def __getattr__(name: str) -> Any:
    if name in _API:
        module, attr = _API[name]
        return getattr(importlib.import_module(module), attr)
    if name == "configs":
        return importlib.import_module("jaxgan.configs")
    raise AttributeError(f"module 'jaxgan' has no attribute {name!r}")
