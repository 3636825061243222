"""The exploration notebook runs headless against a freshly built demo lake, so it can't rot."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import make_config
from multiverse_etl.pipeline import run_pipeline
from sample_api.server import serve_in_background

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_notebook_executes_and_draws_both_plots(spark, tmp_path, monkeypatch):
    lake = tmp_path / "lake"
    with serve_in_background(scale=120, seed=5) as api:
        config = make_config(str(lake), api={"url": api.url, "page_size": 50})
        result = run_pipeline(config, lambda: spark)
    assert result.transform.loaded_run_ids == [result.extract.run_id]

    monkeypatch.setenv("MV_LAKE_ROOT", str(lake))
    monkeypatch.setenv("MV_ENV", "local")
    notebook = nbformat.read(ROOT / "notebooks" / "explore.ipynb", as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()

    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    text = "".join(o.get("text", "") for o in outputs)
    assert f"lake: {lake}" in text
    assert "gold/apprenticeships" in text and "version 0:" in text
    pictures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(pictures) == 2
