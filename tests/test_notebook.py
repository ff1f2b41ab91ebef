"""The quickstart notebook: committed executed, written against the public API, and it runs headless."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import nbformat
import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "quickstart.ipynb"


def code_cells(nb) -> list:
    return [c for c in nb.cells if c.cell_type == "code"]


def test_committed_notebook_is_executed_in_order_without_errors():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    cells = code_cells(nb)
    assert cells
    assert [c.execution_count for c in cells] == list(range(1, len(cells) + 1))
    for cell in cells:
        assert cell.outputs, cell.source[:80]
        assert not [o for o in cell.outputs if o.output_type == "error"], cell.source[:80]


def test_notebook_uses_only_the_public_api():
    source = "\n".join(c.source for c in code_cells(nbformat.read(NOTEBOOK, as_version=4)))
    imports = set(re.findall(r"(?:from|import) (noisesim[\w.]*)", source))
    assert imports <= {"noisesim"}, imports
    for name in ("sweep", "summarize", "plot", "load_results", "devices"):
        assert f"noisesim.{name}" in source or name == "devices"


@pytest.mark.slow
def test_notebook_runs_headless(tmp_path):
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOK, as_version=4)
    shutil.copy(NOTEBOOK, tmp_path / NOTEBOOK.name)
    NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = "\n".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", ""))
                        for c in code_cells(nb) for o in c.outputs)
    assert "sst2-grasp" in outputs and "drift.compensation" in outputs
    assert (tmp_path / "quickstart-sweep" / "fig6.pdf").is_file()
