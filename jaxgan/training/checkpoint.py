"""Checkpoints with orbax-checkpoint: ``<directory>/<step>/`` holds the items ``state`` (the train
state pytree) and ``meta`` (JSON: images seen, data state, phase, config), saved in the background
into a temporary folder that orbax renames once complete, and restored onto any mesh.

Faults end in one line (:class:`CheckpointError`) and lose nothing: ``restore`` skips a damaged
checkpoint (reported; a writer moves it aside to ``<step>.damaged`` so that the step is saved
again) but stops at one of another model or optimizer, told from its stored metadata before any
array is read; a failed save (disk full: space needed and free) shows on the next call, drops no
earlier checkpoint and leaves no partial folder; an unwritable directory is refused at once.
Quieting orbax's own logs of these faults is the entry point's job."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import jax
import orbax.checkpoint as ocp
from etils import epath
from jax.sharding import Mesh
from orbax.checkpoint.args import Composite, JsonRestore, JsonSave, StandardRestore, StandardSave

from jaxgan import parallel
from jaxgan.errors import CheckpointError  # re-exported: every fault below raises it


class _Damaged(CheckpointError):
    """A checkpoint's files are missing or unreadable (the message names it and which item)."""


def abstract_state(state: Any, mesh: Mesh) -> Any:
    """ShapeDtypeStructs of ``state`` (arrays or structs), replicated over ``mesh``."""
    rep = lambda x: parallel.replicated_sharding(mesh, len(x.shape))
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=rep(x)), state)


def _disk_bytes(path: str) -> int:
    """Space the files under ``path`` take on disk."""
    files = (os.path.join(root, f) for root, _, names in os.walk(path) for f in names)
    return sum(os.lstat(f).st_blocks * 512 for f in files)


def _fmt_bytes(n: float) -> str:
    exp = next(i for i in range(4) if n < 1024 ** (i + 1) or i == 3)
    return f"{n:.0f} B" if exp == 0 else f"{n / 1024**exp:.1f} {'KMG'[exp - 1]}iB"


def _first_line(e: BaseException) -> str:
    return f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:160]}".rstrip(": ")


@contextlib.contextmanager
def _reading(path: str, what: str) -> Iterator[None]:
    """Any failure to read ``what`` of the checkpoint at ``path`` is damage, said in few words."""
    try:
        yield
    except Exception as e:
        kinds = {FileNotFoundError: "is missing", json.JSONDecodeError: "is not valid JSON"}
        why = kinds.get(type(e), "cannot be read (a file is truncated or corrupt)")
        raise _Damaged(f"damaged checkpoint {path}: {what} {why}") from None


class _Writes(list):
    """A save's commit futures (both items) as one orbax future that waits for all, then raises the
    first failure: orbax stops at the first, and a write left running could outlive the cleanup."""

    def result(self, timeout: float | None = None) -> None:
        for f in self:
            with contextlib.suppress(Exception):
                f.result()
        for f in self:  # all are over: the first failure raises again
            f.result()

    def join(self, registry: Any, item: str, base: type, save: type, restore: type) -> None:
        """Registers for ``item`` an orbax handler of class ``base`` whose saves' futures join."""
        writes = self

        class Handler(base):
            typestr = base.typestr  # checkpoints name orbax's own handler: readable without jaxgan

            async def async_save(self, directory: Any, *args: Any, **kwargs: Any) -> list[Any]:
                writes.extend(await super().async_save(directory, *args, **kwargs) or [])
                return [writes]

        registry.add(item, save, handler := Handler())
        registry.add(item, restore, handler)


class Checkpointer:
    """An orbax CheckpointManager in ``directory`` keeping the newest ``keep`` checkpoints."""

    def __init__(self, directory: str, *, keep: int = 3, async_save: bool = True,
                 create: bool = True) -> None:  # fmt: skip
        """CheckpointError (one line) when ``directory`` cannot be made or written. ``create=False``
        only reads: a missing directory has no checkpoints and is not made; ``save`` is refused."""
        self.directory, self._create = os.path.abspath(directory), create
        self._pending: tuple[int, int] | None = None  # (step, state bytes) of the save in flight
        try:  # a real write tells (root ignores permission bits)
            if create:
                os.makedirs(self.directory, exist_ok=True)
                tempfile.TemporaryFile(dir=self.directory).close()
        except OSError as e:
            why = e.strerror or _first_line(e)
            raise CheckpointError(f"cannot write checkpoints to {self.directory}: {why}.") from None
        writes = self._writes = _Writes()
        reg = ocp.handlers.DefaultCheckpointHandlerRegistry()
        writes.join(reg, "state", ocp.StandardCheckpointHandler, StandardSave, StandardRestore)
        writes.join(reg, "meta", ocp.JsonCheckpointHandler, JsonSave, JsonRestore)
        # lightweight_initialize: steps are listed without reading their (unneeded) metadata.
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=create,
            enable_async_checkpointing=async_save, lightweight_initialize=True)  # fmt: skip
        try:
            self._manager = ocp.CheckpointManager(self.directory, options=options,
                                                  handler_registry=reg)  # fmt: skip
        except Exception as e:
            why = e.strerror if isinstance(e, OSError) and e.strerror else _first_line(e)
            raise CheckpointError(f"cannot use the checkpoint directory {self.directory}: {why}.") from None  # fmt: skip

    def all_steps(self) -> list[int]:
        """Steps of the complete checkpoints (and of a save in flight), ascending."""
        return sorted(self._manager.all_steps())

    def latest_step(self) -> int | None:
        return max(self.all_steps(), default=None)

    def step_dir(self, step: int) -> str:
        return os.path.join(self.directory, str(step))

    def save(self, step: int, state: Any, meta: dict[str, Any]) -> bool:
        """Start saving (False if not past the latest step); CheckpointError if a save failed."""
        if not self._create:
            raise CheckpointError(f"{self.directory} was opened read-only (create=False).")
        self.wait()
        self._writes.clear()
        self._pending = (step, sum(getattr(x, "nbytes", 0) for x in jax.tree.leaves(state)))
        args = Composite(state=StandardSave(state), meta=JsonSave(meta))
        try:
            return self._manager.save(step, args=args)
        except Exception as e:
            raise self._save_failed(e) from None

    def wait(self) -> None:
        """Block until the pending save is on disk; CheckpointError (one line) if it failed."""
        try:
            self._manager.wait_until_finished()
        except Exception as e:
            raise self._save_failed(e) from None

    def close(self) -> None:
        """Wait for the pending save (CheckpointError if it failed) and release orbax."""
        with contextlib.closing(self._manager):
            self.wait()

    def _save_failed(self, e: BaseException) -> CheckpointError:
        """The one-line error of a failed save, once its partial folder is removed. Disk full: an
        ENOSPC/EDQUOT, or (tensorstore's errors carry no errno) less free than state + newest."""
        step, nbytes = self._pending or (None, 0)
        if step is not None and jax.process_index() == 0:
            final = epath.Path(self.step_dir(step))
            tmp = ocp.path.atomicity_defaults.get_default_temporary_path_class(final)
            shutil.rmtree(tmp.from_final(final).get(), ignore_errors=True)
        self._manager.reload()  # orbax struck the steps past ``keep`` off its list at the save
        steps = self.all_steps()
        newest = _disk_bytes(self.step_dir(steps[-1])) if steps else 0
        free, code = shutil.disk_usage(self.directory).free, getattr(e, "errno", None)
        what = f"saving {'a checkpoint' if step is None else f'the checkpoint at step {step}'} in"
        kept = (f"earlier checkpoints are intact (newest: step {steps[-1]})" if steps
                else "there is no earlier checkpoint")  # fmt: skip
        if code in (errno.ENOSPC, errno.EDQUOT) or (code is None and free < nbytes + newest):
            return CheckpointError(
                f"{what} {self.directory} failed: no space left on device; the next save needs "
                f"about {_fmt_bytes(nbytes + newest)} (state {_fmt_bytes(nbytes)} + newest "
                f"checkpoint {_fmt_bytes(newest)}), {_fmt_bytes(free)} is free; {kept}."
            )
        return CheckpointError(f"{what} {self.directory} failed ({_first_line(e)}); {kept}.")

    def restore(self, target: Any, mesh: Mesh, step: int | None = None, *,
                on_damaged: Callable[[str], Any] | None = None) -> tuple:  # fmt: skip
        """(state, meta, step) of the newest checkpoint that restores (or of ``step``) like
        ``target``, replicated over ``mesh``; damaged ones are skipped, reported to ``on_damaged``.
        CheckpointError (one line) when none is left, or at one of another model or optimizer.
        A writer moves a damaged one aside (kept, never deleted), so its step can be saved anew."""
        tried = self.existing(step)[::-1] if step is None else [s for s in self.existing(step) if s == step]  # fmt: skip
        args, damaged = Composite(state=StandardRestore(abstract_state(target, mesh))), []
        for s in tried:
            try:  # array metadata, JSON, arrays: each read alone, so none abandons another's reads
                self._check_matches(s, target)
                meta = self.read_meta(s)
                with _reading(self.step_dir(s), "its array data (state)"):
                    state = self._manager.restore(s, args=args).state
            except _Damaged as e:
                if step is not None:
                    raise CheckpointError(f"{e}; left on disk.") from None
                damaged.append((s, e))
                continue
            for d, e in damaged:  # only once an older one restores: all damaged is left as is
                where = self._move_aside(d)
                if on_damaged is not None:
                    on_damaged(f"skipping {e}; {where}.")
            return state, meta, s
        raise CheckpointError(f"no checkpoint in {self.directory} restores (steps {tried} are all "
                              f"damaged, left on disk); the newest: {damaged[0][1]}.")  # fmt: skip

    def existing(self, step: int | None = None) -> list[int]:
        """The complete checkpoints' steps; CheckpointError naming them if ``step`` (None: any) is not."""
        if (steps := self.all_steps()) and (step is None or step in steps):
            return steps
        if not steps:
            raise CheckpointError(f"{self.directory} has no checkpoint yet{'' if step is None else f', so none at step {step}'}.")  # fmt: skip
        raise CheckpointError(f"checkpoint step {step} does not exist in {self.directory}; existing steps: {', '.join(map(str, steps))}.")  # fmt: skip

    def _move_aside(self, step: int) -> str:
        """Rename a damaged step folder out of orbax's listing (a reader leaves it); says where."""
        path = aside = self.step_dir(step)
        if not self._create:
            return "left on disk"
        if jax.process_index() == 0:
            aside = next(p for n in range(1, 1000) if not os.path.exists(p := f"{path}.damaged{'' if n == 1 else n}"))  # fmt: skip
            os.rename(path, aside)
        self._manager.reload()
        return f"moved aside to {aside}"

    def _check_matches(self, step: int, target: Any) -> None:
        """CheckpointError unless the stored array metadata has ``target``'s tree and types."""
        handler, path = ocp.StandardCheckpointHandler(), self.step_dir(step)
        with _reading(path, "its array metadata (state)"), contextlib.closing(handler):
            stored = handler.metadata(epath.Path(path) / "state").tree
        sig = lambda t: {"/".join(map(str, k)): f"{tuple(v.shape)} {v.dtype}"
                         for k, v in ocp.tree.to_flat_dict(t).items()}  # fmt: skip
        have, want = sig(stored), sig(target)
        if diffs := sorted(k for k in have.keys() | want.keys() if have.get(k) != want.get(k)):
            k, n = diffs[0], len(diffs)
            raise CheckpointError(
                f"the checkpoint at step {step} in {self.directory} does not match this run's "
                f"model/optimizer (other widths, loss or optimizer?): {k} is "
                f"{have.get(k, 'absent')} in it, {want.get(k, 'absent')} here ({n} arrays differ)."
            )

    def read_meta(self, step: int | None = None) -> dict[str, Any]:
        """Only the JSON item of a checkpoint (no array is read); CheckpointError if unreadable."""
        step = self.existing(step)[-1] if step is None else (self.existing(step) and step)
        with _reading(self.step_dir(step), "its JSON item (meta)"):
            return dict(self._manager.restore(step, args=Composite(meta=JsonRestore())).meta)
