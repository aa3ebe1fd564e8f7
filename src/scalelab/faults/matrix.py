"""The platform x (kill, crash, hang, node loss, rollout) table of issue 14, from recorded runs.

One row per platform and disruption: failed requests (of those that completed after it), the
error window (first to last failure) and the time to recovery:

- a fault: the sampled ready replicas back to their count before it (``never`` when they stayed
  down to the end of the run; ``no dip`` when the sampler never saw one fewer);
- a rollout: its wall time, start to every replica on the new version and ready.

``python -m scalelab.faults.matrix DIR...`` (``make faults-table``) prints it for every run found
in the folders (all of them, not the newest per arm: one arm records kill, crash and hang).
The committed runs are in ``tests/fixtures/runs/faults`` and ``tests/fixtures/runs/rollouts``, the
node losses in the multi-host fixtures (`FIXTURES`).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scalelab.faults.table import cell, run_rows

__all__ = ["PLATFORMS", "FAULT_KINDS", "Cell", "cells", "render_long", "render_wide", "matrix_html", "run_dirs", "table_cells", "main", "FIXTURES"]

PLATFORMS = ("compose", "swarm", "kubernetes")
FAULT_KINDS = ("kill", "crash", "hang", "node-loss")
#: the committed runs of the table (relative to the repository): kill, crash, hang and the rollouts
#: (ci-faults, ci-rollout), then one node loss per platform from the multi-host runs (lab 09): compose
#: loses Host A, where its replicas are (the run that loses the idle Host B measures A's overload,
#: not a node loss); Swarm and Kubernetes lose Host B, which held half their replicas.
FIXTURES = (
    "tests/fixtures/runs/faults",
    "tests/fixtures/runs/rollouts",
    "tests/fixtures/runs/hosts/20261205-031901-ci-hosts-compose-fixed-4fdf",
    "tests/fixtures/runs/swarm-hosts",
    "tests/fixtures/runs/kind-hosts",
)


@dataclass(frozen=True)
class Cell:
    platform: str
    what: str  # kill | crash | hang | node-loss | rollout: <arm's variant>
    arm: str
    requests: int
    failed: int
    error_window_s: float
    recovery_s: float | None
    dipped: bool  # the ready count went below its value before (faults); always True for rollouts
    first_2xx_s: float | None
    restarts: int = 0

    @property
    def recovery(self) -> str:
        if self.recovery_s is not None:
            return f"{self.recovery_s:.1f} s"
        return "never" if self.dipped else "no dip"

    @property
    def errors(self) -> str:
        return f"{self.failed} of {self.requests}"


def _variant(arm: str, platform: str) -> str:
    """``kubernetes-rolling`` -> ``rolling``: the arm names the rollout variant after its platform."""
    return arm[len(platform) + 1:] if arm.startswith(platform + "-") else arm


def cells(rows: Iterable[dict[str, Any]]) -> list[Cell]:
    """Table rows (`scalelab.faults.table.run_rows`) as cells, in platform, then disruption order."""
    out = []
    for r in rows:
        platform, kind = str(r.get("platform", "")), str(r.get("kind", ""))
        rollout = kind.startswith("rollout")
        what = f"rollout: {_variant(str(r.get('arm', '')), platform)}" if rollout else kind
        before, low = r.get("ready_before"), r.get("ready_min")
        dipped = rollout or (before is not None and low is not None and low < before)
        out.append(Cell(platform, what, str(r.get("arm", "")), int(r.get("requests") or 0), int(r.get("failed") or 0),
                        float(r.get("error_window_s") or 0.0), r.get("to_desired_s"), dipped, r.get("to_first_2xx_s"), int(r.get("restarts") or 0)))
    return sorted(out, key=_order)


def _order(c: Cell) -> tuple[int, int, str]:
    p = PLATFORMS.index(c.platform) if c.platform in PLATFORMS else len(PLATFORMS)
    w = FAULT_KINDS.index(c.what) if c.what in FAULT_KINDS else len(FAULT_KINDS)
    return p, w, c.what


def render_long(cs: Sequence[Cell]) -> str:
    """One line per platform and disruption."""
    head = ("platform", "what", "failed", "error window", "recovery", "first 2xx new")
    body = [(c.platform, c.what, c.errors, f"{c.error_window_s:.2f} s", c.recovery, cell(c.first_2xx_s)) for c in cs]
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(head)]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip() for line in (head, *body))


def render_wide(cs: Sequence[Cell]) -> str:
    """Platforms down, disruptions across; each cell ``failed / error window / recovery`` ("-": not recorded)."""
    rollouts = sorted({c.what for c in cs if c.what.startswith("rollout")})
    columns = [*FAULT_KINDS, "rollouts"]
    lines = ["platform x disruption: failed requests / error window / time to recovery (fault: ready back; rollout: wall time)"]
    table = [["platform", *columns]]
    for p in [p for p in PLATFORMS if any(c.platform == p for c in cs)] + sorted({c.platform for c in cs} - set(PLATFORMS)):
        mine = {c.what: c for c in cs if c.platform == p}
        row = [p]
        for k in FAULT_KINDS:
            c = mine.get(k)
            row.append(f"{c.failed} / {c.error_window_s:.1f} s / {c.recovery}" if c else "-")
        row.append("; ".join(f"{w.split(': ', 1)[1]} {mine[w].failed} / {mine[w].error_window_s:.1f} s / {mine[w].recovery}" for w in rollouts if w in mine) or "-")
        table.append(row)
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in table]
    return "\n".join(lines)


def matrix_html(cs: Sequence[Cell]) -> str:
    """`render_wide` as an HTML table (the report's "platform x disruption" section)."""
    import html

    e = html.escape
    lines = render_wide(cs).splitlines()[1:]
    table = [_split_row(line, lines[0]) for line in lines]
    head = "".join(f"<th>{e(h)}</th>" for h in table[0])
    body = "".join("<tr>" + "".join(f'<td class="{"arm" if i == 0 else "num"}">{e(v)}</td>' for i, v in enumerate(r)) + "</tr>" for r in table[1:])
    notes = ("<p>Each cell: failed requests / error window (first to last failure) / time to recovery: a fault's ready replicas back to "
             "their count before it (<i>never</i>: not within the run), a rollout's wall time. <i>-</i>: not recorded.</p>")
    return f'<table class="summary"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{notes}'


def _split_row(line: str, header: str) -> list[str]:
    """A `render_wide` line cut at the header's column starts."""
    starts = [i for i, ch in enumerate(header) if ch != " " and (i == 0 or header[i - 1] == " ")]
    return [line[a:b].strip() for a, b in zip(starts, [*starts[1:], None])]


def run_dirs(paths: Sequence[str | Path]) -> list[Path]:
    """Every run in the given folders (a run folder itself counts), in name order."""
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if (path / "manifest.json").is_file():
            out.append(path)
        elif path.is_dir():
            out.extend(sorted(p for p in path.iterdir() if (p / "manifest.json").is_file()))
    return out


def table_cells(paths: Sequence[str | Path]) -> list[Cell]:
    from scalelab.telemetry.store import load_run

    return cells(row for path in run_dirs(paths) for row in run_rows(load_run(path)))


def main(argv: list[str]) -> int:
    from scalelab.errors import ScalelabError

    paths = argv or list(FIXTURES)
    try:
        cs = table_cells(paths)
    except ScalelabError as exc:
        print(f"ERROR: {exc.render()}", file=sys.stderr)
        return 1
    if not cs:
        print(f"no fault or rollout in the runs under {', '.join(map(str, paths))}", file=sys.stderr)
        return 1
    print(render_wide(cs) + "\n\n" + render_long(cs))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
