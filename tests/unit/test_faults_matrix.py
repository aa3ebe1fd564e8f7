"""Issue 14's platform x disruption table, recomputed from the committed runs (tests/fixtures/runs/faults, .../rollouts)."""

from __future__ import annotations

from pathlib import Path

import pytest

from scalelab.faults import matrix
from scalelab.faults.matrix import Cell, cells, render_long, render_wide, table_cells

REPO = Path(__file__).resolve().parents[2]
FIXTURES = [REPO / p for p in matrix.FIXTURES]


@pytest.fixture(scope="module")
def table() -> dict[tuple[str, str], Cell]:
    cs = table_cells(FIXTURES)
    found = {(c.platform, c.what): c for c in cs}
    assert len(found) == len(cs), "one committed run per platform and disruption"
    return found


def test_every_committed_run_is_a_real_recording_of_the_shortened_scenarios() -> None:
    import json

    for path in matrix.run_dirs(FIXTURES):
        m = json.loads((path / "manifest.json").read_text())
        # the shortened scenarios: ci-faults, ci-rollout (and the node-loss runs' own ci- scenario)
        assert m["status"] == "completed" and str(m["scenario"]).startswith("ci-"), path.name
        assert m["platform"] in matrix.PLATFORMS and m.get("host"), path.name


def test_compose_does_not_bring_back_a_killed_replica_but_restarts_a_crashed_one(table) -> None:
    kill, crash = table["compose", "kill"], table["compose", "crash"]
    assert kill.dipped and kill.recovery_s is None and kill.recovery == "never"
    assert crash.recovery_s is not None and crash.recovery_s < 20


def test_swarm_replaces_killed_and_crashed_tasks_after_its_restart_delay(table) -> None:
    for kind in ("kill", "crash"):
        c = table["swarm", kind]
        assert c.recovery_s is not None and 5.0 <= c.recovery_s < 25, c  # restart_policy.delay 5 s, then warm-up and health


def test_a_hang_is_only_unhealthy_on_compose_replaced_on_swarm_restarted_on_kubernetes(table) -> None:
    compose, swarm, kube = table["compose", "hang"], table["swarm", "hang"], table["kubernetes", "hang"]
    assert compose.recovery == "never" and compose.failed > swarm.failed > kube.failed
    assert swarm.recovery_s is not None and kube.recovery_s is not None
    assert compose.error_window_s > 25 and kube.error_window_s < 5


def test_kubernetes_replaces_a_killed_pod_and_restarts_a_crashed_container_in_place(table) -> None:
    kill, crash = table["kubernetes", "kill"], table["kubernetes", "crash"]
    assert kill.recovery_s is not None and kill.recovery_s < 10 and kill.restarts == 0
    assert crash.recovery_s is not None and crash.restarts == 1


@pytest.mark.parametrize(("platform", "what", "failed"), [
    ("compose", "rollout: recreate", 2), ("compose", "rollout: double", 0), ("kubernetes", "rollout: rolling", 0), ("kubernetes", "rollout: naive", 2),
    ("swarm", "rollout: stop-first", 0), ("swarm", "rollout: start-first", 0),
])
def test_rollout_losses(table, platform: str, what: str, failed: int) -> None:
    assert table[platform, what].failed == failed


def test_the_table_renders_every_platform_and_leaves_room_for_node_loss(table) -> None:
    cs = list(table.values())
    wide = render_wide(cs)
    assert "node-loss" in wide.splitlines()[1]
    for p in {c.platform for c in cs}:
        assert any(line.startswith(p) for line in wide.splitlines())
    long = render_long(cs)
    assert len(long.splitlines()) == len(cs) + 1


def test_cells_order_and_recovery_words() -> None:
    rows = [
        {"platform": "kubernetes", "kind": "kill", "arm": "k", "requests": 10, "failed": 0, "ready_before": 2, "ready_min": 1, "to_desired_s": 6.4},
        {"platform": "compose", "kind": "rollout:recreate", "arm": "compose-recreate", "requests": 10, "failed": 2, "error_window_s": 0.5, "to_desired_s": 8.8},
        {"platform": "compose", "kind": "hang", "arm": "compose-fixed", "requests": 10, "failed": 5, "ready_before": 2, "ready_min": 1},
        {"platform": "compose", "kind": "kill", "arm": "compose-fixed", "requests": 10, "failed": 0, "ready_before": 2, "ready_min": 2},
    ]
    cs = cells(rows)
    assert [(c.platform, c.what) for c in cs] == [("compose", "kill"), ("compose", "hang"), ("compose", "rollout: recreate"), ("kubernetes", "kill")]
    assert [c.recovery for c in cs] == ["no dip", "never", "8.8 s", "6.4 s"]


def test_lab10_shows_the_table_as_make_faults_table_prints_it(capsys) -> None:
    assert matrix.main([str(p) for p in FIXTURES]) == 0
    printed = capsys.readouterr().out.strip()
    text = (REPO / "labs" / "10-self-healing.md").read_text(encoding="utf-8")
    assert printed in text, "lab 10 step 6 shows another table than `make faults-table` prints from the committed runs"


def test_the_recorded_crash_loops_show_each_platforms_restart_mechanism() -> None:
    """tests/fixtures/runs/crashloop: Kubernetes backs off (each restart later than the last), Swarm
    replaces after its fixed 5 s delay, Docker restarts the same container at once."""
    import re

    import pandas as pd

    runs = {p.name.split("-ci-crashloop-")[1].split("-")[0]: p for p in matrix.run_dirs([REPO / "tests/fixtures/runs/crashloop"])}
    assert set(runs) == {"kubernetes", "compose", "swarm"}
    ev = pd.read_csv(runs["kubernetes"] / "events.csv")
    downs = [float(m.group(1)) for d in ev[ev.kind == "replica_restart"].detail for m in [re.search(r"down ([0-9.]+) s", d)] if m]
    assert len(downs) == 3 and downs[0] <= 2 and downs[1] >= 10 and downs[2] >= 20 and downs[2] > downs[1]
    ev = pd.read_csv(runs["swarm"] / "events.csv")
    faults, starts = ev[ev.kind == "fault"].t_s.tolist(), ev[(ev.kind == "replica_start") & (ev.t_s > 5)].t_s.tolist()
    assert len(starts) == len(faults) == 2 and all(5 <= s - f < 8 for f, s in zip(faults, starts))
    ev = pd.read_csv(runs["compose"] / "events.csv")
    crashes = ev[ev.kind == "fault"].t_s.tolist()
    assert len(crashes) == 3 and all(((ev.kind == "replica_start") & (ev.t_s > f) & (ev.t_s < f + 3)).any() for f in crashes)


def test_a_lost_node_is_survived_by_swarm_and_kubernetes_but_not_by_compose_on_one_host(table) -> None:
    """Lab 09's node losses: compose's replicas all lived on the lost Host A (nothing reschedules them);
    Swarm and Kubernetes lose Host B and bring its replicas back on Host A."""
    compose, swarm, kube = table["compose", "node-loss"], table["swarm", "node-loss"], table["kubernetes", "node-loss"]
    assert compose.dipped and compose.recovery == "never" and compose.failed == compose.requests
    for c in (swarm, kube):
        assert c.recovery_s is not None and 10 < c.recovery_s < 60, c
        assert c.failed < c.requests / 4, c
