"""Benchmark: what measuring costs. Prints figures; not a pass/fail test.

1. The compose sampler's own CPU at a 1 s interval (`ComposePlatform.observe` with one Docker
   stats stream per replica), as % of one core. Target: <= 3 %.
2. The load generator's CPU (the Locust subprocess, open loop) per 100 requests/s.

Needs the Docker engine and the kit's images (`make image`); traffic goes to 127.0.0.1 only.
Usage: .venv/bin/python benchmarks/bench_sampler.py [--replicas 8] [--seconds 30] [--rps 60]
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import socket
import sys
import tempfile
import time
from pathlib import Path

import yaml

from scalelab.load.locust import LocustProcess
from scalelab.load.plan import LoadPlan
from scalelab.platforms.compose import ComposePlatform, ComposeSettings
from scalelab.scenario import Scenario
from scalelab.telemetry.requests import RequestTail


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scenario(rps: float, seconds: float) -> Scenario:
    return Scenario.model_validate(
        {
            "name": "bench-sampler",
            "duration_s": seconds,
            "reference_cpu_budget": 1,
            "workload": {"work_ms": 1, "warmup_s": 1, "cpu_request": 0.125, "cpu_limit": 0.125, "memory_mb": 128, "timeout_s": 10},
            "load": {"mode": "open", "profile": "steady", "baseline": rps},
            "arms": {"compose-manual": {"platform": "compose", "replicas": 2, "scaler": {"type": "fixed"}}},
        }
    ).sized(1.0)


def cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def children_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def bench_sampler(platform: ComposePlatform, seconds: int) -> None:
    platform.observe()  # start the stats streams
    time.sleep(2)
    before, t0 = cpu_s(), time.monotonic()
    n = 0
    for k in range(1, seconds + 1):
        time.sleep(max(0.0, t0 + k - time.monotonic()))
        obs = platform.observe()
        n += 1
    used = cpu_s() - before
    wall = time.monotonic() - t0
    print(f"sampler: {n} observations of {obs.replicas_ready} replicas in {wall:.1f} s, "
          f"CPU {used:.3f} s = {used / wall * 100:.2f} % of one core (target <= 3 %); last CPU reading {obs.cpu_cores_used} cores")


def bench_locust(platform: ComposePlatform, sc: Scenario, seconds: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp)
        scenario_file = run_dir / "scenario.yaml"
        scenario_file.write_text(yaml.safe_dump(sc.model_dump(mode="json")))
        plan = LoadPlan(scenario=sc, t0_epoch=time.time() + 2.0, requests_csv=run_dir / "requests.csv", status_file=run_dir / "status.json")
        before = children_cpu_s()
        proc = LocustProcess.start(plan, host_url=platform.base_url, run_dir=run_dir, scenario_file=scenario_file)
        rc = proc.wait(timeout_s=seconds + 60)
        if rc is None:
            proc.stop()
        used = children_cpu_s() - before
        tail = RequestTail(run_dir / "requests.csv")
        tail.poll()
        rps = tail.total / sc.duration_s
        print(f"load generator: {tail.total} requests in {sc.duration_s:.0f} s ({rps:.1f} rps), Locust CPU {used:.2f} s "
              f"(incl. ~2 s start-up) = {used / (sc.duration_s + 2) * 100:.1f} % of one core, "
              f"{used / (sc.duration_s + 2) / max(rps, 1e-9) * 100 * 100:.1f} % of one core per 100 rps")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replicas", type=int, default=8)
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--rps", type=float, default=60.0)
    args = ap.parse_args()
    sc = scenario(args.rps, args.seconds)
    settings = dataclasses.replace(ComposeSettings.for_scenario(sc, f"bench-{int(time.time())}", port=free_port()))
    platform = ComposePlatform(settings)
    platform.preflight()
    try:
        platform.up(args.replicas)
        platform.wait_ready(args.replicas, timeout_s=180)
        bench_sampler(platform, args.seconds)
        bench_locust(platform, sc, args.seconds)
    finally:
        platform.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
