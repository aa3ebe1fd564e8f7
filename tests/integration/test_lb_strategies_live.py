"""Each front-door strategy on real compose with unequal replicas: how it spreads a steady burst.

`scalelab run ci-unequal --arm compose-<strategy>`: three agents behind the kit's real nginx,
one of them with half the CPU limit (0.25, 0.25, 0.125 cores at the 1-core CI budget), 20 s of
open-loop load at 70% of their total capacity from real Locust, to 127.0.0.1 only. The shares
come from the per-replica spread the run records (replicas.csv), the weak replica's name from
the manifest. By capacity the weak replica's fair share is 0.2; an even spread gives it 1/3.

Each share counts what a replica was *given*: the requests it answered, and for the weak one
also the requests that timed out (5 s). Only the weak replica ever queues that long here: the
others answer within half a second even under round robin (recorded: p50 ~90 ms, max 375 ms,
against the weak one's 3.3 s mean), so a timeout is a request the front door gave the weak one.

Bounds (about 340 requests a run; a share's binomial noise is ~0.025):
- round-robin: nginx gives every third request to the weak one: its share 0.29-0.38; the
  weak one's p95 at least 3x the others'.
- weighted (100, 100, 50 from the limits): exactly 1 in 5: weak 0.14-0.26, busiest 0.36-0.46.
- least-conn, random-two: the weak replica holds its requests twice as long, so it is picked
  less: weak at most 0.29 (round robin's third minus its noise), busiest at least 0.35.
- resource-aware: starts with equal weights and moves them from measured CPU each second; over
  20 s the weak share ends below round robin's (at most 0.29), at least one weight change is
  reloaded into nginx, and no request fails across those reloads.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from livekit import free_port
from test_compose_arm import _run_cli, containers_of

from scalelab.lb.table import strategy_row
from scalelab.telemetry import load_run

pytestmark = pytest.mark.docker

#: strategy -> (weak share low, high, busiest share low, high)
BOUNDS = {
    "round-robin": (0.29, 0.38, 0.0, 0.38),
    "weighted": (0.14, 0.26, 0.36, 0.46),
    "least-conn": (0.0, 0.29, 0.35, 1.0),
    "random-two": (0.0, 0.29, 0.35, 1.0),
    "resource-aware": (0.0, 0.29, 0.35, 1.0),
}


@pytest.mark.parametrize("strategy", list(BOUNDS))
def test_strategy_spreads_a_burst_over_unequal_replicas(strategy: str, scalelab_images: str, tmp_path: Path) -> None:
    arm = f"compose-{strategy}"
    started = time.monotonic()
    proc = _run_cli(["run", "ci-unequal", "--arm", arm, "--cpu-budget", "1", "--runs-dir", str(tmp_path)], free_port())
    out, _ = proc.communicate(timeout=180)
    print(out[-2500:])
    assert proc.returncode == 0, out[-3000:]
    took = time.monotonic() - started

    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    run = load_run(run_dir)
    m, info = run.manifest, run.manifest["platform_info"]
    assert m["status"] == "completed" and m["front_door"] == {"strategy": strategy, "weak": {"replicas": 1, "cpu_factor": 0.5}, "retry": True}
    assert info["lb_strategy"] == strategy and info["agent_cpu_limit_cores"] == 0.25 and info["weak_cpu_limit_cores"] == 0.125
    assert len(info["weak_replicas"]) == 1

    row = strategy_row(run)
    lb = run.events[run.events.kind == "lb"]
    print(f"{strategy}: {took:.0f} s, {row['requests']} requests, {row['errors']} errors, p95 {row['p95_ms']:.0f} ms, "
          f"weak share {row['weak_share']:.3f}, busiest {row['busiest_share']:.3f} (given), {len(lb)} lb events")
    print(lb[["t_s", "detail"]].to_string())
    assert row["replicas"] == 3 and row["requests"] > 250
    (weak,) = info["weak_replicas"]
    weak_share, busiest = row["weak_share"], row["busiest_share"]  # shares of what each was given (timeouts: the weak one's)
    weak_lo, weak_hi, busy_lo, busy_hi = BOUNDS[strategy]
    assert weak_lo <= weak_share <= weak_hi, row
    assert busy_lo <= busiest <= busy_hi, row
    if strategy == "round-robin":
        ok = run.requests[run.requests.ok == 1]
        p95 = ok.groupby("replica").response_ms.quantile(0.95)
        assert p95[weak] >= 3 * p95.drop(weak).max(), p95.to_dict()

    # The kit listed the three replicas in nginx's upstream block before the load, and reloaded it.
    assert len(lb) >= 1 and lb.detail.str.contains("nginx reloaded").all()
    assert lb.replicas.iloc[0] == 3 and lb.t_s.iloc[0] <= 0.5
    if strategy == "weighted":
        assert lb.detail.str.contains("=100 .*=50|=50 .*=100", regex=True).iloc[0]
    if strategy == "resource-aware":
        assert len(lb) >= 2, "the measured weights never changed"
        assert row["errors"] == 0, "a graceful reload must not drop requests"

    assert containers_of(scalelab_images, info["compose_project"]) == []
