"""The real runner, driven by a toy platform, a fake load and a fake clock (no sleeping, no Docker)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from scalelab import registry
from scalelab.errors import PlatformError, ScenarioError
from scalelab.runner import Runner, RunOptions, run_arm
from scalelab.scenario import Scenario


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.listeners: list[Any] = []

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return 1_800_000_000.0 + self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.now += seconds
        for listener in self.listeners:
            listener()


class FakeLoad:
    """Writes ``rps`` requests per elapsed second into requests.csv, as Locust would."""

    def __init__(self, clock: FakeClock, run_dir: Path, t0: float, rps: int = 4, stop_at: float | None = None, interrupt_at: float | None = None) -> None:
        self.clock, self.t0, self.rps = clock, t0, rps
        self.path = run_dir / "requests.csv"
        self.argv = ["fake-load"]
        self.log_path = run_dir / "load.log"
        self.written_s = 0
        self.stopped = False
        self.stop_at = stop_at
        self.interrupt_at = interrupt_at
        with self.path.open("w", newline="") as fh:
            csv.writer(fh).writerow(["t_s", "response_ms", "ok", "status_code", "replica", "error"])
        clock.listeners.append(self._write)

    @property
    def returncode(self) -> int | None:
        return 0 if self.stopped else None

    def _t(self) -> float:
        return self.clock.time() - self.t0

    def running(self) -> bool:
        return not self.stopped and (self.stop_at is None or self._t() < self.stop_at)

    def status(self) -> dict[str, Any]:
        if self.interrupt_at is not None and self._t() >= self.interrupt_at:
            raise KeyboardInterrupt
        return {"users": 2, "in_flight": 0}

    def _write(self) -> None:
        t = self._t()
        if self.stopped:
            return
        with self.path.open("a", newline="") as fh:
            w = csv.writer(fh)
            while self.written_s + 1 <= t:
                self.written_s += 1
                for i in range(self.rps):
                    w.writerow([self.written_s - 0.5 + i / 100, 20 + i, "true", 200, f"toy-{i % 2}", ""])

    def log_tail(self, lines: int = 15) -> str:
        return ""

    def stop(self, timeout_s: float = 15.0) -> int:
        self.stopped = True
        return 0


@pytest.fixture()
def toy(monkeypatch: pytest.MonkeyPatch) -> Any:
    import toy_platform

    monkeypatch.setitem(registry.PLATFORMS, "toy", toy_platform.SPEC)  # the one registry line
    toy_platform.ToyKind.made = []
    return toy_platform


def _scenario(scaler: dict[str, Any], duration_s: int = 12) -> Scenario:
    return Scenario.model_validate(
        {
            "name": "toy-run",
            "duration_s": duration_s,
            "load": {"profile": "steady", "baseline": 4},
            "workload": {"timeout_s": 2},
            "arms": {"toy-arm": {"platform": "toy", "scaler": scaler, "replicas": 2}},
        }
    ).sized(4.0)


def _run(sc: Scenario, tmp_path: Path, **load: Any) -> tuple[Path, Any]:
    clock = FakeClock()
    loads: list[FakeLoad] = []

    def start_load(plan: Any, url: str, run_dir: Path, scenario_file: Path) -> FakeLoad:
        loads.append(FakeLoad(clock, run_dir, plan.t0_epoch, **load))
        return loads[0]

    from scalelab.platforms import platform_for

    plat = platform_for("toy", sc, "toy-arm", run_id="toy-1")
    runner = Runner(sc, "toy-arm", plat, RunOptions(runs_dir=tmp_path), run_id="20261204-000000-toy-run-toy-arm-0001", clock=clock, start_load=start_load)
    try:
        return runner.run(), plat
    except KeyboardInterrupt:
        return tmp_path / "20261204-000000-toy-run-toy-arm-0001", plat


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def test_toy_platform_records_a_full_run_with_the_manual_plan(toy: Any, tmp_path: Path) -> None:
    sc = _scenario({"type": "manual", "actions": [{"at_s": 3.5, "replicas": 5}, {"at_s": 8, "replicas": 1}]})
    run_dir, plat = _run(sc, tmp_path)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "completed" and manifest["platform"] == "toy"
    samples = _rows(run_dir / "samples.csv")
    assert [int(r["t_s"]) for r in samples[:12]] == list(range(1, 13))
    desired = {int(r["t_s"]): int(r["replicas_desired"]) for r in samples}
    assert desired[3] == 2 and desired[4] == 5 and desired[7] == 5 and desired[8] == 1  # sampled at k + 0.4: 8.0 is in second 8
    scale_events = [(float(e["t_s"]), e["replicas"], e["source"]) for e in _rows(run_dir / "events.csv") if e["kind"] == "scale"]
    assert scale_events == [(3.5, "5", "manual-plan"), (8.0, "1", "manual-plan")]
    assert int(samples[5]["rps"]) == 4 and samples[5]["p95_ms"]
    assert ("scale", 5) in plat.calls and plat.calls[-1] == ("down", 0)


def test_interrupted_run_keeps_its_rows_and_is_marked(toy: Any, tmp_path: Path) -> None:
    sc = _scenario({"type": "fixed"}, duration_s=30)
    run_dir, plat = _run(sc, tmp_path, interrupt_at=6.5)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    assert len(_rows(run_dir / "samples.csv")) == 6  # seconds 1..6 (sampled at k + 0.4) were flushed before Ctrl-C at 6.5
    assert plat.is_down  # torn down all the same


def test_the_same_toy_scenario_runs_in_the_simulator(toy: Any, tmp_path: Path) -> None:
    from scalelab.sim import run_scenario

    sc = _scenario({"type": "manual", "actions": [{"at_s": 3, "replicas": 4}]})
    (run_dir,) = run_scenario(sc, tmp_path)
    desired = [int(r["replicas_desired"]) for r in _rows(run_dir / "samples.csv")]
    assert desired[:3] == [2, 2, 2] and desired[3:6] == [4, 4, 4]


def test_impossible_pairs_and_unknown_scalers_are_errors(toy: Any) -> None:
    with pytest.raises(Exception) as info:
        Scenario.model_validate({"name": "x", "duration_s": 10, "load": {"baseline": 1}, "arms": {"a": {"platform": "compose", "scaler": {"type": "hpa"}}}})
    assert "cannot run on platform 'compose'" in str(info.value) and "kubernetes+hpa" in str(info.value)
    from scalelab.scalers import make_kit_scaler

    class Odd:
        type = "magic"

    with pytest.raises(ScenarioError, match="unknown scaler 'magic'"):
        make_kit_scaler(Odd())


def test_run_arm_goes_through_the_registry(toy: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    import scalelab.runner as runner_mod

    made: list[Any] = []
    original = runner_mod.Runner.__init__

    def init(self: Any, *args: Any, **kw: Any) -> None:
        kw.setdefault("clock", clock)
        kw.setdefault("start_load", lambda plan, url, d, f: made.append(FakeLoad(clock, d, plan.t0_epoch)) or made[-1])
        original(self, *args, **kw)

    monkeypatch.setattr(runner_mod.Runner, "__init__", init)
    run_dir = run_arm(_scenario({"type": "fixed"}, duration_s=4), "toy-arm", RunOptions(runs_dir=tmp_path))
    assert json.loads((run_dir / "manifest.json").read_text())["platform_info"] == {"toy": True}


def test_faults_fire_at_their_time_as_events(toy: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from scalelab.faults import inject

    fired: list[tuple[str, int]] = []

    class ToyInjector:
        def __init__(self, platform: Any, seed: int) -> None:
            self.platform = platform

        def inject(self, kind: str, index: int) -> inject.Injected:
            fired.append((kind, index))
            if kind == "hang":
                raise PlatformError("no ready replica", fix="later")
            return inject.Injected(kind, "toy-1", "by hand")

    monkeypatch.setitem(inject.INJECTORS, "toy", ToyInjector)
    monkeypatch.setitem(inject.SUPPORTED, "toy", ("kill", "hang"))
    base = _scenario({"type": "fixed"}).model_dump(mode="json")
    sc = Scenario.model_validate({**base, "faults": [{"at_s": 6.5, "kind": "hang"}, {"at_s": 3.25, "kind": "kill"}]})
    run_dir, _ = _run(sc, tmp_path)
    assert fired == [("kill", 1), ("hang", 0)]  # in time order, each with its index in the file
    events = [(float(e["t_s"]), e["kind"], e["detail"]) for e in _rows(run_dir / "events.csv") if e["kind"] in ("fault", "note")]
    assert events[0] == (3.25, "fault", "kill replica=toy-1 by hand")
    assert events[1][:2] == (6.5, "note") and "not injected: no ready replica" in events[1][2]
    monkeypatch.setitem(inject.SUPPORTED, "toy", ("kill",))
    with pytest.raises(ScenarioError, match="allowed there: kill"):
        _run(sc, tmp_path / "again")


def test_a_rollout_starts_at_its_time_and_its_steps_become_events(toy: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from scalelab.rollout import act, strategies

    rolled: list[tuple[str, str | None]] = []

    class ToyRoller:
        def __init__(self, platform: Any) -> None:
            self.platform = platform

        def preflight(self, image: str) -> None:
            rolled.append(("preflight", image))

        def roll(self, image: str, how: Any, emit: Any, stop: Any, timeout_s: float) -> str:
            rolled.append((image, how.strategy))
            emit("rollout", "flipping the replicas")
            return "replicas=2 on v2"

    monkeypatch.setitem(act.ROLLERS, "toy", ToyRoller)
    monkeypatch.setitem(strategies.STRATEGIES, "toy", ("flip",))
    base = _scenario({"type": "fixed"}).model_dump(mode="json")
    sc = Scenario.model_validate({**base, "rollout": {"at_s": 4.5, "to": "v2"}})
    run_dir, _ = _run(sc, tmp_path)
    from scalelab.versions import AGENT_IMAGE_V2

    assert rolled == [("preflight", AGENT_IMAGE_V2), (AGENT_IMAGE_V2, "flip")]
    events = [(float(e["t_s"]), e["kind"], e["detail"]) for e in _rows(run_dir / "events.csv") if e["kind"].startswith("rollout")]
    assert events[0] == (4.5, "rollout_start", f"strategy=flip to=v2 image={AGENT_IMAGE_V2} replicas=2")
    assert [k for _, k, _ in events] == ["rollout_start", "rollout", "rollout_end"]
    assert events[2][2].startswith("ok wall_s=") and events[2][2].endswith("replicas=2 on v2")
    monkeypatch.setitem(strategies.STRATEGIES, "toy", ())
    with pytest.raises(ScenarioError, match="rollouts cannot run on toy"):
        _run(sc, tmp_path / "again")
