"""The training loop: ``train(config, workdir)`` runs a config into a run directory.

One loop for every run: a plain run is a one-phase schedule. Each step the loop feeds a stacked
real batch to the phase's jitted step; the pieces it calls at their ticks are small: logging
(:mod:`jaxgan.training.logs`), samples (:mod:`jaxgan.training.outputs`), evaluation (:mod:`jaxgan.evaluation`) and
checkpoints (:mod:`jaxgan.training.checkpoint`). The host reads one scalar per step, one step late (the
skipped-update count, so a non-finite streak stops within ``max_skips`` steps without stalling the
device), and everything else only at its tick. Running the same call again resumes exactly.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from flax import nnx

from jaxgan import parallel
from jaxgan.training import build, outputs
from jaxgan.training import checkpoint as ckpt_lib
from jaxgan.training.config import Config, ConfigError, validate
from jaxgan.training.logs import RunLogger
from jaxgan.training.rundir import RunDir

EXIT_OK = 0
EXIT_NONFINITE = 3


@dataclasses.dataclass(frozen=True)
class Summary:
    """What a finished (or stopped) run returns. ``exit_code``: 0 done or stopped by a signal,
    3 stopped on non-finite updates."""

    workdir: str
    exit_code: int
    step: int
    images_seen: int
    metrics: dict[str, Any]
    checkpoint: str | None
    samples: str | None
    message: str


def _next_streak(streak: int, metrics: dict[str, Any]) -> int:
    """Consecutive skipped (non-finite) steps after the step that logged ``metrics`` (a host read)."""
    return streak + 1 if float(metrics["skipped"]) > 0 else 0


def default_workdir(config: Config) -> str:
    name = config.data.dataset.replace(":", "_").replace("/", "_")
    return os.path.join("runs", f"{name}-{config.loss.loss}-{config.model.model}")


def select_devices(config: Config) -> list[jax.Device]:
    """Initialise multi-host if asked, then the devices of the mesh (``num_devices``: the first N)."""
    d = config.devices
    parallel.initialize_distributed(d.coordinator_address, d.num_processes, d.process_id)
    devices = jax.devices()
    if d.num_devices:
        if jax.process_count() > 1 or d.num_devices > len(devices):
            raise ConfigError(
                f"--num_devices={d.num_devices}: this host has {len(devices)} devices "
                "(and --num_devices is for single-host runs)."
            )
        devices = devices[: d.num_devices]
    return devices


def check_batches(config: Config, schedule: build.Schedule, num_devices: int) -> None:
    """Every phase's batch divides over the devices (checked before the first step)."""
    for res, batch in schedule.batches.items():
        if batch % num_devices:
            flag = "--batch_size" if res is None else f"--batch_per_res ({res}x{res})"
            raise ConfigError(
                f"{flag}: batch {batch} does not divide over the {num_devices} devices; use a "
                f"multiple of {num_devices}."
            )


class _StopFlag:
    """Set by SIGINT/SIGTERM; the loop finishes the current step, saves and returns."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __call__(self, signum: int, frame: Any) -> None:
        self.signum = signum


class Trainer:
    """Start-up (checks, data, models, restore) and the loop of one run. Use :func:`train`."""

    def __init__(self, config: Config, workdir: str, *, resume: bool, allow_changes: bool,
                 quiet: bool):  # fmt: skip
        self.config = validate(config)
        self.dir = RunDir(workdir)
        self.resume, self.allow_changes, self.quiet = resume, allow_changes, quiet
        self._steps: dict[tuple[int | None, bool], Any] = {}
        self._samplers: dict[tuple[int | None, bool], Any] = {}

    # --- start-up ----------------------------------------------------------------------------

    def start(self) -> None:
        c = self.config
        devices = select_devices(c)
        self.mesh = parallel.make_mesh(devices)
        self.is_main = jax.process_index() == 0
        self.schedule = build.Schedule(c, len(devices))
        check_batches(c, self.schedule, len(devices))
        self.created = self.dir.create()
        try:
            self._start()
        except BaseException:
            if self.created:
                self.dir.remove()
            raise

    def _start(self) -> None:
        c = self.config
        self.checkpointer = ckpt_lib.Checkpointer(
            self.dir.checkpoints, keep=c.output.keep_checkpoints
        )
        self.latest = self.checkpointer.latest_step()
        if self.latest is not None and not self.resume:
            raise ConfigError(
                f"--no-resume: {self.dir.path} already holds a run (checkpoint at step "
                f"{self.latest}); choose another --workdir or remove it."
            )
        structural, other = self.dir.changes(c)
        if self.latest is not None and structural:
            raise ConfigError(
                f"--workdir={self.dir.path} holds a run with another model or objective ("
                + "; ".join(structural)
                + "); use a new --workdir or the same settings."
            )
        if self.latest is not None and other and not self.allow_changes:
            raise ConfigError(
                f"--workdir={self.dir.path} holds a run with other settings ("
                + "; ".join(other)
                + "); rerun with the same settings, or pass "
                "--allow_config_change to continue with the new ones (recorded in config_history.jsonl)."
            )
        self.changed = other
        phase = self.schedule.phase_at(0)
        self.pipe = self._data(phase)
        shape = build.sample_shape(c, self.pipe.native_resolution, self.pipe.channels)
        self.sample_shape = shape
        self.state, self.g_def, self.d_def = build.init_state(c, shape, self.mesh)
        zkey = jax.random.key(c.output.seed + 2)
        self.z_fixed = jax.random.normal(zkey, (64, c.model.latent_dim))
        self.z_toy = jax.random.normal(zkey, (2500, c.model.latent_dim))
        self.step, self.images_seen, self.phase_index = 0, 0, 0
        self.restored_from: str | None = None
        if self.latest is not None:
            self._restore()

    def _data(self, phase: build.Phase):
        from jaxgan import data
        from jaxgan.training import schedule as prog

        c = self.config
        try:
            pipe = data.load(
                c.data.dataset, batch_size=phase.batch_size, resolution=phase.resolution,
                seed=c.output.seed, mesh=self.mesh, data_dir=c.data.data_dir,
                download=c.data.download, mirror=c.data.mirror, stack=c.loss.n_critic,
            )  # fmt: skip
        except ValueError as e:
            raise ConfigError(f"--dataset={c.data.dataset}: {e}") from None
        if c.progressive:
            try:
                prog.check_schedule_against_source(
                    c.schedule.stage_schedule, pipe.native_resolution
                )
            except ValueError as e:
                pipe.close()
                raise ConfigError(
                    f"{e} (for the paper's settings at high resolution: --config=pggan "
                    "--dataset=folder:PATH)"
                ) from None
        return pipe

    def _restore(self) -> None:
        def damaged(message: str) -> None:
            if self.is_main:
                print(f"warning: {message}", flush=True)

        try:
            state, meta, step = self.checkpointer.restore(self.state, self.mesh, on_damaged=damaged)
        except ckpt_lib.CheckpointError as e:
            raise ConfigError(str(e)) from None
        self.state, self.step = state, step
        self.images_seen = int(meta["images_seen"])
        self.phase_index = int(meta.get("phase_index", 0))
        self.pipe.set_state(meta["data_state"])
        self.restored_from = os.path.join(self.checkpointer.directory, str(step))

    # --- pieces the loop calls -----------------------------------------------------------------

    def compiled_step(self, phase: build.Phase):
        key = (phase.resolution, phase.fading)
        if key not in self._steps:
            fn = build.train_step(self.config, self.g_def, self.d_def, *key)
            self._steps[key] = build.jit_step(fn, self.state, self.mesh)
        return self._steps[key]

    def sample(self, z: jax.Array, phase: build.Phase) -> np.ndarray:
        """Generated samples for ``z`` (the EMA generator when the run has one)."""
        key = (phase.resolution, phase.fading)
        if key not in self._samplers:
            self._samplers[key] = build.sampler(self.g_def, *key)
        params = self.state.ema if self.config.optim.ema > 0 else self.state.g_params
        out = self._samplers[key](params, self.state.g_rest, z, np.float32(phase.alpha))
        return np.asarray(jax.device_get(out))

    def write_samples(self, phase: build.Phase) -> str | None:
        if not self.is_main:
            return None
        if self.config.is_toy:
            toy = self.pipe.toy
            real = toy.sample(np.random.default_rng(self.config.output.seed + 17), 1000)
            d = nnx.merge(self.d_def, self.state.d_params, self.state.d_rest)
            d.eval()
            critic = lambda x: jax.device_get(d(jax.numpy.asarray(x)))  # noqa: E731
            fake = self.sample(self.z_toy[:1000], phase)
            return outputs.write_toy(self.dir.samples, self.step, real, fake, critic)
        return outputs.write_grid(self.dir.samples, self.step, self.sample(self.z_fixed, phase))

    def write_stage(self, phase: build.Phase) -> None:
        if self.is_main and phase.resolution is not None:
            images = self.sample(self.z_fixed, phase)
            outputs.write_stage(
                self.dir.samples, phase.resolution, images, self.config.schedule.stage_schedule
            )

    def toy_metrics(self, phase: build.Phase) -> dict[str, Any]:
        """The toy's mode metrics of 2,500 samples of the fixed latents (``modes/...`` keys)."""
        from jaxgan import evaluation

        fake = self.sample(self.z_toy, phase)
        out = evaluation.evaluate_images(fake, self.config.data.dataset, metrics=("modes",))
        out.pop("num_images")
        return out

    def evaluate(self, phase: build.Phase) -> dict[str, Any]:
        from jaxgan import evaluation

        c = self.config
        record = evaluation.evaluate_generator(
            lambda z: self.sample(z, phase), c.data.dataset, c.model.latent_dim,
            metrics=c.output.eval_metrics, num_images=c.output.eval_images,
            resolution=phase.resolution, data_dir=c.data.data_dir,
        )  # fmt: skip
        return {"step": self.step, **{f"eval/{k}": v for k, v in record.items()}}

    def meta(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "images_seen": self.images_seen,
            "phase_index": self.phase_index,
            "data_state": self.pipe.get_state(),
            "sample_shape": list(self.sample_shape),
            "config": self.config.to_json(),
        }

    def save(self, logger: RunLogger, streak: int) -> bool:
        """Checkpoint now unless a skip streak runs or the state is not finite (then say so)."""
        if self.step in self.checkpointer.all_steps():
            return True
        reason = None
        if streak > 0:
            reason = f"{streak} consecutive steps skipped non-finite updates"
        elif not ckpt_lib.is_saveable(self.state):
            reason = "the state holds non-finite or exploded values"
        if reason:
            logger.message(f"not saving a checkpoint at step {self.step}: {reason}.")
            return False
        self.checkpointer.save(self.step, self.state, self.meta())
        return True

    def _good_checkpoint(self) -> str | None:
        self.checkpointer.wait()
        steps = self.checkpointer.all_steps()
        return os.path.join(self.checkpointer.directory, str(steps[-1])) if steps else None

    # --- the loop --------------------------------------------------------------------------------

    def run(self) -> Summary:
        c, o = self.config, self.config.output
        if self.is_main:
            self.dir.record_config(c, self.step, self.changed)
        logger = RunLogger(
            self.dir.path, self.schedule.total_steps(), self.step,
            quiet=self.quiet, enabled=self.is_main,
        )  # fmt: skip
        if self.restored_from:
            logger.message(
                f"resumed from {self.restored_from} at step {self.step}, "
                f"{self.images_seen} images seen"
            )
        stop = _StopFlag()
        old_handlers = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
        pending: list[dict[str, jax.Array]] = []
        last: dict[str, Any] = {}
        streak = int(jax.device_get(self.state.streak))
        exit_code, message, latest_png, good = EXIT_OK, "", None, None
        t_log, img_log = time.perf_counter(), self.images_seen
        phase = self.schedule.phase_at(self.images_seen)
        prev_metrics = None
        finished = False
        try:
            while not self.schedule.done(self.images_seen):
                phase = self.schedule.phase_at(self.images_seen)
                if phase.index != self.phase_index:
                    phase = self._enter_phase(phase, logger)
                state, metrics = self.compiled_step(phase)(
                    self.state, next(self.pipe)["x"], np.float32(phase.alpha)
                )
                self.state = state
                self.step += 1
                self.images_seen += c.loss.n_critic * phase.batch_size
                pending.append(metrics)
                # The previous step's skip count is computed by now: reading it costs no stall.
                # The current one is read only at ticks and when the streak nears max_skips.
                if prev_metrics is not None:
                    streak = _next_streak(streak, prev_metrics)
                prev_metrics = metrics
                done = self.schedule.done(self.images_seen)
                tick = self.step % o.log_every == 0 or done or stop.signum is not None
                if tick or streak >= o.max_skips - 1 or self.step % o.ckpt_every == 0:
                    streak = _next_streak(streak, metrics)
                    prev_metrics = None
                if tick or streak >= o.max_skips:
                    now = time.perf_counter()
                    last = self._record(pending, phase)
                    last["images_per_sec"] = (self.images_seen - img_log) / max(now - t_log, 1e-9)
                    if c.is_toy:
                        last.update(self.toy_metrics(phase))
                    logger.log(last)
                    pending, t_log, img_log = [], time.perf_counter(), self.images_seen
                if streak >= o.max_skips:
                    good = self._good_checkpoint()
                    where = (
                        f"the last good checkpoint is {good}" if good else "no checkpoint was saved"
                    )
                    message = (
                        f"stopped at step {self.step}: {streak} consecutive steps had non-finite "
                        f"updates (--max_skips={o.max_skips}); {where}."
                    )
                    logger.message(message)
                    exit_code = EXIT_NONFINITE
                    break
                if o.sample_every and self.step % o.sample_every == 0:
                    latest_png = self.write_samples(phase) or latest_png
                if o.eval_every and self.step % o.eval_every == 0:
                    logger.log(self.evaluate(phase))
                if self.step % o.ckpt_every == 0:
                    self.save(logger, streak)
                if stop.signum is not None:
                    logger.message(
                        f"signal {stop.signum}: saving at step {self.step} and stopping."
                    )
                    break
            if exit_code == EXIT_OK:
                if prev_metrics is not None:
                    streak = _next_streak(streak, prev_metrics)
                self.save(logger, streak)
                latest_png = self.write_samples(phase) or latest_png
                if c.progressive and stop.signum is None:
                    self.write_stage(phase)
                good = self._good_checkpoint()
            finished = True
        finally:
            # A failed background save surfaces here too; report it unless another error is
            # already on its way out.
            close_error = None
            try:
                self.checkpointer.close()
            except ckpt_lib.CheckpointError as e:
                close_error = e
            logger.close()
            self.pipe.close()
            for s, h in old_handlers.items():
                signal.signal(s, h)
            if close_error is not None and finished:
                raise close_error
        if exit_code == EXIT_OK:
            message = self._where_message(good, latest_png)
            if self.is_main:
                print(message, flush=True)
        return Summary(self.dir.path, exit_code, self.step, self.images_seen, last, good,
                       latest_png, message)  # fmt: skip

    def _enter_phase(self, phase: build.Phase, logger: RunLogger) -> build.Phase:
        prev = self.schedule.phases()[self.phase_index]
        if prev.resolution != phase.resolution:
            self.write_stage(prev)
        self.pipe.configure(resolution=phase.resolution, batch_size=phase.batch_size)
        if self.config.optim.reset_adam:
            self.state = build.reset_optimizers(
                self.config, self.state, phase.resolution, self.mesh
            )
        self.phase_index = phase.index
        what = "fade into" if phase.fading else "stabilise"
        logger.message(
            f"phase {phase.index}: {what} {phase.resolution}x{phase.resolution}, "
            f"batch {phase.batch_size}"
        )
        return phase

    def _record(self, pending: list[dict[str, jax.Array]], phase: build.Phase) -> dict[str, Any]:
        metrics, skipped, streak = jax.device_get((pending, self.state.skipped, self.state.streak))
        record: dict[str, Any] = {"step": self.step, "images_seen": self.images_seen}
        for k in metrics[0]:
            vals = np.asarray([m[k] for m in metrics], np.float64)
            record[k] = float(vals.sum() if k == "skipped" else vals.mean())
        record["skipped_total"] = int(skipped)
        record["skip_streak"] = int(streak)
        if phase.resolution is not None:
            record.update(resolution=phase.resolution, alpha=phase.alpha,
                          phase="fade" if phase.fading else "stable")  # fmt: skip
        return record

    def _where_message(self, checkpoint: str | None, latest_png: str | None) -> str:
        rel = _short(self.dir.path)
        lines = [f"done: step {self.step}, {self.images_seen} images seen; outputs in {rel}/"]
        if latest_png:
            lines.append(f"  samples:    {_short(latest_png)}")
        if checkpoint:
            lines.append(f"  checkpoint: {_short(checkpoint)}")
        lines.append(f"  metrics:    {rel}/metrics.jsonl (TensorBoard: {rel}/tensorboard)")
        lines.append(f"  evaluate:   python experiments/evaluate.py --workdir={rel}")
        lines.append("  continue:   rerun the same command; it resumes from the latest checkpoint")
        return "\n".join(lines)


def _short(path: str) -> str:
    """``path`` relative to the working directory when it lies below it."""
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def train(
    config: Config,
    workdir: str | None = None,
    *,
    resume: bool = True,
    allow_changes: bool = False,
    quiet: bool = False,
    interrupted: Callable[[], bool] = lambda: False,
) -> Summary:
    """Train ``config`` into ``workdir`` (default ``runs/<dataset>-<loss>-<model>``).

    Resumes from the newest checkpoint that restores when the directory holds the same run;
    ``allow_changes`` lets non-structural settings differ (recorded in ``config_history.jsonl``).
    Raises :class:`ConfigError` for bad input (nothing is left behind by a failed start), and
    KeyboardInterrupt when ``interrupted()`` says Ctrl-C came during start-up (a new run
    directory is then removed).
    """
    trainer = Trainer(config, workdir or default_workdir(config), resume=resume,
                      allow_changes=allow_changes, quiet=quiet)  # fmt: skip
    trainer.start()
    if interrupted():
        if trainer.created and trainer.latest is None:
            trainer.dir.remove()
        raise KeyboardInterrupt
    return trainer.run()
