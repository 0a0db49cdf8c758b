"""The XLA flags jaxgan sets for itself, applied once at ``import jaxgan``.

XLA:CPU hands convolutions and their gradients to YNNPACK by default; on the main job's
progressive networks (3x3, 16-64 maps) Eigen's kernels run the train step faster, and no case
measured slower, while YNNPACK keeps the dots (BUILD_NOTES, "Convolutions on XLA:CPU against
PyTorch"). So ``--xla_cpu_experimental_ynn_fusion_type=-individual_convolution`` is appended to
``XLA_FLAGS``. It only reaches XLA if no JAX backend has started yet (XLA reads the flags once); a
flag of the same name already in ``XLA_FLAGS`` is left as the user set it, and
``JAXGAN_XLA_FLAGS=0`` leaves ``XLA_FLAGS`` untouched altogether.
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping

FLAGS = {"xla_cpu_experimental_ynn_fusion_type": "-individual_convolution"}
OPT_OUT = "JAXGAN_XLA_FLAGS"


def backend_started() -> bool:
    """Whether a JAX backend already exists in this process (then new flags would be ignored)."""
    if "jax" not in sys.modules:
        return False
    try:
        from jax._src import xla_bridge
    except ImportError:
        return False
    started = getattr(xla_bridge, "backends_are_initialized", None)
    return bool(started()) if started else False


def with_defaults(flags: str) -> str:
    """``flags`` (an ``XLA_FLAGS`` value) with each of :data:`FLAGS` appended unless named in it."""
    out = flags.split()
    for name, value in FLAGS.items():
        if not any(f.lstrip("-").split("=", 1)[0] == name for f in out):
            out.append(f"--{name}={value}")
    return " ".join(out)


def apply(environ: MutableMapping[str, str] = os.environ) -> bool:
    """Add the defaults to ``environ["XLA_FLAGS"]``; False (nothing changed) when opted out with
    ``JAXGAN_XLA_FLAGS=0`` or when a backend has started."""
    if environ.get(OPT_OUT, "1") == "0" or backend_started():
        return False
    environ["XLA_FLAGS"] = with_defaults(environ.get("XLA_FLAGS", ""))
    return True
