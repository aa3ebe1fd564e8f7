"""The live view degrades to plain lines without a TTY and never needs a terminal to work."""

from __future__ import annotations

import io

from scalelab.runview import RunView, status_line

ROW = {"t_s": 10, "phase": "load", "replicas_desired": 8, "replicas_ready": 3, "cpu_util_pct": 97.4, "offered_load": 11.25,
       "rps": 9, "p95_ms": 2450.0, "errors": 2, "cost_usd_cum": 0.0123}


def test_status_line_has_the_figures() -> None:
    line = status_line(ROW, 250)
    for text in ("10/250 s", "load", "8/3", "97%", "11.2", "2450 ms", "errors   2", "$0.0123"):
        assert text in line, (text, line)
    assert "p95 -" in status_line({**ROW, "p95_ms": None}, 250)


def test_plain_lines_every_five_seconds_and_every_event() -> None:
    out = io.StringIO()
    with RunView("title", 20, stream=out, tty=False) as view:
        for t in range(1, 11):
            view.sample({**ROW, "t_s": t})
        view.event(6.2, "scale to 8 (manual-plan)")
    lines = out.getvalue().splitlines()
    assert lines[0] == "title"
    assert sum(" s  load" in line for line in lines) == 2  # t = 5 and t = 10
    assert lines[-1] == "[   6.2 s] scale to 8 (manual-plan)"


def test_rich_live_on_a_terminal() -> None:
    out = io.StringIO()
    with RunView("title", 20, stream=out, tty=True) as view:
        view.sample(ROW)
        view.event(1.0, "hello")
    assert "hello" in out.getvalue() and "title" in out.getvalue()
