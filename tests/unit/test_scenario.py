"""Scenarios: every built-in one validates; malformed files get a clear error, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from scalelab.errors import ScenarioError
from scalelab.scenario import builtin_scenarios, load_scenario, parse_duration

BAD = Path(__file__).parents[1] / "fixtures" / "scenarios" / "bad"


@pytest.mark.parametrize("name", sorted(builtin_scenarios()))
def test_builtin_scenarios_validate(name: str) -> None:
    scenario = load_scenario(name, cpu_budget=4)
    assert scenario.name == name
    assert scenario.arms
    assert scenario.cpu_budget == 4


def test_required_builtins_exist() -> None:
    assert {"classroom-spike", "day"} <= set(builtin_scenarios())


@pytest.mark.parametrize(
    ("text", "seconds"),
    [(90, 90.0), ("90", 90.0), ("90s", 90.0), ("1m30s", 90.0), ("2h", 7200.0), ("11h45m", 42300.0), (1.5, 1.5)],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_sizing_scales_cpu_load_and_objective() -> None:
    ref = load_scenario("classroom-spike", sized=False)
    small = ref.sized(1.0)
    s = 1.0 / ref.reference_cpu_budget
    assert small.workload.cpu_limit == pytest.approx(ref.workload.cpu_limit * s, abs=1e-3)
    assert small.workload.cpu_request == pytest.approx(ref.workload.cpu_request * s, abs=1e-3)
    assert small.load.baseline == pytest.approx(ref.load.baseline * s)
    assert small.latency_objective_ms == pytest.approx(ref.latency_objective_ms / s)
    # work per request and replica counts are the story: unchanged
    assert small.workload.work_ms == ref.workload.work_ms
    assert small.arms == ref.arms
    # sizing twice does not scale twice
    assert small.sized(8.0) is small


def test_arm_lookup_lists_choices() -> None:
    scenario = load_scenario("classroom-spike", cpu_budget=2)
    assert scenario.arm("compose-manual")[1].platform == "compose"
    with pytest.raises(ScenarioError, match="allowed: compose-manual, compose-threshold, compose-threshold-0s, compose-threshold-120s, swarm-manual, kubernetes-hpa"):
        scenario.arm("nope")
    with pytest.raises(ScenarioError, match="several arms"):
        scenario.arm(None)


CASES = {
    "unknown-field.yaml": ["load.profil", "unknown field; allowed:", "profile"],
    "bad-platform.yaml": ["arms.a.platform", "allowed: compose, swarm, kubernetes", "nomad"],
    "bad-scaler.yaml": ["arms.a.scaler", "'manual', 'hpa', 'fixed'", "magic"],
    "bad-duration.yaml": ["duration_s", "not a duration"],
    "missing-load.yaml": ["field 'load'", "required field is missing"],
    "hpa-min-max.yaml": ["max_replicas (2) must be >= min_replicas (5)"],
    "bad-yaml.yaml": ["not valid YAML"],
    "not-a-mapping.yaml": ["must be a mapping"],
    "bad-policy.yaml": ["policies.0.type", "'Pods' or 'Percent'", "Replicas"],
    "limit-below-request.yaml": ["cpu_limit (0.5) must be >= cpu_request (1.0)"],
}


@pytest.mark.parametrize("filename", sorted(CASES))
def test_malformed_files_name_file_field_and_allowed_values(filename: str) -> None:
    path = BAD / filename
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    text = info.value.render()
    assert str(path) in text
    for fragment in CASES[filename]:
        assert fragment in text, f"{fragment!r} not in:\n{text}"


def test_every_bad_fixture_has_a_case() -> None:
    assert {p.name for p in BAD.glob("*.yaml")} == set(CASES)


def test_cli_prints_error_without_traceback() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "scalelab", "scenarios", str(BAD / "bad-platform.yaml")], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("ERROR: ")
    assert "arms.a.platform" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_scenario_names_builtins() -> None:
    with pytest.raises(ScenarioError) as info:
        load_scenario("no-such-scenario")
    assert "classroom-spike" in info.value.render()
