"""The HPA's scale-ups worked out by hand, from a run's own records (lab 03, notebook 03).

For each ``hpa_rescale`` event of a run: the replicas before (``n``), the utilisation the HPA
reported in that second (``u``, % of the CPU request, the ``hpa_util_pct`` column), its target
(``t``), the raw proposal ``ceil(n × u / t)``, what the scale-up policies allow in one period
(``selectPolicy: Max`` of "+value%" and "+value pods"), the min/max bounds, and the condition the
controller wrote at that moment (``ScaleUpLimit``, ``TooManyReplicas``, ``ScaleDownStabilized``…).

The by-hand figure is the textbook rule; the controller also leaves out pods that have no CPU
sample yet (for a scale-up it counts them at 0%), so when new pods are starting its own figure
can be lower than ``raw`` — the bounds and policies usually cap both. Reads only a run directory.
"""

from __future__ import annotations

import io
import math
from typing import Any

import pandas as pd

__all__ = ["decisions", "render_decisions", "scale_up_allowance", "EVENT_LAG_S"]

#: How long after the replica count changed its ``hpa_rescale`` Event may be recorded.
EVENT_LAG_S = 5.0


def scale_up_allowance(n: int, policies: Any, select: str = "Max") -> int | None:
    """Most replicas the scale-up policies allow from ``n`` in one period (None: no policies)."""
    if not policies:
        return None
    limits = [math.ceil(n * (1 + p.value / 100.0)) if p.type == "Percent" else n + int(p.value) for p in policies]
    return max(limits) if select == "Max" else min(limits)


def decisions(run: Any) -> pd.DataFrame:
    """One row per HPA decision of ``run`` (empty for runs without an HPA)."""
    ev = run.events
    s = run.samples.reset_index(drop=True)
    cols = ["at", "t_s", "from", "to", "util_pct", "target_pct", "raw", "policy_allows", "bounds", "condition"]
    if ev is None or len(ev) == 0:
        return pd.DataFrame(columns=cols)
    try:
        scaler = run.scenario.arm(run.arm)[1].scaler
    except Exception:  # noqa: BLE001 - a run whose scenario no longer names its arm
        return pd.DataFrame(columns=cols)
    if getattr(scaler, "type", "") != "hpa":
        return pd.DataFrame(columns=cols)
    up = scaler.behavior.scale_up if scaler.behavior and scaler.behavior.scale_up else None
    target = float(scaler.target_cpu_pct)
    desired = s["replicas_desired"].astype(int).to_numpy()
    t = s["t_s"].astype(float).to_numpy()
    util = pd.to_numeric(s["hpa_util_pct"], errors="coerce").to_numpy()
    conditions = ev[ev["kind"] == "hpa_condition"]
    rows = []
    for _, e in ev[ev["kind"] == "hpa_rescale"].dropna(subset=["replicas"]).iterrows():
        new = int(e["replicas"])
        te = float(e["t_s"])
        # The Event can reach the kit a second or two after the status changed (3 min into a kind run: 1.9 s),
        # so the change is looked for from one sync period (5 s) before it.
        changed = [i for i in range(1, len(t)) if t[i] >= te - EVENT_LAG_S and desired[i] == new and desired[i - 1] != new]
        if not changed:
            continue
        i = changed[0]
        n, u = int(desired[i - 1]), float(util[i])
        raw = math.ceil(n * u / target) if u == u else None
        allows = scale_up_allowance(n, up.policies, up.select_policy) if (up and new > n) else None
        near = conditions[(conditions["t_s"] >= min(te, float(t[i])) - 1.0) & (conditions["t_s"] <= te + 1.0)]
        reasons = [d.split(":")[0].split(" ", 1)[-1] for d in near["detail"].astype(str)
                   if not d.startswith(("AbleToScale=True SucceededRescale", "AbleToScale=True ReadyForNewScale"))]
        rows.append({
            "at": f"{int(t[i]) // 60}:{int(t[i]) % 60:02d}",
            "t_s": float(t[i]),
            "from": n,
            "to": new,
            "util_pct": u,
            "target_pct": target,
            "raw": raw,
            "policy_allows": allows,
            "bounds": f"{scaler.min_replicas}-{scaler.max_replicas}",
            "condition": ", ".join(reasons) or "-",
        })
    return pd.DataFrame(rows, columns=cols)


def render_decisions(run: Any, *, width: int = 120) -> str:
    """The decisions as a plain-text table with the arithmetic spelled out."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{run.label}: the HPA's decisions worked out by hand")
    for heading in ("at", "n", "u (% of request)", "ceil(n x u / t)", "policies allow", "min-max", "HPA set", "condition the HPA wrote"):
        table.add_column(heading, justify="left" if heading in ("at", "condition the HPA wrote") else "right")
    for _, r in decisions(run).iterrows():
        raw = "-" if r["raw"] is None or r["raw"] != r["raw"] else f"ceil({r['from']} x {r['util_pct']:.0f} / {r['target_pct']:.0f}) = {int(r['raw'])}"
        allows = "-" if r["policy_allows"] is None or r["policy_allows"] != r["policy_allows"] else f"{int(r['policy_allows'])}"
        table.add_row(r["at"], str(r["from"]), f"{r['util_pct']:.0f}", raw, allows, r["bounds"], str(r["to"]), r["condition"])
    buffer = io.StringIO()
    Console(file=buffer, width=width, color_system=None, force_terminal=False).print(table)
    return buffer.getvalue().rstrip() + "\n"
