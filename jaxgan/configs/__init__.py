"""Named configuration presets: ``get("main")``, ``names()``, ``load(NAME_OR_FILE)``.

Each preset is a function returning a complete :class:`jaxgan.training.config.Config`, in the module that
names its family (``main.py``, ``pggan.py``, ``toys.py``, ``dcgan.py``). A JSON file written by
:meth:`Config.to_json` (a run's ``config.json``) loads like a preset.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from jaxgan.configs import dcgan, main, modes, pggan, toys
from jaxgan.training.config import Config, ConfigError, validate

PRESETS: dict[str, tuple[Callable[[], Config], str]] = {
    "main": (main.get_config, "the offline main job: progressive WGAN-GP on mnist5k, 4->32, ~10 min on 2 CPU cores"),
    "pggan": (pggan.get_config, "the PGGAN paper's settings: 4->1024, 512 feature maps, 800 kimg per phase"),
    "dcgan-mnist5k": (dcgan.get_config, "DCGAN (WGAN-GP) on mnist5k at 32x32, base width 32, 2000 steps"),
    **toys.PRESETS,
    **modes.PRESETS,
}  # fmt: skip


def names() -> list[str]:
    """The preset names."""
    return list(PRESETS)


def get(name: str) -> Config:
    """The preset called ``name``; ConfigError listing the names otherwise."""
    if name not in PRESETS:
        raise ConfigError(
            f"--config={name!r}: not a preset or a file; presets: {', '.join(PRESETS)}."
        )
    return validate(PRESETS[name][0]())


def load(name_or_file: str) -> Config:
    """A preset by name, or a config JSON file (such as a run's ``config.json``)."""
    if name_or_file in PRESETS or not os.path.exists(name_or_file):
        return get(name_or_file)
    try:
        return Config.read(name_or_file)
    except ConfigError as e:
        raise ConfigError(f"--config={e}") from None


__all__ = ["PRESETS", "get", "load", "names"]
