"""Both analysis notebooks execute top to bottom (nbclient) on a small study generated here, and every code cell
shows something. Jupyter and matplotlib state stays in the test's temporary directory."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
os.environ.setdefault("MPLCONFIGDIR", str(REPO / ".runtime" / "mpl"))  # before matplotlib is imported

import nbformat  # noqa: E402
import pytest  # noqa: E402
from nbclient import NotebookClient  # noqa: E402

from experiments.analysis.configs import compose_plain  # noqa: E402
from experiments.analyze import run_analysis  # noqa: E402

NOTEBOOKS = ("collusion_equilibria", "mechanism_sweep")


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("study")
    run_analysis(compose_plain("quickstart", ["+experiment=analysis_tiny"]), out, log=lambda _: None)
    return out


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_executes(name: str, study: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWIN_STUDY_DIR", str(study))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    for var in ("MPLCONFIGDIR", "JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR"):
        (tmp_path / var.lower()).mkdir()
        monkeypatch.setenv(var, str(tmp_path / var.lower()))
    nb = nbformat.read(REPO / "notebooks" / f"{name}.ipynb", as_version=4)
    NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(REPO / "notebooks")}}
    ).execute()
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.outputs for c in code), [c.source[:60] for c in code if not c.outputs]
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors
    text = "".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", "")) for c in code for o in c.outputs)
    assert str(study) in text  # the notebook read the study it was given
