"""The front door's strategies: nginx text per strategy, resource-aware weights, the upstream controller, the scenario fields."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from scalelab.errors import ScenarioError
from scalelab.lb.controller import FrontDoor, Replica
from scalelab.lb.strategies import STRATEGIES, Member, arm_front_door, front_door_conf, initial_upstream, limit_weights, render_upstream
from scalelab.lb.weights import MeasuredWeights
from scalelab.platforms.compose import ComposePlatform
from scalelab.platforms.compose_settings import WEAK_SERVICE, ComposeSettings
from scalelab.scenario import load_scenario
from scalelab.telemetry.store import RunWriter

COMPOSE = Path(__file__).resolve().parents[2] / "compose"
UPSTREAM_STRATEGIES = [s for s in STRATEGIES if STRATEGIES[s].upstream]
MEMBERS = [Member("172.18.0.4:8000", 50, "c3 (0.125 CPU)"), Member("172.18.0.2:8000", 100, "a1 (0.25 CPU)"), Member("172.18.0.3:8000", 100, "b2 (0.25 CPU)")]


# --- nginx text --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "strategy,directive,weighted",
    [("round-robin", None, False), ("least-conn", "least_conn;", False), ("random-two", "random two least_conn;", False),
     ("weighted", None, True), ("resource-aware", None, True)],
)
def test_each_strategy_renders_its_upstream_block(strategy: str, directive: str | None, weighted: bool) -> None:
    text = render_upstream(strategy, MEMBERS)
    body = text[text.index("upstream agents {"):]
    servers = re.findall(r"server (\S+)( weight=\d+)? max_fails=1 fail_timeout=2s;", body)
    assert [s[0] for s in servers] == ["172.18.0.2:8000", "172.18.0.3:8000", "172.18.0.4:8000"]  # sorted: same set, same text
    assert all(bool(s[1]) == weighted for s in servers)
    balancing = [line.strip() for line in body.splitlines()[1:] if line.strip() and not line.strip().startswith(("server", "}"))]
    assert balancing == ([directive] if directive else [])
    assert render_upstream(strategy, list(reversed(MEMBERS))) == text


def test_an_empty_upstream_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one server"):
        render_upstream("least-conn", [])


def test_initial_block_names_the_service() -> None:
    assert "server ai-agent:8000 max_fails" in initial_upstream("least-conn", "ai-agent", 8000)


def test_front_door_conf_keeps_nginx_conf_but_the_backend() -> None:
    base = (COMPOSE / "nginx.conf").read_text()
    derived = front_door_conf(base)
    assert "proxy_pass http://agents;" in derived and "$backend" not in derived
    assert "include /etc/nginx/lb.d/upstream.conf;" in derived
    assert derived.index("include /etc/nginx/lb.d/upstream.conf;") > derived.index("http {")
    for kept in ("listen 8080;", "/lb-healthz", "proxy_connect_timeout 2s;", "X-Scalelab-Upstream", "pid /tmp/nginx.pid;"):
        assert kept in derived
    with pytest.raises(ValueError, match=r"set \$backend"):
        front_door_conf("http { server { location / { proxy_pass http://x; } } }")


def test_limit_weights_are_proportional_to_limits() -> None:
    assert limit_weights([0.25, 0.25, 0.125]) == [100, 100, 50]
    assert limit_weights([0.5]) == [100]
    assert limit_weights([0.001, 1.0]) == [1, 100]


# --- resource-aware weights --------------------------------------------------------------------


def _utilisation(weights: dict[str, int], limits: dict[str, float], rps: float, work_s: float) -> dict[str, float]:
    """What each replica would measure with shares proportional to ``weights`` (capped at 100%)."""
    total = sum(weights.values())
    return {k: min(100.0, 100.0 * rps * weights[k] / total * work_s / limits[k]) for k in limits}


def test_measured_weights_find_capacity_shares_from_cpu_alone() -> None:
    limits = {"a": 0.25, "b": 0.25, "weak": 0.125}
    mw = MeasuredWeights()
    weights = mw.update({}, limits)
    assert weights == {"a": 100, "b": 100, "weak": 100}  # no measurement yet: equal
    for _ in range(12):
        weights = mw.update(_utilisation(weights, limits, rps=8.75, work_s=0.05), limits)
    assert weights["a"] == weights["b"] == 100
    assert 40 <= weights["weak"] <= 60, weights  # capacity share: half of a full replica's
    util = _utilisation(weights, limits, 8.75, 0.05)
    assert max(util.values()) - min(util.values()) < 15


def test_measured_weights_hold_when_idle_and_ignore_small_noise() -> None:
    limits = {"a": 0.5, "b": 0.5}
    mw = MeasuredWeights()
    mw.update({}, limits)
    assert mw.update({"a": 2.0, "b": 8.0}, limits) == {"a": 100, "b": 100}  # under idle_pct: no signal
    assert mw.update({"a": 50.0, "b": 54.0}, limits) == {"a": 100, "b": 100}  # a few % apart: no republish
    moved = mw.update({"a": 90.0, "b": 30.0}, limits)
    assert moved["b"] == 100 and moved["a"] < 90


def test_measured_weights_bound_each_step_and_welcome_new_members() -> None:
    limits = {"a": 0.5, "b": 0.5}
    mw = MeasuredWeights()
    mw.update({}, limits)
    first = mw.update({"a": 100.0, "b": 1.0}, limits)
    assert first["b"] == 100 and first["a"] >= 25  # each weight moves at most x2 either way: the ratio at most x4
    grown = mw.update({}, {**limits, "c": 0.5})
    assert set(grown) == {"a", "b", "c"} and first["a"] <= grown["c"] <= 100
    assert set(mw.update({}, {"c": 0.5})) == {"c"}


# --- the controller ----------------------------------------------------------------------------


class Reloads:
    def __init__(self, answer: bool = True) -> None:
        self.count = 0
        self.answer = answer

    def __call__(self) -> bool:
        self.count += 1
        return self.answer


def _replicas(cores: tuple[float | None, ...] = (None, None, None)) -> list[Replica]:
    return [
        Replica("id-a", "a1", "172.18.0.2:8000", 0.25, cores[0]),
        Replica("id-b", "b2", "172.18.0.3:8000", 0.25, cores[1]),
        Replica("id-weak", "c3", "172.18.0.4:8000", 0.125, cores[2]),
    ]


def test_random_writes_no_upstream_and_never_reloads(tmp_path: Path) -> None:
    reloads = Reloads()
    door = FrontDoor("random", tmp_path / "lb.d", reloads)
    door.prepare((COMPOSE / "nginx.conf").read_text(), "ai-agent", 8000)
    assert (tmp_path / "lb.d").is_dir() and list((tmp_path / "lb.d").iterdir()) == []
    assert door.sync(_replicas()) == [] and reloads.count == 0


def test_sync_writes_the_block_and_reloads_only_on_change(tmp_path: Path) -> None:
    reloads = Reloads()
    door = FrontDoor("least-conn", tmp_path / "lb.d", reloads)
    door.prepare((COMPOSE / "nginx.conf").read_text(), "ai-agent", 8000)
    assert "proxy_pass http://agents;" in (tmp_path / "lb.d" / "nginx.conf").read_text()
    assert "server ai-agent:8000" in door.upstream_file.read_text()
    assert oct(door.upstream_file.stat().st_mode & 0o777) == "0o644" and oct((tmp_path / "lb.d").stat().st_mode & 0o777) == "0o755"

    (event,) = door.sync(_replicas())
    assert event["kind"] == "lb" and event["replicas"] == 3 and event["detail"] == "least-conn: nginx reloaded: a1 b2 c3"
    assert reloads.count == 1 and "least_conn;" in door.upstream_file.read_text()
    assert door.sync(list(reversed(_replicas()))) == [] and reloads.count == 1  # same set: nothing to do
    (event,) = door.sync(_replicas()[:2])  # one replica gone
    assert reloads.count == 2 and "172.18.0.4" not in door.upstream_file.read_text()
    assert door.sync([]) == [] and reloads.count == 2  # nothing running: keep the last block
    assert not [p for p in (tmp_path / "lb.d").iterdir() if p.name.startswith(".")]  # no temp file left


def test_a_block_written_by_another_process_is_rewritten(tmp_path: Path) -> None:
    reloads = Reloads(answer=False)
    door = FrontDoor("weighted", tmp_path, reloads)
    (event,) = door.sync(_replicas())
    assert "not reloaded" in event["detail"] and door.reloads == 0
    assert "a1=100 b2=100 c3=50" in event["detail"]
    door.upstream_file.write_text("upstream agents { server 10.0.0.9:8000; }\n")
    assert len(door.sync(_replicas())) == 1 and reloads.count == 2


def test_resource_aware_learns_every_update_s_from_measured_cpu(tmp_path: Path) -> None:
    now = [0.0]
    reloads = Reloads()
    door = FrontDoor("resource-aware", tmp_path, reloads, update_s=2.0, clock=lambda: now[0])
    (event,) = door.sync(_replicas((0.0, 0.0, 0.0)))
    assert "a1=100 b2=100 c3=100" in event["detail"]
    # round robin shares: the weak replica at its limit, the others at half theirs
    for t in (0.5, 1.0, 1.5):
        now[0] = t
        assert door.sync(_replicas((0.12, 0.12, 0.125))) == []  # before update_s: no change
    now[0] = 2.0
    (event,) = door.sync(_replicas((0.12, 0.12, 0.125)))
    weights = dict(re.findall(r"(\w+)=(\d+)", event["detail"]))
    assert weights["a1"] == weights["b2"] == "100" and int(weights["c3"]) < 90
    assert reloads.count == 2


# --- scenario fields, settings, manifest --------------------------------------------------------


def _scenario(tmp_path: Path, arm: dict) -> Path:
    data = {"name": "lb", "duration_s": 20, "load": {"profile": "steady", "baseline": 2}, "arms": {"x": {"scaler": {"type": "fixed"}, "replicas": 3, **arm}}}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    "arm,message",
    [
        ({"platform": "compose", "lb": {"strategy": "fastest"}}, r"field 'arms\.x\.lb\.strategy'.*unknown strategy 'fastest'; allowed: random, round-robin, least-conn"),
        ({"platform": "kubernetes", "lb": {"strategy": "least-conn"}}, r"'lb' section applies to platform: compose only.*remove it"),
        ({"platform": "swarm", "weak": {"replicas": 1}}, r"'weak' section applies to platform: compose only"),
        ({"platform": "compose", "weak": {"replicas": 3}}, r"weak\.replicas \(3\) must be less than replicas \(3\)"),
        ({"platform": "compose", "weak": {"cpu_factor": 1.5}}, r"field 'arms\.x\.weak\.cpu_factor'"),
        ({"platform": "compose", "lb": {"strategy": "least-conn", "colour": 1}}, r"field 'arms\.x\.lb\.colour': unknown field; allowed: retry, strategy, update_s"),
    ],
)
def test_bad_front_door_sections_name_the_field_and_the_fix(tmp_path: Path, arm: dict, message: str) -> None:
    with pytest.raises(ScenarioError) as info:
        load_scenario(str(_scenario(tmp_path, arm)))
    assert re.search(message, info.value.render(), re.DOTALL), info.value.render()


def test_compose_settings_carry_strategy_and_weak_replicas(tmp_path: Path) -> None:
    sc = load_scenario("unequal-replicas", cpu_budget=1.0)
    s = ComposeSettings.for_scenario(sc, "r1", arm_name="compose-least-conn")
    assert (s.lb_strategy, s.weak_replicas, s.cpus, s.weak_cpus) == ("least-conn", 1, 0.25, 0.125)
    assert s.cpu_limit_of(WEAK_SERVICE) == 0.125 and s.cpu_limit_of("ai-agent") == 0.25
    env_file = s.write(tmp_path)
    env = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
    assert env["SCALELAB_LB_CONF"] == "/etc/nginx/lb.d/nginx.conf" and env["SCALELAB_LB_DIR"] == str(tmp_path / "lb.d")
    assert (env["SCALELAB_WEAK_REPLICAS"], env["SCALELAB_WEAK_CPUS"]) == ("1", "0.125")
    assert ComposeSettings.read(tmp_path) == s
    plain = ComposeSettings.for_scenario(load_scenario("ci-spike", cpu_budget=1.0), "r2")
    assert plain.lb_strategy == "random" and plain.weak_replicas == 0 and plain.env()["SCALELAB_LB_CONF"] == "/etc/nginx/nginx.conf"
    assert ComposeSettings.for_scenario(sc, "r3").lb_strategy == "random"  # no arm named: the first compose arm


def test_scale_splits_replicas_between_the_services(tmp_path: Path) -> None:
    sc = load_scenario("unequal-replicas", cpu_budget=1.0)
    platform = ComposePlatform(ComposeSettings.for_scenario(sc, "r1", arm_name="compose-weighted"), state_root_dir=tmp_path)
    assert platform._scale_args(3) == ["--scale", "ai-agent=2", "--scale", "ai-agent-weak=1"]
    assert platform._scale_args(0) == ["--scale", "ai-agent=0", "--scale", "ai-agent-weak=0"]
    assert platform.front_door.strategy.name == "weighted" and platform.front_door.folder == tmp_path / "scalelab-r1" / "lb.d"


def test_the_manifest_records_the_front_door(tmp_path: Path) -> None:
    sc = load_scenario("unequal-replicas", cpu_budget=1.0)
    with RunWriter.create(tmp_path, scenario=sc, arm="compose-resource-aware", platform="compose") as w:
        run_dir = w.dir
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["front_door"] == {"strategy": "resource-aware", "weak": {"replicas": 1, "cpu_factor": 0.5}, "retry": True}
    assert arm_front_door(sc.arms["compose-random"], "sim") is None
    spike = load_scenario("ci-spike", cpu_budget=1.0)
    assert arm_front_door(spike.arms["compose-manual"], "compose") == {"strategy": "random", "weak": None, "retry": True}
    assert arm_front_door(spike.arms["kubernetes-hpa"], "kubernetes") is None


# --- the strategy table ---------------------------------------------------------------------------


def _fake_run(root: Path, arm: str, counts: dict[str, int], weak: str, errors: int) -> Path:
    """A completed run with ``counts`` answered requests per replica (each 100 ms, the weak one's 400 ms)."""
    from scalelab.telemetry.spread import replica_seconds

    sc = load_scenario("unequal-replicas", cpu_budget=1.0)
    with RunWriter.create(root, scenario=sc, arm=arm, platform="compose") as w:
        w.note(platform_info={"lb_strategy": sc.arms[arm].lb.strategy, "weak_replicas": [weak], "agent_cpu_limit_cores": 0.25, "weak_cpu_limit_cores": 0.125},
               drain_s=11.0)
        w.sample(t_s=1, phase="load", replicas_desired=3, replicas_ready=3)
        rows = [{"t_s": 1 + i * 0.01, "response_ms": 400.0 if name == weak else 100.0, "ok": 1, "status_code": 200, "replica": name, "error": ""}
                for name, n in counts.items() for i in range(n)]
        rows += [{"t_s": 5.0, "response_ms": 10000.0, "ok": 0, "status_code": 0, "replica": "", "error": "timeout"}] * errors
        w.requests(rows)
        w.replicas(replica_seconds(w.read_requests(), None))
        return w.dir


def test_strategy_rows_and_the_cli_table(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from scalelab.cli import cli
    from scalelab.lb.table import latest_per_arm, strategy_row
    from scalelab.telemetry import load_run

    rr = _fake_run(tmp_path, "compose-round-robin", {"a1": 100, "b2": 100, "c3": 100}, "c3", errors=7)
    lc = _fake_run(tmp_path, "compose-least-conn", {"a1": 160, "b2": 150, "c3": 90}, "c3", errors=0)
    row = strategy_row(load_run(rr))
    assert row["strategy"] == "round-robin" and row["requests"] == 307 and row["errors"] == 7 and row["replicas"] == 3
    assert row["weak_share"] == pytest.approx(107 / 307) and row["busiest_share"] == pytest.approx(107 / 307)  # the 7 timeouts were the weak one's
    assert row["capacity_share"] == pytest.approx(0.2) and row["weak_p95_ms"] == pytest.approx(400) and row["p95_ms"] == pytest.approx(400)
    row = strategy_row(load_run(lc))
    assert row["weak_share"] == pytest.approx(90 / 400) and row["busiest_share"] == pytest.approx(160 / 400)
    assert [r.arm for r in latest_per_arm(tmp_path, "unequal-replicas")] == ["compose-round-robin", "compose-least-conn"]

    result = CliRunner().invoke(cli, ["strategies", "--runs-dir", str(tmp_path)], terminal_width=120)
    assert result.exit_code == 0, result.output
    lines = [ln for ln in result.output.splitlines() if "round-robin" in ln or "least-conn" in ln]
    assert len(lines) == 2 and "0.35" in lines[0] and "0.20" in lines[0] and "0.23" in lines[1]
    one = CliRunner().invoke(cli, ["strategies", str(lc)], terminal_width=120)
    assert one.exit_code == 0 and "least-conn" in one.output and "round-robin" not in one.output


def test_lab07_shows_the_table_of_the_committed_runs() -> None:
    """Lab 07 quotes `scalelab strategies` on tests/fixtures/runs/lb as it prints today (issue 12's strategy table)."""
    from click.testing import CliRunner

    from scalelab.cli import cli

    root = Path(__file__).resolve().parents[2]
    result = CliRunner().invoke(cli, ["strategies", "--runs-dir", str(root / "tests" / "fixtures" / "runs" / "lb")], terminal_width=120)
    assert result.exit_code == 0, result.output
    printed = [" ".join(line.split()) for line in result.output.splitlines() if line.startswith("│")]
    lab = (root / "labs" / "07-load-balancing.md").read_text(encoding="utf-8")
    quoted = [" ".join(line.split()) for line in lab.splitlines() if line.startswith("│")]
    assert printed == quoted and len(printed) == 6
    rows = {r.split("│")[1].strip(): r for r in printed}
    for good in ("least-conn", "random-two", "weighted", "resource-aware"):  # no errors where the strategy sees the replicas
        assert rows[good].split("│")[3].strip() == "0"
    for blind in ("random", "round-robin"):
        assert int(rows[blind].split("│")[3].strip()) > 0
