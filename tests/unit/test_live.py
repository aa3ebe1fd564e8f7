"""The live view's server without a browser: incremental reading, replay clock, read-only HTTP on 127.0.0.1.

(The browser test is tests/integration/test_live_view.py.)
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from scalelab import figstyle
from scalelab.errors import RunFormatError
from scalelab.live import LiveServer, RunFeed

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "runs"
RECORDED = sorted(p for p in FIXTURES.iterdir() if (p / "manifest.json").is_file())


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as res:
        return json.load(res)


def test_feed_reads_only_complete_lines_as_the_file_grows(tmp_path: Path) -> None:
    src = RECORDED[0]
    run = tmp_path / "run"
    run.mkdir()
    for name in ("manifest.json", "scenario.yaml"):
        shutil.copy(src / name, run / name)
    lines = (src / "samples.csv").read_text().splitlines(keepends=True)
    (run / "samples.csv").write_text(lines[0] + lines[1] + lines[2][:10])  # the third line is half written
    feed = RunFeed(run)
    assert [r["t"] for r in feed.snapshot(0, None)["rows"]] == [float(lines[1].split(",")[0])]
    with (run / "samples.csv").open("a") as fh:
        fh.write(lines[2][10:] + lines[3])
    rows = feed.snapshot(1, None)["rows"]
    assert [r["t"] for r in rows] == [float(lines[2].split(",")[0]), float(lines[3].split(",")[0])]
    assert feed.meta["color"] == figstyle.arm_color(feed.meta["role"])


def test_cpu_is_on_the_running_replicas_denominator() -> None:
    from scalelab import cpuview
    from scalelab.telemetry import load_run

    for path in RECORDED:
        feed = RunFeed(path)
        served = [float("nan") if r["cpu"] is None else r["cpu"] for r in feed.snapshot(0, None)["rows"]]  # JSON has no NaN
        expected = cpuview.cpu_pct_of_running_limit(load_run(path)).tolist()
        assert served == pytest.approx(expected, nan_ok=True)
        assert max(v for v in served if v == v) < 115, "starting replicas are in the denominator: no 137-157% of the limit"


def test_server_replays_the_recorded_runs_in_sync_and_is_read_only() -> None:
    server = LiveServer(RECORDED, port=0, replay=True, speed=20.0)
    server.start_in_thread()
    try:
        assert server.url.startswith("http://127.0.0.1:")
        meta = _get(server.url + "api/meta")
        assert [r["role"] for r in meta["runs"]] == ["manual", "hpa", "swarm-manual"] and meta["replay"] is True
        assert len({r["color"] for r in meta["runs"]}) == 3, "each arm its own colour"
        assert meta["runs"][1]["hpa_target_pct_of_limit"] == pytest.approx(50 * 0.062 / 0.125)
        time.sleep(1.0)
        data = _get(server.url + "api/data?since=0,0")
        clock = data["clock"]
        last = [r["rows"][-1]["t"] for r in data["runs"]]
        assert all(t <= clock for t in last) and max(last) - min(last) <= 2, f"runs out of sync: {last} at {clock}"
        assert 10 <= clock <= 60
        time.sleep(0.5)
        more = _get(server.url + "api/data?since=" + ",".join(str(len(r["rows"])) for r in data["runs"]))
        assert all(r["rows"] and r["rows"][0]["t"] > t for r, t in zip(more["runs"], last)), "since= returns only new rows"
        for method in ("POST", "PUT", "DELETE"):
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(urllib.request.Request(server.url + "api/data", data=b"x", method=method), timeout=5)
            assert refused.value.code == 405
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(server.url + "../manifest.json", timeout=5)
        assert missing.value.code == 404
        page = urllib.request.urlopen(server.url, timeout=5).read().decode()
        assert '<script src="/chart.js">' in page and "http" not in page.split("<body>")[1].replace("http-equiv", "")
    finally:
        server.close()


def test_watch_refuses_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    with pytest.raises(RunFormatError, match="not a run directory"):
        LiveServer([tmp_path], port=0)
