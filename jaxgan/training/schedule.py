"""Progressive-growing schedule: stage lists, per-resolution settings and phases by images shown.

Pure Python (no jax). Following Karras et al. 2018, training at each resolution is a sequence of
phases measured in images shown to the critic: stabilise at the first resolution, then for every
next resolution a fade-in (``alpha`` rising linearly 0 -> 1 by images shown) followed by a
stabilisation. ``alpha`` is a function of the image count alone, so a resumed run replays the same
trajectory.

Command-line helpers raise ``ValueError`` with a message naming the flag, for the caller to turn
into a usage error (exit 2).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

from jaxgan.arrays import is_power_of_two

__all__ = [
    "Phase",
    "PhaseSchedule",
    "check_schedule_against_source",
    "default_batch_size",
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


def default_batch_size(resolution: int) -> int:
    """The paper's minibatch (Karras et al. 2018, app. A.1): 16 up to 128, 14, 6, then 3 above 512."""
    if resolution <= 128:
        return 16
    if resolution <= 256:
        return 14
    if resolution <= 512:
        return 6
    return 3


class Phase(NamedTuple):
    """One phase of a progressive schedule, evaluated at some image count.

    ``index``: position in :meth:`PhaseSchedule.phases`; ``resolution``: the stage being trained
    (the one faded *into* during a fade); ``stage``: index of ``resolution`` in the schedule;
    ``fading``: fade-in phase or not; ``alpha``: fade coefficient in [0, 1] (1.0 when stable);
    ``start_images`` / ``end_images``: the phase covers ``start_images <= n < end_images``.
    """

    index: int
    resolution: int
    stage: int
    fading: bool
    alpha: float
    start_images: int
    end_images: int


class PhaseSchedule:
    """Stabilise / fade phases by images shown.

    Phases in order: stable(r0), fade(r1), stable(r1), fade(r2), stable(r2), ... Phase lengths are
    ``round(kimg * 1000)`` images (fractions of a kimg allowed). ``kimg_fade = 0`` drops the fade
    phases (the resolution switches at once). ``kimg_stable`` must be positive. The last stable
    phase lasts ``kimg_stable`` too, or, with ``kimg_total > 0``, until ``kimg_total`` thousand
    images in all (PGGAN's ``total_kimg``: the final resolution trains on after growing ends).
    """

    def __init__(
        self,
        resolutions: Sequence[int],
        kimg_stable: float,
        kimg_fade: float,
        kimg_total: float = 0.0,
    ) -> None:
        res = tuple(int(r) for r in resolutions)
        if not res:
            raise ValueError("PhaseSchedule needs at least one resolution")
        for a, b in zip(res, res[1:], strict=False):
            if b != 2 * a:
                raise ValueError(f"PhaseSchedule resolutions must double each stage, got {res}")
        if not (math.isfinite(kimg_stable) and kimg_stable > 0):
            raise ValueError(f"kimg_stable must be positive, got {kimg_stable}")
        if not (math.isfinite(kimg_fade) and kimg_fade >= 0):
            raise ValueError(f"kimg_fade must be >= 0, got {kimg_fade}")
        stable_len = round(kimg_stable * 1000)
        fade_len = round(kimg_fade * 1000)
        if stable_len < 1:
            raise ValueError(f"kimg_stable={kimg_stable} rounds to 0 images")
        if not (math.isfinite(kimg_total) and kimg_total >= 0):
            raise ValueError(f"kimg_total must be >= 0, got {kimg_total}")
        self.resolutions: tuple[int, ...] = res
        self.kimg_stable = float(kimg_stable)
        self.kimg_fade = float(kimg_fade)
        self.kimg_total = float(kimg_total)
        bounds: list[tuple[int, int, bool, int, int]] = []  # (stage, res, fading, start, end)
        start = 0
        for stage, r in enumerate(res):
            if stage > 0 and fade_len > 0:
                bounds.append((stage, r, True, start, start + fade_len))
                start += fade_len
            bounds.append((stage, r, False, start, start + stable_len))
            start += stable_len
        if kimg_total > 0:
            stage, r, fading, last_start, _ = bounds[-1]
            total = round(kimg_total * 1000)
            if total <= last_start:
                raise ValueError(
                    f"kimg_total={kimg_total} ends before the last stable phase starts "
                    f"({last_start / 1000:g} kimg); use 0 or more than that"
                )
            bounds[-1] = (stage, r, fading, last_start, total)
        self._bounds = tuple(bounds)

    def __repr__(self) -> str:
        return (
            f"PhaseSchedule(resolutions={list(self.resolutions)}, "
            f"kimg_stable={self.kimg_stable}, kimg_fade={self.kimg_fade}, "
            f"kimg_total={self.kimg_total})"
        )

    @property
    def total_images(self) -> int:
        """Images shown over the whole schedule (end of the last stable phase)."""
        return self._bounds[-1][4]

    def phases(self) -> list[Phase]:
        """Every phase, in order, each evaluated at its start (``alpha`` 0 for fades, 1 stable)."""
        return [
            Phase(i, r, stage, fading, 0.0 if fading else 1.0, s, e)
            for i, (stage, r, fading, s, e) in enumerate(self._bounds)
        ]

    def phase_at(self, images_seen: int) -> Phase:
        """The phase a step starting after ``images_seen`` images belongs to, with its ``alpha``.

        ``alpha = clip((images_seen - start) / (end - start), 0, 1)`` in a fade, 1.0 when stable.
        At or past :attr:`total_images` the last (stable) phase is returned.
        """
        n = int(images_seen)
        if n < 0:
            raise ValueError(f"images_seen must be >= 0, got {images_seen}")
        for i, (stage, r, fading, s, e) in enumerate(self._bounds):
            if n < e or i == len(self._bounds) - 1:
                alpha = min(max((n - s) / (e - s), 0.0), 1.0) if fading else 1.0
                return Phase(i, r, stage, fading, alpha, s, e)
        raise AssertionError("unreachable")
