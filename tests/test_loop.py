"""End-to-end runs of experiments/run.py and jaxgan.train: exact resume after kill -9, CLI errors,
outputs."""

import json
import os
import signal
import subprocess
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from jaxgan.training.cli import main

COMPILE = "/jax/core/compile/backend_compile_duration"  # jax.monitoring's XLA compile event
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Engine runs use one device: 8 fake devices on 2 busy cores can miss XLA's 40 s all-reduce
# rendezvous (seen once in CI). Multi-device runs have their own tests (train step, multihost).
TOY = ["--config=toy-wgan-gp", "--hidden=32,32", "--batch_size=64", "--quiet", "--log_every=50",
       "--sample_every=0", "--seed=3", "--num_devices=1"]  # fmt: skip
PROG = ["--config=main", "--stage_schedule=4,8,16", "--kimg_per_phase=0.064",
        "--batch_per_res=4:16,8:16,16:16", "--fmap_base=32", "--fmap_max=16", "--latent_dim=16",
        "--quiet", "--log_every=2", "--sample_every=0", "--seed=1", "--num_devices=1"]  # fmt: skip


def _cli(args, **kw):
    return subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "experiments", "run.py"), *args],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw,
    )  # fmt: skip


def _finish(proc, timeout=600):
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-3000:] + err[-3000:]
    return out


def _final_arrays(workdir):
    ckdir = os.path.join(workdir, "checkpoints")
    step = max(int(s) for s in os.listdir(ckdir) if s.isdigit())
    tree = ocp.StandardCheckpointer().restore(os.path.join(ckdir, str(step), "state"))
    return step, tree


def _assert_bitwise_equal(a, b):
    import jax

    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(la) == len(lb) and la
    for x, y in zip(la, lb, strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


# Runs the CLI's parse + train with a hook that waits for the checkpoint at step K to be on disk,
# then kills the process with SIGKILL: the kill lands at an exact step, whatever the machine's speed.
_KILL_AT = """
import os, signal, sys
from jaxgan import xla_flags
xla_flags.apply()
from jaxgan.training.cli import parse
from jaxgan.training.loop import train
k = int(sys.argv[1])
config, ns = parse(sys.argv[2:])
def kill_at(run):
    if run.step == k:
        run.checkpointer.wait()
        os.kill(os.getpid(), signal.SIGKILL)
train(config, ns.workdir, quiet=True, hooks=[kill_at])
"""


def _kill_after_checkpoint(args, workdir, step, timeout=600):
    proc = subprocess.run([sys.executable, "-c", _KILL_AT, str(step), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, proc.stdout[-2000:] + proc.stderr[-2000:]


def test_kill_and_resume_is_bitwise_identical(tmp_path):
    k = 300
    straight = str(tmp_path / "straight")
    _finish(_cli([*TOY, f"--steps={2 * k}", "--ckpt_every=100000", f"--workdir={straight}"]))
    resumed = str(tmp_path / "resumed")
    args = [*TOY, f"--steps={2 * k}", f"--ckpt_every={k}", f"--workdir={resumed}"]
    _kill_after_checkpoint(args, resumed, k)
    steps = sorted(int(s) for s in os.listdir(os.path.join(resumed, "checkpoints")) if s.isdigit())
    assert steps == [k]
    # A checkpoint half-written by a kill: orbax's temporary folder, ignored on resume.
    junk = os.path.join(resumed, "checkpoints", f"{k + 7}.orbax-checkpoint-tmp-1234")
    os.makedirs(os.path.join(junk, "state"))
    with open(os.path.join(junk, "state", "garbage"), "w") as f:
        f.write("partial")
    out = _finish(_cli(args))
    assert f"at step {k}" in out
    s1, a = _final_arrays(straight)
    s2, b = _final_arrays(resumed)
    assert s1 == s2 == 2 * k
    _assert_bitwise_equal(a, b)
    lines = [json.loads(line) for line in open(os.path.join(resumed, "metrics.jsonl"))]
    for key in ("step", "images_seen", "images_per_sec", "critic_loss", "generator_loss",
                "w_estimate", "gp", "grad_norm", "skipped_total", "modes/modes_captured"):  # fmt: skip
        assert key in lines[-1], key
    assert lines[-1]["images_seen"] == 2 * k * 5 * 64
    steps = [r["step"] for r in lines if "critic_loss" in r]
    assert steps == sorted(set(steps)), "a step was logged twice across the kill and the resume"


@pytest.fixture(scope="module")
def progressive_run(tmp_path_factory):
    """An uninterrupted 4 -> 8 -> 16 run in this process (the reference for the resume test)."""
    from jaxgan.training.cli import parse
    from jaxgan.training.loop import train

    workdir = str(tmp_path_factory.mktemp("straight"))
    config, _ = parse([*PROG, "--ckpt_every=100000"])
    runs, compiles = [], []
    jax.monitoring.register_event_duration_secs_listener(
        lambda event, secs, **kw: compiles.append(kw.get("fun_name")) if event == COMPILE else None
    )
    summary = train(
        config, workdir, quiet=True, hooks=[lambda run: runs.append(run) if not runs else None]
    )
    assert summary.exit_code == 0
    return runs[0], summary, workdir, compiles


def test_progressive_schedule_compiles_two_steps_per_resolution(progressive_run):
    run, summary, workdir, compiles = progressive_run
    steps = {k[1:] for k in run.cache if isinstance(k, tuple) and k[0] == "step"}
    assert steps == {(4, False), (8, True), (8, False), (16, True), (16, False)}
    # Each phase's step compiled once, whatever alpha: as many train-step compiles as phases.
    assert compiles.count("jit(step)") == 5, compiles
    assert summary.images_seen == run.schedule.total_images
    rec = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
    fades = [(r["resolution"], r["alpha"]) for r in rec if r.get("phase") == "fade"]
    assert (8, 0.25) in fades and (16, 0.25) in fades  # alpha at the start of step 2 of 4
    samples = os.listdir(os.path.join(workdir, "samples"))
    for name in ("stage_0004.png", "stage_0008.png", "stage_0016.png", "growth_strip.png"):
        assert name in samples


def test_progressive_resume_mid_fade_is_bitwise_identical(progressive_run, tmp_path):
    _, _, straight, _ = progressive_run
    resumed = str(tmp_path / "resumed")
    args = [*PROG, "--ckpt_every=6", f"--workdir={resumed}"]
    _kill_after_checkpoint(args, resumed, 6)  # step 6 is the middle of the fade into 8x8
    out = _finish(_cli(args))
    assert "at step 6" in out
    _, a = _final_arrays(straight)
    _, b = _final_arrays(resumed)
    _assert_bitwise_equal(a, b)


@pytest.mark.parametrize(
    "args, flag",
    [
        (["--config=toy-wgan-gp", "--clip=0.1"], "--clip"),
        (["--dataset=nope"], "--dataset"),
        (["--config=toy-wgan-gp", "--batch_size=0"], "--batch_size"),
        (["--config=toy-wgan-gp", "--batch_size=12", "--num_devices=8"], "--batch_size"),
        (["--config=dcgan-mnist5k", "--critic_norm=batch"], "--critic_norm"),
        (["--stage_schedule=4,12,16"], "--stage_schedule"),
        (["--stage_schedule=4,8,...,64"], "--stage_schedule"),  # above mnist5k's 32
        (["--config=toy-wgan-gp", "--model=dcgan"], "--model"),
        (["--stage_schedule=4,8,...,1024"], "--dataset=folder:PATH"),  # mnist5k is 32x32
        (["--model=progressive", "--config=dcgan-mnist5k"], "'dcgan-mnist5k' preset"),
        (["--betas=0.5"], "--betas"),
        (["--config=nope"], "--config"),
        (["--batch_per_res=64:16"], "--batch_per_res"),
    ],
)
def test_bad_flags_exit_2_with_one_clear_line(args, flag, tmp_path, capsys):
    code = main([*args, f"--workdir={tmp_path}"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and flag in err, err


def test_the_missions_command_starts_the_papers_schedule(tmp_path):
    """``--loss=wgan-gp --stage_schedule=4,8,...,1024 --dataset=folder:PATH`` on the default preset:
    PGGAN's phases (800 kimg each, 17 phases, batch 16 ... 3) start; stopped by a signal at step 3."""
    from PIL import Image

    from jaxgan.training.cli import parse
    from jaxgan.training.loop import train

    faces = tmp_path / "faces"
    faces.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (1024, 1024, 3), np.uint8)).save(faces / f"{i}.png")
    config, _ = parse(["--loss=wgan-gp", "--stage_schedule=4,8,...,1024", f"--dataset=folder:{faces}",
                       "--num_devices=1"])  # fmt: skip
    runs = []

    def stop_at_two(run):
        runs.append(run)
        if run.step == 2:
            os.kill(os.getpid(), signal.SIGINT)

    summary = train(config, str(tmp_path / "run"), quiet=True, hooks=[stop_at_two])
    phases = runs[-1].schedule.phases()
    assert summary.exit_code == 128 + signal.SIGINT and summary.step == 3
    assert summary.images_seen == 3 * 16 and summary.message.startswith(
        "stopped by SIGINT at step 3"
    )
    assert len(phases) == 17 and phases[0].end == 800_000 and phases[-1].resolution == 1024
    assert [p.batch_size for p in phases[::2]] == [16, 16, 16, 16, 16, 16, 14, 6, 3]
    assert summary.checkpoint and summary.checkpoint.endswith("3")


def test_a_signal_stops_saves_and_exits_128_plus_it_and_the_rerun_goes_on(tmp_path, capsys):
    from jaxgan.training.cli import parse
    from jaxgan.training.loop import train

    config, ns = parse([*TOY, "--steps=6", "--log_every=1", f"--workdir={tmp_path}"])
    stop = lambda run: os.kill(os.getpid(), signal.SIGTERM) if run.step == 2 else None  # noqa: E731
    summary = train(config, ns.workdir, quiet=True, hooks=[stop])
    out = capsys.readouterr().out
    assert summary.exit_code == 128 + signal.SIGTERM and summary.step == 3
    assert "stopped by SIGTERM at step 3" in out and "continue:" in out and "done:" not in out
    assert main([*TOY, "--steps=6", "--log_every=1", f"--workdir={tmp_path}"]) == 0
    assert "at step 3" in capsys.readouterr().out
    rows = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]


def test_a_run_killed_before_its_first_checkpoint_reruns_without_duplicate_rows(tmp_path):
    wd = str(tmp_path / "run")
    args = [*TOY, "--steps=8", "--log_every=2", "--ckpt_every=1000", f"--workdir={wd}"]
    _kill_after_checkpoint(args, wd, 5)  # no checkpoint yet: rows 2 and 4 are on disk
    assert not [s for s in os.listdir(os.path.join(wd, "checkpoints")) if s.isdigit()]
    _finish(_cli(args))
    rows = [json.loads(line) for line in open(os.path.join(wd, "metrics.jsonl"))]
    assert [r["step"] for r in rows] == [2, 4, 6, 8]


def test_steps_counts_steps_after_an_allowed_batch_or_n_critic_change(tmp_path, capsys):
    wd = f"--workdir={tmp_path}"
    assert main([*TOY, "--steps=4", wd]) == 0
    for change, steps in ((["--batch_size=128"], 8), (["--n_critic=2", "--batch_size=32"], 11)):
        assert main([*TOY, f"--steps={steps}", *change, "--allow_config_change", wd]) == 0
        assert f"done: step {steps}," in capsys.readouterr().out


def test_unknown_loss_exits_2_from_the_command_line():
    proc = _cli(["--loss=wgan_gp"])
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert "--loss" in err and "wgan-gp" in err and len(err.strip().splitlines()) == 1


def test_no_resume_and_config_conflicts_refuse(tmp_path, capsys):
    wd = f"--workdir={tmp_path}"
    assert main([*TOY, "--steps=2", wd]) == 0
    assert main([*TOY, "--steps=4", wd, "--no-resume"]) == 2
    assert "--no-resume" in capsys.readouterr().err
    assert main([*TOY, "--steps=4", wd, "--loss=wgan"]) == 2
    assert "loss" in capsys.readouterr().err
    assert main([*TOY[:1], *TOY[2:], "--hidden=64,64", "--steps=4", wd]) == 2
    assert "hidden" in capsys.readouterr().err


def test_evaluate_cli_writes_eval_json(progressive_run):
    _, _, workdir, _ = progressive_run
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "experiments", "evaluate.py"), f"--workdir={workdir}",
         "--metrics=swd,ms_ssim", "--num_images=64"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    step = max(int(s) for s in os.listdir(os.path.join(workdir, "checkpoints")) if s.isdigit())
    with open(os.path.join(workdir, f"eval_{step}.json")) as f:
        result = json.load(f)
    assert result["step"] == step and result["num_images"] == 64
    assert result["swd/mean"] > 0 and len(result["swd/levels"]) == 1  # 16x16: one level
    assert result["swd/noise_floor"] > 0
    assert 0 < result["ms_ssim"] <= 1
    assert "swd/mean" in proc.stdout


def test_evaluate_cli_bad_input(tmp_path):
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "experiments", "evaluate.py"), f"--workdir={tmp_path}"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2 and "config.json" in proc.stderr


def test_eval_every_logs_toy_modes(tmp_path, capsys):
    # Metrics that do not apply to the data are refused before anything starts.
    assert main([*TOY, "--eval_every=2", "--eval_metrics=swd", f"--workdir={tmp_path / 'x'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--eval_metrics=swd: swd do not apply" in err, err
    wd = str(tmp_path)  # none named: those that apply (modes for the 8 modes of ring8)
    args = [*TOY, "--steps=4", "--eval_every=2", "--eval_images=500"]
    assert main([*args, f"--workdir={wd}", "--log_every=2"]) == 0
    rec = [json.loads(line) for line in open(os.path.join(wd, "metrics.jsonl"))]
    evals = [r for r in rec if "eval/modes/modes_captured" in r]
    assert [r["step"] for r in evals] == [2, 4]
    assert all(0 <= r["eval/modes/modes_captured"] <= 8 for r in evals)


def test_progressive_other_objective_in_bfloat16(tmp_path):
    """Another objective (hinge) trains progressively, computing in bf16 with float32 state."""
    import jax

    from jaxgan.training.cli import parse
    from jaxgan.training.loop import train

    args = [*PROG[:1], "--stage_schedule=4,8", "--kimg_per_phase=0.032", "--batch_per_res=4:16,8:16",
            *PROG[4:], "--loss=hinge", "--dtype=bfloat16"]  # fmt: skip
    config, _ = parse(args)
    runs = []
    assert train(config, str(tmp_path), quiet=True, hooks=[runs.append]).exit_code == 0
    run = runs[-1]
    leaves = jax.tree.leaves((run.state.g_params, run.state.d_opt))
    assert all(x.dtype in (np.float32, np.int32) for x in leaves)
    rec = [json.loads(line) for line in open(os.path.join(tmp_path, "metrics.jsonl"))]
    assert rec[-1]["resolution"] == 8 and np.isfinite(rec[-1]["critic_loss"])
    assert rec[-1]["skipped_total"] == 0


DCGAN = ["--config=dcgan-mnist5k", "--width=8", "--batch_size=8", "--latent_dim=8",
         "--steps=2", "--quiet", "--log_every=1", "--sample_every=0", "--num_devices=1"]  # fmt: skip


@pytest.mark.parametrize("loss", ["gan", "wgan", "wgan-gp"])
def test_dcgan_runs_end_to_end(loss, tmp_path):
    """Each DCGAN objective trains (BatchNorm G; BatchNorm critic without a penalty) and logs."""
    norm = [] if loss == "wgan-gp" else ["--critic_norm=batch"]
    assert main([*DCGAN, f"--loss={loss}", *norm, f"--workdir={tmp_path}"]) == 0
    rows = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    assert [r["step"] for r in rows] == [1, 2]
    assert all(np.isfinite(r["critic_loss"]) and r["skipped_total"] == 0 for r in rows)
    assert os.path.exists(tmp_path / "samples" / "latest.png")
    saved = json.load(open(tmp_path / "config.json"))["model"]["critic_norm"]
    assert saved == ("none" if loss == "wgan-gp" else "batch")
