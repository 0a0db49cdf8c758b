"""A user who imports only the losses pays only for jax/optax/chex."""

import subprocess
import sys

import pytest

HEAVY = [
    "tensorflow_datasets",
    "grain",
    "orbax",
    "tensorflow",
    "jaxgan.models",
    "jaxgan.data",
    "jaxgan.train",
    "jaxgan.checkpoint",
    "flax",
]


@pytest.mark.parametrize("module", ["jaxgan.losses", "jaxgan.optim", "jaxgan.penalties"])
def test_light_imports(module):
    code = (
        f"import sys, {module}\n"
        f"heavy = {HEAVY!r}\n"
        "loaded = sorted(m for m in sys.modules if any(m == h or m.startswith(h + '.') for h in heavy))\n"
        "print(loaded)\n"
        "assert not loaded, loaded\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
