"""Run logging: metrics.jsonl, TensorBoard event files (tensorboardX, no TensorFlow), progress."""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import sys
import tempfile
import time
from typing import Any

_SHOWN = ("images_per_sec", "critic_loss", "generator_loss", "w_estimate", "resolution", "alpha",
          "modes_captured")  # fmt: skip


def drop_rows_after(path: str, step: int) -> int:
    """Remove the rows of the JSON-lines file ``path`` whose ``step`` is past ``step`` (and lines a
    kill cut short); returns how many were removed.

    A run killed between checkpoints logged steps it logs again after resuming from ``step``. Rows
    at ``step`` and rows without a step are kept. The file is rewritten atomically (a temporary
    file, then ``os.replace``), so a second kill leaves the old or the new file, never half of one.
    """
    try:
        with open(path) as f:
            lines = [line for line in f.read().splitlines(keepends=True) if line.strip()]
    except FileNotFoundError:
        return 0
    kept = []
    for line in lines:
        with contextlib.suppress(ValueError):
            row = json.loads(line)
            if not (isinstance(row, dict) and isinstance(row.get("step"), int | float) and row["step"] > step):  # fmt: skip
                kept.append(line if line.endswith("\n") else line + "\n")
    if len(kept) == len(lines) and all(line.endswith("\n") for line in lines):
        return 0
    fd, tmp = tempfile.mkstemp(prefix=".metrics-", suffix=".tmp", dir=os.path.dirname(path) or ".")
    try:
        with os.fdopen(fd, "w") as f:
            f.writelines(kept)
            f.flush()
            os.fsync(f.fileno())
        shutil.copymode(path, tmp)  # mkstemp makes it private; keep the log's permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    return len(lines) - len(kept)


class RunLogger:
    """Appends one JSON object per log interval and mirrors scalars to TensorBoard.

    With ``quiet`` a plain line per interval goes to stdout; otherwise a tqdm progress bar shows
    step, images/s, losses and ETA. Only process 0 of a multi-host run writes (``enabled``).
    Starting at ``start_step`` (the restored checkpoint's; 0 without one) first drops the rows of
    ``metrics.jsonl`` past it and opens TensorBoard with ``purge_step=start_step + 1``, which hides
    the events a killed run wrote past it: after a kill -9 and a rerun there is one row per step.
    """

    def __init__(self, workdir: str, total_steps: int, start_step: int = 0, *, quiet: bool = False,
                 enabled: bool = True, tensorboard: bool = True):  # fmt: skip
        self.enabled, self.path = enabled, os.path.join(workdir, "metrics.jsonl")
        self._tb = self._bar = None
        if not enabled:
            return
        os.makedirs(workdir, exist_ok=True)
        drop_rows_after(self.path, start_step)  # a rerun logs them again (step 0: no checkpoint)
        if tensorboard:
            from tensorboardX import SummaryWriter

            # Event file names hold the time in whole seconds: a writer opened in the same second
            # as the previous one (a resume from a notebook) would overwrite its file without the
            # suffix, which keeps the names distinct and in the order TensorBoard reads them.
            self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"),
                                     purge_step=start_step + 1,
                                     filename_suffix=f".{time.time_ns():020d}")  # fmt: skip
        if not quiet:
            from tqdm import tqdm

            self._bar = tqdm(total=total_steps, initial=start_step, unit="step",
                             dynamic_ncols=True, file=sys.stdout, mininterval=1.0)  # fmt: skip

    def log(self, record: dict[str, Any]) -> None:
        """Write one record (must contain ``step``); floats that are not finite become strings."""
        if not self.enabled:
            return
        record = {k: str(v) if isinstance(v, float) and not math.isfinite(v) else v
                  for k, v in record.items()}  # fmt: skip
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        numbers = {k: v for k, v in record.items()
                   if isinstance(v, int | float) and not isinstance(v, bool)}  # fmt: skip
        if self._tb is not None:
            for k, v in numbers.items():
                if k != "step":
                    self._tb.add_scalar(k, v, int(record["step"]))
            self._tb.flush()
        short = {k: f"{numbers[k]:.4g}" for k in _SHOWN if k in numbers}
        if self._bar is not None:
            self._bar.n = int(record["step"])
            self._bar.set_postfix(short, refresh=True)
        else:
            text = " ".join(f"{k}={v}" for k, v in short.items())
            print(f"step {record['step']} images_seen {record.get('images_seen', '?')} {text}", flush=True)  # fmt: skip

    def message(self, text: str) -> None:
        """A line for the user that does not break the progress bar."""
        if self._bar is not None:
            self._bar.write(text, file=sys.stdout)
        elif self.enabled:
            print(text, flush=True)

    def close(self) -> None:
        for handle in (self._bar, self._tb):
            if handle is not None:
                handle.close()
