"""At least 100 bad inputs, generated here: none may end in a traceback.

Each case runs the real command line in-process (`scalelab.cli.main`) and asserts: exit code 1
or 2, no traceback, no generic "unexpected input" fallback, and a message that names the file
or the flag at fault. Kinds: scenario values, scenario files, run directories, CLI misuse.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from scalelab import cli

GOOD = {
    "name": "bad-input",
    "duration_s": 20,
    "load": {"profile": "spike", "baseline": 2, "factor": 3, "start_s": 5, "length_s": 5},
    "arms": {"a": {"platform": "compose", "scaler": {"type": "manual", "actions": [{"at_s": 5, "replicas": 4}]}, "replicas": 2},
             "k": {"platform": "kubernetes", "scaler": {"type": "hpa", "min_replicas": 1, "max_replicas": 5}}},
}
FIXTURE_RUN = Path(__file__).parents[1] / "fixtures" / "runs" / "20261123-163909-classroom-spike-compose-manual-f6e9"

# -- scenario values: (dotted path, bad value) -------------------------------------------------
NUMERIC_PATHS = [
    "duration_s", "seed", "reference_cpu_budget", "price_per_replica_hour", "latency_objective_ms",
    "load.baseline", "load.factor", "load.start_s", "load.length_s", "load.ramp_s", "load.period_s", "load.night_factor", "load.user_rps",
    "workload.work_ms", "workload.warmup_s", "workload.cpu_request", "workload.cpu_limit", "workload.memory_mb", "workload.timeout_s",
    "arms.a.replicas", "arms.a.scaler.actions.0.at_s", "arms.a.scaler.actions.0.replicas",
    "arms.k.scaler.min_replicas", "arms.k.scaler.target_cpu_pct", "arms.k.scaler.sync_period_s", "arms.k.scaler.metric_resolution_s",
    "arms.k.scaler.tolerance",
]
BAD_NUMBERS: list[Any] = [-1, float("inf"), float("nan"), "abc", True, 1e12]
VALUE_CASES = [(p, v) for p in NUMERIC_PATHS for v in BAD_NUMBERS if not (p.endswith(("ramp_s", "start_s", "warmup_s", "at_s")) and v is True and False)]
VALUE_CASES += [
    ("load.period_s", 0), ("duration_s", 0.5), ("duration_s", True), ("load.profile", "zigzag"), ("load.mode", 3),
    ("arms.a.platform", "nomad"), ("arms.a.scaler.type", "magic"), ("arms.a.scaler", {"type": "hpa"}), ("arms.k.scaler.max_replicas", 0),
    ("arms.a.colour", "red"), ("arms.k.scaler.behavior", {"scale_up": {"colour": 1}}), ("arms.a.scaler.speed", 3), ("name", "Has Spaces"),
    ("arms", {}), ("load", None), ("workload.cpu_limit", 0.1),
    ("arms.a.lb", {"strategy": "fastest"}), ("arms.k.lb", {"strategy": "least-conn"}), ("arms.a.lb", {"update_s": 0.1}),
    ("arms.a.weak", {"replicas": 5}), ("arms.a.weak", {"cpu_factor": 0}), ("arms.k.weak", {"replicas": 1}),
]


def _set(data: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    node: Any = data
    parts = dotted.split(".")
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    if isinstance(node, list):
        node[int(parts[-1])] = value
    else:
        node[parts[-1]] = value
    return data


def _scenario_file(tmp: Path, dotted: str, value: Any) -> Path:
    data = json.loads(json.dumps(GOOD))
    path = tmp / "scenario.yaml"
    path.write_text(yaml.safe_dump(_set(data, dotted, value)), encoding="utf-8")
    return path


# -- scenario files ------------------------------------------------------------------------
def _files(tmp: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}

    def put(name: str, content: bytes) -> None:
        path = tmp / name
        path.write_bytes(content)
        out[name] = path

    good = yaml.safe_dump(GOOD).encode()
    put("binary.yaml", bytes(range(256)) * 4)
    put("latin1.yaml", "name: caf\xe9\n".encode("latin-1"))
    put("empty.yaml", b"")
    put("list.yaml", b"- a\n- b\n")
    put("scalar.yaml", b"42\n")
    put("deep.yaml", b"[" * 5000 + b"]" * 5000)
    put("deep-map.yaml", b"a: " + b"{a: " * 3000 + b"1" + b"}" * 3000)
    put("dup-arm.yaml", good + b"arms:\n  b: {platform: compose, scaler: {type: fixed}}\n")
    put("dup-key.yaml", b"name: x\nname: y\nduration_s: 10\nload: {baseline: 1}\narms: {a: {platform: compose, scaler: {type: fixed}}}\n")
    put("tabs.yaml", b"name: x\n\tduration_s: 10\n")
    put("unclosed.yaml", b"name: 'x\n")
    put("nul.yaml", b"name: x\x00\n")
    put("huge.yaml", b"# " + b"x" * 1_200_000 + b"\n")
    put("anchors.yaml", b"a: &a [*a]\n")
    put("python-tag.yaml", b"name: !!python/object:os.system echo\n")
    put("bom-utf16.yaml", "name: x\n".encode("utf-16"))
    (tmp / "dir.yaml").mkdir()
    out["dir.yaml"] = tmp / "dir.yaml"
    out["missing.yaml"] = tmp / "missing.yaml"
    return out


FILE_NAMES = ["binary.yaml", "latin1.yaml", "empty.yaml", "list.yaml", "scalar.yaml", "deep.yaml", "deep-map.yaml", "dup-arm.yaml", "dup-key.yaml",
              "tabs.yaml", "unclosed.yaml", "nul.yaml", "huge.yaml", "anchors.yaml", "python-tag.yaml", "bom-utf16.yaml", "dir.yaml", "missing.yaml"]

# -- run directories -----------------------------------------------------------------------
RUN_DAMAGE: dict[str, Callable[[Path], None]] = {
    "manifest-empty": lambda d: (d / "manifest.json").write_text(""),
    "manifest-list": lambda d: (d / "manifest.json").write_text("[1, 2]"),
    "manifest-garbage": lambda d: (d / "manifest.json").write_text("{not json"),
    "manifest-missing": lambda d: (d / "manifest.json").unlink(),
    "manifest-binary": lambda d: (d / "manifest.json").write_bytes(b"\xff\xfe\x00"),
    "samples-missing": lambda d: (d / "samples.csv").unlink(),
    "samples-text": lambda d: _edit_samples(d, lambda rows: rows[3].__setitem__(4, "lots")),
    "samples-nan-text": lambda d: _edit_samples(d, lambda rows: rows[3].__setitem__(4, "nan")),
    "samples-inf": lambda d: _edit_samples(d, lambda rows: rows[5].__setitem__(5, "inf")),
    "samples-out-of-order": lambda d: _edit_samples(d, lambda rows: rows.insert(2, rows.pop(6))),
    "samples-duplicate-second": lambda d: _edit_samples(d, lambda rows: rows.insert(2, list(rows[2]))),
    "samples-no-columns": lambda d: (d / "samples.csv").write_text("x,y\n1,2\n"),
    "samples-ragged": lambda d: _edit_samples(d, lambda rows: rows[4].extend(["1", "2", "3"])),
    "samples-binary": lambda d: (d / "samples.csv").write_bytes(b"\xff\xfe" * 100),
    "events-text-t": lambda d: (d / "events.csv").write_text("t_s,utc,arm,kind,replicas,source,detail\nsoon,,a,scale,3,x,y\n"),
}


def _edit_samples(run_dir: Path, edit: Callable[[list[list[str]]], None]) -> None:
    import csv

    path = run_dir / "samples.csv"
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    body = rows[1:]
    edit(body)
    with path.open("w", newline="") as fh:
        csv.writer(fh).writerows([rows[0], *body])


# -- the runner ----------------------------------------------------------------------------
def _main(argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["scalelab", *argv])
    with pytest.raises(SystemExit) as info:
        cli.main()
    captured = capsys.readouterr()
    code = info.value.code if isinstance(info.value.code, int) else 1
    return code, captured.out + captured.err


def _check(code: int, text: str, names: list[str]) -> None:
    assert code in (1, 2), f"exit {code}: {text[-800:]}"
    assert "Traceback" not in text, text[-2000:]
    assert "unexpected input" not in text and "internal error" not in text, text[-800:]
    assert any(n in text for n in names), f"none of {names} in: {text[-800:]}"


@pytest.mark.parametrize("dotted,value", VALUE_CASES, ids=[f"{p}={v!r}" for p, v in VALUE_CASES])
def test_bad_scenario_values(dotted: str, value: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    path = _scenario_file(tmp_path, dotted, value)
    code, text = _main(["sim", str(path), "--runs-dir", str(tmp_path / "runs")], monkeypatch, capsys)
    _check(code, text, [str(path)])
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir()), "nothing may be written for a bad scenario"


@pytest.mark.parametrize("name", FILE_NAMES)
@pytest.mark.parametrize("command", ["sim", "scenarios"])
def test_bad_scenario_files(name: str, command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    path = _files(tmp_path)[name]
    argv = [command, str(path)] + (["--runs-dir", str(tmp_path / "runs")] if command == "sim" else [])
    code, text = _main(argv, monkeypatch, capsys)
    _check(code, text, [str(path)])


@pytest.mark.parametrize("damage", sorted(RUN_DAMAGE))
@pytest.mark.parametrize("command", ["report", "calibrate"])
def test_damaged_run_directories(damage: str, command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / FIXTURE_RUN.name
    shutil.copytree(FIXTURE_RUN, run_dir)
    RUN_DAMAGE[damage](run_dir)
    argv = [command, str(run_dir)] + (["--out", str(tmp_path / "out")] if command in ("report", "calibrate") else [])
    if command == "calibrate":
        argv[-1] = str(tmp_path / "out" / "calibration.yaml")
    code, text = _main(argv, monkeypatch, capsys)
    _check(code, text, [str(run_dir)])


CLI_CASES: list[tuple[list[str], list[str]]] = [
    (["sim", "ci-spike", "--cpu-budget", v], ["--cpu-budget"]) for v in ("inf", "nan", "1e-9", "1e9", "-1", "0", "abc", "-inf")
] + [
    (["doctor", "--port", "70000"], ["--port"]),
    (["doctor", "--port", "-1"], ["--port"]),
    (["doctor", "--platform", "nomad"], ["--platform"]),
    (["sim", "ci-spike", "--seed", "-1"], ["--seed"]),
    (["sim", "ci-spike", "--seed", "1e3"], ["--seed"]),
    (["sim", "ci-spike", "--arm", "nope"], ["--arm"]),
    (["sim", "ci-spike", "--set", "nonsense"], ["--set"]),
    (["sim", "ci-spike", "--set", "load.factor=abc"], ["--set", "load.factor"]),
    (["sim", "ci-spike", "--set", "arms.nope.replicas=3"], ["--set"]),
    (["sim", "ci-spike", "--set", "load.baseline.x=3"], ["--set"]),
    (["sim", "ci-spike", "--set", "seed=-5"], ["--set", "seed"]),
    (["sim", "no-such-scenario"], ["no-such-scenario"]),
    (["scale", "nomad", "3"], ["nomad", "PLATFORM"]),
    (["scale", "compose", "-3"], ["REPLICAS", "-3"]),
    (["run", "ci-spike", "--arm", "nope"], ["--arm"]),
    (["run", "ci-spike", "--cpu-budget", "nan"], ["--cpu-budget"]),
    (["whatif", "ci-spike", "--vary", "nonsense"], ["--vary"]),
    (["whatif", "ci-spike", "--vary", "target_cpu_pct=abc"], ["--vary", "target_cpu_pct"]),
    (["load", "compose", "--seconds", "0"], ["--seconds"]),
    (["compare", "/nonexistent/a", "/nonexistent/b"], ["REAL_RUN", "/nonexistent/a"]),
    (["report", "/nonexistent/run"], ["/nonexistent/run"]),
    (["frobnicate"], ["frobnicate"]),
]


@pytest.mark.parametrize("argv,names", CLI_CASES, ids=[" ".join(a) for a, _ in CLI_CASES])
def test_cli_misuse(argv: list[str], names: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    if argv[0] == "sim":
        argv = [*argv, "--runs-dir", str(tmp_path / "runs")]
    code, text = _main(argv, monkeypatch, capsys)
    _check(code, text, names)


def test_unwritable_out_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code, text = _main(["report", str(FIXTURE_RUN), "--out", str(blocker / "sub")], monkeypatch, capsys)
    _check(code, text, [str(blocker)])


def test_there_are_at_least_100_cases() -> None:
    total = len(VALUE_CASES) + 2 * len(FILE_NAMES) + 2 * len(RUN_DAMAGE) + len(CLI_CASES) + 1
    assert total >= 100, total
