"""Docker-stats arithmetic on documents recorded from the engine (tests/fixtures/docker-stats-*.json).

docker-stats-cgroupv1.json: an ai-agent container limited to 0.125 cores, kept busy with chats,
recorded from the Docker 20.10 engine of a 2-core cgroup v1 machine (the stream's third document).
docker-stats-first.json: the first document of the same stream (no previous read yet).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from scalelab.engine import stats as sampler

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture()
def busy() -> dict:
    return json.loads((FIXTURES / "docker-stats-cgroupv1.json").read_text())


def test_cpu_of_a_saturated_replica_is_its_limit(busy: dict) -> None:
    cores = sampler.cpu_cores(busy)
    # (125275006 ns of container CPU) / (1.95e9 ns of host CPU over 2 CPUs) * 2 = 0.1285 cores
    assert cores == pytest.approx(125275006 / 1950000000 * 2)
    assert cores == pytest.approx(0.125, rel=0.05)
    assert sampler.cpu_pct_of_limit(cores, 0.125) == pytest.approx(102.8, abs=0.1)


def test_first_document_of_a_stream_has_no_cpu() -> None:
    first = json.loads((FIXTURES / "docker-stats-first.json").read_text())
    assert sampler.cpu_cores(first) is None
    assert sampler.memory_used_bytes(first) == first["memory_stats"]["usage"]


def test_online_cpus_missing_falls_back_to_percpu(busy: dict) -> None:
    doc = copy.deepcopy(busy)
    doc["cpu_stats"].pop("online_cpus")
    assert sampler.cpu_cores(doc) == pytest.approx(sampler.cpu_cores(busy))
    doc["cpu_stats"]["cpu_usage"].pop("percpu_usage")  # cgroup v2 without online_cpus: unknown
    assert sampler.cpu_cores(doc) is None


def test_idle_or_broken_documents(busy: dict) -> None:
    doc = copy.deepcopy(busy)
    doc["precpu_stats"]["system_cpu_usage"] = doc["cpu_stats"]["system_cpu_usage"]
    assert sampler.cpu_cores(doc) is None  # no host time passed
    doc = copy.deepcopy(busy)
    doc["precpu_stats"]["cpu_usage"]["total_usage"] = doc["cpu_stats"]["cpu_usage"]["total_usage"] + 5
    assert sampler.cpu_cores(doc) == 0.0  # a counter reset never gives negative CPU
    assert sampler.cpu_cores({}) is None
    assert sampler.cpu_pct_of_limit(None, 0.5) is None


def test_memory_subtracts_inactive_file(busy: dict) -> None:
    usage = busy["memory_stats"]["usage"]
    assert sampler.memory_used_bytes(busy) == usage  # nothing inactive in this container
    v1 = copy.deepcopy(busy)
    v1["memory_stats"]["stats"]["total_inactive_file"] = 4096
    assert sampler.memory_used_bytes(v1) == usage - 4096
    v2 = copy.deepcopy(busy)
    v2["memory_stats"]["stats"] = {"inactive_file": 8192}
    assert sampler.memory_used_bytes(v2) == usage - 8192
    assert sampler.memory_used_bytes({"memory_stats": {}}) is None


def test_nano_cpus() -> None:
    assert sampler.nano_cpus_to_cores(125_000_000) == 0.125
    assert sampler.nano_cpus_to_cores(0) is None
