"""Run Locust headless as a subprocess (never imported here: it monkey-patches the interpreter).

`LocustProcess.start` runs ``python -m locust -f loadgen/locustfile.py --headless ...`` against
a 127.0.0.1 URL with every option on the command line, a controlled cwd (the run directory, so
no stray ``locust.conf``/``pyproject.toml`` is read) and an environment without ``LOCUST_*``
variables, in its own session (a Ctrl-C in the terminal reaches only the runner, which stops
Locust itself: SIGTERM, wait, then kill). Output goes to ``locust.log`` in the run directory.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from scalelab.checkout import kit_path
from scalelab.errors import PlatformError
from scalelab.load.plan import LoadPlan

__all__ = ["LocustProcess", "locustfile_path", "USER_CLASS"]

#: The locustfile's user class for each load mode.
USER_CLASS = {"open": "ArrivalUser", "closed": "ChatUser"}
LOG_FILE = "locust.log"


def locustfile_path() -> Path:
    """``loadgen/locustfile.py`` of the checkout (or ``$SCALELAB_LOCUSTFILE``)."""
    return kit_path("loadgen/locustfile.py", "SCALELAB_LOCUSTFILE")


class LocustProcess:
    """One headless Locust run for one `LoadPlan`."""

    def __init__(self, proc: subprocess.Popen[bytes], argv: list[str], log_path: Path, plan: LoadPlan) -> None:
        self.proc = proc
        self.argv = argv
        self.log_path = log_path
        self.plan = plan

    @classmethod
    def start(cls, plan: LoadPlan, *, host_url: str, run_dir: Path, scenario_file: Path, locustfile: Path | None = None) -> LocustProcess:
        run_dir = run_dir.resolve()
        host = urlparse(host_url).hostname
        if host not in ("127.0.0.1", "localhost"):
            raise PlatformError(f"load goes only to 127.0.0.1, not {host_url}", fix="publish the service on 127.0.0.1")
        argv = [
            sys.executable, "-m", "locust",
            "-f", str(locustfile or locustfile_path()),
            "--headless",
            "--host", host_url,
            "--only-summary",
            "--exit-code-on-error", "0",
            "--loglevel", "WARNING",
            "--stop-timeout", "0",
            USER_CLASS[plan.mode],
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOCUST_")}
        env.update(plan.to_env(scenario_file))
        env["PYTHONUNBUFFERED"] = "1"
        log_path = run_dir / LOG_FILE
        with log_path.open("ab") as log:
            proc = subprocess.Popen(argv, cwd=run_dir, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        return cls(proc, argv, log_path, plan)

    def running(self) -> bool:
        return self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.proc.poll()

    def status(self) -> dict[str, Any]:
        """The latest status the locustfile wrote: users, in_flight, dropped ({} before the first)."""
        if self.plan.status_file is None:
            return {}
        try:
            return json.loads(self.plan.status_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout_s: float = 15.0) -> int:
        """SIGTERM (Locust prints its summary and closes files), wait, then SIGKILL."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return int(self.proc.returncode or 0)

    def wait(self, timeout_s: float) -> int | None:
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None
