"""The compose arm on the real engine: real compose, real nginx, real Locust, real `scalelab run`.

Traffic goes only to 127.0.0.1 (nginx's published port); loads are bounded by the scenario.
Every test removes what it started; the last checks assert nothing scalelab-labelled is left.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from livekit import free_port

from scalelab.errors import PreflightError
from scalelab.platforms.compose import ComposePlatform, ComposeSettings, running_projects
from scalelab.platforms.compose_settings import PROJECT_LABEL
from scalelab.scenario import load_scenario
from scalelab.telemetry import load_run, schema

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]
SCALELAB = [sys.executable, "-m", "scalelab"]


def wait_for_samples(runs_dir: Path, rows: int, proc: subprocess.Popen[str] | None = None, timeout_s: float = 150) -> Path:
    """The samples.csv of the one run being recorded under ``runs_dir``, once it has more than ``rows`` rows."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and (proc is None or proc.poll() is None):
        found = list(runs_dir.glob(f"*/{schema.SAMPLES}"))
        if found and len(found[0].read_text().splitlines()) > rows:
            return found[0]
        time.sleep(0.5)
    raise AssertionError(f"the run did not record {rows} samples in {timeout_s:g} s")


def live_scale_compose(run_dir: Path, replicas: int) -> str:
    """`scalelab scale compose N --project P` from another terminal, during the run in ``run_dir``; returns P."""
    project = str(json.loads((run_dir / schema.MANIFEST).read_text())["platform_info"]["compose_project"])
    live = subprocess.run([*SCALELAB, "scale", "compose", str(replicas), "--project", project], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert live.returncode == 0, live.stdout + live.stderr
    return project


def containers_of(docker: str, project: str) -> list[str]:
    out = subprocess.run([docker, "ps", "-a", "-q", "--filter", f"label={PROJECT_LABEL}={project}"], capture_output=True, text=True, check=True)
    return out.stdout.split()


@pytest.fixture(scope="module")
def images_built(scalelab_images: str) -> str:
    return scalelab_images


@pytest.fixture()
def small_platform(images_built: str, tmp_path: Path) -> Iterator[ComposePlatform]:
    """A compose project with a light workload (5 ms a chat), removed afterwards."""
    sc = load_scenario("ci-spike", cpu_budget=1.0)
    settings = dataclasses.replace(
        ComposeSettings.for_scenario(sc, f"it-{os.getpid()}-{int(time.time())}", port=free_port()), work_ms=5.0, warmup_s=1.0
    )
    platform = ComposePlatform(settings)
    try:
        yield platform
    finally:
        platform.down()
        assert containers_of(images_built, settings.project) == []


def chat(base_url: str) -> str:
    req = urllib.request.Request(f"{base_url}/chat", data=b'{"message": "hi"}', headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())["hostname"]


# --- preflight and teardown --------------------------------------------------------------------


def test_port_in_use_fails_preflight_before_anything_starts(images_built: str) -> None:
    sc = load_scenario("ci-spike", cpu_budget=1.0)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        settings = ComposeSettings.for_scenario(sc, f"it-port-{os.getpid()}", port=port)
        with pytest.raises(PreflightError) as info:
            ComposePlatform(settings).preflight()
    assert f"port {port}" in info.value.message and "fix" in info.value.render()
    assert containers_of(images_built, settings.project) == []


def test_missing_image_fails_preflight(images_built: str) -> None:
    sc = load_scenario("ci-spike", cpu_budget=1.0)
    settings = dataclasses.replace(ComposeSettings.for_scenario(sc, f"it-img-{os.getpid()}", port=free_port()), agent_image="scalelab-ai-agent:0.0.0-missing")
    with pytest.raises(PreflightError) as info:
        ComposePlatform(settings).preflight()
    assert "scalelab-ai-agent:0.0.0-missing" in info.value.message and "make image" in info.value.render()


def test_down_on_nothing_is_a_no_op(images_built: str) -> None:
    sc = load_scenario("ci-spike", cpu_budget=1.0)
    platform = ComposePlatform(ComposeSettings.for_scenario(sc, f"it-nothing-{os.getpid()}", port=free_port()))
    platform.down()
    platform.down()
    assert containers_of(images_built, platform.settings.project) == []
    # `down compose` alone removes every scalelab project; --project keeps other runs on this machine alive.
    proc = subprocess.run([*SCALELAB, "down", "compose", "--project", platform.settings.project], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0 and "nothing to remove" in proc.stdout, proc.stdout + proc.stderr


# --- nginx sends traffic to replicas added by --scale ----------------------------------------------


def test_replicas_added_by_scale_get_their_share(small_platform: ComposePlatform) -> None:
    p = small_platform
    p.preflight()
    p.up(2)
    p.wait_ready(2, timeout_s=120)
    p.check_limits()  # NanoCpus really is the scenario's limit
    assert len({chat(p.base_url) for _ in range(20)}) == 2
    p.scale(5)
    p.wait_ready(5, timeout_s=120)
    obs = p.observe()
    assert (obs.replicas_desired, obs.replicas_ready) == (5, 5)
    time.sleep(2)  # nginx's resolver cache holds the old answer for up to valid=1s
    counts = Counter(chat(p.base_url) for _ in range(200))
    print("requests per replica after scale-up:", dict(counts))
    assert len(counts) == 5
    fair = 200 / 5
    assert min(counts.values()) >= 0.2 * fair, counts


# --- the whole run --------------------------------------------------------------------------------


def _run_cli(args: list[str], port: int, **kw: object) -> subprocess.Popen[str]:
    env = {**os.environ, "SCALELAB_PORT": str(port)}
    return subprocess.Popen([*SCALELAB, *args], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def test_ci_spike_compose_arm(images_built: str, tmp_path: Path) -> None:
    started = time.monotonic()
    proc = _run_cli(["run", "ci-spike", "--arm", "compose-manual", "--cpu-budget", "1", "--runs-dir", str(tmp_path)], free_port())
    out, _ = proc.communicate(timeout=300)
    print(out[-3000:])
    assert proc.returncode == 0, out[-3000:]
    assert time.monotonic() - started < 240

    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    run = load_run(run_dir)  # schema-valid: every file and column present
    m = run.manifest
    assert m["status"] == "completed" and m["platform"] == "compose" and m["scaler"] == "manual"
    assert m["platform_info"]["agent_nano_cpus"] == 125_000_000
    s, ev, req = run.samples, run.events, run.requests
    sc = run.scenario
    assert list(s.t_s) == list(range(1, len(s) + 1)) and len(s) >= sc.duration_s
    assert set(s.phase) <= {"warmup", "load", "cooldown"} and "load" in set(s.phase)
    assert len(req) == m["requests_recorded"] > 100

    # The operator's action happens at its time (+-2 s) and the replicas follow.
    (action,) = sc.arms["compose-manual"].scaler.actions
    scale = ev[(ev.kind == "scale") & (ev.source == "manual-plan")]
    assert len(scale) == 1 and abs(scale.t_s.iloc[0] - action.at_s) <= 2
    assert s.replicas_desired.max() == action.replicas and s[s.t_s < action.at_s].replicas_desired.max() == 2
    assert s.replicas_ready.iloc[-1] == action.replicas
    assert (ev.kind == "replica_start").sum() == action.replicas  # 2 at t=0, 3 after the action

    # CPU sits at the limit during the spike, p95 climbs against the baseline.
    start, end = sc.load.start_s, sc.load.start_s + sc.load.length_s
    overloaded = s[(s.t_s > start + 5) & (s.t_s <= action.at_s)]
    baseline = s[(s.t_s > 2) & (s.t_s <= start)]
    assert overloaded.cpu_util_pct.median() >= 80, overloaded.cpu_util_pct.describe()
    assert baseline.cpu_util_pct.median() < 50
    assert overloaded.p95_ms.median() > 3 * baseline.p95_ms.median()
    assert s[(s.t_s > start) & (s.t_s <= end)].offered_load.mean() == pytest.approx(sc.load.baseline * sc.load.factor, rel=0.1)
    assert s.cost_usd_cum.is_monotonic_increasing and s.cost_usd_cum.iloc[-1] > 0

    # Every replica added by the scale-up gets its share once it is settled.
    ready = ev[(ev.kind == "replica_ready") & (ev.t_s > action.at_s)]
    settled = ready.t_s.max() + 2
    before = set(req[req.t_s < action.at_s].replica.dropna())
    window = req[(req.t_s > settled) & (req.t_s <= end)]
    fair = len(window) / action.replicas
    answered = window[window.ok == 1].replica.value_counts()
    new = [r for r in req.replica.dropna().unique() if r not in before]
    assert len(new) == action.replicas - 2, new
    for replica in new:
        assert answered.get(replica, 0) >= 0.2 * fair, (replica, answered.to_dict(), fair)
    after = set(req[(req.t_s > action.at_s) & (req.ok == 1)].replica.dropna())
    assert after == before | set(new)  # the old replicas answer again once their backlog is gone

    # Nothing left running.
    assert containers_of(images_built, m["platform_info"]["compose_project"]) == []


def test_ctrl_c_tears_down_and_keeps_the_record(images_built: str, tmp_path: Path) -> None:
    proc = _run_cli(["run", "ci-spike", "--arm", "compose-manual", "--cpu-budget", "1", "--runs-dir", str(tmp_path)], free_port())
    samples = wait_for_samples(tmp_path, 8, proc)
    # The instructor scales by hand in another terminal: the run records it as a live event.
    live_scale_compose(samples.parent, 3)
    wait_for_samples(tmp_path, len(samples.read_text().splitlines()) + 1, proc, timeout_s=60)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    print(out[-2000:])
    assert proc.returncode == 130, out[-2000:]
    run = load_run(samples.parent)
    assert run.manifest["status"] == "interrupted"
    assert len(run.samples) >= 8 and len(run.requests) > 0
    live_events = run.events[(run.events.kind == "scale") & (run.events.source == "live")]
    assert list(live_events.replicas) == [3], run.events
    assert run.samples.replicas_desired.iloc[-1] == 3 and run.samples.replicas_desired.iloc[0] == 2
    assert containers_of(images_built, run.manifest["platform_info"]["compose_project"]) == []
    assert not [p for p in running_projects() if run.manifest["run_id"] in p]
    locust = [line for line in subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout.splitlines() if str(tmp_path) in line]
    assert locust == [], locust


def test_lab_verbs_up_load_scale_down(images_built: str, tmp_path: Path) -> None:
    """The lab-01 flow: `up`, `load` (recorded; the service stays up), `scale`, `down`."""
    env = {**os.environ, "SCALELAB_PORT": str(free_port())}

    def cli(*args: str) -> str:
        proc = subprocess.run([*SCALELAB, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    try:
        assert "2 replicas ready" in cli("up", "compose", "--replicas", "2", "--scenario", "ci-spike", "--cpu-budget", "1")
        out = cli("load", "compose", "--seconds", "8", "--scenario", "ci-spike", "--cpu-budget", "1", "--runs-dir", str(tmp_path))
        (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
        run = load_run(run_dir)
        assert run.manifest["status"] == "completed" and len(run.samples) >= 8 and len(run.requests) > 0, out
        assert set(run.samples.replicas_ready) == {2}
        assert "3 replicas ready" in cli("scale", "compose", "3")
        assert len(containers_of(images_built, "scalelab-lab")) == 4  # 3 agents + nginx: `load` left them up
    finally:
        cli("down", "compose", "--project", "scalelab-lab")
    assert containers_of(images_built, "scalelab-lab") == []
