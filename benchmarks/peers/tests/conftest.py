"""Test set-up for ``python -m pytest benchmarks/peers/tests`` (from the repository root or
anywhere): ``benchmarks/`` on ``sys.path``, so that the package imports as ``peers`` beside its
siblings ``cases``, ``measure`` and ``run``, as ``benchmarks/run.py`` imports them; JAX on the CPU
with jaxgan's XLA:CPU flag (:mod:`jaxgan.xla_flags`, as ``run.py --peers`` sets it), both before
any test module imports JAX."""

import os
import sys

from jaxgan import xla_flags

BENCH = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if BENCH not in sys.path:
    sys.path.insert(0, BENCH)
os.environ.setdefault("JAX_PLATFORMS", "cpu")
xla_flags.apply()
