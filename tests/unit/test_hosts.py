"""Hosts with their own capacity (issue 17): the scenario field, the host container's flags, cgroup
readings turned into cores, hosts.csv, and the node-loss fault. Hermetic: no Docker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from scalelab.errors import ScenarioError
from scalelab.faults.inject import FaultSchedule, check_supported
from scalelab.hosts import dind
from scalelab.hosts.meter import HostMeter
from scalelab.hosts.spec import HostSpec, format_memory, host_specs, parse_memory
from scalelab.platforms.compose_settings import ComposeSettings
from scalelab.runner import check_hosts
from scalelab.safety import compose_violations
from scalelab.scenario import Scenario, load_scenario
from scalelab.telemetry import schema
from scalelab.telemetry.store import RunWriter, load_run

CI_HOSTS = Path(__file__).resolve().parents[2] / "src" / "scalelab" / "scenarios" / "ci-hosts.yaml"


@pytest.mark.parametrize(("text", "nbytes"), [("1g", 2**30), ("1.5g", 3 * 2**29), ("512m", 2**29), ("2GiB", 2**31), ("1536M", 1536 * 2**20),
                                               (1024, 1024), ("300k", 300 * 1024)])
def test_memory_forms(text: Any, nbytes: int) -> None:
    assert parse_memory(text) == nbytes


@pytest.mark.parametrize("bad", ["lots", "1 gallon", "", "-1g", True, 1.5])
def test_memory_bad_forms(bad: Any) -> None:
    with pytest.raises(ValueError, match="like 1g"):
        parse_memory(bad)


def test_memory_round_trip() -> None:
    assert [format_memory(parse_memory(x)) for x in ("1g", "1536m", "1.5g", "300k")] == ["1g", "1536m", "1536m", "300k"]


def _scenario(**changes: Any) -> dict[str, Any]:
    data = yaml.safe_load(CI_HOSTS.read_text())
    data.update(changes)
    return data


def test_ci_hosts_parses_into_specs() -> None:
    scenario = load_scenario("ci-hosts", cpu_budget=1)
    assert host_specs(scenario) == [HostSpec("A", 0.8, 1536 * 2**20), HostSpec("B", 0.8, 1536 * 2**20)]
    assert host_specs(scenario)[0].memory == "1536m"
    # sized like the replicas' limits: the same story on a bigger budget
    assert [h.cpus for h in host_specs(load_scenario("ci-hosts", cpu_budget=0.5))] == [0.4, 0.4]


def test_no_hosts_is_todays_behaviour() -> None:
    assert host_specs(load_scenario("ci-spike", cpu_budget=1)) == []
    check_hosts(load_scenario("ci-spike", cpu_budget=1), "swarm")  # nothing to check


@pytest.mark.parametrize(
    ("hosts", "field", "words"),
    [
        ([{"name": "A", "cpus": 1, "memory": "1g"}, {"name": "a", "cpus": 1, "memory": "1g"}], "hosts", "two hosts are called 'a'"),
        ([{"name": "A", "cpus": 0, "memory": "1g"}], "hosts.0.cpus", "greater than 0"),
        ([{"name": "A", "cpus": 1, "memory": "much"}], "hosts.0.memory", "like 1g"),
        ([{"name": "A", "cpus": 1, "memory": "16m"}], "hosts.0.memory", "at least 256m"),
        ([{"name": "A B", "cpus": 1, "memory": "1g"}], "hosts.0.name", "pattern"),
        ([{"name": "A", "cpus": 1}], "hosts.0.memory", "required"),
    ],
)
def test_bad_hosts_name_the_file_and_field(hosts: list[dict[str, Any]], field: str, words: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(_scenario(hosts=hosts)))
    with pytest.raises(ScenarioError) as info:
        load_scenario(str(path))
    text = info.value.render()
    assert str(path) in text and f"field '{field}'" in text and words in text and "fix:" in text


def test_node_loss_needs_a_known_host(tmp_path: Path) -> None:
    for faults, words in (([{"at_s": 10, "kind": "node-loss"}], "needs host"),
                          ([{"at_s": 10, "kind": "node-loss", "host": "C"}], "hosts are: A, B"),
                          ([{"at_s": 10, "kind": "kill", "host": "A"}], "node-loss only")):
        path = tmp_path / "bad.yaml"
        path.write_text(yaml.safe_dump(_scenario(faults=faults)))
        with pytest.raises(ScenarioError, match=words):
            load_scenario(str(path))


def test_hosts_on_a_platform_without_them_fail_before_anything_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    from scalelab import runner
    from scalelab.registry import platform_spec

    scenario = load_scenario("ci-hosts", cpu_budget=1)
    for name in ("compose", "swarm", "kubernetes"):  # Kubernetes: on kind's workers (scalelab.platforms.kind_hosts)
        check_hosts(scenario, name)
    without = dataclasses.replace(platform_spec("kubernetes"), runs_on_hosts=False)
    monkeypatch.setattr(runner, "platform_spec", lambda name: without)
    with pytest.raises(ScenarioError, match="does not run on the kit's hosts yet") as info:
        check_hosts(scenario, "kubernetes")
    assert "compose" in info.value.fix


def test_host_container_flags_without_privileged() -> None:
    spec = HostSpec("A", 0.8, 1536 * 2**20)
    argv = dind.run_argv(spec, owner="run-1", image="img:1", volume="vol", sockets=Path("/c/hosts/x/a"), publish=[8080], mounts=[Path("/repo/compose")])
    text = " ".join(argv)
    assert "--privileged" not in argv
    assert "--cap-add ALL --cap-drop SYS_RESOURCE" in text and "--device-cgroup-rule a *:* rwm" in text
    assert "--cpus 0.8 --memory 1536m --memory-swap 1536m" in text
    assert "--publish 127.0.0.1:8080:8080" in text and "/repo/compose:/repo/compose:ro" in text
    assert "/sys/fs/cgroup:/sys/fs/cgroup:rw" in text and f"/c/hosts/x/a:{dind.SOCKET_DIR_IN_HOST}" in text
    assert f"{dind.ROLE_LABEL}=host" in text and f"{dind.OWNER_LABEL}=run-1" in text and f"{dind.NAME_LABEL}=A" in text
    assert argv[-1] == "img:1"
    v2 = dind.run_argv(spec, owner="run-1", image="img:1", volume="vol", sockets=Path("/s"), cgroup_v2=True)
    assert "--cgroupns" in v2 and "/sys/fs/cgroup:/sys/fs/cgroup:rw" not in " ".join(v2)


def test_init_script_nests_the_inner_containers_under_the_host() -> None:
    assert "--cgroup-parent" in dind.INIT_SCRIPT and "scalelab-inner" in dind.INIT_SCRIPT
    assert f"unix://{dind.SOCKET_DIR_IN_HOST}/{dind.SOCKET_NAME}" in dind.INIT_SCRIPT
    assert "tcp://" not in dind.INIT_SCRIPT  # the inner daemon listens on no TCP port
    assert dind.HOST_IMAGE.startswith("scalelab-host:bookworm-")


def test_names_and_socket_paths_are_short_and_per_owner(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SCALELAB_CACHE", str(tmp_path))
    owner = "20261205-023000-ci-hosts-compose-fixed-1a2b"
    assert dind.container_name(owner, "A") == f"scalelab-host-{dind.owner_key(owner)}-a"
    assert dind.container_name(owner, "A") != dind.container_name(owner + "x", "A")
    assert dind.socket_dir(owner, "A").is_relative_to(tmp_path)
    monkeypatch.setenv("SCALELAB_CACHE", "/" + "d" * 90)
    from scalelab.errors import PreflightError

    with pytest.raises(PreflightError, match="too deep"):
        dind.check_specs([HostSpec("A", 0.5, 2**30)])


V1 = """9:name=systemd:/docker/abc
4:memory:/docker/abc
2:cpuacct:/docker/abc
1:cpu:/docker/abc
0::/docker/abc
"""


def test_cgroup_files_v1_and_v2(tmp_path: Path) -> None:
    cpu, mem, stat = dind.cgroup_files(V1, tmp_path)
    assert cpu == tmp_path / "cpuacct/docker/abc/cpuacct.usage"
    assert mem == tmp_path / "memory/docker/abc/memory.usage_in_bytes" and stat == tmp_path / "memory/docker/abc/memory.stat"
    cpu2, mem2, _ = dind.cgroup_files("0::/system.slice/docker-abc.scope\n", tmp_path)
    assert cpu2 == tmp_path / "system.slice/docker-abc.scope/cpu.stat" and mem2.name == "memory.current"


def test_read_usage_v1_and_v2(tmp_path: Path) -> None:
    (tmp_path / "cpuacct.usage").write_text("2500000000\n")
    (tmp_path / "memory.usage_in_bytes").write_text("1000\n")
    (tmp_path / "memory.stat").write_text("cache 500\ntotal_inactive_file 300\n")
    assert dind.read_usage(tmp_path / "cpuacct.usage", tmp_path / "memory.usage_in_bytes", tmp_path / "memory.stat") == (2.5, 700)
    (tmp_path / "cpu.stat").write_text("usage_usec 1500000\nuser_usec 1\n")
    (tmp_path / "memory.current").write_text("4096\n")
    (tmp_path / "v2.stat").write_text("inactive_file 96\n")
    assert dind.read_usage(tmp_path / "cpu.stat", tmp_path / "memory.current", tmp_path / "v2.stat") == (1.5, 4000)


class _Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_meter_turns_cpu_seconds_into_cores() -> None:
    readings: dict[str, tuple[float, int] | None] = {"A": (10.0, 500), "B": (1.0, 100)}
    clock = _Clock()
    meter = HostMeter([HostSpec("A", 0.8, 2**30), HostSpec("B", 0.8, 2**30)], usage=lambda h: readings[h.name], clock=clock)
    first = meter.rows({"A": 10})
    assert [r["cpu_cores"] for r in first] == [None, None] and first[0]["replicas"] == 10 and first[1]["replicas"] == 0
    clock.t += 1.0
    readings.update(A=(10.78, 600), B=(1.01, 100))
    rows = meter.rows({"A": 10})
    assert rows[0]["cpu_cores"] == pytest.approx(0.78) and rows[1]["cpu_cores"] == pytest.approx(0.01)
    assert rows[0] == {"host": "A", "up": 1, "replicas": 10, "cpu_cores": pytest.approx(0.78), "cpu_limit_cores": 0.8, "mem_bytes": 600}
    readings["B"] = None  # stopped: lost
    clock.t += 1.0
    lost = meter.rows({"A": 10})[1]
    assert (lost["up"], lost["cpu_cores"], lost["mem_bytes"], lost["replicas"]) == (0, None, None, 0)


def test_hosts_csv_round_trip(tmp_path: Path) -> None:
    scenario = load_scenario("ci-hosts", cpu_budget=1)
    with RunWriter.create(tmp_path, scenario=scenario, arm="compose-fixed", platform="compose") as writer:
        writer.sample(t_s=1, phase="load", replicas_desired=10, replicas_ready=10)
        writer.hosts([{"t_s": 1, "host": "A", "up": 1, "replicas": 10, "cpu_cores": 0.79, "cpu_limit_cores": 0.8, "mem_bytes": 5 * 2**20},
                      {"t_s": 1, "host": "B", "up": 1, "replicas": 0, "cpu_cores": 0.01, "cpu_limit_cores": 0.8, "mem_bytes": 2**20}])
        assert list(writer.read_hosts()["host"]) == ["A", "B"]
    run = load_run(writer.dir)
    assert list(run.hosts.columns) == list(schema.HOST_COLUMNS)
    assert run.hosts.set_index("host").loc["A", "cpu_cores"] == pytest.approx(0.79)
    assert load_run(writer.dir).hosts is not None
    assert run.scenario.hosts[0].name == "A"


class _Platform:
    name = "compose"

    def __init__(self) -> None:
        self.stopped: list[str] = []

    def stop_host(self, name: str) -> str:
        self.stopped.append(name)
        return f"docker stop host-{name}"


def test_node_loss_stops_the_named_host() -> None:
    scenario = Scenario.model_validate(_scenario(faults=[{"at_s": 10, "kind": "node-loss", "host": "B"}]))
    platform = _Platform()
    schedule = FaultSchedule(scenario.faults, platform, scenario.seed)
    schedule.check("ci-hosts")
    done = schedule.fire_next()
    assert platform.stopped == ["B"] and done.detail() == "node-loss host=B docker stop host-B"
    for name in ("compose", "swarm", "kubernetes"):  # Kubernetes: on kind, the worker's node container
        check_supported(name, ["node-loss"])
    with pytest.raises(ScenarioError, match="cannot be injected on toy") as info:
        check_supported("toy", ["node-loss"])
    assert "node-loss: compose, swarm, kubernetes" in info.value.fix


def test_front_door_binds_loopback_unless_on_a_host() -> None:
    assert ComposeSettings(project="p", run_id="r").env()["SCALELAB_LB_BIND"] == "127.0.0.1"
    on_host = ComposeSettings(project="p", run_id="r", docker_host="unix:///x/docker.sock", lb_bind="172.20.0.2")
    assert on_host.env()["SCALELAB_LB_BIND"] == "172.20.0.2"
    lb = {"image": "x", "ports": ["${SCALELAB_LB_BIND:-0.0.0.0}:8080:8080"]}
    assert any("127.0.0.1 only" in v for v in compose_violations("lb", lb))


def _hosts_run(tmp_path: Path, stop_b_at: int | None = None) -> Any:
    scenario = load_scenario("ci-hosts", cpu_budget=1)
    with RunWriter.create(tmp_path, scenario=scenario, arm="compose-fixed", platform="compose") as writer:
        for k in range(1, 41):
            writer.sample(t_s=k, phase="load", replicas_desired=10, replicas_ready=10)
            b_up = stop_b_at is None or k < stop_b_at
            writer.hosts([{"t_s": k, "host": "A", "up": 1, "replicas": 10, "cpu_cores": 0.78, "cpu_limit_cores": 0.8, "mem_bytes": 600 * 2**20},
                          {"t_s": k, "host": "B", "up": int(b_up), "replicas": 0, "cpu_cores": 0.01 if b_up else None, "cpu_limit_cores": 0.8,
                           "mem_bytes": 90 * 2**20 if b_up else None}])
        if stop_b_at is not None:
            writer.event(float(stop_b_at), "fault", source="kit", detail="node-loss host=B docker stop scalelab-host-x-b (host B lost)")
    return load_run(writer.dir)


def test_host_chart_is_readable_from_the_back_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from scalelab import figstyle
    from scalelab.hosts.figure import host_stops, host_table, hosts_figure

    run = _hosts_run(tmp_path / "runs", stop_b_at=30)
    assert host_stops(run) == [(30.0, "B")]
    table = host_table(run).set_index("host")
    assert table.loc["A", "cpu_pct_mean"] == pytest.approx(97.5) and table.loc["A", "replicas_max"] == 10
    assert table.loc["B", "seconds_up"] == 29 and table.loc["B", "cpu_pct_max"] == pytest.approx(1.2)
    seen: list[Any] = []
    real = figstyle.save_figure

    def spy(fig: Any, path: Any) -> Path:
        fig.canvas.draw()
        seen.append((figstyle.text_px_at_1080p(fig), tuple(fig.get_size_inches() * figstyle.DPI), [t.get_text() for t in fig.texts]))
        return real(fig, path)

    monkeypatch.setattr(figstyle, "save_figure", spy)
    assert hosts_figure([run], tmp_path / "hosts.png") is not None and (tmp_path / "hosts.png").stat().st_size > 10_000
    (px, text), size, _ = seen[0]
    assert px >= figstyle.MIN_TEXT_PX, f"'{text}' is {px:.1f} px at 1080p"
    assert size == pytest.approx((1920, 1080))


def test_no_host_chart_without_hosts_csv(tmp_path: Path) -> None:
    from scalelab.hosts.figure import hosts_figure

    scenario = load_scenario("ci-spike", cpu_budget=1)
    with RunWriter.create(tmp_path / "runs", scenario=scenario, arm="compose-manual", platform="compose") as writer:
        writer.sample(t_s=1, phase="load", replicas_desired=2, replicas_ready=2)
    assert hosts_figure([load_run(writer.dir)], tmp_path / "hosts.png") is None and not (tmp_path / "hosts.png").exists()


def test_report_has_the_host_chart(tmp_path: Path) -> None:
    from scalelab.report import build_report

    report = build_report([_hosts_run(tmp_path / "runs")], tmp_path / "out")
    assert "hosts" in report.figures and "Host A and Host B" in report.html.read_text()


def test_hosts_table_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from scalelab.hosts.__main__ import main

    run = _hosts_run(tmp_path / "runs", stop_b_at=30)
    assert main([str(run.path)]) == 0
    out = capsys.readouterr().out
    assert "CPU % of cap" in out and "30 s" in out
    a_line = next(line for line in out.splitlines() if line.strip().startswith("A "))
    assert a_line.split()[1:6] == ["0.8", "40", "98", "98", "10"]
    assert main([str(tmp_path / "nowhere")]) == 1


class _LostHostA:
    """ComposeHosts after Host A was lost (no Docker behind it)."""

    docker_host = "unix:///nowhere/docker.sock"
    first = HostSpec("A", 0.8, 2**30)

    def first_up(self) -> bool:
        return False

    def rows(self, replicas_on_first: int) -> list[dict[str, Any]]:
        return [{"host": "A", "up": 0, "replicas": replicas_on_first, "cpu_cores": None, "cpu_limit_cores": 0.8, "mem_bytes": None}]


def test_compose_keeps_observing_after_host_a_is_lost(tmp_path: Path) -> None:
    from scalelab.platforms.compose import ComposePlatform

    platform = ComposePlatform(ComposeSettings(project="scalelab-t", run_id="t"), state_root_dir=tmp_path, hosts=_LostHostA())  # type: ignore[arg-type]
    assert platform.settings.docker_host == _LostHostA.docker_host and platform.docker_env == {"DOCKER_HOST": _LostHostA.docker_host}
    platform._seen_running = {"c1": "r1", "c2": "r2"}
    platform.desired = 2

    def no_daemon(**_kw: Any) -> Any:
        raise AssertionError("asked Host A's daemon after it was lost")

    platform._containers = no_daemon  # type: ignore[method-assign]
    obs = platform.observe()
    assert (obs.replicas_desired, obs.replicas_ready, obs.cpu_cores_used) == (2, 0, 0.0)
    assert [e["kind"] for e in obs.events] == ["replica_stop", "replica_stop"]
    assert obs.hosts[0]["up"] == 0 and obs.hosts[0]["replicas"] == 0
    platform.scale(5)  # the request is recorded; no daemon is asked
    assert platform.desired == 5


def test_a_project_on_host_a_is_found_for_live_scaling(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from scalelab.platforms import compose

    monkeypatch.setenv("SCALELAB_CACHE", str(tmp_path))
    sock = tmp_path / "hosts" / "k" / "a" / "docker.sock"
    sock.parent.mkdir(parents=True)
    sock.write_text("")  # stands for the inner daemon's socket while Host A runs
    on_host = ComposeSettings(project="scalelab-run-1", run_id="run-1", docker_host=f"unix://{sock}", lb_bind="172.20.0.2")
    on_host.write(compose.state_root() / on_host.project)
    gone = ComposeSettings(project="scalelab-run-2", run_id="run-2", docker_host=f"unix://{tmp_path}/nowhere.sock")
    gone.write(compose.state_root() / gone.project)
    plain = ComposeSettings(project="scalelab-run-3", run_id="run-3")
    plain.write(compose.state_root() / plain.project)
    found = compose._projects_on_hosts()
    assert list(found) == ["scalelab-run-1"] and found["scalelab-run-1"] == on_host  # settings (lb_bind too) survive the round trip
