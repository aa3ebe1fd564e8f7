"""Lab 12 on the real engine: a CI-profile ramp, and the same ramp interrupted mid-batch.

Each test runs the real `scalelab density run` as a subprocess and then checks, independently of
the kit, that no container, network or memory cgroup of the run is left on the engine. About a
minute in total on 2 cores (the CI profile stops at 100 containers).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from scalelab.density import containers, host

pytestmark = [pytest.mark.docker, pytest.mark.slow]

SCALELAB = [sys.executable, "-m", "scalelab"]


def _ours(docker: str, what: str = "ps") -> list[str]:
    argv = [docker, what, "-aq", "--filter", f"label={containers.LABEL}"] if what == "ps" else \
        [docker, "network", "ls", "-q", "--filter", f"label={containers.LABEL}"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True).stdout
    return out.split()


def _only_run(runs_dir: Path) -> Path:
    runs = [p for p in runs_dir.iterdir() if (p / "manifest.json").is_file()]
    assert len(runs) == 1, runs
    return runs[0]


def _assert_nothing_left(docker: str, run_dir: Path) -> list[str]:
    ids = (run_dir / "containers.txt").read_text().split()
    assert _ours(docker) == [], "containers of the run are left"
    assert _ours(docker, "network") == [], "networks of the run are left"
    for cid in ids:
        proc = subprocess.run([docker, "container", "inspect", cid], capture_output=True, text=True, timeout=30)
        assert proc.returncode != 0, f"container {cid[:12]} still exists"
    deadline = time.monotonic() + 15
    while host.cgroup_dirs(ids) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert host.cgroup_dirs(ids) == [], "memory cgroups of the run are left"
    return ids


@pytest.fixture()
def clean_engine(docker_engine: str) -> str:
    """No density objects before the test (a leftover would be another test's failure)."""
    assert _ours(docker_engine) == [], "density containers exist before the test: remove them with `docker rm -f` by label"
    return docker_engine


def test_ci_ramp_records_every_batch_and_leaves_nothing(clean_engine: str, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    t0 = time.monotonic()
    proc = subprocess.run([*SCALELAB, "density", "run", "--mode", "runtime", "--profile", "ci", "--runs-dir", str(runs)],
                          capture_output=True, text=True, timeout=170)
    elapsed = time.monotonic() - t0
    print(proc.stdout, proc.stderr[-3000:], sep="\n")
    assert proc.returncode == 0, proc.stderr[-2000:]
    run_dir = _only_run(runs)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    batches = pd.read_csv(run_dir / "density.csv")
    assert manifest["status"] == "completed" and manifest["observed"]["stop"] == "cap"
    assert list(batches["n_requested"]) == [20, 50, 95, 100], "every batch is recorded"
    assert list(batches["n_running"]) == [20, 50, 95, 100] and batches["failed"].sum() == 0
    assert (batches["latency_p50_ms"] > 0).all() and (batches["latency_p95_ms"] >= batches["latency_p50_ms"]).all()
    last = batches.iloc[-1]
    # MemAvailable's drop is noise on a shared host; the shim's and the container's own memory are not
    assert 0 < last["shim_pss_mb"] <= last["shim_rss_mb"] < 100 and 0 < last["cgroup_mb"] < 16
    assert 1 <= last["tasks_per_container"] < 60 and last["fds_per_container"] > 0
    assert last["dockerd_rss_mb"] > 0 and last["ps_ms"] > 0
    assert batches["stop"].fillna("").tolist()[-1] == "cap"
    assert len(_assert_nothing_left(clean_engine, run_dir)) == 100
    assert manifest["observed"]["left"] == {}
    assert "create+start latency at 10" in proc.stdout and "left behind: nothing" in proc.stdout
    assert elapsed < 150, f"the CI ramp took {elapsed:.0f} s"


@pytest.mark.parametrize(("signum", "mode"), [(signal.SIGINT, "runtime"), (signal.SIGTERM, "network")], ids=["SIGINT-runtime", "SIGTERM-network"])
def test_interrupted_mid_batch_cleans_up(clean_engine: str, tmp_path: Path, signum: int, mode: str) -> None:
    runs = tmp_path / "runs"
    argv = [*SCALELAB, "density", "run", "--mode", mode, "--profile", "ci", "--batch", "60", "--parallel", "3", "--runs-dir", str(runs)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while len(_ours(clean_engine)) < 6 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        run_dir = _only_run(runs)
        assert not (run_dir / "density.csv").read_text().strip().splitlines()[1:], "still in the first batch"
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    print(out, err[-3000:], sep="\n")
    assert proc.returncode == 130, err[-2000:]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    assert manifest["observed"]["stop"] == "interrupted" and signal.Signals(signum).name in manifest["observed"]["error"]
    assert len(_assert_nothing_left(clean_engine, run_dir)) >= 6


def test_next_start_removes_what_a_killed_ramp_left(clean_engine: str, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    argv = [*SCALELAB, "density", "run", "--profile", "ci", "--batch", "60", "--parallel", "3", "--runs-dir", str(runs)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 90
    while len(_ours(clean_engine)) < 4 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)  # no finally runs: the objects stay
    proc.wait(timeout=30)
    left = _ours(clean_engine)
    assert len(left) >= 4
    again = subprocess.run([*SCALELAB, "density", "run", "--cap", "3", "--batch", "3", "--runs-dir", str(tmp_path / "again")],
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "left by earlier density run" in again.stderr
    assert _ours(clean_engine) == []
    for cid in left:
        assert subprocess.run([clean_engine, "container", "inspect", cid], capture_output=True, timeout=30).returncode != 0
