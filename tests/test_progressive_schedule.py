"""Stage-schedule parsing, per-resolution settings and phases by images shown."""

import numpy as np
import pytest

from jaxgan.arrays import is_power_of_two
from jaxgan.training.schedule import (
    PhaseSchedule,
    check_schedule_against_source,
    default_batch_size,
    parse_stage_schedule,
)


@pytest.mark.parametrize(
    "text, want",
    [
        ("4,8,16", [4, 8, 16]),
        ("4", [4]),
        (" 8 , 16,32 ", [8, 16, 32]),
        ("4,8,...,1024", [4, 8, 16, 32, 64, 128, 256, 512, 1024]),
        ("8,16,...,256", [8, 16, 32, 64, 128, 256]),
        ("4,8,...,16", [4, 8, 16]),
        ("4,8,16,...,128,256", [4, 8, 16, 32, 64, 128, 256]),
        ("4,8,…,32", [4, 8, 16, 32]),
    ],
)
def test_parse_valid(text, want):
    assert parse_stage_schedule(text) == want


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "4,8,12",  # not a power of two
        "4,6,8",
        "2,4,8",  # below 4
        "0,4",
        "-4,8",
        "8,4",  # decreasing
        "4,4,8",  # not strictly increasing
        "4,16,32",  # skips a stage
        "4,...",
        "...,64",
        "4,...,64",  # one resolution cannot fix the pattern
        "4,12,...,64",
        "4,16,...,64",
        "4,8,...,8",
        "4,8,...,4",
        "4,8,...,48",
        "4,8,...,...,64",
        "4,8,..,64",
        "4,8,,16",
        "4,8,16,",
        "four,eight",
        "4.0,8",
        "4,8e0",
    ],
)
def test_parse_errors_name_the_flag(text):
    with pytest.raises(ValueError, match="--stage_schedule") as info:
        parse_stage_schedule(text)
    assert "power" in str(info.value) and "4,8,...,1024" in str(info.value)  # says what is allowed


def test_schedule_against_source():
    check_schedule_against_source([4, 8, 16, 32], 32)
    check_schedule_against_source([4, 8, 16, 32], None)
    with pytest.raises(ValueError, match="--stage_schedule.*64.*32"):
        check_schedule_against_source([4, 8, 16, 32, 64], 32)


def test_default_batch_per_res_table():
    want = {4: 16, 8: 16, 16: 16, 32: 16, 64: 16, 128: 16, 256: 14, 512: 6, 1024: 3}
    assert all(default_batch_size(r) == b for r, b in want.items())
    assert default_batch_size(2048) == 3 and default_batch_size(200) == 14


def test_is_power_of_two():
    assert [n for n in range(-4, 70) if is_power_of_two(n)] == [1, 2, 4, 8, 16, 32, 64]
    assert is_power_of_two(np.int64(32)) and not is_power_of_two(32.0)
    assert not is_power_of_two(True)


def test_phases_and_alpha_hand_computed():
    s = PhaseSchedule([4, 8, 16], kimg_stable=0.1, kimg_fade=0.1)
    kinds = [(p.resolution, p.fading, p.start, p.end) for p in s.phases()]
    assert kinds == [
        (4, False, 0, 100),
        (8, True, 100, 200),
        (8, False, 200, 300),
        (16, True, 300, 400),
        (16, False, 400, 500),
    ]
    assert s.total_images == 500
    # batch 10: alpha evaluated at the start of each step
    alphas = [s.phase_at(n).alpha for n in range(0, 500, 10)]
    assert alphas[:10] == [1.0] * 10
    assert alphas[10:20] == pytest.approx([i / 10 for i in range(10)])
    assert alphas[20:30] == [1.0] * 10
    assert alphas[30:40] == pytest.approx([i / 10 for i in range(10)])
    p = s.phase_at(150)
    assert (p.index, p.resolution, p.fading, p.alpha, p.batch_size) == (1, 8, True, 0.5, 16)
    assert s.phase_at(99).resolution == 4 and s.phase_at(100).resolution == 8
    assert s.phase_at(100).alpha == 0.0 and s.phase_at(199).alpha == pytest.approx(0.99)
    assert s.phase_at(200).fading is False and s.phase_at(200).alpha == 1.0
    last = s.phase_at(10_000)
    assert (last.index, last.resolution, last.fading, last.alpha) == (4, 16, False, 1.0)
    with pytest.raises(ValueError):
        s.phase_at(-1)


def test_fractional_kimg_and_determinism():
    s = PhaseSchedule([8, 16], kimg_stable=0.05, kimg_fade=0.0124)  # 50 and 12.4 -> 12 images
    assert [(p.start, p.end) for p in s.phases()] == [(0, 50), (50, 62), (62, 112)]
    assert s.total_images == 112
    assert s.phase_at(56).alpha == pytest.approx(0.5)
    # alpha depends only on images seen: a "resumed" walk gives the same trajectory
    full = [s.phase_at(n) for n in range(0, 112, 3)]
    again = PhaseSchedule([8, 16], 0.05, 0.0124)
    assert [again.phase_at(n) for n in range(0, 112, 3)] == full
    # single stage: stable only; zero fade length drops the fades
    assert [p.fading for p in PhaseSchedule([4], 1, 1).phases()] == [False]
    assert [p.fading for p in PhaseSchedule([4, 8], 1, 0).phases()] == [False, False]
    assert PhaseSchedule([4, 8], 0.8, 0.8).total_images == 2400
    for bad in (([4, 16], 1, 1), ([4, 8], 0, 1), ([4, 8], 1, -1), ([], 1, 1)):
        with pytest.raises(ValueError):
            PhaseSchedule(*bad)


def test_kimg_total_extends_only_the_last_stable_phase():
    base = PhaseSchedule([4, 8, 16], kimg_stable=0.1, kimg_fade=0.05)
    longer = PhaseSchedule([4, 8, 16], kimg_stable=0.1, kimg_fade=0.05, kimg_total=1.0)
    # growing is unchanged; the final resolution trains on until 1,000 images in all
    assert [(p.start, p.end) for p in longer.phases()] == [
        (0, 100),
        (100, 150),
        (150, 250),
        (250, 300),
        (300, 1000),
    ]
    assert [p.end for p in base.phases()][-1] == 400
    assert longer.total_images == 1000
    assert longer.phase_at(999).resolution == 16 and longer.phase_at(999).alpha == 1.0
    assert longer.phase_at(275) == base.phase_at(275)
    # 0 keeps the plain schedule; ending at or before the last stable phase's start is refused
    assert PhaseSchedule([4, 8, 16], 0.1, 0.05, 0.0).total_images == 400
    for bad_total in (0.3, 0.2, -1.0, float("nan")):
        with pytest.raises(ValueError, match="kimg_total"):
            PhaseSchedule([4, 8, 16], 0.1, 0.05, bad_total)
