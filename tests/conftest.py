"""Test set-up: 8 fake CPU devices, set before jax is imported anywhere."""

import os

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")


import subprocess  # noqa: E402

import pytest  # noqa: E402


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
