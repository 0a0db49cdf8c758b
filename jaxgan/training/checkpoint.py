"""Checkpoints with orbax-checkpoint: the train state as arrays, the run's bookkeeping as JSON.

Each checkpoint ``checkpoints/<step>/`` holds two items: ``state`` (the :class:`TrainState` pytree:
both models, both optimizer states, EMA, RNG key, counters) and ``meta`` (JSON: images seen, the
data iterator's state, the progressive phase, the config). Saves are asynchronous: the arrays are
copied off the device, then written in the background while training goes on. Orbax writes into a
temporary folder and renames it when complete, so a checkpoint half-written by a kill is never
listed and the previous one is used. Restores go against an abstract target carrying shardings, so
a run saved on N devices resumes on M.

Faults end in one line (:class:`CheckpointError`) and lose nothing:

- A damaged checkpoint (a file truncated or deleted) is told apart from one made by another
  model or optimizer: the stored array metadata is compared with the target first (a mismatch),
  and anything that fails after that is damage. :meth:`Checkpointer.restore` skips damaged ones,
  newest first, reports each in one line and leaves it on disk.
- A save that fails (a full disk) never touches earlier checkpoints: orbax deletes the ones past
  ``keep`` only after the new one is complete. The failure surfaces on the next ``save``,
  ``wait`` or ``close`` with the space the next save needs and the space free.
- An unwritable directory is refused when the :class:`Checkpointer` is made.
- A state with a NaN, an inf or an exploded value (above :data:`MAX_ABS_VALUE`) must not replace
  a good checkpoint: :func:`is_saveable` tells, and the loop asks it before every save.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import glob
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp
from etils import epath
from jax.sharding import Mesh

from jaxgan import parallel

# A parameter or optimizer moment above this is an explosion, not training (see is_saveable).
MAX_ABS_VALUE = 1e15


class CheckpointError(RuntimeError):
    """A checkpoint cannot be saved, or cannot be restored into the requested configuration."""


class _Damaged(Exception):
    """Internal: a checkpoint's files are missing or unreadable (the message is the reason)."""


def abstract_state(state: Any, mesh: Mesh) -> Any:
    """ShapeDtypeStructs of ``state`` (arrays or structs), replicated over ``mesh``."""
    return jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(
            x.shape, x.dtype, sharding=parallel.replicated_sharding(mesh, len(x.shape))
        ),
        state,
    )


# --- what may be saved -------------------------------------------------------------------------


@jax.jit
def _all_bounded(leaves: list[jax.Array], max_abs: jax.Array) -> jax.Array:
    # abs(nan) <= t and abs(inf) <= t are False: one comparison refuses NaN, inf and explosions.
    return jnp.all(jnp.stack([jnp.all(jnp.abs(x) <= max_abs) for x in leaves]))


def is_saveable(state: Any, max_abs: float = MAX_ABS_VALUE) -> bool:
    """True when every floating-point leaf of ``state`` is finite and no larger than ``max_abs``
    in magnitude, so that a checkpoint of it can be resumed from.

    Why a bound and not only finiteness: a critic that blew up holds weights around 1e30, which
    float32 still represents (its limit is 3.4e38), so a finiteness test passes it; yet the first
    step after resuming squares those values (Adam's second moment, the gradient penalty, the
    critic's own activations) and overflows to inf/NaN. Such a checkpoint would replace a good
    one and the run could never resume. No trained weight, activation statistic or Adam moment
    of a healthy GAN comes near 1e15, so the default bound only refuses explosions. Integer
    leaves (step counters, the raw uint32 PRNG key) are not checked. Reads one boolean to the
    host.
    """
    leaves = [
        x for x in jax.tree.leaves(state)
        if hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.inexact)
    ]  # fmt: skip
    if not leaves:
        return True
    return bool(_all_bounded(leaves, jnp.asarray(max_abs, jnp.float32)))


# --- keeping orbax's own noise off stderr --------------------------------------------------------


def _is_disk_full(e: BaseException | None) -> bool:
    """True when ``e`` (or an exception it was raised from) says the disk is full."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        text = str(e)
        if "No space left on device" in text or "RESOURCE_EXHAUSTED" in text:
            return True
        if "os_error_code='28'" in text or "Disk quota exceeded" in text:
            return True
        e = e.__cause__ or e.__context__
    return False


class _DiskFullLogFilter(logging.Filter):
    """Drops orbax's tracebacks for a save that failed on a full disk: its background threads log
    one per thread, and the save's :class:`CheckpointError` already says it in one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or f"{os.sep}orbax{os.sep}" not in record.pathname:
            return True
        exc = record.exc_info[1] if record.exc_info else None
        try:
            text = record.getMessage()
        except Exception:  # a malformed record is not ours to judge
            return True
        return not (_is_disk_full(exc) or "No space left on device" in text
                    or "RESOURCE_EXHAUSTED" in text)  # fmt: skip


class _AsyncLeftoverFilter(logging.Filter):
    """Drops asyncio's "exception was never retrieved" for orbax's abandoned reads and writes: when
    one array of a restore or save fails, orbax leaves its siblings' futures behind (the failure
    itself reaches the caller, who reports it in one line)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:
            return True
        if "never retrieved" not in text:
            return True
        if f"{os.sep}orbax{os.sep}" in text:
            return False
        tb = record.exc_info[2] if record.exc_info else None
        while tb is not None:
            if f"{os.sep}orbax{os.sep}" in tb.tb_frame.f_code.co_filename:
                return False
            tb = tb.tb_next
        return True


def _is_orbax_leftover(unraisable: Any) -> bool:
    """An exception orbax/tensorstore leave behind after a failed read: a callback into the closed
    event loop of the failed restore, or an abandoned read coroutine of orbax."""
    exc = unraisable.exc_value
    if isinstance(exc, RuntimeError) and str(exc) == "Event loop is closed":
        return True
    code = getattr(unraisable.object, "cr_code", None)
    return code is not None and f"{os.sep}orbax{os.sep}" in code.co_filename


_filters_installed = False


def _install_filters() -> None:
    """Once per process: the narrow log filters and an unraisable hook that drops only orbax's
    leftovers (everything else goes to the previous hook)."""
    global _filters_installed
    if _filters_installed:
        return
    _filters_installed = True
    logging.getLogger("absl").addFilter(_DiskFullLogFilter())
    logging.getLogger("asyncio").addFilter(_AsyncLeftoverFilter())
    previous = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        if not _is_orbax_leftover(unraisable):
            previous(unraisable)

    sys.unraisablehook = hook


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Around one read attempt that may fail: orbax's and asyncio's logs, the "coroutine never
    awaited" warnings and unraisable exceptions are dropped; the failure is reported by the caller
    in one line. Abandoned reads are collected before leaving so that their noise falls inside."""
    _install_filters()
    loggers = [logging.getLogger(n) for n in ("absl", "asyncio", "orbax")]
    levels = [lg.level for lg in loggers]
    hook = sys.unraisablehook
    for lg in loggers:
        lg.setLevel(logging.CRITICAL + 1)
    sys.unraisablehook = lambda unraisable: None
    failed = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            try:
                yield
            except BaseException:
                failed = True
                raise
            finally:
                if failed:
                    gc.collect()
    finally:
        sys.unraisablehook = hook
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


# --- sizes ---------------------------------------------------------------------------------------


def _tree_nbytes(tree: Any) -> int:
    return int(sum(getattr(x, "nbytes", 0) for x in jax.tree.leaves(tree)))


def _disk_bytes(path: str) -> int:
    """Space the files under ``path`` take on disk."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            total += st.st_blocks * 512 if hasattr(st, "st_blocks") else st.st_size
    return total


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _first_line(e: BaseException, limit: int = 160) -> str:
    text = (str(e).strip().splitlines() or [""])[0]
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _join_orbax_threads(timeout: float = 300.0) -> None:
    """Wait for orbax's background writer threads (a failed save abandons its sibling writes)."""
    deadline = time.monotonic() + timeout
    me = threading.current_thread()
    for t in threading.enumerate():
        if t is not me and type(t).__module__.startswith("orbax."):
            # Orbax's threads re-raise their own failure on join; the caller reports it already.
            with contextlib.suppress(Exception):
                t.join(max(0.0, deadline - time.monotonic()))


def _path_key(key: tuple[Any, ...]) -> str:
    return "/".join(str(k) for k in key)


class Checkpointer:
    """A CheckpointManager in ``directory`` keeping the last ``keep`` checkpoints."""

    def __init__(
        self, directory: str, *, keep: int = 3, async_save: bool = True, create: bool = True
    ):
        """Raises CheckpointError (one line) when ``directory`` cannot be created or written.

        ``create=False``: only read. A missing directory has no checkpoints and is not made;
        :meth:`save` is refused.
        """
        if keep < 1:
            raise ValueError(f"--keep_checkpoints must be >= 1, got {keep}.")
        self.directory = os.path.abspath(directory)
        self._create = create
        self._pending: tuple[int, int] | None = None  # (step, nbytes) of the save in flight
        _install_filters()
        if create:
            self._check_writable()
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep,
            enable_async_checkpointing=async_save,
            create=create,
        )
        try:
            # Listing the steps reads each one's _CHECKPOINT_METADATA; orbax logs a warning for
            # one that is missing or cut short, though the checkpoint restores without it.
            with _quiet():
                self._manager = ocp.CheckpointManager(self.directory, options=options)
        except Exception as e:
            reason = e.strerror if isinstance(e, OSError) and e.strerror else _first_line(e)
            raise CheckpointError(
                f"cannot use the checkpoint directory {self.directory}: {reason}."
            ) from None

    def _check_writable(self) -> None:
        """Make the directory and write a probe file in it (root ignores permission bits, so only
        a real write tells)."""
        try:
            os.makedirs(self.directory, exist_ok=True)
            fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=self.directory)
            os.close(fd)
            os.remove(probe)
        except OSError as e:
            reason = e.strerror or _first_line(e)
            if e.errno == errno.ENOENT and os.path.isdir(os.path.dirname(self.directory)):
                reason = f"no folder can be made there ({reason})"
            raise CheckpointError(
                f"cannot write checkpoints to {self.directory}: {reason}."
            ) from None

    # --- listing -------------------------------------------------------------------------------

    def all_steps(self) -> list[int]:
        """Steps of the checkpoints, ascending (a save in flight is listed once it started)."""
        return sorted(self._manager.all_steps())

    def latest_step(self) -> int | None:
        steps = self.all_steps()
        return steps[-1] if steps else None

    def step_dir(self, step: int) -> str:
        return os.path.join(self.directory, str(step))

    # --- saving ----------------------------------------------------------------------------------

    def save(self, step: int, state: Any, meta: dict[str, Any], *, force: bool = False) -> bool:
        """Start saving ``state`` and ``meta`` at ``step`` (returns once arrays are off-device).

        Raises CheckpointError (one line) when this save or the previous one (still being written
        in the background) failed; a full disk is reported with the space needed and free.
        """
        if not self._create:
            raise CheckpointError(f"{self.directory} was opened read-only (create=False).")
        self.wait()  # a failure of the previous save surfaces here, with its own step
        if step in self._manager.all_steps():
            return False
        args = ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta))
        self._pending = (step, _tree_nbytes(state))
        try:
            saved = bool(self._manager.save(step, args=args, force=force))
        except Exception as e:
            raise self._save_failed(e) from None
        if not saved:
            self._pending = None
        return saved

    def _complete_steps(self) -> list[int]:
        """Steps whose folder is on disk (a save in flight is still in its temporary folder)."""
        return [s for s in self.all_steps() if os.path.isdir(self.step_dir(s))]

    def _space_figures(self, nbytes: int) -> tuple[str, str]:
        """("X (state A + newest checkpoint B)", "Y") for a state of ``nbytes``."""
        steps = self._complete_steps()
        newest = _disk_bytes(self.step_dir(steps[-1])) if steps else 0
        try:
            free = _fmt_bytes(shutil.disk_usage(self.directory).free)
        except OSError:
            free = "an unknown amount"
        need = (
            f"{_fmt_bytes(nbytes + newest)} (state {_fmt_bytes(nbytes)} + newest checkpoint "
            f"{_fmt_bytes(newest)})"
        )
        return need, free

    def wait(self) -> None:
        """Block until every pending save is on disk; CheckpointError (one line) if it failed."""
        try:
            self._manager.wait_until_finished()
        except Exception as e:
            raise self._save_failed(e) from None
        self._pending = None

    def close(self) -> None:
        """Wait for the pending save (CheckpointError if it failed) and release orbax's threads."""
        try:
            self.wait()
        finally:
            with contextlib.suppress(Exception):
                self._manager.close()

    def _save_failed(self, e: BaseException) -> CheckpointError:
        """The one-line error for a failed save; removes the failed save's temporary folder (it
        holds a partial copy and the space it took) and re-reads the complete steps from disk."""
        step, nbytes = self._pending if self._pending is not None else (None, 0)
        self._pending = None
        # Orbax raises as soon as one item fails; the other items' writes may still run.
        _join_orbax_threads()
        if step is not None and jax.process_index() == 0:
            for tmp in glob.glob(os.path.join(self.directory, f"{step}.orbax-checkpoint-tmp*")):
                shutil.rmtree(tmp, ignore_errors=True)
        with contextlib.suppress(Exception):
            self._manager.reload()
        steps = self._complete_steps()
        what = f"the checkpoint at step {step}" if step is not None else "a checkpoint"
        kept = (
            f"earlier checkpoints are intact (newest: step {steps[-1]})"
            if steps
            else "there is no earlier checkpoint"
        )
        if _is_disk_full(e):
            need, free = self._space_figures(nbytes)
            return CheckpointError(
                f"saving {what} in {self.directory} failed: no space left on device; the next "
                f"save needs about {need}, {free} is free; {kept}."
            )
        return CheckpointError(
            f"saving {what} in {self.directory} failed ({_first_line(e)}); {kept}."
        )

    # --- restoring -------------------------------------------------------------------------------

    def restore(
        self,
        target: Any,
        mesh: Mesh,
        step: int | None = None,
        *,
        on_damaged: Callable[[str], None] | None = None,
    ) -> tuple[Any, dict[str, Any], int]:
        """Restore (state, meta, step); ``target`` is a state (or abstract state) of the same shape.

        ``step=None``: the newest checkpoint that restores. A damaged one (files missing or
        truncated) is skipped, left on disk, and reported to ``on_damaged`` in one line; the next
        older one is tried. Raises CheckpointError (one line) when there is no checkpoint, when
        none restores (every one damaged), when ``step`` is given and damaged, or when a
        checkpoint's arrays do not match ``target`` (another model shape, another loss's
        optimizer: older checkpoints of the same run would not match either, so none is tried).
        """
        steps = self.all_steps()
        if step is not None:
            if step not in steps:
                raise CheckpointError(
                    f"no complete checkpoint {step} in {self.directory}; available steps: {steps}."
                )
            try:
                state, meta = self._restore_step(target, mesh, step)
            except _Damaged as e:
                raise CheckpointError(
                    f"checkpoint {self.step_dir(step)} is damaged: {e}; left on disk."
                ) from None
            return state, meta, step
        if not steps:
            raise CheckpointError(
                f"no complete checkpoint in {self.directory}; available steps: []."
            )
        tried: list[int] = []
        reasons: list[str] = []
        for s in reversed(steps):
            tried.append(s)
            try:
                state, meta = self._restore_step(target, mesh, s)
            except _Damaged as e:
                reasons.append(str(e))
                if on_damaged is not None:
                    on_damaged(
                        f"skipping damaged checkpoint {self.step_dir(s)}: {e}; left on disk."
                    )
                continue
            return state, meta, s
        raise CheckpointError(
            f"no checkpoint in {self.directory} restores: steps {tried} are all damaged "
            f"(step {tried[0]}: {reasons[0]}); they are left on disk."
        )

    def _restore_step(self, target: Any, mesh: Mesh, step: int) -> tuple[Any, dict[str, Any]]:
        """Restore one step; _Damaged (reason) for missing or unreadable files, CheckpointError for
        a checkpoint of another model or optimizer."""
        path = self.step_dir(step)
        state_dir = os.path.join(path, "state")
        if not os.path.isdir(path):
            raise _Damaged("its folder is gone")
        if not os.path.isdir(state_dir):
            raise _Damaged("state/ is missing")
        if not os.path.isfile(os.path.join(state_dir, "_METADATA")):
            raise _Damaged("state/_METADATA is missing")
        if glob.glob(os.path.join(state_dir, "ocdbt.process_*")) and not os.path.isfile(
            os.path.join(state_dir, "manifest.ocdbt")
        ):
            raise _Damaged("state/manifest.ocdbt is missing")
        stored = self._stored_arrays(state_dir)
        self._check_matches(stored, target, step)
        if not os.path.isfile(os.path.join(path, "meta", "metadata")):
            raise _Damaged("meta/metadata is missing")
        args = ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state(target, mesh)),
            meta=ocp.args.JsonRestore(),
        )
        try:
            with _quiet():
                restored = self._manager.restore(step, args=args)
        except json.JSONDecodeError:
            raise _Damaged("meta/metadata is not valid JSON") from None
        except Exception:
            raise _Damaged(
                "its array data cannot be read (a file is truncated or corrupt)"
            ) from None
        return restored.state, dict(restored.meta)

    @staticmethod
    def _stored_arrays(state_dir: str) -> dict[tuple[Any, ...], Any]:
        """{key path: array metadata (shape, dtype)} of a stored state; _Damaged if unreadable."""
        handler = ocp.StandardCheckpointHandler()
        try:
            with _quiet():
                md = handler.metadata(epath.Path(state_dir))
        except json.JSONDecodeError:
            raise _Damaged("state/_METADATA is not valid JSON") from None
        except FileNotFoundError:
            raise _Damaged("state/_METADATA is missing") from None
        except Exception:
            raise _Damaged(
                "its array metadata cannot be read (a file is truncated or missing)"
            ) from None
        finally:
            with contextlib.suppress(Exception):
                handler.close()
        tree = md.tree if hasattr(md, "tree") else md
        return ocp.tree.to_flat_dict(tree)

    def _check_matches(self, stored: dict[tuple[Any, ...], Any], target: Any, step: int) -> None:
        """CheckpointError unless ``stored`` has ``target``'s tree, shapes and dtypes."""
        wanted = ocp.tree.to_flat_dict(target)
        only_stored = sorted(set(stored) - set(wanted), key=str)
        only_here = sorted(set(wanted) - set(stored), key=str)
        problems = []
        if only_stored or only_here:
            parts = [
                f"arrays only {where}: {len(keys)} (e.g. {_path_key(keys[0])})"
                for where, keys in (("in the checkpoint", only_stored), ("in this run", only_here))
                if keys
            ]
            problems.append(", ".join(parts))
        else:
            for key, want in wanted.items():
                have = stored[key]
                have_shape = tuple(getattr(have, "shape", None) or ())
                have_dtype = getattr(have, "dtype", None)
                have_dtype = str(want.dtype) if have_dtype is None else str(have_dtype)
                if have_shape != tuple(want.shape) or have_dtype != str(want.dtype):
                    problems.append(
                        f"{_path_key(key)} is {have_shape} {have_dtype} in the checkpoint, "
                        f"{tuple(want.shape)} {want.dtype} here"
                    )
            if len(problems) > 1:
                problems = [f"{problems[0]} (and {len(problems) - 1} more arrays differ)"]
        if problems:
            raise CheckpointError(
                f"the checkpoint at step {step} in {self.directory} does not match this run's "
                f"model/optimizer (other widths, loss or optimizer?): {problems[0]}."
            )

    def read_meta(self, step: int | None = None) -> dict[str, Any]:
        """Only the JSON part of a checkpoint (no arrays read); CheckpointError if unreadable."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise CheckpointError(f"no complete checkpoint in {self.directory}.")
        path = self.step_dir(step)
        if not os.path.isfile(os.path.join(path, "meta", "metadata")):
            raise CheckpointError(
                f"checkpoint {path} is damaged: meta/metadata is missing; left on disk."
            )
        try:
            with _quiet():
                out = self._manager.restore(
                    step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())
                )
        except Exception as e:
            reason = (
                "meta/metadata is not valid JSON"
                if isinstance(e, json.JSONDecodeError)
                else (f"meta/metadata cannot be read ({_first_line(e)})")
            )
            raise CheckpointError(
                f"checkpoint {path} is damaged: {reason}; left on disk."
            ) from None
        return dict(out.meta)
