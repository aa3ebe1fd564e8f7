"""The live terminal view of a run: one status line (rich Live on a TTY, plain lines otherwise).

The runner calls `RunView.sample` once a second with the row it recorded and `RunView.event`
for scale actions and replica starts; the view never computes anything itself.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

__all__ = ["RunView"]

#: Without a TTY, print the status line every this many seconds (events always print).
PLAIN_EVERY_S = 5


def _fmt(value: Any, spec: str, unit: str = "") -> str:
    if value is None or value == "" or (isinstance(value, float) and value != value):
        return "-"
    return f"{value:{spec}}{unit}"


def status_line(row: dict[str, Any], total_s: float) -> str:
    return (
        f"t {row['t_s']:>4.0f}/{total_s:.0f} s  {row['phase']:<8}  replicas {row['replicas_desired']}/{row['replicas_ready']} "
        f"(desired/ready)  CPU {_fmt(row.get('cpu_util_pct'), '>4.0f', '%')}  offered {_fmt(row.get('offered_load'), '>5.1f')}  "
        f"rps {_fmt(row.get('rps'), '>3d')}  p95 {_fmt(row.get('p95_ms'), '>6.0f', ' ms')}  errors {_fmt(row.get('errors'), '>3d')}  "
        f"cost ${row['cost_usd_cum']:.4f}"
    )


class RunView:
    def __init__(self, title: str, total_s: float, *, stream: TextIO | None = None, tty: bool | None = None) -> None:
        self.title = title
        self.total_s = total_s
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty() if tty is None else tty
        self._live: Any = None
        self._console: Any = None

    def __enter__(self) -> RunView:
        if self.tty:
            from rich.console import Console
            from rich.live import Live

            self._console = Console(file=self.stream)
            self._live = Live("", console=self._console, refresh_per_second=4, transient=False)
            self._live.__enter__()
        self.message(self.title)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)
            self._live = None

    def message(self, text: str) -> None:
        if self._console is not None:
            self._console.print(text, markup=False, highlight=False)
        else:
            print(text, file=self.stream, flush=True)

    def event(self, t_s: float, text: str) -> None:
        self.message(f"[{t_s:6.1f} s] {text}")

    def sample(self, row: dict[str, Any]) -> None:
        line = status_line(row, self.total_s)
        if self._live is not None:
            self._live.update(line)
        elif int(row["t_s"]) % PLAIN_EVERY_S == 0:
            print(line, file=self.stream, flush=True)
