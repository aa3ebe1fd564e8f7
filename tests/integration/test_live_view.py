"""The live view in a real browser: headless Chromium loads `scalelab watch`'s page while two run
directories are being written, and the charts update second by second; a screenshot is saved.

Needs Debian's ``chromium`` (CI installs it; .ci/run). Skips with the reason on a laptop without
it, fails in CI. The run directories grow from the committed recorded runs (`growing_run`), replayed
at 4x real time: real files written line by line, read by the server as they grow.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from cdp import CDP  # tests/integration/ is on sys.path (pytest's rootdir-relative imports)
from growing_run import GrowingRun

from scalelab.live import LiveServer

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "runs"
RECORDED = sorted(p for p in FIXTURES.iterdir() if (p / "manifest.json").is_file())
SCREENSHOT = ROOT / "reports" / "ci" / "live-view.png"
CHARTS = ("replicas", "cpu", "p95", "errors", "cost", "spread")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
         "--window-size=1920,1080", "--hide-scrollbars"]


def require_or_skip(reason: str) -> None:
    """Skip on a laptop; fail in CI (the same rule as conftest.require_or_skip)."""
    import os

    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"required in CI but unavailable: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        require_or_skip("no `chromium` on PATH (Debian: apt-get install -y chromium)")
    return str(path)


def _devtools_page(proc: subprocess.Popen, deadline: float) -> str:
    """The WebSocket URL of the page Chromium opened (port from its 'DevTools listening' line)."""
    assert proc.stderr is not None
    port = None
    while port is None and time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line and proc.poll() is not None:
            raise AssertionError(f"chromium exited with {proc.returncode} before DevTools listened")
        if "DevTools listening on ws://" in line:
            port = int(line.split("ws://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])
    assert port, "chromium never printed its DevTools address"
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as res:
            pages = [t for t in json.load(res) if t.get("type") == "page"]
        if pages:
            return str(pages[0]["webSocketDebuggerUrl"])
        time.sleep(0.2)
    raise AssertionError("chromium opened no page")


def _state(cdp: CDP) -> dict:
    raw = cdp.evaluate("window.scalelabLive && window.scalelabLive.meta ? JSON.stringify({rows: window.scalelabLive.rows.map(r => r.length), "
                       "draws: window.scalelabLive.draws, points: window.scalelabLive.points, errors: window.scalelabLive.errors, "
                       "clock: document.getElementById('clock').textContent}) : null")
    if raw is None:
        raise RuntimeError("page not started yet")
    return json.loads(raw)


def _wait(cdp: CDP, ok, timeout_s: float) -> dict:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    state: dict = {}
    while time.monotonic() < deadline:
        try:
            state = _state(cdp)
            if ok(state):
                return state
        except (RuntimeError, TypeError, json.JSONDecodeError):
            pass  # the page is still loading
        time.sleep(0.3)
    raise AssertionError(f"the live view did not get there in {timeout_s} s: {state}")


@pytest.mark.slow
def test_live_view_charts_growing_runs_in_a_real_browser(chromium: str, tmp_path: Path) -> None:
    assert len(RECORDED) >= 2
    writers = [GrowingRun(src, tmp_path / "runs" / f"live-{src.name}", speed=4.0) for src in RECORDED[:2]]
    server = LiveServer([w.target for w in writers], port=0)
    server.start_in_thread()
    profile = tempfile.mkdtemp(prefix="scalelab-chromium-")
    proc = subprocess.Popen([chromium, *FLAGS, f"--user-data-dir={profile}", server.url], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert server.url.startswith("http://127.0.0.1:")
        # read-only: no method but GET/HEAD
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(urllib.request.Request(server.url + "api/data", data=b"x", method="POST"), timeout=5)
        assert refused.value.code == 405
        for w in writers:
            w.start()
        cdp = CDP(_devtools_page(proc, time.monotonic() + 60))
        first = _wait(cdp, lambda s: s["draws"] >= 1 and min(s["rows"]) >= 3, timeout_s=60)
        later = _wait(cdp, lambda s: min(s["rows"]) >= min(first["rows"]) + 40 and s["points"].get("spread", 0) > 0, timeout_s=60)
        # the charts updated: more rows for both runs, more points drawn on every chart, more redraws
        assert later["draws"] > first["draws"]
        for name in CHARTS:
            assert later["points"].get(name, 0) > first["points"].get(name, 0), f"chart {name} did not grow: {first} -> {later}"
        assert later["errors"] == 0
        # wait for the spike and the reaction to be on screen, then keep a picture of it
        _wait(cdp, lambda s: min(s["rows"]) >= 100, timeout_s=60)
        shot = cdp.call("Page.captureScreenshot", format="png")
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        SCREENSHOT.write_bytes(base64.b64decode(shot["data"]))
        print(f"\nlive view screenshot: {SCREENSHOT}")
        assert SCREENSHOT.stat().st_size > 20_000
        cdp.close()
    finally:
        for w in writers:
            w.stop.set()
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        server.close()
        shutil.rmtree(profile, ignore_errors=True)
