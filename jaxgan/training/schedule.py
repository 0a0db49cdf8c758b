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

_SCHEDULE_FLAG = "--stage_schedule"
_SCHEDULE_HELP = (
    "allowed: powers of two >= 4, each the double of the one before, written out ('4,8,16') or "
    "with an ellipsis between two written ends ('4,8,...,1024')"
)


def _schedule_error(text: str, why: str) -> ValueError:
    return ValueError(f"{_SCHEDULE_FLAG}={text!r}: {why}; {_SCHEDULE_HELP}")


def _parse_res_token(token: str, text: str) -> int:
    try:
        value = int(token)
    except ValueError:
        raise _schedule_error(text, f"{token!r} is not an integer resolution") from None
    if value < 4:
        raise _schedule_error(text, f"resolution {value} is below 4")
    if not is_power_of_two(value):
        raise _schedule_error(text, f"resolution {value} is not a power of two")
    return value


def _check_doubling(values: Sequence[int], text: str) -> None:
    for a, b in zip(values, values[1:], strict=False):
        if b != 2 * a:
            raise _schedule_error(
                text, f"{b} after {a} is not its double (stages must grow by exactly 2x)"
            )


def parse_stage_schedule(text: str) -> list[int]:
    """Parse ``--stage_schedule`` into a list of resolutions, e.g. ``[4, 8, 16]``.

    Accepted: an explicit list ``"4,8,16"`` (one entry is allowed) or the ellipsis form
    ``"4,8,...,1024"``: at least two consecutive doublings before ``...`` and one or more after it,
    the gap filled by doubling. Every resolution must be a power of two >= 4 and each the double of
    the previous one. Raises ValueError naming the flag otherwise.
    """
    if text is None or not str(text).strip():
        raise _schedule_error(str(text), "the schedule is empty")
    raw = str(text).replace("…", "...")
    tokens = [t.strip() for t in raw.split(",")]
    if any(not t for t in tokens):
        raise _schedule_error(text, "empty entry (stray comma)")
    n_ellipsis = sum(t == "..." for t in tokens)
    if any("." in t and t != "..." for t in tokens):
        bad = next(t for t in tokens if "." in t and t != "...")
        raise _schedule_error(text, f"{bad!r} is neither an integer nor '...'")
    if n_ellipsis == 0:
        values = [_parse_res_token(t, text) for t in tokens]
        _check_doubling(values, text)
        return values
    if n_ellipsis > 1:
        raise _schedule_error(text, "'...' may appear only once")
    i = tokens.index("...")
    head_tokens, tail_tokens = tokens[:i], tokens[i + 1 :]
    if len(head_tokens) < 2:
        raise _schedule_error(
            text, "write at least two resolutions before '...' (e.g. '4,8,...,64')"
        )
    if not tail_tokens:
        raise _schedule_error(text, "'...' must be followed by the last resolution")
    head = [_parse_res_token(t, text) for t in head_tokens]
    tail = [_parse_res_token(t, text) for t in tail_tokens]
    _check_doubling(head, text)
    _check_doubling(tail, text)
    if tail[0] <= head[-1]:
        raise _schedule_error(
            text, f"the resolution after '...' ({tail[0]}) must exceed the one before ({head[-1]})"
        )
    middle = []
    r = head[-1] * 2
    while r < tail[0]:
        middle.append(r)
        r *= 2
    return head + middle + tail


def check_schedule_against_source(schedule: Sequence[int], native_resolution: int | None) -> None:
    """ValueError (naming ``--stage_schedule``) if the schedule ends above a fixed-size source.

    ``native_resolution=None`` means the source can be resized to any resolution (no check).
    """
    if native_resolution is None or not schedule:
        return
    if schedule[-1] > native_resolution:
        raise ValueError(
            f"{_SCHEDULE_FLAG}: the last resolution {schedule[-1]} exceeds the data source's "
            f"native resolution {native_resolution}; end the schedule at or below it"
        )


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
