"""A run's phases by images shown: the progressive schedule, and a plain run as one phase.

Following Karras et al. 2018, progressive training is a sequence of phases measured in images
shown to the critic: stabilise at the first resolution, then for every next resolution a fade-in
(``alpha`` rising linearly 0 -> 1 by images shown) followed by a stabilisation. ``alpha`` is a
function of the image count alone, so a resumed run replays the same trajectory. A plain
(non-progressive) run is one phase at resolution ``None``.

Command-line helpers raise ``ValueError`` with a message naming the flag, for the caller to turn
into a usage error (exit 2).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from jaxgan.arrays import is_power_of_two

__all__ = [
    "PAPER_PHASES",
    "Phase",
    "PhaseSchedule",
    "check_schedule_against_source",
    "default_batch_size",
    "for_config",
    "parse_stage_schedule",
]

_HELP = ("allowed: powers of two >= 4, each the double of the one before, written out ('4,8,16') "
         "or with an ellipsis between two written ends ('4,8,...,1024')")  # fmt: skip


def parse_stage_schedule(text: str) -> list[int]:
    """Parse ``--stage_schedule`` into a list of resolutions, e.g. ``[4, 8, 16]``.

    Accepted: an explicit list ``"4,8,16"`` (one entry is allowed) or the ellipsis form
    ``"4,8,...,1024"``: at least two resolutions before ``...`` and one or more after it, the gap
    filled by doubling. Every resolution must be a power of two >= 4 and each the double of the
    previous one. Raises ValueError naming the flag and what is allowed otherwise.
    """

    def fail(why: str) -> ValueError:
        return ValueError(f"--stage_schedule={text!r}: {why}; {_HELP}")

    tokens = [t.strip() for t in str(text or "").replace("…", "...").split(",")]
    if tokens == [""]:
        raise fail("the schedule is empty")
    values: list[Any] = []
    for t in tokens:
        if t == "...":
            values.append(None)
            continue
        try:
            r = int(t)
        except ValueError:
            raise fail(f"{t!r} is not an integer resolution" if t else "empty entry (stray comma)") from None  # fmt: skip
        if r < 4 or not is_power_of_two(r):
            raise fail(f"resolution {r} is {'below 4' if r < 4 else 'not a power of two'}")
        values.append(r)
    if None in values:
        i = values.index(None)
        head, tail = values[:i], values[i + 1 :]
        if len(head) < 2 or not tail or None in tail:
            raise fail("write '...' once, after two resolutions and before the last (e.g. '4,8,...,64')")  # fmt: skip
        if tail[0] <= head[-1]:
            raise fail(f"the resolution after '...' ({tail[0]}) must exceed the one before ({head[-1]})")  # fmt: skip
        gap = range(1, int(math.log2(tail[0] // head[-1])))
        values = head + [head[-1] * 2**k for k in gap] + tail
    for a, b in zip(values, values[1:], strict=False):
        if b != 2 * a:
            raise fail(f"{b} after {a} is not its double (stages must grow by exactly 2x)")
    return values


def check_schedule_against_source(schedule: Sequence[int], native_resolution: int | None) -> None:
    """ValueError (naming ``--stage_schedule``) if the schedule ends above a fixed-size source
    (``native_resolution=None``: a source resized to any resolution, no check)."""
    if native_resolution is not None and schedule and schedule[-1] > native_resolution:
        raise ValueError(f"--stage_schedule: the last resolution {schedule[-1]} exceeds the data "
                         f"source's native resolution {native_resolution}; end the schedule at or below it")  # fmt: skip


#: PGGAN's phase lengths and batches (800 kimg per fade and per stabilisation, the paper's
#: minibatch per resolution): what a schedule grown past a preset's brings (flat config names).
PAPER_PHASES = {"kimg_stable": 800.0, "kimg_fade": 800.0, "kimg_total": 0.0,
                "batch_per_res": {}, "lr_per_res": {}}  # fmt: skip


def default_batch_size(resolution: int, num_devices: int = 1) -> int:
    """The paper's minibatch (Karras et al. 2018, app. A.1): 16 up to 128, 14, 6, then 3 above
    512, rounded up to a multiple of ``num_devices`` (no device gets more than the paper's one-GPU
    batch, and every phase's batch divides over 1, 2, 4 or 8 devices)."""
    paper = 16 if resolution <= 128 else 14 if resolution <= 256 else 6 if resolution <= 512 else 3
    return math.ceil(paper / num_devices) * num_devices


class Phase(NamedTuple):
    """One phase of a run, evaluated at some image count.

    ``index``: position in :meth:`PhaseSchedule.phases`; ``resolution``: the stage being trained
    (the one faded *into* during a fade; ``None`` in a plain run); ``fading``: fade-in or not;
    ``alpha``: fade coefficient in [0, 1] (1.0 when stable); ``batch_size``: the global batch;
    ``start`` / ``end``: the phase covers images ``start <= n < end``.
    """

    index: int
    resolution: int | None
    fading: bool
    alpha: float
    batch_size: int
    start: int
    end: int


class PhaseSchedule:
    """Stabilise / fade phases by images shown, each with its batch.

    Phases in order: stable(r0), fade(r1), stable(r1), fade(r2), stable(r2), ... Phase lengths are
    ``round(kimg * 1000)`` images (fractions of a kimg allowed). ``kimg_fade = 0`` drops the fade
    phases (the resolution switches at once). The last stable phase lasts ``kimg_stable`` too, or,
    with ``kimg_total > 0``, until ``kimg_total`` thousand images in all (PGGAN's ``total_kimg``).
    ``batches``: global batch per resolution (missing: :func:`default_batch_size`).
    :meth:`plain` is a plain run's single phase.
    """

    def __init__(
        self,
        resolutions: Sequence[int],
        kimg_stable: float,
        kimg_fade: float,
        kimg_total: float = 0.0,
        batches: Mapping[int, int] | None = None,
    ) -> None:
        res = tuple(int(r) for r in resolutions)
        if not res:
            raise ValueError("PhaseSchedule needs at least one resolution")
        for a, b in zip(res, res[1:], strict=False):
            if b != 2 * a:
                raise ValueError(f"PhaseSchedule resolutions must double each stage, got {res}")
        for name, value, low in (("kimg_stable", kimg_stable, 1e-3), ("kimg_fade", kimg_fade, 0),
                                 ("kimg_total", kimg_total, 0)):  # fmt: skip
            if not (math.isfinite(value) and value >= low):
                raise ValueError(f"{name}={value} must be {'positive' if low else '>= 0'}")
        batches = dict(batches or {})
        bounds: list[tuple[int, bool, int]] = []  # (resolution, fading, length)
        for stage, r in enumerate(res):
            if stage > 0 and kimg_fade > 0:
                bounds.append((r, True, round(kimg_fade * 1000)))
            bounds.append((r, False, round(kimg_stable * 1000)))
        phases, start = [], 0
        for i, (r, fading, length) in enumerate(bounds):
            batch = batches.get(r, default_batch_size(r))
            phases.append(Phase(i, r, fading, 0.0 if fading else 1.0, batch, start, start + length))
            start += length
        if kimg_total > 0:
            total = round(kimg_total * 1000)
            if total <= phases[-1].start:
                raise ValueError(
                    f"kimg_total={kimg_total} ends before the last stable phase starts "
                    f"({phases[-1].start / 1000:g} kimg); use 0 or more than that"
                )
            phases[-1] = phases[-1]._replace(end=total)
        self._phases = tuple(phases)

    @classmethod
    def plain(cls, images: int, batch_size: int) -> PhaseSchedule:
        """A plain run: one phase of ``images`` images at resolution ``None``."""
        schedule = cls.__new__(cls)
        schedule._phases = (Phase(0, None, False, 1.0, batch_size, 0, images),)
        return schedule

    @property
    def total_images(self) -> int:
        """Images shown over the whole schedule (end of the last phase)."""
        return self._phases[-1].end

    def phases(self) -> list[Phase]:
        """Every phase, in order, each evaluated at its start (``alpha`` 0 for fades, 1 stable)."""
        return list(self._phases)

    def phase_at(self, images_seen: int) -> Phase:
        """The phase a step starting after ``images_seen`` images belongs to, with its ``alpha``:
        ``clip((images_seen - start) / (end - start), 0, 1)`` in a fade, 1.0 when stable. At or
        past :attr:`total_images` the last phase is returned."""
        n = int(images_seen)
        if n < 0:
            raise ValueError(f"images_seen must be >= 0, got {images_seen}")
        p = next((p for p in self._phases if n < p.end), self._phases[-1])
        alpha = min(max((n - p.start) / (p.end - p.start), 0.0), 1.0) if p.fading else 1.0
        return p._replace(alpha=alpha)

    def done(self, images_seen: int) -> bool:
        return images_seen >= self.total_images

    def total_steps(self, n_critic: int) -> int:
        """Generator steps over the whole schedule (a phase ends at the first step past its end)."""
        total, n = 0, 0
        for p in self._phases:
            k = max(math.ceil((p.end - n) / (p.batch_size * n_critic)), 0)
            total, n = total + k, n + k * p.batch_size * n_critic
        return total


def for_config(config: Any, num_devices: int = 1) -> PhaseSchedule:
    """The schedule of a run on ``num_devices`` devices (a plain run: ``steps`` generator steps)."""
    s = config.schedule
    if not config.progressive:
        return PhaseSchedule.plain(s.steps * s.batch_size * config.loss.n_critic, s.batch_size)
    batches = {r: s.batch_per_res.get(r, default_batch_size(r, num_devices))
               for r in s.stage_schedule}  # fmt: skip
    return PhaseSchedule(s.stage_schedule, s.kimg_stable, s.kimg_fade, s.kimg_total, batches)
