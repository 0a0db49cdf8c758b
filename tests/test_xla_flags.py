"""jaxgan.xla_flags: ``apply()``, which the entry points call before JAX starts, adds the XLA:CPU
flag, says so once, reaches XLA, never overrides the user, and changes nothing once a backend has
started. (That importing jaxgan leaves the environment alone: tests/test_imports.py.)"""

import io
import os
import re
import subprocess
import sys

import pytest

from jaxgan import xla_flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAME = "xla_cpu_experimental_ynn_fusion_type"
FLAG = f"--{NAME}=-individual_convolution"
ANNOUNCED = f"jaxgan: XLA_FLAGS += {FLAG} (JAXGAN_XLA_FLAGS=0 to opt out)"
PROBE = """
import sys
how = sys.argv[1]
if how == "import":
    import jaxgan, jaxgan.losses, jaxgan.optim, jaxgan.penalties  # noqa: F401
if how == "apply":
    from jaxgan import xla_flags
    xla_flags.apply()
import jax, jax.numpy as jnp
if how == "apply-after-import-jax":  # imported, but no backend yet: still in time
    from jaxgan import xla_flags
    xla_flags.apply()
x, w = jnp.ones((8, 16, 16, 32)), jnp.ones((3, 3, 32, 32))
conv = lambda x, w: jax.lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                                 dimension_numbers=("NHWC", "HWIO", "NHWC"))
print("ynn" in jax.jit(conv).lower(x, w).compile().as_text())
"""


def clean_env(**env) -> dict[str, str]:
    """This process's environment without XLA_FLAGS (conftest.py set it) or the opt-out."""
    out = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", xla_flags.OPT_OUT)}
    return {**out, "JAX_PLATFORMS": "cpu", **env}


def probe(how: str, **env) -> bool:
    """Whether XLA:CPU sends a 3x3 convolution to YNNPACK in a fresh process."""
    out = subprocess.run([sys.executable, "-c", PROBE, how], capture_output=True, text=True,
                         env=clean_env(**env))  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip().splitlines()[-1] == "True"


@pytest.fixture
def no_backend(monkeypatch):
    monkeypatch.setattr(xla_flags, "backend_started", lambda: False)  # this process has one


def test_with_defaults_appends_and_keeps_the_users_own_setting():
    assert xla_flags.with_defaults("") == FLAG
    two = xla_flags.with_defaults("--xla_force_host_platform_device_count=8")
    assert two.split() == ["--xla_force_host_platform_device_count=8", FLAG]
    for own in (f"--{NAME}=", f"--{NAME}=-individual_dot", f"-{NAME}=x"):
        assert xla_flags.with_defaults(own) == own


def test_apply_reports_whether_it_changed_anything_and_respects_the_opt_out(no_backend):
    env = {"XLA_FLAGS": "--a=1", xla_flags.OPT_OUT: "0"}
    assert not xla_flags.apply(env) and env["XLA_FLAGS"] == "--a=1"
    env = {"XLA_FLAGS": "--a=1"}
    assert xla_flags.apply(env) and env["XLA_FLAGS"] == f"--a=1 {FLAG}"
    assert not xla_flags.apply(env) and env["XLA_FLAGS"] == f"--a=1 {FLAG}"  # already there
    env = {"XLA_FLAGS": f"--{NAME}="}  # the user's own value
    assert not xla_flags.apply(env) and env["XLA_FLAGS"] == f"--{NAME}="
    env = {}
    assert xla_flags.apply(env) and env == {"XLA_FLAGS": FLAG}


def test_apply_announces_one_line_only_when_it_changed_something(no_backend):
    env, out = {}, io.StringIO()
    assert xla_flags.apply(env, announce=True, stream=out)
    assert not xla_flags.apply(env, announce=True, stream=out)  # nothing new: nothing said
    assert not xla_flags.apply({xla_flags.OPT_OUT: "0"}, announce=True, stream=out)
    assert out.getvalue() == ANNOUNCED + "\n"
    quiet = io.StringIO()
    assert xla_flags.apply({}, stream=quiet) and quiet.getvalue() == ""


def test_the_flag_reaches_xla_through_apply_only():
    """A fresh process that calls apply() before JAX starts (before or after ``import jax``)
    compiles convolutions without YNNPACK; one that only imports jaxgan, or opts out, keeps
    XLA's default (YNNPACK, on the jaxlib versions we pin)."""
    assert probe("plain") is True, "this jaxlib compiles convolutions without YNNPACK"
    assert probe("apply") is False
    assert probe("apply-after-import-jax") is False
    assert probe("import") is True
    assert probe("apply", XLA_FLAGS=f"--{NAME}=") is False  # the user's value: YNNPACK off


def test_opt_out_in_a_fresh_process():
    code = "from jaxgan import xla_flags; import os; print(xla_flags.apply(), os.environ.get('XLA_FLAGS'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=clean_env(**{xla_flags.OPT_OUT: "0"}), check=True)  # fmt: skip
    assert out.stdout.split() == ["False", "None"]


def test_nothing_is_changed_once_a_backend_has_started():
    code = ("import os, jax.numpy as jnp; from jaxgan import xla_flags; "
            "before = xla_flags.backend_started(); jnp.ones(1).block_until_ready(); "
            "print(before, xla_flags.backend_started(), xla_flags.apply(announce=True), "
            "repr(os.environ.get('XLA_FLAGS')))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=clean_env(), check=True)  # fmt: skip
    assert out.stdout.split() == ["False", "True", "False", "None"] and out.stderr == ""


ENTRY_POINTS = {  # a short run of each that gets as far as applying the flag
    "experiments/run.py": [
        "--config=toy-wgan",
        "--steps=1",
        "--hidden=8,8",
        "--batch_size=8",
        "--quiet",
        "--sample_every=0",
        "--num_devices=1",
        "--workdir={tmp}/run",
    ],
    "experiments/evaluate.py": ["--workdir={tmp}"],  # no run there: an error after applying
    "benchmarks/run.py": ["--cases=nope"],  # an unknown case: an error after applying
    "experiments/study.py": ["--study=toys", "--cells=none-such", "--root={tmp}"],  # no runs
}


@pytest.mark.parametrize("script", sorted(ENTRY_POINTS))
def test_entry_points_apply_it_and_say_so_once(script, tmp_path):
    args = [a.format(tmp=tmp_path) for a in ENTRY_POINTS[script]]
    cmd = [sys.executable, os.path.join(ROOT, script), *args]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=clean_env())
    lines = (out.stdout + out.stderr).splitlines()
    assert lines.count(ANNOUNCED) == 1, out.stdout + out.stderr
    if ANNOUNCED in out.stderr:  # before anything else on stderr (run.py says it on stdout)
        assert out.stderr.splitlines()[0] == ANNOUNCED
    quiet = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT,
                           env=clean_env(**{xla_flags.OPT_OUT: "0"}))  # fmt: skip
    assert "jaxgan: XLA_FLAGS" not in quiet.stdout + quiet.stderr
    assert quiet.returncode == out.returncode


def test_bad_input_is_one_line_before_anything_is_applied(tmp_path):
    """run.py applies the flag in ``train``, after the flags are checked: a typo gets one line."""
    cmd = [sys.executable, os.path.join(ROOT, "experiments", "run.py"), "--loss=nope"]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=clean_env())
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr


def _calls_apply_first(source: str) -> bool:
    """``xla_flags.apply(announce=True)`` comes before the first ``import jax``."""
    m = re.search(r"^xla_flags\.apply\(announce=True\)", source, re.M)
    jax = re.search(r"^(import|from) jax\b", source, re.M)
    return bool(m) and (jax is None or m.start() < jax.start())


@pytest.mark.parametrize(
    "path", sorted(p for p in os.listdir(os.path.join(ROOT, "notebooks")) if p.endswith(".py"))
)
def test_notebooks_apply_it_before_jax(path):
    """Executing them is tests/test_notebooks.py's job; here: the call is there, before JAX."""
    with open(os.path.join(ROOT, "notebooks", path)) as f:
        assert _calls_apply_first(f.read()), path
