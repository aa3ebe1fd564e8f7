"""What the Locust process needs to know, passed from the runner through environment variables.

The runner (`scalelab.load.locust`) writes the sized scenario to the run directory and starts
Locust with ``SCALELAB_*`` variables; inside Locust, `LoadPlan.from_env` reads them back. The
plan owns the run clock: ``t`` is wall-clock seconds since the runner's t0, so the profile, the
request records and the runner's samples share one time base whatever Locust's start-up delay.
This module does not import Locust (it is also used by the runner).
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from scalelab.errors import ScenarioError
from scalelab.load.profiles import profile_for
from scalelab.scenario import Scenario

__all__ = ["LoadPlan", "ENV_SCENARIO", "ENV_T0", "ENV_REQUESTS", "ENV_STATUS", "ENV_MAX_IN_FLIGHT", "ENV_DRAIN"]

ENV_SCENARIO = "SCALELAB_SCENARIO_FILE"
ENV_T0 = "SCALELAB_T0_EPOCH"
ENV_REQUESTS = "SCALELAB_REQUESTS_CSV"
ENV_STATUS = "SCALELAB_LOAD_STATUS"
ENV_MAX_IN_FLIGHT = "SCALELAB_MAX_IN_FLIGHT"
ENV_DRAIN = "SCALELAB_DRAIN_S"

#: Open loop: arrivals beyond this many unanswered requests are dropped and recorded as errors.
DEFAULT_MAX_IN_FLIGHT = 400


@dataclass(frozen=True)
class LoadPlan:
    scenario: Scenario
    t0_epoch: float
    requests_csv: Path
    status_file: Path | None
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    drain_s: float = 0.0

    # -- construction ------------------------------------------------------------------------
    def to_env(self, scenario_file: Path) -> dict[str, str]:
        env = {  # absolute paths: Locust runs with the run directory as its cwd
            ENV_SCENARIO: str(Path(scenario_file).resolve()),
            ENV_T0: repr(self.t0_epoch),
            ENV_REQUESTS: str(self.requests_csv.resolve()),
            ENV_MAX_IN_FLIGHT: str(self.max_in_flight),
            ENV_DRAIN: repr(self.drain_s),
        }
        if self.status_file is not None:
            env[ENV_STATUS] = str(self.status_file.resolve())
        return env

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> LoadPlan:
        env = os.environ if environ is None else environ
        missing = [k for k in (ENV_SCENARIO, ENV_T0, ENV_REQUESTS) if not env.get(k)]
        if missing:
            raise ScenarioError(
                f"the locustfile needs {', '.join(missing)} (set by `scalelab run`)",
                fix="start load with `scalelab run SCENARIO --arm ARM`, not with `locust` directly",
            )
        scenario = Scenario.model_validate(yaml.safe_load(Path(env[ENV_SCENARIO]).read_text(encoding="utf-8")))
        status = env.get(ENV_STATUS)
        return cls(
            scenario=scenario,
            t0_epoch=float(env[ENV_T0]),
            requests_csv=Path(env[ENV_REQUESTS]),
            status_file=Path(status) if status else None,
            max_in_flight=int(env.get(ENV_MAX_IN_FLIGHT) or DEFAULT_MAX_IN_FLIGHT),
            drain_s=float(env.get(ENV_DRAIN) or 0.0),
        )

    # -- the run clock and the profile ----------------------------------------------------------
    def now(self) -> float:
        """Seconds since the run's t0 (wall clock: the same in the runner and in Locust)."""
        return time.time() - self.t0_epoch

    @property
    def duration_s(self) -> float:
        return self.scenario.duration_s

    @property
    def mode(self) -> str:
        return self.scenario.load.mode

    @property
    def timeout_s(self) -> float:
        return self.scenario.workload.timeout_s

    @property
    def user_rps(self) -> float:
        return self.scenario.load.user_rps

    @property
    def connection_headers(self) -> dict[str, str]:
        """Headers every request carries: ``Connection: close`` asks for a new connection per request."""
        return {"Connection": "close"} if self.scenario.load.connections == "per-request" else {}

    @property
    def client_connections(self) -> int | None:
        """The cap on client connections shared by all users, or None (one per user / per in-flight request)."""
        return self.scenario.load.client_connections

    def level(self) -> Callable[[float], float]:
        """Offered load at t: requests/s (open loop) or users (closed loop)."""
        return profile_for(self.scenario.load, self.scenario.duration_s)

    def closed_users(self, t: float) -> int:
        return max(0, round(self.level()(t)))

    def arrivals(self, *, sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] | None = None) -> Iterator[float]:
        """Open loop: yields at each arrival time until the end of the load.

        Poisson arrivals (exponential gaps, seeded by the scenario) at the profile's rate of the
        moment: the offered rate does not depend on how fast the target answers.
        """
        now = clock or self.now
        rng = random.Random(self.scenario.seed)
        level = self.level()
        t = max(0.0, now())
        while True:
            rate = level(t)
            gap = rng.expovariate(rate) if rate > 0 else 0.5
            t += gap
            if t >= self.duration_s:
                return
            delay = t - now()
            if delay > 0:
                sleep(delay)
            if rate > 0:
                yield t
