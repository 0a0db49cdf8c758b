"""The results page is generated: the committed experiments/results/README.md is exactly what
experiments/results.py writes from the result files now, and every file it links exists."""

import os
import re
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "experiments", "results.py")
RESULTS = os.path.join(ROOT, "experiments", "results")


def _generate(tmp_path, results=RESULTS):
    out = tmp_path / "page.md"
    proc = subprocess.run(
        [sys.executable, SCRIPT, "--results", str(results), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc, out


def test_committed_page_is_what_the_script_writes(tmp_path):
    proc, out = _generate(tmp_path)
    assert proc.returncode == 0, proc.stderr
    with open(os.path.join(RESULTS, "README.md"), encoding="utf-8") as f:
        committed = f.read()
    assert out.read_text(encoding="utf-8") == committed, (
        "experiments/results/README.md is stale: run `python experiments/results.py` and commit it"
    )


def test_every_link_on_the_page_exists():
    with open(os.path.join(RESULTS, "README.md"), encoding="utf-8") as f:
        page = f.read()
    links = re.findall(r"\]\(([^)#]+)\)", page)
    assert links
    missing = [p for p in links if not os.path.exists(os.path.join(RESULTS, p))]
    assert not missing, missing


def test_an_unknown_result_file_is_an_error(tmp_path):
    copy = tmp_path / "results"
    shutil.copytree(RESULTS, copy)
    (copy / "new_study.json").write_text("{}")
    proc, out = _generate(tmp_path, copy)
    assert proc.returncode == 1
    assert "new_study.json" in proc.stderr
    assert not out.exists()


def test_a_goal_met_by_fewer_seeds_than_planned_says_so(tmp_path):
    copy = tmp_path / "results"
    shutil.copytree(RESULTS, copy)
    runs = copy / "stacked-mnist" / "runs" / "stacked_mnist" / "wgan-gp"
    for extra in (p for p in runs.iterdir() if p.name != "seed0.json"):
        extra.unlink()
    proc, out = _generate(tmp_path, copy)
    assert proc.returncode == 0, proc.stderr
    page = out.read_text(encoding="utf-8")
    assert "reverse KL ≤ 0.06): **met** by wgan-gp (1 of 3 seeds so far)." in page
