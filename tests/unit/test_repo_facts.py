"""Facts the code relies on live in the repository (docs/) or upstream links, never in paths outside it;
and a report never compares an interrupted run silently."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

ROOT = Path(__file__).parents[2]
OUTSIDE = re.compile(r"library-notes|later-labs\.md|offline-infrastructure\.md|shared/docs|/work/|(?<!docs/)hpa-controller\.md|story\.md")


def test_no_citation_of_documents_outside_the_repository() -> None:
    hits = []
    for path in [*ROOT.joinpath("src").rglob("*.py"), *ROOT.joinpath("src").rglob("*.yaml"), ROOT / "pyproject.toml"]:
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if OUTSIDE.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert hits == []
    assert (ROOT / "docs" / "hpa-controller.md").is_file() and (ROOT / "src" / "scalelab" / "py.typed").is_file()


def test_report_flags_an_interrupted_run(tmp_path: Path) -> None:
    from scalelab.report import build_report
    from scalelab.telemetry import load_run

    fixture = ROOT / "tests" / "fixtures" / "runs" / "20261123-163909-classroom-spike-compose-manual-f6e9"
    run_dir = tmp_path / fixture.name
    shutil.copytree(fixture, run_dir)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    manifest["status"] = "interrupted"
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    report = build_report([load_run(run_dir), load_run(ROOT / "tests" / "fixtures" / "runs" / "20261204-232857-classroom-spike-kubernetes-hpa-910e")], tmp_path / "out")
    assert report.text.startswith("NOTE: not a like-for-like comparison: compose-manual is interrupted")
    assert "interrupted" in report.html.read_text()
