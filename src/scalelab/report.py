"""`scalelab report`: the comparison of recorded runs as charts and one self-contained HTML page.

`build_report(runs, out_dir)` writes one PNG per quantity (`plots.QUANTITIES`), the stacked
comparison PNG, ``summary.csv`` and ``report.html`` (every image embedded as base64: the page
opens from a USB stick, an e-mail or a laptop without Wi-Fi). `latest_runs(root)` picks the
newest usable run of each arm under ``runs/`` (recorded runs before simulated ones), compose
first, then Swarm, then Kubernetes. Reads only
run directories (`scalelab.telemetry`); the figures come from `analysis` and `plots`.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from scalelab.analysis import SUMMARY_COLUMNS, render_summary, summary_rows, summary_table
from scalelab.errors import RunFormatError
from scalelab.faults import matrix
from scalelab.faults.table import SHORT_COLUMNS, cell, render, run_rows
from scalelab.hosts.figure import CAPTION as HOSTS_CAPTION
from scalelab.hosts.figure import hosts_figure
from scalelab.plots import QUANTITIES, arm_colors, comparison_figure, quantity_figure, spread_figure
from scalelab.telemetry import Run, list_runs, load_run

__all__ = ["Report", "build_report", "latest_runs", "expand_run_dirs", "run_overview", "events_text", "scaling_events", "DEFAULT_OUT", "USABLE_STATUSES"]

DEFAULT_OUT = Path("reports") / "latest"
#: Runs that recorded something worth charting (a `running` run is still being written).
USABLE_STATUSES = ("completed", "interrupted")

#: What to point at on each chart (shown under it in the HTML page).
CAPTIONS: dict[str, str] = {
    "replicas": "Who reacted, and when? Solid lines are what the scaler asked for, dashed what was ready to serve: "
    "the gap between them is the cold start. Triangles are HPA decisions; dash-dot lines are the operator typing a command.",
    "cpu": "CPU used as % of the CPU limit of every running replica, ready or not (starting replicas burn CPU too). "
    "At 100% the replicas are saturated and requests queue. Dotted: what the HPA saw, one metrics window late; thin dashed: "
    "the HPA's target. The HPA counts in % of the CPU request; both are converted to this chart's denominator.",
    "rps": "Served against offered load (dashed). While served stays below offered, requests wait or time out; "
    "the burst after scaling is the queue draining.",
    "p95": "Latency of the slowest 5% (log scale). Every second above the black dashed objective is a second of unhappy users.",
    "errors": "Requests that failed or timed out. They start once requests have queued for the client's timeout, and last until "
    "the queue has drained: on compose that is well after the new replicas are ready.",
    "spread": "One row per replica, one column per 5 s, colour = requests it served per second. An even balancer gives even "
    "stripes; a load balancer that pins long-lived connections lights one row and leaves the new replicas dark (docs/spread.md). "
    "Recorded runs only: the simulator predicts the index, not each replica.",
    "cost": "Replica-seconds times the price. The manual arm keeps paying for its peak after the spike; the HPA gives it back.",
}


@dataclass(frozen=True)
class Report:
    out_dir: Path
    runs: tuple[Run, ...]
    figures: dict[str, Path]
    html: Path
    csv: Path
    table: pd.DataFrame
    text: str


def latest_runs(root: str | os.PathLike[str] = "runs") -> list[Path]:
    """The newest usable run of each arm under ``root``, all of one scenario; recorded runs win over simulated ones.

    The scenario and load profile are those of the newest run (recorded if any), so a lab-01
    steady-load run is never compared with a lab-03 spike. Newest = latest ``utc_start`` in the manifest.
    """
    usable: list[tuple[tuple[bool, str, str], str, str, Path]] = []
    order: dict[Path, int] = {}
    for path in list_runs(root):
        try:
            manifest = load_run(path).manifest
        except RunFormatError:
            continue
        if manifest.get("status") not in USABLE_STATUSES:
            continue
        rank = (manifest.get("platform") != "sim", str(manifest.get("utc_start") or ""), path.name)
        usable.append((rank, _story(path, manifest), str(manifest.get("arm", "")), path))
        order[path] = _lesson_rank(manifest)
    if not usable:
        raise RunFormatError(
            f"no completed run under {Path(root)}/",
            fix="record one (make lab02-spike, make lab03-spike), simulate every arm (make demo), or pass run directories",
            lab="04-compare-and-cost",
        )
    story = max(usable)[1]
    newest: dict[str, tuple[tuple[bool, str, str], Path]] = {}
    for rank, sc, arm, path in usable:
        if sc == story and (arm not in newest or rank > newest[arm][0]):
            newest[arm] = (rank, path)
    return [newest[arm][1] for arm in sorted(newest, key=lambda arm: (order[newest[arm][1]], arm))]


def _lesson_rank(m: dict) -> int:
    """Arms of a report in the lesson's order: compose, Swarm, Kubernetes (the registry's order)."""
    from scalelab.registry import platform_names
    from scalelab.telemetry.schema import platform_of

    platform = platform_of(m)
    names = platform_names()
    return names.index(platform) if platform in names else len(names)


def expand_run_dirs(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Run directories as given; a folder *of* runs (no ``manifest.json`` of its own, e.g.
    ``tests/fixtures/runs``) stands for the newest completed run of each arm in it (`latest_runs`)."""
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        out.extend([path] if (path / "manifest.json").is_file() or not path.is_dir() else latest_runs(path))
    return out


def _story(path: Path, manifest: dict) -> str:
    """Runs compare when they share a scenario name and a load profile (``scalelab load`` runs are steady)."""
    try:
        profile = load_run(path).scenario.load.profile
    except Exception:  # noqa: BLE001 - an old or partial run: compare by name only
        profile = "?"
    return f"{manifest.get('scenario', '')}/{profile}"


def scaling_events(run: Run) -> pd.DataFrame:
    """Who changed the replica count, when: operator scale actions and HPA decisions (``at`` is m:ss)."""
    ev = run.events
    picked = ev[ev["kind"].isin(("scale", "hpa_rescale"))].copy()
    picked.insert(0, "at", [f"{int(t) // 60}:{int(t) % 60:02d}" for t in picked["t_s"]])
    return picked[["at", "t_s", "kind", "replicas", "source", "detail"]].reset_index(drop=True)


def run_overview(run: Run) -> str:
    """A run in three lines (what a notebook shows first, instead of the whole manifest)."""
    m = run.manifest
    host = m.get("host") or {}
    where = "the simulator" if m.get("platform") == "sim" else f"{m.get('platform')} on {host.get('hostname', '?')} ({host.get('cpus', '?')} CPUs)"
    return (f"{m.get('scenario')} / {run.arm}: {m.get('status')}, {run.scenario.duration_s:.0f} s recorded by {where}, "
            f"CPU budget {m.get('cpu_budget')} cores, started {m.get('utc_start', '?')}\n"
            f"run directory: {run.path}\n"
            f"files: {', '.join(sorted(p.name for p in run.path.iterdir()))}")


def events_text(run: Run, *, width: int = 160) -> str:
    """`scaling_events` as plain text with every ``detail`` whole (a DataFrame cuts them at 50 characters)."""
    ev = scaling_events(run)
    lines = [f"{'at':>5}  {'kind':<11}  {'replicas':>8}  {'source':<11}  detail"]
    for _, row in ev.iterrows():
        replicas = "" if pd.isna(row["replicas"]) else f"{int(row['replicas'])}"
        lines.append(f"{row['at']:>5}  {row['kind']:<11}  {replicas:>8}  {str(row['source']):<11}  {row['detail']}")
    return "\n".join(lines) + "\n"


def build_report(runs: Sequence[Run], out_dir: str | os.PathLike[str] = DEFAULT_OUT, *, title: str | None = None) -> Report:
    """Write the charts, ``summary.csv`` and ``report.html`` of ``runs`` into ``out_dir``."""
    if not runs:
        raise RunFormatError("a report needs at least one run", fix="pass run directories, e.g. runs/<run-id>", lab="04-compare-and-cost")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures = {name: quantity_figure(runs, name, out / f"{name}.png") for name in QUANTITIES}
    figures["comparison"] = comparison_figure(runs, out / "comparison.png", title=title)
    spread = spread_figure(runs, out / "spread.png")
    if spread is not None:
        figures["spread"] = spread
    hosts = hosts_figure(runs, out / "hosts.png")
    if hosts is not None:
        figures["hosts"] = hosts
    table = summary_table(runs)
    csv = out / "summary.csv"
    table.to_csv(csv, index=False)
    heading = title or _heading(runs)
    warning = partial_runs_warning(runs)
    text = warning + render_summary(table, title=heading)
    disruptions = [row for r in runs for row in run_rows(r)]
    if disruptions:
        text += "\nFaults and rollouts (docs/faults.md, docs/rollouts.md):\n" + render(disruptions, list(SHORT_COLUMNS.values())) + "\n"
        text += "\n" + matrix.render_wide(matrix.cells(disruptions)) + "\n"
    page = out / "report.html"
    page.write_text(_html(runs, table, figures, heading + (f" — {warning.strip()}" if warning else ""), disruptions), encoding="utf-8")
    return Report(out, tuple(runs), figures, page, csv, table, text)


def partial_runs_warning(runs: Sequence[Run]) -> str:
    """A line naming every run that did not complete (an interrupted run covers only part of the story), or ""."""
    partial = []
    for r in runs:
        status = r.manifest.get("status")
        if status != "completed":
            last = int(r.samples["t_s"].max()) if len(r.samples) else 0
            partial.append(f"{r.label} is {status} (recorded to t={last} s of {float(r.manifest.get('duration_s') or 0):.0f} s)")
    return f"NOTE: not a like-for-like comparison: {'; '.join(partial)}\n" if partial else ""


def _heading(runs: Sequence[Run]) -> str:
    scenarios = sorted({str(r.manifest.get("scenario", "")) for r in runs})
    return f"{' + '.join(scenarios)}: " + " vs ".join(r.label for r in runs)


# --- the HTML page -----------------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; font-size: 22px; margin: 1.5em auto; max-width: 1400px;
       color: #111; background: #fff; padding: 0 1em; }
h1 { font-size: 40px; margin-bottom: 0.2em; } h2 { font-size: 32px; margin-top: 1.6em; border-bottom: 3px solid #ddd; }
p.meta { color: #444; font-size: 18px; }
table { border-collapse: collapse; font-size: 22px; margin: 0.8em 0; }
th, td { border: 1px solid #bbb; padding: 0.35em 0.7em; } th { background: #eee; }
td.num { text-align: right; font-variant-numeric: tabular-nums; } td.arm { font-weight: bold; white-space: nowrap; }
span.swatch { display: inline-block; width: 0.9em; height: 0.9em; margin-right: 0.4em; vertical-align: -0.1em; border-radius: 2px; }
figure { margin: 1em 0 2em 0; } figure img { width: 100%; height: auto; border: 1px solid #ddd; }
figcaption { font-size: 22px; margin-top: 0.4em; }
table.runs { font-size: 16px; } code { font-size: 0.9em; }
"""


def _html(runs: Sequence[Run], table: pd.DataFrame, figures: dict[str, Path], heading: str, disruptions: Sequence[dict] = ()) -> str:
    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>scalelab report: {e(heading)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{e(heading)}</h1>",
        f'<p class="meta">Generated {e(dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"))} by <code>scalelab report</code> '
        f"from {len(runs)} run director{'y' if len(runs) == 1 else 'ies'}. Latency objective: "
        f"{e(_objective(runs))} ms (p95).</p>",
        "<h2>Summary</h2>",
        _summary_html(table, arm_colors(runs)),
    ]
    if disruptions:
        parts += ["<h2>Faults and rollouts</h2>", _disruptions_html(disruptions), "<h3>Platform x disruption</h3>", matrix.matrix_html(matrix.cells(disruptions))]
    parts += [
        "<h2>Charts</h2>",
    ]
    for name, (chart_title, *_units) in QUANTITIES.items():
        parts.append(_figure_html(figures[name], chart_title, CAPTIONS[name]))
    parts.append(_figure_html(figures["comparison"], "Everything on one time axis", "The same six charts on one screen: read one moment across them."))
    if "spread" in figures:
        parts.append(_figure_html(figures["spread"], "Requests per replica", CAPTIONS["spread"]))
    if "hosts" in figures:
        parts.append(_figure_html(figures["hosts"], "Host A and Host B", HOSTS_CAPTION))
    parts += ["<h2>Runs</h2>", _runs_html(runs), "</body></html>"]
    return "\n".join(parts) + "\n"


def _objective(runs: Sequence[Run]) -> str:
    values = sorted({float(r.manifest.get("latency_objective_ms") or 0) for r in runs})
    return " / ".join(f"{v:.0f}" for v in values)


def _summary_html(table: pd.DataFrame, colors: Sequence[str]) -> str:
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for h in SUMMARY_COLUMNS.values())
    rows = []
    for i, cells in enumerate(summary_rows(table)):
        color = colors[i % len(colors)]
        first = f'<td class="arm"><span class="swatch" style="background:{color}"></span>{e(cells[0])}</td>'
        rows.append("<tr>" + first + "".join(f'<td class="num">{e(c)}</td>' for c in cells[1:]) + "</tr>")
    notes = (
        "<p><b>s over SLO</b>: seconds whose p95 latency was above the objective. <b>replica-h</b>: desired replicas summed over the run. "
        "<b>up after spike</b>: seconds from the spike start to the first added replica; <b>down after spike</b>: seconds from the spike end "
        "to the first removed one (<i>never</i>: nobody scaled). <b>scale actions</b>: how many times the desired replica "
        "count changed, whoever changed it (operator, home-made autoscaler, HPA).</p>"
    )
    return f'<table class="summary"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>{notes}'


def _disruptions_html(rows: Sequence[dict]) -> str:
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for h in SHORT_COLUMNS)
    body = "".join("<tr>" + "".join(f'<td class="{"arm" if k in ("arm", "kind") else "num"}">{e(cell(r.get(k)))}</td>' for k in SHORT_COLUMNS.values()) + "</tr>"
                   for r in rows)
    notes = ("<p>One row per fault the kit injected or rollout it ran, measured from the requests that completed after it "
             "(<code>python -m scalelab.faults RUN_DIR</code>). The charts shade each rollout window (hatched) and mark each fault (dotted). "
             "<b>first 2xx new</b>: the first answer by a replacement, or by the new version; <b>back to desired / rollout done</b>: "
             "ready replicas back to their count before a fault, or every replica on the new version and ready.</p>")
    return f'<table class="summary"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{notes}'


def _figure_html(path: Path, title: str, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    e = html.escape
    return f'<figure><img alt="{e(title)}" src="data:image/png;base64,{data}"><figcaption><b>{e(title)}.</b> {e(caption)}</figcaption></figure>'


def _runs_html(runs: Sequence[Run]) -> str:
    e = html.escape
    rows = []
    for r in runs:
        m = r.manifest
        host = m.get("host") or {}
        where = f"{host.get('hostname', '?')} ({host.get('cpus', '?')} CPUs)"
        cells = [r.label, m.get("run_id", r.path.name), m.get("platform", ""), m.get("status", ""), m.get("utc_start", ""), where,
                 m.get("cpu_budget", ""), m.get("git_revision", "")]
        rows.append("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in cells) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in ("arm", "run id", "platform", "status", "started (UTC)", "host", "CPU budget", "git"))
    return f'<table class="runs"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
