"""Every notebook is thin and runs, top to bottom, on the recorded runs committed in tests/fixtures/runs.

Hermetic (no Docker, no cluster): the notebooks only read run directories and call the simulator.
Each notebook is executed with its own default parameters (so what a student opens works), with
only ``out_dir`` redirected to a temporary folder. Missing fixture runs fail the test, never skip it.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
EXPECTED = ["01-compose-manual-scaling.ipynb", "03-kubernetes-hpa.ipynb", "04-compare-and-cost.ipynb", "05-what-if-simulator.ipynb",
            "08-swarm.ipynb", "11-fix-ladder.ipynb", "12-density.ipynb"]
FORBIDDEN = ("locust", "subprocess", "docker", "kubectl", "python_on_whales", "kubernetes.client", "scalelab.platforms", "scalelab.runner",
             "scalelab.operate", "os.system")


def _code_cells(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [c for c in nb.cells if c.cell_type == "code"]


def _parameters(nb: nbformat.NotebookNode) -> dict[str, object]:
    tree = ast.parse(_code_cells(nb)[0].source)
    return {t.id: ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign) for t in node.targets if isinstance(t, ast.Name)}


def test_the_lab_notebooks_are_there() -> None:
    assert [p.name for p in NOTEBOOKS] == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_thin(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    first = _code_cells(nb)[0]
    assert "parameters" in first.metadata.get("tags", []), "the first code cell must be tagged `parameters`"
    params = _parameters(nb)
    assert "out_dir" in params and any(k.endswith(("run_dir", "runs_dir")) for k in params), params
    for cell in _code_cells(nb):
        assert not cell.get("outputs"), "commit notebooks without outputs"
        tree = ast.parse(cell.source)
        for node in ast.walk(tree):
            assert not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)), f"no def/class/lambda: {cell.source!r}"
            assert not isinstance(node, (ast.For, ast.While, ast.If, ast.Try, ast.With)), f"no logic in notebooks: {cell.source!r}"
        for word in FORBIDDEN:
            assert word not in cell.source, f"notebooks only read runs and call scalelab; found {word!r}"
        assert not any(line.lstrip().startswith(("!", "%")) for line in cell.source.splitlines()), "no shell or magics"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_defaults_point_at_committed_recorded_runs(path: Path) -> None:
    params = _parameters(nbformat.read(path, as_version=4))
    run_dirs = [v for k, v in params.items() if k.endswith("run_dir")]
    # a folder of runs (the fix ladder, lab 11: one run per rung in tests/fixtures/runs/ladder): each of its runs
    for rel in [v for k, v in params.items() if k.endswith("runs_dir")]:
        folder = (path.parent / str(rel)).resolve()
        assert folder.parent == ROOT / "tests" / "fixtures" / "runs" and folder.is_dir(), f"{rel} must be a folder in tests/fixtures/runs"
        run_dirs += [str(p) for p in sorted(folder.iterdir()) if p.is_dir()]
    assert run_dirs
    for rel in run_dirs:
        run_dir = (path.parent / str(rel)).resolve()
        # density runs (lab 12) live in tests/fixtures/runs/density, apart from the load runs
        assert run_dir.parent in (ROOT / "tests" / "fixtures" / "runs", ROOT / "tests" / "fixtures" / "runs" / "density",
                                  ROOT / "tests" / "fixtures" / "runs" / "ladder"), \
            f"{rel} must point into tests/fixtures/runs"
        manifest_path = run_dir / "manifest.json"
        assert manifest_path.is_file(), f"missing fixture run {run_dir}: copy a recorded run there (see tests/fixtures/runs/README.md)"
        manifest = json.loads(manifest_path.read_text())
        # docker: a density ramp on the engine itself (lab 12)
        assert manifest["platform"] in ("compose", "swarm", "kubernetes", "docker"), "fixture runs are recorded on a real platform, not simulated"
        assert manifest["status"] == "completed"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path: Path, tmp_path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    index = nb.cells.index(_code_cells(nb)[0])
    injected = nbformat.v4.new_code_cell(f"out_dir = {str(tmp_path / 'out')!r}")
    injected.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(index + 1, injected)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    errors = [o for c in _code_cells(nb) for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    images = [o for c in _code_cells(nb) for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert images, "every notebook shows at least one chart"
    warnings = [o["text"] for c in _code_cells(nb) for o in c.get("outputs", []) if o.get("name") == "stderr"]
    assert not warnings, warnings
