"""The XLA flags jaxgan sets for itself, applied by the programs that start JAX.

XLA:CPU hands convolutions and their gradients to YNNPACK by default; on the main job's
progressive networks (3x3, 16-64 maps) Eigen's kernels run the train step faster, and no case
measured slower, while YNNPACK keeps the dots (BUILD_NOTES, "Convolutions on XLA:CPU against
PyTorch"). So :func:`apply` appends ``--xla_cpu_experimental_ynn_fusion_type=-individual_convolution``
to ``XLA_FLAGS``.

Importing jaxgan (or any of its modules) leaves ``os.environ`` alone. :func:`apply` is called by
the entry points, before JAX starts: ``experiments/run.py``, ``evaluate.py`` and ``study.py``,
``benchmarks/run.py`` and ``ab_trees.py``, the notebooks' first import cell, ``jaxgan.train``, and
the test suites' ``conftest.py``. Your own program that wants the flag calls it first thing::

    from jaxgan import xla_flags

    xla_flags.apply(announce=True)  # before the first JAX computation
    import jax

Rules: a flag of the same name already in ``XLA_FLAGS`` is left as the user set it;
``JAXGAN_XLA_FLAGS=0`` leaves ``XLA_FLAGS`` untouched altogether; and nothing is changed once a
JAX backend has started (XLA reads the flags when it creates its first client, never again), see
:func:`backend_started`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping
from typing import TextIO

FLAGS = {"xla_cpu_experimental_ynn_fusion_type": "-individual_convolution"}
OPT_OUT = "JAXGAN_XLA_FLAGS"
# A JAX option that JAX refuses to change once a backend exists (its validator raises); it only
# sets a multi-process CPU time-out, so setting it and back has no effect of its own.
_PROBE_OPTION = "jax_cpu_get_local_topology_timeout_minutes"


def backend_started() -> bool:
    """Whether a JAX backend may already exist in this process (then new flags would be ignored).

    Found through JAX's public API only: False while ``jax`` is not imported (importing it starts
    no backend); otherwise JAX is asked to change :data:`_PROBE_OPTION`, which it refuses with a
    ``RuntimeError`` once a backend is initialised (jax 0.10 to 0.12), and the option is set back.
    Where that option is missing (a JAX that renamed it) the answer is True: a backend may exist,
    so nothing is changed."""
    if "jax" not in sys.modules:
        return False
    import jax

    try:
        value = getattr(jax.config, _PROBE_OPTION)
    except AttributeError:
        return True
    try:
        jax.config.update(_PROBE_OPTION, value + 1)
    except RuntimeError:
        return True
    jax.config.update(_PROBE_OPTION, value)
    return False


def with_defaults(flags: str) -> str:
    """``flags`` (an ``XLA_FLAGS`` value) with each of :data:`FLAGS` appended unless named in it."""
    out = flags.split()
    for name, value in FLAGS.items():
        if not any(f.lstrip("-").split("=", 1)[0] == name for f in out):
            out.append(f"--{name}={value}")
    return " ".join(out)


def apply(
    environ: MutableMapping[str, str] | None = None,
    *,
    announce: bool = False,
    stream: TextIO | None = None,
) -> bool:
    """Append :data:`FLAGS` to ``environ["XLA_FLAGS"]`` (``os.environ`` by default), each unless
    the user named it. Returns whether anything changed: False when opted out
    (``JAXGAN_XLA_FLAGS=0``), when a backend has started, or when every flag is already there, so
    a second call (or one in a child process that inherited the environment) changes nothing.

    ``announce``: when something changed, one line on ``stream`` (stderr) says what."""
    environ = os.environ if environ is None else environ
    if environ.get(OPT_OUT, "1") == "0" or backend_started():
        return False
    old = environ.get("XLA_FLAGS", "")
    new = with_defaults(old)
    if new.split() == old.split():
        return False
    environ["XLA_FLAGS"] = new
    if announce:
        added = " ".join(f for f in new.split() if f not in old.split())
        print(f"jaxgan: XLA_FLAGS += {added} ({OPT_OUT}=0 to opt out)", file=stream or sys.stderr)
    return True
