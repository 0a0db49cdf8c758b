"""The training loop: ``train(config, workdir)`` runs a config into a run directory.

:func:`prepare` turns a config into a :class:`Run` (devices, data, state, restored counters, the
logger); :func:`loop` reads straight down: one jitted step per iteration, then the hooks that are
due (samples, evaluation, checkpoints, the caller's own). The host reads one scalar per step, one
step late (the skip streak, kept on the device and returned in the step's metrics), and the rest
only at log ticks. Running the same call again resumes exactly.

SIGINT and SIGTERM only set a flag, whenever they come: the loop finishes its step, saves and
returns ``128 + N``; during start-up nothing trains and a run directory made by this start is
removed. No exception is ever raised inside a library call (an import, an orbax restore).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh

from jaxgan import parallel, samples, xla_flags
from jaxgan.errors import CheckpointError, ConfigError
from jaxgan.training import build
from jaxgan.training import schedule as sched_lib
from jaxgan.training.checkpoint import Checkpointer
from jaxgan.training.config import Config, validate
from jaxgan.training.logs import RunLogger
from jaxgan.training.rundir import RunDir

EXIT_OK, EXIT_NONFINITE = 0, 3
MAX_ABS_VALUE = 1e15  # a parameter or optimizer moment above it has exploded (see is_saveable)
Hook = Callable[["Run"], None]


@dataclasses.dataclass(frozen=True)
class Summary:
    """What a finished (or stopped) run returns. ``exit_code``: 0 done, 3 stopped on non-finite
    updates, 128 + N stopped by signal N (what schedulers that requeue jobs expect);
    ``checkpoint`` and ``samples``: the newest ones (paths)."""

    workdir: str
    exit_code: int
    step: int
    images_seen: int
    metrics: dict[str, Any]
    checkpoint: str | None
    samples: str | None
    message: str


@dataclasses.dataclass(eq=False)
class Run:
    """A prepared run: what the loop and its hooks read and advance."""

    config: Config
    dir: RunDir
    mesh: Mesh
    schedule: sched_lib.PhaseSchedule
    pipe: Any
    checkpointer: Checkpointer
    state: Any
    g_def: Any
    d_def: Any
    sample_shape: tuple[int, ...]
    phase: sched_lib.Phase
    logger: RunLogger | None = None
    step: int = 0
    images_seen: int = 0
    created: bool = False
    restored_from: str | None = None
    latest_png: str | None = None
    cache: dict = dataclasses.field(default_factory=dict)

    @property
    def is_main(self) -> bool:
        return jax.process_index() == 0

    def _cached(self, key: Any, make: Callable[[], Any]) -> Any:
        if key not in self.cache:
            self.cache[key] = make()
        return self.cache[key]

    def train_step(self, phase: sched_lib.Phase) -> Callable:
        """The phase's jitted step (compiled once per resolution and fading)."""
        make = lambda: build.jit_step(build.train_step(self.config, self.g_def, self.d_def, phase), self.state, self.mesh)  # fmt: skip # noqa: E731
        return self._cached(("step", phase.resolution, phase.fading), make)

    def sample(self, z: jax.Array, phase: sched_lib.Phase | None = None) -> np.ndarray:
        """Generated samples for ``z`` (the EMA generator when the run has one)."""
        p = phase or self.phase
        fn = self._cached(("sample", p.resolution, p.fading), lambda: build.sampler(self.g_def, p.resolution, p.fading))  # fmt: skip
        return build.sample(fn, self.config, self.state, z, p.alpha)

    def latents(self, n: int) -> jax.Array:
        """The run's fixed latents for grids (64) and toy plots and metrics (2,500)."""
        key = jax.random.key(self.config.output.seed + 2)
        return self._cached(n, lambda: jax.random.normal(key, (n, self.config.model.latent_dim)))

    def meta(self) -> dict[str, Any]:
        """The JSON part of a checkpoint: counters, data position, the config."""
        return {"step": self.step, "images_seen": self.images_seen, "phase_index": self.phase.index,
                "data_state": self.pipe.get_state(), "sample_shape": list(self.sample_shape),
                "config": self.config.to_json()}  # fmt: skip

    def close(self, *, discard: bool = False) -> None:
        """Release the checkpointer (a failed background save raises here), logger and data;
        ``discard``: remove the run directory if this start made it and restored nothing."""
        try:
            self.checkpointer.close()
        finally:
            if self.logger is not None:
                self.logger.close()
            self.pipe.close()
            if self.is_main:
                self.dir.release()
            if discard and self.created and self.restored_from is None:
                self.dir.remove()


def default_workdir(config: Config) -> str:
    name = config.data.dataset.replace(":", "_").replace("/", "_")
    return os.path.join("runs", f"{name}-{config.loss.loss}-{config.model.model}")


def prepare(config: Config, workdir: str, *, resume: bool = True, allow_changes: bool = False,
            quiet: bool = True) -> Run:  # fmt: skip
    """Check the config against the devices and the run directory, open the data, build the state,
    restore the newest good checkpoint, record the config and open the logger.

    Raises ConfigError (one line) for bad input; a run directory made here is removed on failure.
    """
    c, d = validate(config), config.devices
    parallel.initialize_distributed(d.coordinator_address, d.num_processes, d.process_id)
    devices = jax.devices()
    if d.num_devices and (jax.process_count() > 1 or d.num_devices > len(devices)):
        raise ConfigError(f"--num_devices={d.num_devices}: this host has {len(devices)} devices "
                          "(and --num_devices is for single-host runs).")  # fmt: skip
    devices = devices[: d.num_devices or None]
    schedule = sched_lib.for_config(c, len(devices))
    for p in (p for p in schedule.phases() if p.batch_size % len(devices)):
        flag = (
            f"--batch_per_res ({p.resolution}x{p.resolution})" if p.resolution else "--batch_size"
        )
        raise ConfigError(f"{flag}: batch {p.batch_size} does not divide over the {len(devices)} "
                          f"devices; use a multiple of {len(devices)}.")  # fmt: skip
    rundir, opened = RunDir(workdir), contextlib.ExitStack()
    created = rundir.create()
    try:
        if jax.process_index() == 0:
            rundir.acquire()
            opened.callback(rundir.release)
        checkpointer = Checkpointer(rundir.checkpoints, keep=c.output.keep_checkpoints)
        opened.callback(checkpointer.close)
        latest = checkpointer.latest_step()
        changed = rundir.check_resume(c, latest, resume=resume, allow_changes=allow_changes)
        mesh, phase = parallel.make_mesh(devices), schedule.phase_at(0)
        pipe = _open_data(c, mesh, phase)
        opened.callback(pipe.close)
        shape = build.sample_shape(c, pipe.native_resolution, pipe.channels)
        state, g_def, d_def = build.init_state(c, shape, mesh)
        run = Run(c, rundir, mesh, schedule, pipe, checkpointer, state, g_def, d_def, shape, phase,
                  created=created)  # fmt: skip
        if latest is not None:
            warn = lambda msg: print(f"warning: {msg}", flush=True) if run.is_main else None  # noqa: E731
            try:
                run.state, meta, run.step = checkpointer.restore(state, mesh, on_damaged=warn)
            except CheckpointError as e:
                raise ConfigError(str(e)) from None
            run.images_seen = int(meta["images_seen"])
            run.phase = schedule.phases()[int(meta.get("phase_index", 0))]
            try:
                pipe.set_state(meta["data_state"])
            except ValueError as e:  # another --seed, or the folder changed: a new data order
                warn(f"the data order starts anew: {e}")
                pipe.configure(resolution=run.phase.resolution, batch_size=run.phase.batch_size)
            if not c.progressive:  # counted in steps: the batch or n_critic may have changed
                left = max(c.schedule.steps - run.step, 0) * c.schedule.batch_size * c.loss.n_critic
                run.schedule = sched_lib.PhaseSchedule.plain(run.images_seen + left, c.schedule.batch_size)  # fmt: skip
            run.restored_from = checkpointer.step_dir(run.step)
        if run.is_main:
            rundir.record_config(c, run.step, changed)
        total = schedule.total_steps(c.loss.n_critic) if c.progressive else c.schedule.steps
        run.logger = RunLogger(rundir.path, total, run.step, quiet=quiet, enabled=run.is_main)
        opened.pop_all()
        return run
    except BaseException:
        with contextlib.suppress(Exception):
            opened.close()
        if created:
            rundir.remove()
        raise


def _open_data(c: Config, mesh: Mesh, phase: sched_lib.Phase) -> Any:
    from jaxgan import data

    try:
        pipe = data.load(
            c.data.dataset, batch_size=phase.batch_size, resolution=phase.resolution,
            seed=c.output.seed, mesh=mesh, data_dir=c.data.data_dir, download=c.data.download,
            mirror=c.data.mirror, stack=c.loss.n_critic,
        )  # fmt: skip
    except ValueError as e:
        raise ConfigError(f"--dataset={c.data.dataset}: {e}") from None
    if c.progressive:
        last = c.schedule.stage_schedule[-1]
        try:
            sched_lib.check_schedule_against_source(c.schedule.stage_schedule, pipe.native_resolution)  # fmt: skip
        except ValueError as e:
            pipe.close()
            raise ConfigError(f"{e}; or add --dataset=folder:PATH with images of at least {last}x{last}") from None  # fmt: skip
    return pipe


# --- hooks: each called when its interval is due ---------------------------------------------


def due(step: int, every: int) -> bool:
    """Whether an interval of ``every`` steps (0: never) ends at ``step``."""
    return every > 0 and step % every == 0


def write_samples(run: Run) -> None:
    """A sample grid (toys: points over the critic's values) in ``samples/``."""
    if not run.is_main:
        return
    if not run.config.is_toy:
        run.latest_png = samples.write_grid(run.dir.samples, run.step, run.sample(run.latents(64)))
        return
    real = run.pipe.toy.sample(np.random.default_rng(run.config.output.seed + 17), 1000)
    fake = run.sample(run.latents(2500)[:1000])
    critic = build.critic_fn(run.d_def, run.state, run.phase)
    run.latest_png = samples.write_toy(run.dir.samples, run.step, real, fake, critic)


def write_stage(run: Run, phase: sched_lib.Phase) -> None:
    """The finished stage's grid and its row of the growth strip."""
    if run.is_main and phase.resolution is not None:
        images = run.sample(run.latents(64), phase)
        samples.write_stage(run.dir.samples, phase.resolution, images, run.config.schedule.stage_schedule)  # fmt: skip


def evaluate(run: Run) -> None:
    from jaxgan import evaluation

    c, res = run.config, run.phase.resolution
    metrics = c.output.eval_metrics or evaluation.default_metrics(c.data.dataset, res)
    record = evaluation.evaluate_generator(
        run.sample, c.data.dataset, c.model.latent_dim, metrics=metrics,
        num_images=c.output.eval_images, resolution=run.phase.resolution, data_dir=c.data.data_dir,
    )  # fmt: skip
    run.logger.log({"step": run.step, **{f"eval/{k}": v for k, v in record.items()}})


@jax.jit
def _all_bounded(leaves: list[jax.Array], max_abs: jax.Array) -> jax.Array:
    # abs(nan) <= t and abs(inf) <= t are False: one comparison refuses NaN, inf and explosions.
    return jnp.all(jnp.stack([jnp.all(jnp.abs(x) <= max_abs) for x in leaves]))


def is_saveable(state: Any, max_abs: float = MAX_ABS_VALUE) -> bool:
    """True if every float leaf of ``state`` is finite and within ``max_abs`` (one boolean read):
    weights blown up to 1e30 are finite in float32, but resuming squares them (Adam's moments, the
    gradient penalty) into inf, so such a checkpoint never resumes; healthy ones stay below 1e15."""
    leaves = [x for x in jax.tree.leaves(state) if jnp.issubdtype(jnp.result_type(x), jnp.inexact)]
    return not leaves or bool(_all_bounded(leaves, jnp.asarray(max_abs, jnp.float32)))


def save_checkpoint(run: Run) -> None:
    """Checkpoint now, unless a skip streak runs or the state is not finite (then say so)."""
    if run.step in run.checkpointer.all_steps():
        return
    streak = int(jax.device_get(run.state.streak))
    if streak or not is_saveable(run.state):
        why = f"{streak} consecutive steps skipped non-finite updates" if streak else "the state holds non-finite or exploded values"  # fmt: skip
        run.logger.message(f"not saving a checkpoint at step {run.step}: {why}.")
        return
    run.checkpointer.save(run.step, run.state, run.meta())


def _record(run: Run, pending: list[dict[str, jax.Array]], since: tuple[float, int]) -> dict[str, Any]:  # fmt: skip
    """One metrics row: step means (skips summed), totals, images/s, the phase; toys: modes."""
    metrics, skipped = jax.device_get((pending, run.state.skipped))
    row: dict[str, Any] = {"step": run.step, "images_seen": run.images_seen}
    for k in metrics[0]:
        vals = np.asarray([m[k] for m in metrics], np.float64)
        row[k] = float(vals.sum() if k == "skipped" else vals[-1] if k == "streak" else vals.mean())
    row["skipped_total"], row["skip_streak"] = int(skipped), int(row.pop("streak"))
    row["images_per_sec"] = (run.images_seen - since[1]) / max(time.perf_counter() - since[0], 1e-9)
    if run.phase.resolution is not None:
        row.update(resolution=run.phase.resolution, alpha=run.phase.alpha,
                   phase="fade" if run.phase.fading else "stable")  # fmt: skip
    if run.config.is_toy:
        from jaxgan import evaluation

        modes = evaluation.evaluate_images(run.sample(run.latents(2500)), run.config.data.dataset, metrics=("modes",))  # fmt: skip
        row.update({k: v for k, v in modes.items() if k != "num_images"})
    return row


def enter_phase(run: Run, phase: sched_lib.Phase) -> None:
    """A new phase: the finished stage's images, the data at the new size, fresh optimizers."""
    if run.phase.resolution != phase.resolution:
        write_stage(run, run.phase)
    run.pipe.configure(resolution=phase.resolution, batch_size=phase.batch_size)
    if run.config.optim.reset_adam:
        run.state = build.reset_optimizers(run.config, run.state, phase, run.mesh)
    what = "fade into" if phase.fading else "stabilise"
    run.logger.message(f"phase {phase.index}: {what} {phase.resolution}x{phase.resolution}, batch {phase.batch_size}")  # fmt: skip


class StopSignal:
    """Records SIGINT/SIGTERM (the first one counts); the loop finishes the step, saves and returns.
    In a multi-host run the hosts agree on it with one collective at each log tick (not every step:
    it waits for the device), so all stop at the same step."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __call__(self, signum: int, frame: Any) -> None:
        self.signum = self.signum or signum

    @contextlib.contextmanager
    def installed(self, caught: Sequence[int] = ()):
        """Handle SIGINT/SIGTERM while inside (main thread only: elsewhere signals cannot be)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        old = {s: signal.signal(s, self) for s in (signal.SIGINT, signal.SIGTERM)}
        self.signum = self.signum or (caught[0] if caught else None)  # came before these handlers
        try:
            yield self
        finally:
            for s, h in old.items():
                signal.signal(s, h)

    def requested(self, step: int, every: int) -> bool:
        if jax.process_count() == 1:
            return self.signum is not None
        if step % every:
            return False
        agreed = int(np.max(multihost_utils.process_allgather(np.int32(self.signum or 0))))
        self.signum = self.signum or agreed or None
        return agreed > 0


def loop(run: Run, stop: StopSignal, hooks: Sequence[Hook] = ()) -> Summary:
    """Train ``run`` to the end of its schedule, a signal, or ``max_skips`` non-finite steps."""
    c, o, log = run.config, run.config.output, run.logger
    due_hooks = [(o.sample_every, write_samples), (o.eval_every, evaluate), (o.ckpt_every, save_checkpoint)]  # fmt: skip
    pending: list[dict[str, jax.Array]] = []
    prev: dict[str, jax.Array] | None = None
    last: dict[str, Any] = {}
    since = (time.perf_counter(), run.images_seen)
    exit_code, message = EXIT_OK, ""
    while not run.schedule.done(run.images_seen):
        phase = run.schedule.phase_at(run.images_seen)
        if phase.index != run.phase.index:
            enter_phase(run, phase)
        run.phase = phase
        reals = next(run.pipe)["x"]
        run.state, metrics = run.train_step(phase)(run.state, reals, np.float32(phase.alpha))
        run.step += 1
        run.images_seen += c.loss.n_critic * phase.batch_size
        pending.append(metrics)
        # The previous step's streak is computed by now: reading it does not stall the device.
        streak = int(prev["streak"]) if prev is not None else 0
        if streak >= o.max_skips - 1:
            streak = int(metrics["streak"])
        prev, stopping = metrics, stop.requested(run.step, o.log_every)
        if due(run.step, o.log_every) or run.schedule.done(run.images_seen) or stopping or streak >= o.max_skips:  # fmt: skip
            last = _record(run, pending, since)
            log.log(last)
            pending, since = [], (time.perf_counter(), run.images_seen)
        if streak >= o.max_skips:
            run.checkpointer.wait()
            good = run.checkpointer.latest_step()
            where = f"the last good checkpoint is {run.checkpointer.step_dir(good)}" if good else "no checkpoint was saved"  # fmt: skip
            message = (f"stopped at step {run.step}: {streak} consecutive steps had non-finite "
                       f"updates (--max_skips={o.max_skips}); {where}.")  # fmt: skip
            log.message(message)
            exit_code = EXIT_NONFINITE
            break
        for every, hook in due_hooks:
            if due(run.step, every):
                hook(run)
        for hook in hooks:
            hook(run)
        if stopping:
            exit_code = 128 + stop.signum
            break
    if exit_code != EXIT_NONFINITE:
        save_checkpoint(run)
        write_samples(run)
        if c.progressive and exit_code == EXIT_OK:
            write_stage(run, run.phase)
    run.checkpointer.wait()
    steps = run.checkpointer.all_steps()
    good = run.checkpointer.step_dir(steps[-1]) if steps else None
    if exit_code != EXIT_NONFINITE:
        message = _where(run, good, stop.signum)
        if run.is_main:
            print(message, flush=True)
    return Summary(run.dir.path, exit_code, run.step, run.images_seen, last, good, run.latest_png, message)  # fmt: skip


def _where(run: Run, checkpoint: str | None, signum: int | None) -> str:
    """The closing lines: where the outputs are and how to go on."""
    rel = lambda p: p if os.path.relpath(p).startswith("..") else os.path.relpath(p)  # noqa: E731
    wd = rel(run.dir.path)
    how = f"stopped by {signal.Signals(signum).name} at step {run.step}" if signum else f"done: step {run.step}"  # fmt: skip
    return "\n".join([
        f"{how}, {run.images_seen} images seen; outputs in {wd}/",
        *([f"  samples:    {rel(run.latest_png)}"] if run.latest_png else []),
        *([f"  checkpoint: {rel(checkpoint)}"] if checkpoint else []),
        f"  metrics:    {wd}/metrics.jsonl (TensorBoard: {wd}/tensorboard)",
        f"  evaluate:   python experiments/evaluate.py --workdir={wd}",
        "  continue:   rerun the same command (with a larger --steps or --kimg_total to train "
        "longer); it resumes from the latest checkpoint",
    ])  # fmt: skip


def train(config: Config | str, workdir: str | None = None, *, resume: bool = True,
          allow_changes: bool = False, quiet: bool = False, hooks: Sequence[Hook] = (),
          caught: Sequence[int] = ()) -> Summary:  # fmt: skip
    """Train ``config`` (a :class:`Config` or a preset name) into ``workdir`` (default
    ``runs/<dataset>-<loss>-<model>``).

    Resumes from the newest checkpoint that restores when the directory holds the same run;
    ``allow_changes`` lets settings that change the optimisation differ (training longer and other
    intervals never need it; changes are recorded in ``config_history.jsonl``). ``hooks``: called
    with the :class:`Run` after every step. ``caught``: signals the caller's own handler recorded
    before this call (read once this call's handlers are in). Raises :class:`ConfigError` for bad
    input; a failed or interrupted start leaves no new run directory behind.
    """
    # Before JAX starts, when this call is the first to start it; said on stdout, so that stderr
    # holds one line for a bad input.
    xla_flags.apply(announce=True, stream=sys.stdout)
    if isinstance(config, str):
        from jaxgan import configs

        config = configs.load(config)
    if not isinstance(config, Config):
        raise ConfigError(f"train: config must be a jaxgan Config or a preset name, not {type(config).__name__}.")  # fmt: skip
    with StopSignal().installed(caught) as stop:
        run = prepare(config, workdir or default_workdir(config), resume=resume,
                      allow_changes=allow_changes, quiet=quiet)  # fmt: skip
        try:
            if stop.requested(run.step, 1):  # during start-up: nothing trains
                return _stopped_at_start(run, stop.signum)
            if run.restored_from:
                run.logger.message(f"resumed from {run.restored_from} at step {run.step}, {run.images_seen} images seen")  # fmt: skip
            summary = loop(run, stop, hooks)
        except BaseException:
            with contextlib.suppress(CheckpointError):  # another error is already on its way out
                run.close()
            raise
    run.close()  # a failed background save surfaces here
    return summary


def _stopped_at_start(run: Run, signum: int) -> Summary:
    """A signal came before the first step: release everything, remove a run directory made now."""
    run.close(discard=True)
    kept = f"{run.dir.path} is as it was (step {run.step})" if run.restored_from else "nothing was kept"  # fmt: skip
    message = f"stopped by {signal.Signals(signum).name} during start-up, before any step; {kept}."
    if run.is_main:
        print(message, flush=True)
    return Summary(run.dir.path, 128 + signum, run.step, run.images_seen, {}, run.restored_from, None, message)  # fmt: skip
