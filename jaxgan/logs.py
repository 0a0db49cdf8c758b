"""Run logging: metrics.jsonl, TensorBoard event files (tensorboardX, no TensorFlow), progress."""

from __future__ import annotations

import json
import math
import os
import sys
import time
from typing import Any


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v


class RunLogger:
    """Appends one JSON object per log interval and mirrors scalars to TensorBoard.

    With ``quiet`` a plain line per interval goes to stdout; otherwise a tqdm progress bar shows
    step, images/s, losses and ETA. Only process 0 of a multi-host run writes.
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
        if tensorboard:
            from tensorboardX import SummaryWriter

            self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"))
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
