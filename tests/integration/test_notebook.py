"""examples/quickstart.ipynb runs top to bottom in a real Jupyter kernel (nbclient) on the real
IMDB corpus, and shows the study's best params and a prediction for raw text."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import nbformat
import optuna
import pytest
from nbclient import NotebookClient

from tests.helpers import ROOT

NOTEBOOK = ROOT / "examples" / "quickstart.ipynb"
# Seconds a cell may take: the search cell trains three small models on a 2-core CPU.
CELL_TIMEOUT = 900


def _parameters(data_path: Path, work_dir: Path) -> str:
    return "\n".join(
        [
            "from pathlib import Path",
            f"data_path = Path({str(data_path)!r})",
            f"work_dir = Path({str(work_dir)!r})",
        ]
    )


def _output_text(cell: nbformat.NotebookNode) -> str:
    parts = []
    for output in cell.get("outputs", []):
        if output.get("name") == "stdout":
            parts.append(output["text"])
        elif "data" in output:
            parts.append(output["data"].get("text/plain", ""))
    return "".join(parts)


@pytest.mark.slow
def test_quickstart_runs_in_a_kernel_and_shows_best_params_and_a_prediction(
    shared_data: Path, tmp_path: Path
) -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    (parameters,) = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    work_dir = tmp_path / "run"
    parameters.source = _parameters(shared_data, work_dir)
    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},  # the kernel's working directory
    )
    started = time.perf_counter()
    # The kernel imports lstm_tune from this checkout, as the tests do.
    client.execute(env={**os.environ, "PYTHONPATH": str(ROOT)})
    seconds = time.perf_counter() - started
    print(f"quickstart.ipynb ran in {seconds:.0f}s")

    errors = [o for c in notebook.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    text = "\n".join(_output_text(c) for c in notebook.cells if c.cell_type == "code")
    study = optuna.load_study(
        study_name="quickstart", storage=f"sqlite:///{work_dir / 'quickstart.db'}"
    )
    assert len(study.trials) == 3
    assert f"best params: {study.best_trial.params}" in text
    assert re.search(r"^(positive|negative) \(0\.\d\d positive\): A wonderful", text, re.M), text
    assert (work_dir / "best.yaml").is_file() and (work_dir / "model" / "model.keras").is_file()
