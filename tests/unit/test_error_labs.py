"""Every error that points at a lab points at one that exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAB_REF = re.compile(r"""\b(?:lab|LAB)\s*=\s*["']([0-9]{2}-[a-z0-9-]+)["']""")


def test_lab_references_in_the_code_exist() -> None:
    refs = {(path.relative_to(ROOT), name) for path in (ROOT / "src" / "scalelab").rglob("*.py") for name in LAB_REF.findall(path.read_text())}
    assert refs, "no lab references found: the pattern is stale"
    missing = sorted((str(p), n) for p, n in refs if not (ROOT / "labs" / f"{n}.md").is_file())
    assert not missing, f"errors point at labs that do not exist: {missing}"
