"""The README's example runs as written, and its test command is the one .ci/run runs."""

import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _readme():
    with open(os.path.join(ROOT, "README.md")) as f:
        return f.read()


def test_readme_python_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", _readme(), re.S)
    losses_example = next(b for b in blocks if "critic_step" in b)
    out = subprocess.run([sys.executable, "-c", losses_example], capture_output=True, text=True,
                         timeout=300, cwd=ROOT)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert "critic loss:" in out.stdout


def test_readme_api_example_runs():
    """The API example trains a toy, reopens the run, samples and evaluates it."""
    blocks = re.findall(r"```python\n(.*?)```", _readme(), re.S)
    api = next(b for b in blocks if "jaxgan.train(" in b)
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
    out = subprocess.run([sys.executable, "-c", api], capture_output=True, text=True,
                         timeout=600, cwd=ROOT, env=env)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert "trained: 40 steps" in out.stdout
    modes = int(re.search(r"evaluated: ([0-9.]+) modes", out.stdout).group(1).split(".")[0])
    assert 0 <= modes <= 8


def test_readme_commands_match_ci():
    bash = re.findall(r"```bash\n(.*?)```", _readme(), re.S)
    run_cmd, test_cmd = bash[0].strip(), bash[1].strip()
    assert run_cmd.endswith("python experiments/run.py")
    with open(os.path.join(ROOT, ".ci", "run")) as f:
        ci = f.read()
    install = re.search(r"pip install -c constraints.txt -e \"\.\[offline,test\]\"", test_cmd)
    assert install and install.group(0) in ci
    pytest_cmd = test_cmd.split("&& ")[-1]
    assert pytest_cmd in ci


def test_ci_installs_the_peers_pin():
    """.ci/run's torch leg installs benchmarks/peers/requirements.txt's exact pin (the CPU build)."""
    with open(os.path.join(ROOT, "benchmarks", "peers", "requirements.txt")) as f:
        pins = [ln.strip() for ln in f if ln.strip() and not ln.startswith("#")]
    with open(os.path.join(ROOT, ".ci", "run")) as f:
        ci = f.read()
    assert pins == ["torch==2.13.0"]
    assert f'pip install -q -c constraints.txt "{pins[0]}"' in ci
    assert "python -m pytest -q -n 2 --dist loadfile benchmarks/peers/tests" in ci
