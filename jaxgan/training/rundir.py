"""A run directory: its layout, its config and the history of configs a resumed run used.

``<workdir>/config.json`` is the config in force; ``config_history.jsonl`` appends one line per
start that changed it (``{"step", "changed", "config"}``), so settings changed on resume are never
lost. ``checkpoints/``, ``samples/``, ``metrics.jsonl`` and ``tensorboard/`` hold the rest.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Any

from jaxgan.errors import ConfigError
from jaxgan.training.config import FIELDS, Config


class RunDir:
    """Paths and config bookkeeping of one run directory."""

    def __init__(self, path: str):
        self.path = os.path.abspath(path)
        self.checkpoints = os.path.join(self.path, "checkpoints")
        self.samples = os.path.join(self.path, "samples")
        self.config_path = os.path.join(self.path, "config.json")
        self.history_path = os.path.join(self.path, "config_history.jsonl")

    def create(self) -> bool:
        """Make the directory (and ``samples/``) and check it is writable; returns whether it was
        new. ConfigError naming ``--workdir`` when it cannot be written."""
        new = not os.path.exists(self.path)
        try:
            os.makedirs(self.samples, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.path, prefix=".write-test-"):
                pass
        except OSError as e:
            raise ConfigError(
                f"--workdir={self.path} cannot be written: {e.strerror or e}."
            ) from None
        return new

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def saved_config(self) -> dict[str, Any] | None:
        if not os.path.exists(self.config_path):
            return None
        with open(self.config_path) as f:
            return json.load(f)

    def load_config(self) -> Config:
        saved = self.saved_config()
        if saved is None:
            raise ConfigError(
                f"--workdir={self.path} has no config.json: not a jaxgan run directory."
            )
        return Config.from_json(saved)

    def changes(self, config: Config) -> tuple[list[str], list[str], list[str]]:
        """The settings on which the saved config and ``config`` differ, each as ``"name: old ->
        new"``, by what a change means on resume (the field's ``resume`` declaration): (another run,
        another optimisation, free: training longer or other intervals)."""
        saved = self.saved_config()
        if saved is None:
            return [], [], []
        old, new = Config.from_json(saved).flat(), config.flat()
        out: dict[str, list[str]] = {"structural": [], "": [], "free": []}
        for k in new:
            if old.get(k) != new[k]:
                out[FIELDS[k][1].metadata["resume"]].append(f"{k}: {old.get(k)!r} -> {new[k]!r}")
        return out["structural"], out[""], out["free"]

    def record_config(self, config: Config, step: int, changed: list[str]) -> None:
        """Write ``config.json`` (atomically) and, when new or changed, a history line."""
        tmp = self.config_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(config.dumps())
        first = not os.path.exists(self.config_path)
        os.replace(tmp, self.config_path)
        if first or changed:
            with open(self.history_path, "a") as f:
                line = {"step": step, "changed": changed, "config": config.to_json()}
                f.write(json.dumps(line) + "\n")
