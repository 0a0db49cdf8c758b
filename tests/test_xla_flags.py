"""jaxgan.xla_flags: the XLA:CPU flag added at import reaches XLA, and never overrides the user."""

import os
import subprocess
import sys

from jaxgan import xla_flags

NAME = "xla_cpu_experimental_ynn_fusion_type"
PROBE = """
import sys
if sys.argv[1] == "jaxgan":
    import jaxgan  # noqa: F401
import jax, jax.numpy as jnp
x, w = jnp.ones((8, 16, 16, 32)), jnp.ones((3, 3, 32, 32))
conv = lambda x, w: jax.lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                                 dimension_numbers=("NHWC", "HWIO", "NHWC"))
print("ynn" in jax.jit(conv).lower(x, w).compile().as_text())
"""


def probe(how: str, **env) -> bool:
    """Whether XLA:CPU sends a 3x3 convolution to YNNPACK in a fresh process."""
    clean = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", xla_flags.OPT_OUT)}
    out = subprocess.run([sys.executable, "-c", PROBE, how], capture_output=True, text=True,
                         env={**clean, "JAX_PLATFORMS": "cpu", **env}, check=True)  # fmt: skip
    return out.stdout.strip().splitlines()[-1] == "True"


def test_with_defaults_appends_and_keeps_the_users_own_setting():
    assert xla_flags.with_defaults("") == f"--{NAME}=-individual_convolution"
    two = xla_flags.with_defaults("--xla_force_host_platform_device_count=8")
    assert two.split() == ["--xla_force_host_platform_device_count=8", f"--{NAME}=-individual_convolution"]  # fmt: skip
    for own in (f"--{NAME}=", f"--{NAME}=-individual_dot", f"-{NAME}=x"):
        assert xla_flags.with_defaults(own) == own


def test_apply_respects_the_opt_out(monkeypatch):
    monkeypatch.setattr(xla_flags, "backend_started", lambda: False)  # this process may have one
    env = {"XLA_FLAGS": "--a=1", xla_flags.OPT_OUT: "0"}
    assert not xla_flags.apply(env) and env["XLA_FLAGS"] == "--a=1"
    env = {"XLA_FLAGS": "--a=1"}
    assert xla_flags.apply(env) and env["XLA_FLAGS"] == f"--a=1 --{NAME}=-individual_convolution"


def test_the_flag_reaches_xla_and_only_through_jaxgan():
    """A fresh process that imports jaxgan compiles convolutions without YNNPACK; one that does
    not import it, or opts out, keeps XLA's default (YNNPACK, on the jaxlib versions we pin)."""
    default = probe("plain")
    assert probe("jaxgan") is False
    assert probe("jaxgan", **{xla_flags.OPT_OUT: "0"}) is default
    assert probe("jaxgan", XLA_FLAGS=f"--{NAME}=") is False


def test_nothing_is_changed_once_a_backend_has_started():
    code = ("import os, jax.numpy as jnp; jnp.ones(1).block_until_ready(); import jaxgan; "
            "print(repr(os.environ.get('XLA_FLAGS')))")  # fmt: skip
    clean = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**clean, "JAX_PLATFORMS": "cpu"}, check=True)  # fmt: skip
    assert out.stdout.strip() == "None"
