"""Test set-up: 8 fake CPU devices, jaxgan's XLA:CPU flag (as the entry points set it,
:mod:`jaxgan.xla_flags`) and a persistent XLA compilation cache for this session, all before JAX
starts anywhere; subprocesses (the CLI runs) inherit them.

The cache is JAX's own (``JAX_COMPILATION_CACHE_DIR``): the many runs that build the same step (a
run and its resume, the CLI tests) compile it once. It starts empty each session and is removed at
the end, unless the caller set the variable."""

import os
import shutil
import tempfile

if "JAX_COMPILATION_CACHE_DIR" not in os.environ:  # set once, by pytest's main process
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="jaxgan-tests-xla-cache-")
    os.environ["JAXGAN_TESTS_OWN_CACHE"] = "1"
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

from jaxgan import xla_flags  # noqa: E402

xla_flags.apply()


import subprocess  # noqa: E402

import pytest  # noqa: E402


def pytest_unconfigure(config):
    if os.environ.get("JAXGAN_TESTS_OWN_CACHE") and not hasattr(config, "workerinput"):
        shutil.rmtree(os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)


@pytest.fixture
def read_only_dir(tmp_path):
    """A directory nothing can be written to: permission bits, or (as root, who ignores them) a
    read-only bind mount, undone afterwards. Skips where neither works."""
    path = tmp_path / "ro"
    path.mkdir()
    os.chmod(path, 0o555)
    mounted = False
    if os.access(path, os.W_OK):
        run = lambda *a: subprocess.run(["mount", *a], capture_output=True).returncode == 0  # noqa: E731
        if run("--bind", str(path), str(path)):
            mounted = run("-o", "remount,ro,bind", str(path))
            if not mounted:
                subprocess.run(["umount", str(path)], capture_output=True)
        if not mounted:
            pytest.skip("cannot make a read-only directory here")
    yield path
    if mounted:
        subprocess.run(["umount", str(path)], capture_output=True)
    os.chmod(path, 0o755)


class Compiles:
    """XLA compilations in this process, as JAX reports them through its public monitoring API
    (the backend-compile duration event, one per executable compiled or loaded from the
    persistent cache; calls served from jit's in-memory cache report nothing)."""

    EVENT = "/jax/core/compile/backend_compile_duration"

    def __init__(self):
        self.names: list[str] = []

    def __call__(self, event: str, duration: float, **kw) -> None:
        if event == self.EVENT:
            self.names.append(kw.get("fun_name", ""))

    def of(self, fn) -> int:
        """Compilations of ``fn`` (a function or its ``jax.jit`` wrapper), by its name."""
        name = getattr(fn, "__name__", fn)
        return sum(n in (name, f"jit({name})") for n in self.names)


@pytest.fixture
def compiles():
    """A :class:`Compiles` that counts from here to the end of the test."""
    import jax

    counter = Compiles()
    jax.monitoring.register_event_duration_secs_listener(counter)
    yield counter
    jax.monitoring.unregister_event_duration_listener(counter)


def load_experiment(name: str):
    """``experiments/<name>.py`` as a module, to call its ``main(argv)`` in this process."""
    import importlib.util

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    spec = importlib.util.spec_from_file_location(f"_jaxgan_{name}", os.path.join(root, "experiments", f"{name}.py"))  # fmt: skip
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
