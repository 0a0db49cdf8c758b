"""A run directory: its layout, its config and the history of configs a resumed run used.

``<workdir>/config.json`` is the config in force; ``config_history.jsonl`` appends one line per
start that changed it (``{"step", "changed", "config"}``), so settings changed on resume are never
lost. ``checkpoints/``, ``samples/``, ``metrics.jsonl`` and ``tensorboard/`` hold the rest.
``owner.json`` names the one trainer that holds the directory (host, PID, since when).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import tempfile
import time
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

    def acquire(self) -> None:
        """Hold the directory for this process (``owner.json``, made atomically). A second trainer
        gets ConfigError naming the holder; a holder that no longer runs (same host, no such
        process) is taken over. Readers (``open_run``, evaluation) never take it."""
        path, host = os.path.join(self.path, "owner.json"), socket.gethostname()
        me = {"host": host, "pid": os.getpid(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        while True:
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    with open(path) as f:
                        holder = json.load(f)
                except FileNotFoundError:  # given up meanwhile
                    continue
                except (OSError, ValueError):  # being written this instant, or emptied by a crash
                    young = time.time() - os.path.getmtime(path) < 5
                    holder = {"host": host, "pid": "?", "since": "a moment ago"} if young else {}
                if holder and (holder.get("host") != host or _alive(holder.get("pid"))):
                    raise ConfigError(
                        f"--workdir={self.path} is in use by PID {holder.get('pid')} on "
                        f"{holder.get('host')} since {holder.get('since')}: one trainer per run "
                        f"directory; wait for it, stop it, or remove {path} if it is gone."
                    ) from None
                with contextlib.suppress(FileNotFoundError):
                    os.remove(path)  # its process is gone: a stale holder does not block
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            return

    def release(self) -> None:
        """Give the directory up (only if this process holds it)."""
        path = os.path.join(self.path, "owner.json")
        try:
            with open(path) as f:
                mine = json.load(f).get("pid") == os.getpid()
        except (OSError, ValueError):
            return
        if mine:
            os.remove(path)

    def saved_config(self) -> Config | None:
        """The run's ``config.json`` (None when there is none); ConfigError naming the file and
        how to go on when it is unreadable."""
        if not os.path.exists(self.config_path):
            return None
        try:
            return Config.read(self.config_path)
        except ConfigError as e:
            raise ConfigError(f"--workdir: {str(e).rstrip('.')}; its last good version is the last "
                              f"line of {self.history_path}.") from None  # fmt: skip

    def load_config(self) -> Config:
        if (saved := self.saved_config()) is None:
            raise ConfigError(f"--workdir={self.path} has no config.json: not a jaxgan run directory.")  # fmt: skip
        return saved

    def check_resume(self, config: Config, latest: int | None, *, resume: bool,
                     allow_changes: bool) -> list[str]:  # fmt: skip
        """The settings that differ from the saved config (``"name: old -> new"``), or ConfigError
        when a run with a checkpoint may not go on with them: another model or objective (a field
        declared ``resume="structural"``) never, another optimisation only with
        ``allow_changes``; free settings (training longer, other intervals) always."""
        saved = self.saved_config()
        if saved is None:
            return []
        old, new = saved.flat(), config.flat()
        by: dict[str, list[str]] = {"structural": [], "": [], "free": []}
        for k in (k for k in new if old.get(k) != new[k]):
            by[FIELDS[k][1].metadata["resume"]].append(f"{k}: {old.get(k)!r} -> {new[k]!r}")
        if latest is not None and not resume:
            raise ConfigError(f"--no-resume: {self.path} already holds a run (checkpoint at step "
                              f"{latest}); choose another --workdir or remove it.")  # fmt: skip
        if latest is not None and by["structural"]:
            raise ConfigError(f"--workdir={self.path} holds a run with another model or objective "
                              f"({'; '.join(by['structural'])}); use a new --workdir or the same settings.")  # fmt: skip
        if latest is not None and by[""] and not allow_changes:
            raise ConfigError(
                f"--workdir={self.path} holds a run with other settings ({'; '.join(by[''])}); "
                "rerun with the same settings, or pass --allow_config_change to continue with the "
                "new ones (recorded in config_history.jsonl).")  # fmt: skip
        return by[""] + by["free"]

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


def _alive(pid: Any) -> bool:
    """Whether process ``pid`` runs on this host (not a PID: a holder still writing its file)."""
    if not isinstance(pid, int) or pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
