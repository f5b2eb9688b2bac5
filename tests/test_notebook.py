"""The notebook runs end to end in QUICK mode on the real data (CI executes it)."""
from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebook.ipynb"


@pytest.mark.integration
@pytest.mark.slow
def test_notebook_runs_in_quick_mode(real_dataset, tmp_path, monkeypatch):
    papermill = pytest.importorskip("papermill")
    monkeypatch.setenv("BRAINTUMOR_DATA_DIR", str(real_dataset))
    # The notebook works in a scratch copy of the project root in QUICK mode; point the root
    # at the checkout so it finds the committed manifest (and shares its caches).
    monkeypatch.setenv("BRAINTUMOR_ROOT", str(NOTEBOOK.parent))
    out = tmp_path / "executed.ipynb"
    papermill.execute_notebook(str(NOTEBOOK), str(out), parameters={"QUICK": True},
                               kernel_name="python3", cwd=str(tmp_path), progress_bar=False)
    text = out.read_text()
    assert "notebook ran in" in text
    assert "Traceback" not in text
