"""A 2-process run over loopback (2 x 4 fake CPU devices) matches one process with 8 devices."""

import os
import socket
import subprocess
import sys

import numpy as np

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "multihost_worker.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(pid, nproc, port, ndev, out):
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    return subprocess.Popen(
        [sys.executable, WORKER, str(pid), str(nproc), str(port), str(ndev), out],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip


def test_two_processes_match_one(tmp_path):
    one = str(tmp_path / "one.npz")
    two = str(tmp_path / "two.npz")
    p = _spawn(0, 1, 0, 8, one)
    out = p.communicate(timeout=300)[0]
    assert p.returncode == 0, out[-3000:]
    port = _free_port()
    procs = [_spawn(i, 2, port, 4, two) for i in range(2)]
    for q in procs:
        log = q.communicate(timeout=300)[0]
        assert q.returncode == 0, log[-3000:]
    a, b = np.load(one), np.load(two)
    params = [k for k in a.files if k.startswith("p")]
    assert params and sorted(a.files) == sorted(b.files)
    for k in params:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-6)
    # The steps really trained: every leaf moved, except the critic's output bias (leaf 4), on
    # which neither the Wasserstein loss (its bias cancels) nor the penalty depends.
    still = [k for k in params if np.abs(a[k] - a["i" + k[1:]]).max() == 0]
    assert still == ["p4"], still
