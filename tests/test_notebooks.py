"""The notebooks: paired with their jupytext text form, stored without outputs, and every cell
runs in test mode (``JAXGAN_NOTEBOOK_TEST=1``: CPU-sized), the multi-device one on 8 devices."""

import glob
import os

import jupytext
import nbclient
import nbformat
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = sorted(glob.glob(os.path.join(ROOT, "notebooks", "*.ipynb")))


def test_there_are_four_notebooks():
    names = [os.path.basename(p) for p in NOTEBOOKS]
    assert len(names) == 4, names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_paired_text_form_in_sync_and_outputs_cleared(path):
    nb = nbformat.read(path, as_version=4)
    text = jupytext.read(path[: -len(".ipynb")] + ".py")
    assert [(c.cell_type, c.source) for c in nb.cells] == [
        (c.cell_type, c.source) for c in text.cells
    ], "run: jupytext --sync " + os.path.relpath(path, ROOT)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, "outputs not cleared"
    assert "colab.research.google.com/github/jaxgan/jaxgan" in nb.cells[0].source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_runs_in_test_mode(path, tmp_path, monkeypatch):
    monkeypatch.setenv("JAXGAN_NOTEBOOK_TEST", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    devices = 8 if "progressive" in path else 1
    monkeypatch.setenv("XLA_FLAGS", f"--xla_force_host_platform_device_count={devices}")
    monkeypatch.setenv("JAXGAN_RUN", str(tmp_path / "no-run-here"))
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute(cwd=str(tmp_path))  # raises CellExecutionError on the first failing cell
    assert any(c.outputs for c in nb.cells if c.cell_type == "code")
