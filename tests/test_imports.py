"""Imports: a user who imports only the losses pays only for jax/optax/chex, importing jaxgan
changes nothing in os.environ (XLA_FLAGS included: jaxgan.xla_flags is applied by the entry
points); no import cycles."""

import ast
import os
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
    "jaxgan.training.step",
    "jaxgan.training.checkpoint",
    "flax",
]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("module", ["jaxgan", "jaxgan.losses", "jaxgan.optim", "jaxgan.penalties"])
def test_light_imports_that_leave_the_environment_alone(module):
    """JAX sets variables of its own at import (TF_CPP_MIN_LOG_LEVEL, ...), so the environment is
    taken after importing the light dependencies, which load none of HEAVY themselves."""
    code = (
        "import os, sys, jax, optax, chex\n"
        f"before = dict(os.environ)\nimport {module}\n"
        "assert dict(os.environ) == before, set(os.environ.items()) ^ set(before.items())\n"
        "assert 'XLA_FLAGS' not in os.environ\n"
        f"heavy = {HEAVY!r}\n"
        "loaded = sorted(m for m in sys.modules if any(m == h or m.startswith(h + '.') for h in heavy))\n"
        "print(loaded)\n"
        "assert not loaded, loaded\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # conftest.py set it here
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stderr == ""


def _module_imports(path: str, name: str, modules: set[str]) -> set[str]:
    """The jaxgan modules ``name`` imports anywhere in its file (function-local imports too)."""
    tree = ast.parse(open(path).read())
    package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + [base]
                )
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        found.update(t for t in targets if t in modules and t != name)
    return found


def test_no_import_cycle_in_jaxgan():
    """Walk every jaxgan module's imports (module-level and function-local) and look for a cycle."""
    files = {}
    for dirpath, _, names in os.walk(os.path.join(ROOT, "jaxgan")):
        for n in names:
            if n.endswith(".py"):
                path = os.path.join(dirpath, n)
                mod = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                files[mod.removesuffix(".__init__")] = path
    graph = {m: _module_imports(p, m, set(files)) for m, p in files.items()}
    # A package's __init__ importing its own submodules is not a cycle of concepts.
    graph = {m: {t for t in ts if not t.startswith(m + ".")} for m, ts in graph.items()}
    assert len(graph) > 20 and graph["jaxgan.training.loop"], graph
    state: dict[str, int] = {}

    def visit(m, stack):
        state[m] = 1
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                cycle = stack[stack.index(t) :] + [t]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if t not in state:
                visit(t, stack + [t])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
