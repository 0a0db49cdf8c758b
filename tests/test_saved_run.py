"""A saved run through the Python API (``jaxgan.open_run``) and ``experiments/evaluate.py``
(issue 27, defects 8, 11 and 12): misuse is one typed sentence at the boundary, a step that does
not exist is named with the ones that do, a metric that does not apply is refused, eval files are
merged and written atomically, and the sampler compiles once."""

import contextlib
import json
import os
import shutil
import subprocess

import numpy as np
import pytest
from conftest import load_experiment

import jaxgan
from jaxgan.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEP = 2


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    """A 2-step toy run (2-D points, ring8) with one checkpoint, at step 2; read it, never write."""
    from jaxgan import configs

    wd = str(tmp_path_factory.mktemp("toy") / "run")
    config = jaxgan.override(configs.get("toy-wgan-gp"), steps=STEP, hidden=(16, 16),
                             batch_size=16, log_every=100, sample_every=0, num_devices=1)  # fmt: skip
    assert jaxgan.train(config, wd, quiet=True).exit_code == 0
    return wd


@pytest.fixture(scope="module")
def run(toy_run):
    return jaxgan.open_run(toy_run)


@pytest.fixture
def wd(toy_run, tmp_path):
    """A copy of the toy run that a test may write into."""
    return shutil.copytree(toy_run, str(tmp_path / "run"))


def _evaluate_main():
    return load_experiment("evaluate").main


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def _eval_json(wd) -> dict:
    with open(os.path.join(wd, f"eval_{STEP}.json")) as f:
        return json.load(f)


# --- 8: a metric that does not apply, merging, atomic writes, read-only runs ---


@pytest.mark.parametrize("metric", ["swd", "fid", "ms_ssim"])
def test_a_metric_that_does_not_apply_is_one_line_and_writes_nothing(metric, wd, capsys):
    evaluate = _evaluate_main()
    assert evaluate([f"--workdir={wd}", "--metrics=modes", "--num_images=50"]) == 0
    before = _eval_json(wd)
    capsys.readouterr()
    assert evaluate([f"--workdir={wd}", f"--metrics={metric}", "--num_images=50"]) == 2
    err = _one_line(capsys)
    assert f"--metrics={metric} does not apply" in err and "ring8" in err, err
    assert "apply: modes" in err, err
    assert _eval_json(wd) == before  # not overwritten


def test_an_unknown_metric_is_one_line(wd, capsys):
    assert _evaluate_main()([f"--workdir={wd}", "--metrics=modes,nope", "--num_images=50"]) == 2
    err = _one_line(capsys)
    assert "'nope'" in err and "swd, ms_ssim, modes, fid, kid, pr" in err, err
    assert not os.path.exists(os.path.join(wd, f"eval_{STEP}.json"))


def test_the_default_metrics_are_those_that_apply(wd, capsys):
    assert _evaluate_main()([f"--workdir={wd}", "--num_images=50"]) == 0
    result = _eval_json(wd)
    assert "modes/modes_captured" in result and not any(k.startswith("swd") for k in result)


def test_an_eval_file_is_merged_never_replaced_with_less(wd, capsys):
    """Metrics computed earlier (here an SWD from some earlier call) are kept; the ones computed
    now replace theirs, and the file says with which settings each was computed."""
    path = os.path.join(wd, f"eval_{STEP}.json")
    earlier = {"step": STEP, "images_seen": 32, "num_images": 999, "swd/mean": 0.5,
               "swd/levels": [0.5], "modes/modes_captured": 99, "modes/stale_key": 1}  # fmt: skip
    with open(path, "w") as f:
        json.dump(earlier, f)
    assert _evaluate_main()([f"--workdir={wd}", "--metrics=modes", "--num_images=50"]) == 0
    out = capsys.readouterr().out
    result = _eval_json(wd)
    assert result["swd/mean"] == 0.5 and result["swd/levels"] == [0.5]  # kept
    assert result["modes/modes_captured"] <= 8 and "modes/stale_key" not in result  # replaced
    assert result["evaluated"]["modes"] == {"num_images": 50, "seed": 0}
    assert result["evaluated"]["swd"] == {"num_images": 999}  # from the earlier file
    assert "swd/mean" not in out  # the table is this call's
    assert not [n for n in os.listdir(wd) if n.endswith(".tmp")]  # no temporary file left


def test_a_failed_write_leaves_the_earlier_file_whole(wd, capsys, monkeypatch):
    evaluate = _evaluate_main()
    assert evaluate([f"--workdir={wd}", "--metrics=modes", "--num_images=50"]) == 0
    before = _eval_json(wd)
    capsys.readouterr()

    replace = os.replace

    def disk_full(src, dst):
        if str(dst).endswith(f"eval_{STEP}.json"):
            raise OSError(28, "No space left on device")
        return replace(src, dst)

    monkeypatch.setattr(os, "replace", disk_full)
    assert evaluate([f"--workdir={wd}", "--metrics=modes", "--num_images=60"]) == 0
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1 and "could not write" in err and "No space" in err, err
    assert "modes/modes_captured" in captured.out  # the table is still printed
    assert _eval_json(wd) == before
    assert not [n for n in os.listdir(wd) if n.endswith(".tmp")]


@contextlib.contextmanager
def _read_only(path):
    """``path`` made read-only: permission bits, or (as root, who ignores them) a read-only bind
    mount, undone afterwards (as tests/conftest.py's ``read_only_dir``, for a filled folder)."""
    os.chmod(path, 0o555)
    mounted = False
    if os.access(path, os.W_OK):
        mount = lambda *a: subprocess.run(["mount", *a], capture_output=True).returncode == 0  # noqa: E731
        if mount("--bind", path, path):
            mounted = mount("-o", "remount,ro,bind", path)
            if not mounted:
                subprocess.run(["umount", path], capture_output=True)
        if not mounted:
            os.chmod(path, 0o755)
            pytest.skip("cannot make a read-only directory here")
    try:
        yield path
    finally:
        if mounted:
            subprocess.run(["umount", path], capture_output=True)
        os.chmod(path, 0o755)


def test_a_read_only_run_prints_the_table_and_says_where_it_could_not_write(wd, capsys):
    with _read_only(wd):
        code = _evaluate_main()([f"--workdir={wd}", "--metrics=modes", "--num_images=50"])
        captured = capsys.readouterr()
    assert code == 0
    assert "modes/modes_captured" in captured.out
    err = captured.err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert f"could not write {os.path.join(wd, f'eval_{STEP}.json')}" in err, err
    assert not os.path.exists(os.path.join(wd, f"eval_{STEP}.json"))


# --- 11: a checkpoint step that does not exist ---


def test_a_step_that_does_not_exist_is_named_with_the_steps_that_do(toy_run, capsys):
    with pytest.raises(ConfigError) as e:
        jaxgan.open_run(toy_run, step=999)
    msg = str(e.value)
    assert "step 999" in msg and "does not exist" in msg and f"steps: {STEP}" in msg, msg
    assert "damaged" not in msg and "restore" not in msg and "\n" not in msg, msg
    assert _evaluate_main()([f"--workdir={toy_run}", "--checkpoint=999"]) == 2
    err = _one_line(capsys)
    assert "step 999" in err and "does not exist" in err and "damaged" not in err, err
    assert _evaluate_main()([f"--workdir={toy_run}", "--checkpoint=-1"]) == 2
    assert "--checkpoint must be a step >= 0, got -1" in _one_line(capsys)


def test_a_run_without_checkpoints_says_so(toy_run, tmp_path, capsys):
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(os.path.join(toy_run, "config.json"), bare)
    for step in (None, 3):
        with pytest.raises(ConfigError, match="has no checkpoint yet") as e:
            jaxgan.open_run(str(bare), step=step)
        assert "\n" not in str(e.value)
    assert _evaluate_main()([f"--workdir={bare}", "--checkpoint=3"]) == 2
    assert "has no checkpoint yet" in _one_line(capsys)


@pytest.mark.parametrize("step", [-1, "2", 2.0, True])
def test_a_step_of_the_wrong_type_is_one_sentence(toy_run, step):
    with pytest.raises(ConfigError, match="step must be"):
        jaxgan.open_run(toy_run, step=step)


# --- 12: API misuse is a typed, one-sentence error at the boundary ---

MISUSE = {
    "sample(-1)": (lambda r: r.sample(-1), "num must be an int >= 1, got -1"),
    "sample(2.5)": (lambda r: r.sample(2.5), "num must be an int >= 1, got 2.5"),
    "sample(0)": (lambda r: r.sample(0), "num must be an int >= 1, got 0"),
    "sample(True)": (lambda r: r.sample(True), "num must be an int >= 1, got True"),
    "sample(seed=0.5)": (lambda r: r.sample(4, seed=0.5), "seed must be an int"),
    "sample(seed=2**64)": (lambda r: r.sample(4, seed=2**64), "seed must be an int"),
    "sample(z wide)": (lambda r: r.sample(z=np.zeros((3, 5))), "z must have shape (N, 2)"),
    "sample(z 1-D)": (lambda r: r.sample(z=np.zeros(2)), "z must have shape (N, 2)"),
    "sample(z empty)": (lambda r: r.sample(z=np.zeros((0, 2))), "z must have shape (N, 2)"),
    "sample(z text)": (lambda r: r.sample(z=[["a", "b"]]), "z must be numbers"),
    "interpolate(steps=0)": (lambda r: r.interpolate(steps=0), "steps must be an int >= 1"),
    "interpolate(rows=-1)": (lambda r: r.interpolate(rows=-1), "rows must be an int >= 1"),
    "evaluate(num_images=0)": (
        lambda r: r.evaluate(["modes"], num_images=0),
        "num_images must be an int >= 2, got 0",
    ),
    "evaluate(nope)": (lambda r: r.evaluate(["nope"], num_images=8), "unknown metric 'nope'"),
    "evaluate(swd)": (lambda r: r.evaluate(["swd"], num_images=8), "does not apply to ring8"),
    "evaluate([])": (lambda r: r.evaluate([], num_images=8), "no metric"),
    "evaluate(3)": (lambda r: r.evaluate(3, num_images=8), "list of metric names, not int"),
}


@pytest.mark.parametrize("case", MISUSE)
def test_api_misuse_is_one_typed_sentence(case, run):
    call, expected = MISUSE[case]
    with pytest.raises(ConfigError) as e:
        call(run)
    msg = str(e.value)
    assert expected in msg and "\n" not in msg, msg


def test_valid_calls_still_work(run):
    assert run.sample(3).shape == (3, 2)
    assert run.sample(np.int64(2)).shape == (2, 2)
    assert run.sample(z=np.zeros((4, 2), np.float64)).shape == (4, 2)
    assert run.interpolate(steps=1, rows=2).shape == (2, 2)
    result = run.evaluate("modes", num_images=16)  # a string is a comma list, as the flag
    assert result["step"] == STEP and result["num_images"] == 16 and "modes/num_modes" in result


# --- the sampler is built and compiled once per run, not once per call ---


def test_sample_compiles_once(toy_run, compiles):
    run = jaxgan.open_run(toy_run)
    warm = lambda seed: (run.sample(5, seed=seed), run.sample(z=np.full((5, 2), seed)),  # noqa: E731
                         run.evaluate(["modes"], num_images=5, seed=seed))  # fmt: skip
    warm(1)
    first = len(compiles.names)
    assert first >= 1, compiles.names
    warm(2)  # the same shapes: nothing compiles again
    assert compiles.names[first:] == []
