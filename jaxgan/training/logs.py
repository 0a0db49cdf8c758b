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


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v


def drop_rows_after(path: str, step: int) -> int:
    """Remove the rows of the JSON-lines file ``path`` whose ``step`` is past ``step``; returns how
    many were removed.

    A run killed between checkpoints logged steps it will log again after resuming from ``step``;
    without this the file would hold two rows for them. Rows at ``step`` itself were logged before
    the checkpoint and are kept, as are rows without a step. A line cut short by the kill is not
    valid JSON and is removed too. The file is rewritten atomically (a temporary file, then
    ``os.replace``), so a second kill leaves either the old or the new file, never half of one.
    """
    try:
        with open(path) as f:
            lines = f.read().splitlines(keepends=True)
    except FileNotFoundError:
        return 0
    kept = []
    for line in lines:
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            continue
        row_step = row.get("step") if isinstance(row, dict) else None
        if isinstance(row_step, int | float) and row_step > step:
            continue
        kept.append(line if line.endswith("\n") else line + "\n")
    removed = len(lines) - len(kept)
    if removed == 0:
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
    return removed


class RunLogger:
    """Appends one JSON object per log interval and mirrors scalars to TensorBoard.

    With ``quiet`` a plain line per interval goes to stdout; otherwise a tqdm progress bar shows
    step, images/s, losses and ETA. Only process 0 of a multi-host run writes.

    Resuming from ``start_step`` > 0 first drops the rows of ``metrics.jsonl`` past it (a run
    killed after its last checkpoint logged steps it will log again) and opens TensorBoard with
    ``purge_step=start_step + 1``, which hides the events the killed run wrote past it: after a
    kill -9 and a resume there is one row per logged step.
    """

    def __init__(
        self,
        workdir: str,
        total_steps: int,
        start_step: int = 0,
        *,
        quiet: bool = False,
        enabled: bool = True,
        tensorboard: bool = True,
    ):
        self.enabled = enabled
        self.quiet = quiet
        self.path = os.path.join(workdir, "metrics.jsonl")
        self._tb = None
        self._bar = None
        if not enabled:
            return
        os.makedirs(workdir, exist_ok=True)
        if start_step > 0:
            drop_rows_after(self.path, start_step)
        if tensorboard:
            from tensorboardX import SummaryWriter

            # On resume, TensorBoard discards the events a killed run wrote past the checkpoint.
            # The file name holds the time in whole seconds only: a writer opened in the same
            # second as the previous one (a resume from a notebook) would overwrite its file. The
            # suffix keeps the names distinct and in the order TensorBoard reads them.
            self._tb = SummaryWriter(
                os.path.join(workdir, "tensorboard"),
                purge_step=start_step + 1 if start_step > 0 else None,
                filename_suffix=f".{time.time_ns():020d}",
            )
        if not quiet:
            from tqdm import tqdm

            self._bar = tqdm(
                total=total_steps,
                initial=start_step,
                unit="step",
                dynamic_ncols=True,
                file=sys.stdout,
                mininterval=1.0,
            )
        self._last_time = time.perf_counter()

    def log(self, record: dict[str, Any]) -> None:
        """Write one record (must contain ``step``); floats that are not finite become strings."""
        if not self.enabled:
            return
        record = {k: _clean(v) for k, v in record.items()}
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        step = int(record["step"])
        if self._tb is not None:
            for k, v in record.items():
                if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool):
                    self._tb.add_scalar(k, v, step)
            self._tb.flush()
        short = {
            k: record[k]
            for k in (
                "images_per_sec",
                "critic_loss",
                "generator_loss",
                "w_estimate",
                "resolution",
                "alpha",
                "modes_captured",
            )
            if k in record and isinstance(record[k], (int, float))
        }
        if self._bar is not None:
            self._bar.n = step
            self._bar.set_postfix({k: f"{v:.4g}" for k, v in short.items()}, refresh=True)
        else:
            text = " ".join(f"{k}={v:.4g}" for k, v in short.items())
            print(f"step {step} images_seen {record.get('images_seen', '?')} {text}", flush=True)

    def message(self, text: str) -> None:
        """A line for the user that does not break the progress bar."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.write(text, file=sys.stdout)
        else:
            print(text, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        if self._tb is not None:
            self._tb.close()
