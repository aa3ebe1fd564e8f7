"""The fix ladder: one rollout per rung, each rung one more mitigation, and the errors left at each.

Every rung is a `ci-rollout` arm plus ``--set`` overrides, nothing else: each mitigation is a
scenario field the kit validates and records in the run's manifest (``rollout``, ``front_door``,
``load_connections``). `RUNGS` is the ladder (labs/11-rolling-updates.md explains the order);
`rung_of` recognises a recorded run's rung from what its manifest says was set (never from the
folder's name), `ladder_table` measures a folder of runs (`scalelab.rollout.measure`) and
`ladder_figure` draws the errors left per rung, by class, beside the error window.

``python -m scalelab.rollout.ladder record [--platform P] [--runs-dir D] [-- RUN OPTIONS]`` runs the
rungs one after the other (``scalelab run``), then prints the ladder of D;
``python -m scalelab.rollout.ladder table DIR`` prints the ladder of the runs in DIR.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Rung", "RUNGS", "SCENARIO", "CLASSES", "rung_settings", "rung_of", "run_command", "ladder_rows", "ladder_table", "ladder_failures", "ladder_figure",
           "markdown_table", "main"]

SCENARIO = "ci-rollout"
#: the columns ``table`` prints
TABLE_COLUMNS = ("rung", "requests", "failed", "5xx", "refused", "reset", "timeout", "other", "error_window_s", "wall_s", "adds")
#: the failure classes the chart shows (scalelab.faults.measure.ERROR_CLASSES; "dropped" and "other" are summed into "other")
CLASSES = ("5xx", "refused", "reset", "timeout", "other")


@dataclass(frozen=True)
class Rung:
    key: str
    platform: str
    #: the ci-rollout arm the rung starts from
    arm: str
    #: what this rung adds to the one before (the first: what it starts from)
    adds: str
    #: the ``--set`` overrides on top of the arm (the whole rung, not a difference)
    sets: tuple[str, ...] = ()


def _k8s(*sets: str) -> tuple[str, ...]:
    return tuple(f"arms.kubernetes-rolling.{s}" if not s.startswith("load.") else s for s in sets)


def _compose(*sets: str) -> tuple[str, ...]:
    return tuple(f"arms.compose-double.{s}" for s in sets)


# Kubernetes: from kubernetes-rolling (maxSurge 1, maxUnavailable 0, readiness, preStop 3 s, grace 30 s,
# drain) with everything taken away, then given back one at a time. Grace 4 s until its own rung:
# the preStop sleep then leaves 1 s for the drain.
# Compose: the 2x trick (compose-double), whose old replicas are stopped while nginx may still send
# them requests (it re-resolves the service name once a second).
RUNGS: tuple[Rung, ...] = (
    Rung("k8s-0", "kubernetes", "kubernetes-rolling", "nothing: no readiness, no preStop, grace 4 s, the app exits on SIGTERM",
         _k8s("rollout.readiness=false", "rollout.pre_stop_s=0", "rollout.grace_s=4", "rollout.drain=false")),
    Rung("k8s-1", "kubernetes", "kubernetes-rolling", "+ readiness probe",
         _k8s("rollout.pre_stop_s=0", "rollout.grace_s=4", "rollout.drain=false")),
    Rung("k8s-2", "kubernetes", "kubernetes-rolling", "+ the app's SIGTERM drain",
         _k8s("rollout.pre_stop_s=0", "rollout.grace_s=4")),
    Rung("k8s-3", "kubernetes", "kubernetes-rolling", "+ preStop sleep 3 s",
         _k8s("rollout.grace_s=4")),
    Rung("k8s-4", "kubernetes", "kubernetes-rolling", "+ grace period 30 s"),
    Rung("k8s-5", "kubernetes", "kubernetes-rolling", "all of it, with kept-alive client connections", _k8s("load.connections=keep-alive")),
    Rung("compose-0", "compose", "compose-double", "2x then retire; no retry, the app exits on SIGTERM",
         _compose("lb.retry=false", "rollout.drain=false")),
    Rung("compose-1", "compose", "compose-double", "+ the app's SIGTERM drain", _compose("lb.retry=false")),
    Rung("compose-2", "compose", "compose-double", "+ nginx retries the next replica"),
)


def rung_settings(rung: Rung) -> dict[str, Any]:
    """What a run of ``rung`` records: the platform, the arm's ``rollout`` and front-door retry, the client connections."""
    from scalelab.lb.strategies import arm_front_door
    from scalelab.scenario import apply_overrides, load_scenario

    sc = apply_overrides(load_scenario(SCENARIO, sized=False), rung.sets)
    arm = sc.arms[rung.arm]
    door = arm_front_door(arm, rung.platform)
    return _signature(rung.platform, arm.rollout.model_dump(mode="json") if arm.rollout is not None else {},
                      door.get("retry", True) if door else None, sc.load.connections)


def _signature(platform: str, rollout: Mapping[str, Any], retry: bool | None, connections: str) -> dict[str, Any]:
    keys = ("readiness", "pre_stop_s", "grace_s", "drain", "max_surge", "max_unavailable", "strategy")
    return {"platform": platform, **{k: rollout.get(k) for k in keys}, "retry": retry, "connections": connections}


def rung_of(manifest: Mapping[str, Any]) -> Rung | None:
    """The rung whose settings a run's manifest records (None: not a rung of the ladder)."""
    if manifest.get("scenario") != SCENARIO or not isinstance(manifest.get("rollout"), dict):
        return None
    platform = str(manifest.get("platform", ""))
    door = manifest.get("front_door") or None
    got = _signature(platform, manifest["rollout"], door.get("retry", True) if door else None,
                     str((manifest.get("load_connections") or {}).get("connections", "")))
    return next((r for r in RUNGS if r.platform == platform and manifest.get("arm") == r.arm and rung_settings(r) == got), None)


def run_command(rung: Rung, runs_dir: str, extra: Sequence[str] = ()) -> list[str]:
    """``scalelab run`` of one rung."""
    argv = [sys.executable, "-m", "scalelab", "run", SCENARIO, "--arm", rung.arm, "--runs-dir", runs_dir]
    for s in rung.sets:
        argv += ["--set", s]
    return argv + list(extra)


def ladder_rows(run_dirs: Iterable[str | Path]) -> list[dict[str, Any]]:
    """One row per recorded rung (the newest run of each), in ladder order; runs that are no rung are skipped."""
    from scalelab.rollout.measure import rollout_impacts
    from scalelab.telemetry.store import load_run

    newest: dict[str, tuple[str, dict[str, Any]]] = {}
    for path in sorted(Path(p) for p in run_dirs):
        manifest_path = path / "manifest.json"
        if not manifest_path.is_file():
            continue
        rung = rung_of(json.loads(manifest_path.read_text(encoding="utf-8")))
        if rung is None:
            continue
        run = load_run(path)
        impacts = rollout_impacts(run.requests.to_dict("records"), run.events.to_dict("records"), run.samples.to_dict("records"),
                                  sample_offset_s=float(run.manifest.get("sample_offset_s", 0.4)))
        if not impacts:
            continue
        imp = impacts[0]
        by = dict(imp.by_class)
        row: dict[str, Any] = {"rung": rung.key, "platform": rung.platform, "adds": rung.adds, "requests": imp.requests, "failed": imp.failed}
        row.update({c: by.get(c, 0) for c in CLASSES if c != "other"})
        row["other"] = by.get("other", 0) + by.get("dropped", 0)
        row.update({"error_window_s": imp.error_window_s, "wall_s": imp.wall_s, "ok": imp.ok, "run": path.name})
        key = str(run.manifest.get("utc_start") or path.name)
        if rung.key not in newest or key >= newest[rung.key][0]:
            newest[rung.key] = (key, row)
    order = [r.key for r in RUNGS]
    return [newest[k][1] for k in order if k in newest]


def _run_dirs(folder: str | Path) -> list[Path]:
    root = Path(folder)
    if (root / "manifest.json").is_file():
        return [root]
    return sorted(p for p in root.iterdir() if (p / "manifest.json").is_file()) if root.is_dir() else []


def ladder_table(folder: str | Path) -> Any:
    """The ladder of the runs in ``folder`` as a pandas DataFrame (one row per rung)."""
    import pandas as pd

    from scalelab.errors import RunFormatError

    rows = ladder_rows(_run_dirs(folder))
    if not rows:
        raise RunFormatError(f"no rung of the fix ladder in {folder}", fix="record it with `make lab11-ladder` (docs/rollouts.md, the fix ladder)")
    return pd.DataFrame(rows)


def ladder_failures(folder: str | Path) -> Any:
    """Every failed request of every rung in ``folder`` (the run `ladder_table` uses), seconds after its rollout started."""
    import pandas as pd

    from scalelab.faults.measure import classify, parse_events, parse_requests
    from scalelab.telemetry.store import load_run

    table = ladder_table(folder)
    rows = []
    for rung, name in zip(table["rung"], table["run"]):
        run = load_run(Path(folder) / name if (Path(folder) / name).is_dir() else Path(folder))
        start = next(e.t for e in parse_events(run.events.to_dict("records")) if e.kind == "rollout_start")
        for r in parse_requests(run.requests.to_dict("records")):
            if not r.ok and r.t >= start:
                rows.append({"rung": rung, "after_start_s": round(r.t - start, 3), "class": classify(r.code, r.error), "status_code": r.code,
                             "response_ms": r.ms, "error": r.error[:80]})
    return pd.DataFrame(rows, columns=["rung", "after_start_s", "class", "status_code", "response_ms", "error"])


#: colours per class, the report's palette order (docs/style.md: one colour per meaning)
_COLOURS = {"5xx": "#d62728", "refused": "#ff7f0e", "reset": "#9467bd", "timeout": "#8c564b", "other": "#7f7f7f"}


def ladder_figure(table: Any, out: str | Path) -> Path:
    """Errors left per rung, stacked by class (left), and the error window per rung (right); a PNG at ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    labels = [f"{r.rung}\n{_wrap(r.adds)}" for r in table.itertuples()]
    y = list(range(len(labels)))[::-1]
    fig, (left, right) = plt.subplots(1, 2, figsize=(15, 1.1 * len(labels) + 2), sharey=True, gridspec_kw={"width_ratios": [3, 2]})
    base = [0.0] * len(labels)
    for cls in CLASSES:  # every class in the legend, also those no rung had: it was counted, and it was 0
        values = [float(v) for v in table[cls]]
        left.barh(y, values, left=base, color=_COLOURS[cls], label=cls if any(values) else f"{cls} (none)", height=0.6)
        base = [b + v for b, v in zip(base, values)]
    platforms = list(table["platform"])
    for i in range(1, len(platforms)):
        if platforms[i] != platforms[i - 1]:  # a line between the Kubernetes and the compose rungs
            for ax in (left, right):
                ax.axhline(y[i] + 0.5, color="black", linewidth=1.5)
    for yy, total in zip(y, table["failed"]):
        left.text(float(total) + 0.05, yy, str(int(total)), va="center", fontsize=16, fontweight="bold")
    left.set_yticks(y, labels, fontsize=13)
    left.set_xlabel("failed requests during the rollout", fontsize=15)
    left.set_xlim(0, max(2.0, max(float(v) for v in table["failed"]) * 1.25))
    left.legend(fontsize=13, loc="lower right", title="class", title_fontsize=13)
    left.tick_params(axis="x", labelsize=13)
    left.xaxis.set_major_locator(MaxNLocator(integer=True))
    windows = [float(v) for v in table["error_window_s"]]
    right.barh(y, windows, color="#1f77b4", height=0.6)
    for yy, w in zip(y, windows):
        right.text(w + 0.02, yy, f"{w:.2f} s", va="center", fontsize=15)
    right.set_xlabel("error window: first to last failure (s)", fontsize=15)
    right.set_xlim(0, max(1.0, max(windows) * 1.35))
    right.tick_params(axis="x", labelsize=13)
    for ax in (left, right):
        ax.grid(axis="x", alpha=0.3)
        ax.spines[["top", "right"]].set_visible(False)
    fig.suptitle("The fix ladder: what each mitigation leaves (ci-rollout, v1 -> v2 under load)", fontsize=18)
    fig.tight_layout()
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def _wrap(text: str, width: int = 34) -> str:
    words, lines, line = text.split(), [], ""
    for w in words:
        if line and len(line) + 1 + len(w) > width:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}".strip()
    return "\n".join([*lines, line])


def markdown_table(table: Any) -> str:
    """The ladder as the Markdown table of labs/11-rolling-updates.md."""
    head = "| rung | adds | requests | failed | 5xx | refused | reset | timeout | other | error window | rollout wall time |"
    lines = [head, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in table.to_dict("records"):
        wall = "-" if r["wall_s"] is None or r["wall_s"] != r["wall_s"] else f"{r['wall_s']:.2f} s"
        counts = " | ".join(str(int(r[c])) for c in CLASSES)
        lines.append(f"| {r['rung']} | {r['adds']} | {r['requests']} | {r['failed']} | {counts} | {r['error_window_s']:.2f} s | {wall} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    from scalelab._run import run
    from scalelab.errors import ScalelabError
    from scalelab.faults.table import render

    parser = argparse.ArgumentParser(prog="python -m scalelab.rollout.ladder", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    rec = sub.add_parser("record", help="run every rung (or --only some) with `scalelab run`")
    rec.add_argument("--platform", choices=("kubernetes", "compose"), help="only this platform's rungs")
    rec.add_argument("--only", default="", help="comma-separated rung keys (k8s-0,compose-1,...)")
    rec.add_argument("--runs-dir", default="runs")
    rec.add_argument("extra", nargs="*", help="after --: more `scalelab run` options (--kubeconfig, --context)")
    tab = sub.add_parser("table", help="the ladder of the runs in a folder")
    tab.add_argument("folder")
    tab.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "table":
            table = ladder_table(args.folder)
            print(markdown_table(table) if args.markdown else render(table.to_dict("records"), TABLE_COLUMNS))
            return 0
        only = {k.strip() for k in args.only.split(",") if k.strip()}
        unknown = only - {r.key for r in RUNGS}
        if unknown:
            print(f"ERROR: unknown rung {', '.join(sorted(unknown))}; the rungs are {', '.join(r.key for r in RUNGS)}", file=sys.stderr)
            return 2
        for rung in RUNGS:
            if (args.platform and rung.platform != args.platform) or (only and rung.key not in only):
                continue
            print(f"== {rung.key}: {rung.adds}", flush=True)
            run(run_command(rung, args.runs_dir, args.extra), check=True, capture=False, timeout_s=600)
        print(f"== the ladder of the runs in {args.runs_dir}", flush=True)
        print(render(ladder_table(args.runs_dir).to_dict("records"), TABLE_COLUMNS))
    except ScalelabError as exc:
        print(f"ERROR: {exc.render()}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
