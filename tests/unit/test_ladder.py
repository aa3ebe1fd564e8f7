"""The fix ladder (issue 14, item 4): the knobs each rung sets, the rungs, and the ladder of the committed runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scalelab.errors import RunFormatError, ScenarioError
from scalelab.lb.controller import FrontDoor
from scalelab.lb.strategies import front_door_conf, without_retry
from scalelab.platforms.compose_settings import ComposeSettings
from scalelab.platforms.k8s_manifests import render
from scalelab.rollout import ladder
from scalelab.scenario import apply_overrides, load_scenario

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "runs" / "ladder"
NGINX = (ROOT / "compose" / "nginx.conf").read_text(encoding="utf-8")


def _scenario(*sets: str):  # noqa: ANN202 - a sized Scenario
    return apply_overrides(load_scenario("ci-rollout", sized=False), list(sets)).sized(1.0)


# --- the knobs --------------------------------------------------------------------------------


def test_drain_off_reaches_the_agent_on_kubernetes_and_compose() -> None:
    off = _scenario("arms.kubernetes-rolling.rollout.drain=false")
    env = render(off, "kubernetes-rolling", "r1").deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "AGENT_DRAIN", "value": "0"} in env
    on = render(_scenario(), "kubernetes-rolling", "r1").deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    assert all(e["name"] != "AGENT_DRAIN" for e in on), "the default (drain) is the agent's own default"
    compose = ComposeSettings.for_scenario(_scenario("arms.compose-double.rollout.drain=false"), "r1", arm_name="compose-double", port=18080)
    assert compose.env()["SCALELAB_AGENT_DRAIN"] == "0"
    assert ComposeSettings.for_scenario(_scenario(), "r1", arm_name="compose-double", port=18080).env()["SCALELAB_AGENT_DRAIN"] == "1"
    assert "AGENT_DRAIN: ${SCALELAB_AGENT_DRAIN:-1}" in (ROOT / "compose" / "compose.yaml").read_text(encoding="utf-8")


def test_retry_off_gives_nginx_a_config_without_proxy_next_upstream(tmp_path: Path) -> None:
    settings = ComposeSettings.for_scenario(_scenario("arms.compose-double.lb.retry=false"), "r1", arm_name="compose-double", port=18080)
    assert settings.lb_retry is False
    assert settings.env()["SCALELAB_LB_CONF"] == "/etc/nginx/lb.d/nginx.conf"
    door = FrontDoor("random", tmp_path / "off", lambda: True, retry=False)
    door.prepare(NGINX, "ai-agent", 8000)
    conf = (tmp_path / "off" / "nginx.conf").read_text(encoding="utf-8")
    lines = [line.strip() for line in conf.splitlines()]
    assert lines[lines.index("proxy_pass $backend;") + 1].startswith("proxy_next_upstream off;")
    # the default: compose/nginx.conf as mounted (nginx's own retry on error and timeout), nothing written
    default = ComposeSettings.for_scenario(_scenario(), "r1", arm_name="compose-double", port=18080)
    assert default.env()["SCALELAB_LB_CONF"] == "/etc/nginx/nginx.conf"
    FrontDoor("random", tmp_path / "on", lambda: True).prepare(NGINX, "ai-agent", 8000)
    assert not (tmp_path / "on" / "nginx.conf").exists()
    # an upstream strategy without retry: the derived config, with the line after its proxy_pass
    FrontDoor("least-conn", tmp_path / "lc", lambda: True, retry=False).prepare(NGINX, "ai-agent", 8000)
    assert "proxy_pass http://agents;\n            proxy_next_upstream off;" in (tmp_path / "lc" / "nginx.conf").read_text(encoding="utf-8")
    assert "proxy_next_upstream" not in front_door_conf(NGINX)
    with pytest.raises(ValueError, match="no proxy_pass"):
        without_retry("http { }")


@pytest.mark.parametrize(("setting", "message"), [
    ("arms.swarm-stop-first.rollout.drain=false", "rollout.drain applies to platform compose and kubernetes only, not swarm"),
    ("arms.kubernetes-rolling.lb.retry=false", "the 'lb' section applies to platform: compose only"),
    ("arms.compose-double.rollout.drain=maybe", "arms.compose-double.rollout.drain': Input should be a valid boolean"),
    ("arms.compose-double.lb.retry=2", "arms.compose-double.lb.retry': Input should be a valid boolean"),
    ("arms.compose-double.rollout.pre_stop_s=3", "rollout.pre_stop_s applies to platform kubernetes only, not compose"),
])
def test_bad_ladder_settings_name_the_field(setting: str, message: str) -> None:
    with pytest.raises(ScenarioError) as info:
        _scenario(setting)
    assert message in info.value.render()


# --- the rungs --------------------------------------------------------------------------------


def test_each_rung_adds_exactly_one_thing_to_the_one_before() -> None:
    added = {"k8s-1": {"readiness"}, "k8s-2": {"drain"}, "k8s-3": {"pre_stop_s"}, "k8s-4": {"grace_s"}, "k8s-5": {"connections"},
             "compose-1": {"drain"}, "compose-2": {"retry"}}
    for before, after in zip(ladder.RUNGS, ladder.RUNGS[1:]):
        if before.platform != after.platform:
            continue
        a, b = ladder.rung_settings(before), ladder.rung_settings(after)
        assert {k for k in a if a[k] != b[k]} == added[after.key], after.key
    first = ladder.rung_settings(ladder.RUNGS[0])
    assert (first["readiness"], first["pre_stop_s"], first["drain"], first["max_unavailable"]) == (False, 0, False, 0)
    assert not next(r for r in ladder.RUNGS if r.key == "k8s-4").sets, "the top Kubernetes rung is the lab's careful arm as written"


def test_a_run_is_a_rung_by_what_its_manifest_recorded_not_by_its_name() -> None:
    rung = ladder.RUNGS[1]
    s = ladder.rung_settings(rung)
    manifest = {"scenario": "ci-rollout", "arm": rung.arm, "platform": "kubernetes", "front_door": None,
                "rollout": {k: s[k] for k in ("readiness", "pre_stop_s", "grace_s", "drain", "max_surge", "max_unavailable", "strategy")},
                "load_connections": {"connections": "per-request"}}
    assert ladder.rung_of(manifest) == rung
    assert ladder.rung_of({**manifest, "rollout": {**manifest["rollout"], "grace_s": 7}}) is None
    assert ladder.rung_of({**manifest, "rollout": None}) is None, "a run recorded before the manifest had its rollout"
    assert ladder.rung_of({**manifest, "scenario": "ci-faults"}) is None


def test_record_runs_scalelab_run_with_the_rung_s_settings() -> None:
    argv = ladder.run_command(ladder.RUNGS[0], "runs", ["--context", "scalelab-test"])
    assert argv[1:8] == ["-m", "scalelab", "run", "ci-rollout", "--arm", "kubernetes-rolling", "--runs-dir"]
    assert argv.count("--set") == len(ladder.RUNGS[0].sets) and argv[-2:] == ["--context", "scalelab-test"]
    assert ladder.main(["record", "--only", "k8s-9"]) == 2


# --- the committed ladder ---------------------------------------------------------------------


def test_every_rung_is_recorded_in_the_fixtures_once() -> None:
    runs = sorted(p for p in FIXTURES.iterdir() if p.is_dir())
    found = [ladder.rung_of(json.loads((p / "manifest.json").read_text())) for p in runs]
    assert sorted(r.key for r in found if r is not None) == sorted(r.key for r in ladder.RUNGS)
    for p in runs:
        m = json.loads((p / "manifest.json").read_text())
        assert m["status"] == "completed" and m["platform"] in ("compose", "kubernetes")


def test_the_ladder_of_the_committed_runs(tmp_path: Path) -> None:
    table = ladder.ladder_table(FIXTURES)
    assert list(table["rung"]) == [r.key for r in ladder.RUNGS]
    assert all(table["ok"]), "every recorded rollout ended"
    assert (table[list(ladder.CLASSES)].sum(axis=1) == table["failed"]).all()
    rows = table.set_index("rung")
    # the top rungs lose nothing, the bottom ones do (what the lab's table says)
    assert rows.loc["k8s-4", "failed"] == 0 and rows.loc["compose-2", "failed"] == 0
    assert rows.loc["k8s-0", "failed"] > 0 and rows.loc["compose-0", "failed"] > 0
    failures = ladder.ladder_failures(FIXTURES)
    assert failures.groupby("rung").size().to_dict() == {k: int(n) for k, n in rows["failed"].items() if n}
    assert (failures["after_start_s"] >= 0).all()
    png = ladder.ladder_figure(table, tmp_path / "ladder.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = ladder.markdown_table(table)
    assert md.count("\n") == len(table) + 1 and "| k8s-0 |" in md


def test_the_table_command(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert ladder.main(["table", str(FIXTURES), "--markdown"]) == 0
    assert "| compose-2 | + nginx retries the next replica |" in capsys.readouterr().out
    assert ladder.main(["table", str(tmp_path)]) == 1
    assert "no rung of the fix ladder" in capsys.readouterr().err
    with pytest.raises(RunFormatError, match="no rung of the fix ladder") as info:
        ladder.ladder_table(tmp_path)
    assert "make lab11-ladder" in info.value.render()
