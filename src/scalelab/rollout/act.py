"""Perform a scenario's rollout on a running platform: the schedule the runner fires, and its hooks.

The runner calls `RolloutSchedule.fire` at ``rollout.at_s``; the platform's hook (`ROLLERS`, by
platform name) runs in a background thread, so the once-a-second sampling never stalls, and
reports what it does through ``emit``. Every step becomes an event on the run's time axis:

- ``rollout_start`` (detail: ``strategy=<s> to=<version> image=<tag> replicas=<n>``);
- ``rollout`` steps (what the hook did, what it waits for);
- ``rollout_end`` (detail: ``ok wall_s=<s> ...``, or ``failed: <why>``) once every desired replica
  runs the new version and is ready (compose: healthy; Kubernetes: the Deployment's rollout is
  complete, as ``kubectl rollout status`` reports it).

A failed rollout is recorded, not raised: the load and the sampling go on to the end of the run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from scalelab.errors import ScalelabError, ScenarioError
from scalelab.rollout.strategies import STRATEGIES, default_strategy
from scalelab.scenario import ArmRollout, Scenario
from scalelab.versions import agent_image

__all__ = ["Emit", "Roller", "LocalImageRoller", "ROLLERS", "RolloutSchedule", "roller_for", "effective", "require_local_image"]

#: ``emit(kind, detail)``: record one step of the rollout (kind: rollout | note)
Emit = Callable[[str, str], None]


class Roller(Protocol):
    def preflight(self, image: str) -> None:
        """PreflightError when the new image cannot run on this platform (before anything starts)."""
        ...

    def roll(self, image: str, how: ArmRollout, emit: Emit, stop: threading.Event, timeout_s: float) -> str:
        """Move every replica to ``image``; returns a summary for ``rollout_end``; raises on failure."""
        ...


def require_local_image(image: str) -> None:
    """PreflightError when the rollout's image is not in the local Docker engine (compose, swarm)."""
    from scalelab import engine
    from scalelab.errors import PreflightError

    if not engine.image_exists(image):
        raise PreflightError(f"image {image} (the rollout's new version) is not built on this machine",
                             fix="build it: `make image` (`scalelab image` tags v2 on top of v1 in a second)", lab="00-prerequisites")


class LocalImageRoller:
    """Base of the Docker-engine rollers (compose, swarm): they keep the platform and need the new image locally."""

    def __init__(self, platform: Any) -> None:
        self.platform = platform

    def preflight(self, image: str) -> None:
        require_local_image(image)


def effective(platform: str, how: ArmRollout | None) -> ArmRollout:
    """The arm's rollout settings with the platform's default strategy filled in."""
    how = how or ArmRollout()
    return how if how.strategy else how.model_copy(update={"strategy": default_strategy(platform)})


def _compose(platform: Any) -> Roller:
    from scalelab.rollout.compose import ComposeRoller

    return ComposeRoller(platform)


def _kubernetes(platform: Any) -> Roller:
    from scalelab.rollout.kubernetes import KubernetesRoller

    return KubernetesRoller(platform)


def _swarm(platform: Any) -> Roller:
    from scalelab.rollout.swarm import SwarmRoller

    return SwarmRoller(platform)


#: platform name -> its hook; a new platform adds one line here and its strategies to `STRATEGIES`
ROLLERS: dict[str, Callable[[Any], Roller]] = {"compose": _compose, "kubernetes": _kubernetes, "swarm": _swarm}


def roller_for(platform: Any) -> Roller:
    make = ROLLERS.get(platform.name)
    if make is None:
        known = ", ".join(ROLLERS)
        raise ScenarioError(f"rollouts are not implemented on {platform.name}", fix=f"remove rollout: from the scenario, or run an arm on {known}")
    return make(platform)


class RolloutSchedule:
    """A scenario's rollout (at most one per run); fired by the runner, run in a thread."""

    def __init__(self, scenario: Scenario, arm: str, platform: Any, now: Callable[[], float] = time.monotonic) -> None:
        _, arm_cfg = scenario.arm(arm)
        self.spec = scenario.rollout
        self.platform = platform
        self.how = effective(arm_cfg.platform, arm_cfg.rollout)
        self.timeout_s = 300.0 if self.spec is None else max(60.0, scenario.duration_s - self.spec.at_s + 60.0)
        self.now = now
        self._pending = self.spec is not None
        self._roller: Roller | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._events: list[tuple[float, str, str]] = []

    def __bool__(self) -> bool:
        return self.spec is not None

    @property
    def image(self) -> str:
        assert self.spec is not None
        return agent_image(self.spec.to)

    def check(self, source: str) -> None:
        """ScenarioError before anything starts when the arm's platform cannot roll out."""
        if self.spec is None:
            return
        if self.platform.name not in ROLLERS or self.how.strategy not in STRATEGIES.get(self.platform.name, ()):
            allowed = "; ".join(f"{p}: {', '.join(s)}" for p, s in STRATEGIES.items())
            raise ScenarioError(f"{source}: rollouts cannot run on {self.platform.name} (strategy {self.how.strategy})",
                                fix=f"remove rollout: from the scenario, or run an arm of a platform that has them ({allowed})")
        self._roller = roller_for(self.platform)

    def preflight(self) -> None:
        if self.spec is not None:
            if self._roller is None:
                self._roller = roller_for(self.platform)
            self._roller.preflight(self.image)

    def next_due_s(self) -> float | None:
        return self.spec.at_s if self._pending and self.spec is not None else None

    def fire(self, t: float) -> str:
        """Start the rollout now (run time ``t``); returns the ``rollout_start`` detail."""
        assert self.spec is not None
        self._pending = False
        if self._roller is None:
            self._roller = roller_for(self.platform)
        replicas = self.platform.current_replicas()
        detail = f"strategy={self.how.strategy} to={self.spec.to} image={self.image} replicas={replicas}"
        self._add(t, "rollout_start", detail)
        self._thread = threading.Thread(target=self._run, args=(t,), name="rollout", daemon=True)
        self._thread.start()
        return detail

    def _add(self, t: float, kind: str, detail: str) -> None:
        with self._lock:
            self._events.append((t, kind, detail))

    def _emit(self, kind: str, detail: str) -> None:
        self._add(self.now(), kind, detail)

    def _run(self, t_start: float) -> None:
        assert self._roller is not None
        try:
            summary = self._roller.roll(self.image, self.how, self._emit, self._stop, self.timeout_s)
        except ScalelabError as exc:
            self._emit("rollout_end", f"failed: {exc.message}"[:400])
        except Exception as exc:  # noqa: BLE001 - recorded: the run goes on to its end
            self._emit("rollout_end", f"failed: {type(exc).__name__}: {exc}"[:400])
        else:
            self._emit("rollout_end", f"ok wall_s={self.now() - t_start:.2f} {summary}".strip())

    def drain(self) -> list[tuple[float, str, str]]:
        """The steps recorded since the last call, in time order."""
        with self._lock:
            out, self._events = sorted(self._events, key=lambda e: e[0]), []
        return out

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout_s: float = 60.0) -> None:
        """Ask the hook to give up waiting, and wait for its thread (teardown)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)
