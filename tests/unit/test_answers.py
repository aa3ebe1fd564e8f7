"""labs/answers.md answers every discussion question of the labs and the notebooks, in order."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
ANSWERS = (ROOT / "labs" / "answers.md").read_text(encoding="utf-8")


def _numbered(block: str) -> list[int]:
    return [int(n) for n in re.findall(r"^(\d+)\. ", block, re.M)]


def _answer_section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\b.*?$(.*?)(?=^## |\Z)", ANSWERS, re.M | re.S)
    assert match, f"labs/answers.md has no section '## {title}'"
    return match.group(1)


def _lab_questions(path: Path) -> list[int]:
    text = path.read_text(encoding="utf-8")
    tail = re.split(r"^(?:Discussion questions|Questions to discuss)[^\n]*:\s*$", text, flags=re.M)
    assert len(tail) == 2, f"{path.name}: one list of discussion questions"
    return _numbered(tail[1].split("\nNext:")[0])


LABS = sorted((ROOT / "labs").glob("[0-9][0-9]-*.md"))
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", LABS, ids=lambda p: p.stem)
def test_every_lab_question_has_an_answer(path: Path) -> None:
    questions = _lab_questions(path)
    assert questions == list(range(1, len(questions) + 1)) and questions
    answers = _numbered(_answer_section(f"Lab {path.name[:2]}").split("\nExercise")[0])
    assert answers == questions, f"{path.name}: questions {questions}, answers {answers}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_question_has_an_answer(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    explain = [c.source for c in nb.cells if c.cell_type == "markdown" and c.source.startswith("## Explain")]
    assert len(explain) == 1, f"{path.name}: one '## Explain' cell"
    questions = _numbered(explain[0])
    assert questions and "labs/answers.md" in explain[0]
    answers = _numbered(_answer_section(f"Notebook {path.name[:2]}").split("\nExercise")[0])
    assert answers == questions, f"{path.name}: questions {questions}, answers {answers}"
    assert any(c.cell_type == "markdown" and "**Exercise.**" in c.source for c in nb.cells), f"{path.name}: no exercise"
