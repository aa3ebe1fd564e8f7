"""One real run of one scenario arm on a platform, recorded once a second into a run directory.

Platform-agnostic (compose and Kubernetes share it): preflight -> up -> wait until healthy ->
Locust (a subprocess) and the sampler -> teardown (unless ``keep``). Each second ``t_s = k``
the runner records a sample: the platform's observation (desired/ready replicas, CPU, memory),
the requests that completed in ``(k-1, k]`` (rps, p50/p95, errors; from ``requests.csv``, not
Locust's smoothed window), the offered load from the profile, the phase and the cumulative cost
of the desired replicas. The kit scaler's decisions are issued at their time (in a
background thread, so sampling never stalls) and logged as ``scale`` events.

Time base: ``t_s = 0`` when the load starts; Locust uses the same t0 (wall clock), so profile,
requests and samples align. Phases: ``warmup`` until the first request completes (Locust
starting), ``load`` until the scenario's duration, ``cooldown`` while in-flight requests drain.

Who scales: a kit scaler (`scalelab.scalers`: the manual plan, fixed, ...) decides at its own
times from the latest observation, the same code the simulator runs; an in-platform scaler (the
HPA) is configured by the platform and only observed. A live `scalelab scale` is recorded and
passed to the kit scaler as an override.

The load generator and the clock are injected (`Clock`, ``start_load``), so a unit test drives a
full recorded run with a fake platform, a fake load and no sleeping.

Ctrl-C (or SIGTERM) stops the load, tears down and leaves the run directory with status
``interrupted``.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from scalelab.cost import CostMeter
from scalelab.errors import PlatformError, ScalelabError, ScenarioError
from scalelab.faults.inject import FaultSchedule
from scalelab.load.locust import LocustProcess
from scalelab.load.plan import LoadPlan
from scalelab.load.profiles import profile_for
from scalelab.platforms import Platform, PlatformOptions, platform_for
from scalelab.registry import platform_spec, scaler_spec
from scalelab.rollout.act import RolloutSchedule
from scalelab.runview import RunView
from scalelab.scalers import KitScaler, ScaleDecision, ScalerView, make_kit_scaler
from scalelab.scenario import Scenario
from scalelab.telemetry import RunWriter, schema
from scalelab.telemetry.requests import RequestTail, second_stats
from scalelab.telemetry.spread import WindowSpread, replica_seconds
from scalelab.telemetry.store import new_run_id

__all__ = ["RunOptions", "run_arm", "Runner", "Clock", "SystemClock", "LoadGenerator", "StartLoad"]

#: Where in each second the runner samples (gives Locust's 0.25 s flush time to land).
SAMPLE_OFFSET_S = 0.4
#: After the load ends, the cooldown lasts while in-flight requests may still answer.
MAX_DRAIN_S = 15.0


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def time(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class LoadGenerator(Protocol):
    """A running load (Locust in a subprocess, or a test's fake) writing ``requests.csv``."""

    argv: list[str]
    log_path: Path

    @property
    def returncode(self) -> int | None: ...

    def running(self) -> bool: ...

    def status(self) -> dict[str, Any]: ...

    def log_tail(self, lines: int = 15) -> str: ...

    def stop(self, timeout_s: float = 15.0) -> int: ...


#: starts the load: (plan, front-door URL, run directory, scenario file) -> a running load
StartLoad = Callable[[LoadPlan, str, Path, Path], LoadGenerator]


def start_locust(plan: LoadPlan, host_url: str, run_dir: Path, scenario_file: Path) -> LoadGenerator:
    return LocustProcess.start(plan, host_url=host_url, run_dir=run_dir, scenario_file=scenario_file)


@dataclass(frozen=True)
class RunOptions:
    runs_dir: Path = Path("runs")
    keep: bool = False
    ready_timeout_s: float = 180.0
    platform_options: PlatformOptions = field(default_factory=PlatformOptions)
    #: Load a platform that is already up (`scalelab load`): no preflight, up or teardown.
    attach: bool = False


def run_arm(scenario: Scenario, arm: str | None, options: RunOptions, *, view: RunView | None = None) -> Path:
    """Run one arm of a sized scenario for real; returns the run directory."""
    arm_name, arm_cfg = scenario.arm(arm)
    run_id = new_run_id(scenario.name, arm_name)
    platform = platform_for(arm_cfg.platform, scenario, arm_name, run_id=run_id, options=options.platform_options)
    return Runner(scenario, arm_name, platform, options, run_id=run_id, view=view).run()


class Runner:
    def __init__(self, scenario: Scenario, arm: str, platform: Platform, options: RunOptions, *, run_id: str, view: RunView | None = None,
                 clock: Clock | None = None, start_load: StartLoad | None = None) -> None:
        self.scenario = scenario
        self.arm_name, self.arm = scenario.arm(arm)
        self.platform = platform
        self.options = options
        self.run_id = run_id
        self.clock: Clock = clock or SystemClock()
        self.start_load: StartLoad = start_load or start_locust
        #: the kit's own scaler (None: the platform's, e.g. the HPA, or nobody)
        self.scaler: KitScaler | None = make_kit_scaler(self.arm.scaler) if scaler_spec(self.arm.scaler.type).kit else None
        self._last_view = ScalerView(0.0, self.arm.replicas, 0)
        self.drain_s = min(MAX_DRAIN_S, scenario.workload.timeout_s + 1.0)
        self.total_s = scenario.duration_s + self.drain_s + 1.0
        self.view = view or RunView(f"{scenario.name} / {arm}", self.total_s)
        self.level = profile_for(scenario.load, scenario.duration_s)
        self._scale_errors: list[BaseException] = []
        self._scale_threads: list[threading.Thread] = []
        self.faults = FaultSchedule(scenario.faults, platform, scenario.seed)
        if hasattr(platform, "progress"):  # a platform that reports long steps (starting hosts) says them in the view
            platform.progress = self.view.message
        self.rollout = RolloutSchedule(scenario, self.arm_name, platform, now=self._t)

    # -- the whole run ------------------------------------------------------------------------
    def run(self) -> Path:
        check_hosts(self.scenario, self.arm.platform)
        self.faults.check(self.scenario.source or self.scenario.name)
        self.rollout.check(self.scenario.source or self.scenario.name)
        if not self.options.attach:
            self.platform.preflight()  # raises before anything starts
            self.rollout.preflight()
        writer = RunWriter.create(self.options.runs_dir, scenario=self.scenario, arm=self.arm_name, platform=self.arm.platform, run_id=self.run_id)
        previous_term = _sigterm_as_interrupt()
        with self.view, writer:
            self.view.message(f"run directory: {writer.dir}")
            try:
                self._bring_up(writer)
                self._measure(writer)
            except KeyboardInterrupt:
                self.view.message("interrupted: stopping the load and tearing down (what was recorded stays)")
                writer.event(self._t(), "note", detail="interrupted (Ctrl-C)")
                raise
            finally:
                self._teardown(writer)
                _restore(signal.SIGTERM, previous_term)
        return writer.dir

    def _bring_up(self, writer: RunWriter) -> None:
        replicas = self.arm.replicas
        started = self.clock.monotonic()
        if self.options.attach:
            self.view.message(f"loading the running {self.arm.platform} service ({replicas} replicas)")
        else:
            self.view.message(f"starting {self.arm.platform}: {replicas} replicas ({self.scenario.workload.cpu_limit:g} CPU each) ...")
            self.platform.up(replicas)
        self.platform.wait_ready(replicas, timeout_s=self.options.ready_timeout_s)
        self.platform.check_limits()
        self.platform.save_rendered(writer.dir)  # what was applied, kept with the run
        writer.note(platform_info=self.platform.describe(), up_s=round(self.clock.monotonic() - started, 2), base_url=self.platform.base_url)
        # The replicas that started before the load: their start/ready events belong at t = 0.
        for ev in self.platform.observe().events:
            writer.event(0.0, ev["kind"], replicas=ev.get("replicas"), source=ev.get("source", ""), detail=ev.get("detail", ""))
        self.view.message(f"{replicas}/{replicas} ready after {self.clock.monotonic() - started:.1f} s at {self.platform.base_url}")

    # -- once a second -------------------------------------------------------------------------
    def _measure(self, writer: RunWriter) -> None:
        status_file = writer.dir / ".load-status.json"
        plan = LoadPlan(
            scenario=self.scenario,
            t0_epoch=self.clock.time(),
            requests_csv=writer.dir / schema.REQUESTS,
            status_file=status_file,
            drain_s=self.drain_s,
        )
        self._t0 = self.clock.monotonic() - (self.clock.time() - plan.t0_epoch)
        self._writer = writer
        writer.note(t0_utc=_iso_epoch(plan.t0_epoch), sample_offset_s=SAMPLE_OFFSET_S, drain_s=self.drain_s)
        locust = self.start_load(plan, self.platform.base_url, writer.dir, writer.dir / schema.SCENARIO)
        writer.note(load_command=locust.argv[1:])
        tail = RequestTail(writer.dir / schema.REQUESTS)
        spread = WindowSpread()
        cost = CostMeter(self.scenario.price_per_replica_hour)
        phase = ""
        first_request = False
        try:
            last_k = math.ceil(self.total_s)
            for k in range(1, last_k + 1):
                self._wait_until(k + SAMPLE_OFFSET_S)
                self._raise_scale_errors()
                obs = self.platform.observe()
                tail.poll()
                records = tail.take_records(k)
                stats = second_stats(records)
                spread.add(r.replica for r in records)
                first_request = first_request or tail.total > 0
                new_phase = "warmup" if not first_request and k < self.scenario.duration_s else ("load" if k <= self.scenario.duration_s else "cooldown")
                if new_phase != phase:
                    writer.event(float(k - 1) if phase else 0.0, "phase", detail=new_phase)
                    phase = new_phase
                self._record_rollout()
                for ev in obs.events:
                    writer.event(self._t(), ev["kind"], replicas=ev.get("replicas"), source=ev.get("source", ""), detail=ev.get("detail", ""))
                    if ev["kind"] == "scale":
                        self.view.event(self._t(), f"scale to {ev.get('replicas')} ({ev.get('source')})")
                        if ev.get("source") == "live" and self.scaler is not None and ev.get("replicas") is not None:
                            self.scaler.override(self._t(), int(ev["replicas"]))
                    elif ev["kind"] == "autoscale" and self.scaler is not None:  # `scalelab autoscale pause|resume`
                        switch = getattr(self.scaler, str(ev.get("detail")), None) if ev.get("detail") in ("pause", "resume") else None
                        if switch is not None:
                            switch(self._t(), "scalelab autoscale " + str(ev["detail"]))
                self._last_view = ScalerView(float(k), obs.replicas_desired, obs.replicas_ready, tuple(obs.replicas))
                if obs.placement:
                    writer.placement({"t_s": k, **p} for p in obs.placement)
                if obs.hosts:
                    writer.hosts({"t_s": k, **h} for h in obs.hosts)
                status = locust.status()
                row = self._row(k, phase, obs, stats, status, cost)
                ready = [str(p["pod"]) for p in obs.placement if p.get("ready")] if obs.placement else obs.replicas_ready
                row["spread_busiest"], row["spread_jain"] = spread.figures(ready)
                writer.sample(**row)
                self.view.sample(row)
                if not locust.running() and k < self.scenario.duration_s:
                    raise PlatformError(
                        f"Locust stopped early (exit {locust.returncode}) at t={k} s:\n{locust.log_tail()}",
                        fix=f"read {locust.log_path}",
                    )
        finally:
            locust.stop()
            tail.poll()
            writer.note(requests_recorded=tail.total, load_exit_code=locust.returncode, load_status=locust.status())
            status_file.unlink(missing_ok=True)
            try:
                writer.replicas(replica_seconds(writer.read_requests(), writer.read_placement()))
            except Exception as exc:  # noqa: BLE001 - a derived file must not hide why the run stopped
                writer.note(replicas_error=f"{type(exc).__name__}: {exc}")

    def _row(self, k: int, phase: str, obs: Any, stats: Any, status: dict[str, Any], cost: CostMeter) -> dict[str, Any]:
        limit = self.scenario.workload.cpu_limit
        util = None
        measured = obs.replicas_measured if obs.replicas_measured else obs.replicas_ready
        if obs.cpu_cores_used is not None and measured > 0:
            util = obs.cpu_cores_used / (measured * limit) * 100.0
        offered = self.level(k - 0.5) if k - 0.5 < self.scenario.duration_s else 0.0
        users = status.get("in_flight") if self.scenario.load.mode == "open" else status.get("users")
        return {
            "t_s": k,
            "utc": _iso_epoch(self.clock.time()),
            "phase": phase,
            "replicas_desired": obs.replicas_desired,
            "replicas_ready": obs.replicas_ready,
            "cpu_cores_used": obs.cpu_cores_used,
            "cpu_util_pct": util,
            "hpa_util_pct": obs.hpa_util_pct,
            "mem_mb": obs.mem_mb,
            "offered_load": offered,
            "rps": stats.rps,
            "p50_ms": stats.p50_ms,
            "p95_ms": stats.p95_ms,
            "errors": stats.errors,
            "users": users,
            "cost_usd_cum": cost.add(obs.replicas_desired, 1.0),
        }

    def _wait_until(self, t_target: float) -> None:
        """Sleep until run time ``t_target``, letting the kit scaler decide at its own times on the way."""
        while True:
            due = self.scaler.next_due_s() if self.scaler is not None else None
            self._fire_faults(t_target if due is None else min(due, t_target))
            now = self._t()
            if due is not None and due <= t_target:
                if due > now:
                    self.clock.sleep(due - now)
                assert self.scaler is not None
                view = self._last_view
                for decision in self.scaler.decide(ScalerView(max(due, now), view.desired, view.ready, view.replicas)):
                    self._act(decision)
                if self.scaler.next_due_s() == due:
                    break  # a scaler that did not advance decides again after this second's sample
                continue
            break
        self._fire_faults(t_target)
        now = self._t()
        if t_target > now:
            self.clock.sleep(t_target - now)

    def _fire_faults(self, until: float) -> None:
        """Inject the scenario's faults (and start its rollout) due by ``until`` at their times; each is an event."""
        while (due := min((d for d in (self.faults.next_due_s(), self.rollout.next_due_s()) if d is not None), default=None)) is not None and due <= until:
            now = self._t()
            if due > now:
                self.clock.sleep(due - now)
            t = self._t()
            if due == self.rollout.next_due_s():
                self.view.event(t, "rollout: " + self.rollout.fire(t))
                self._record_rollout()
                continue
            try:
                done = self.faults.fire_next()
            except ScalelabError as exc:
                self._writer.event(t, "note", source="fault", detail=f"fault at {due:g} s not injected: {exc.message}")
                continue
            self._writer.event(t, "fault", source="kit", detail=done.detail())
            self.view.event(t, done.detail())

    def _record_rollout(self) -> None:
        """The rollout's steps so far (its thread queues them; only this thread writes events)."""
        for t, kind, detail in self.rollout.drain():
            self._writer.event(t, kind, source="kit", detail=detail)
            if kind != "rollout_start":
                self.view.event(t, f"{kind}: {detail}")

    def _act(self, decision: ScaleDecision) -> None:
        t = self._t()
        self._writer.event(t, decision.kind, replicas=decision.replicas, source=decision.source, detail=decision.detail)
        if decision.kind != "scale" or decision.replicas is None:
            return
        replicas = decision.replicas
        self.view.event(t, f"scale to {replicas} ({decision.source})")

        def scale() -> None:
            try:
                self.platform.scale(replicas)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the sampling loop
                self._scale_errors.append(exc)

        thread = threading.Thread(target=scale, name=f"scale-{replicas}", daemon=True)
        thread.start()
        self._scale_threads.append(thread)

    def _raise_scale_errors(self) -> None:
        if self._scale_errors:
            raise self._scale_errors.pop(0)

    def _t(self) -> float:
        t0 = getattr(self, "_t0", None)
        return 0.0 if t0 is None else round(self.clock.monotonic() - t0, 3)

    # -- always -------------------------------------------------------------------------------
    def _teardown(self, writer: RunWriter) -> None:
        previous = _ignore_sigint()
        try:
            for thread in self._scale_threads:
                thread.join(timeout=60)
            if self.rollout.running:
                self.view.message("waiting for the rollout to give up ...")
            self.rollout.stop(timeout_s=60)
            if hasattr(self, "_writer"):
                self._record_rollout()
            if self.options.keep or self.options.attach:
                self.view.message(f"--keep: the replicas stay up at {self.platform.base_url}; remove them with `scalelab down {self.platform.name}`")
                return
            self.view.message("tearing down ...")
            try:
                self.platform.down()
            except ScalelabError as exc:
                writer.note(teardown_error=exc.render())
                self.view.message(f"teardown failed: {exc.render()}")
        finally:
            _restore_sigint(previous)


def check_hosts(scenario: Scenario, platform: str) -> None:
    """ScenarioError before anything starts when the scenario has ``hosts:`` and ``platform`` cannot run on them."""
    from scalelab.registry import PLATFORMS

    if scenario.hosts and not platform_spec(platform).runs_on_hosts:
        able = ", ".join(p.name for p in PLATFORMS.values() if p.runs_on_hosts)
        raise ScenarioError(f"{scenario.source or scenario.name}: hosts: is set, but platform {platform} does not run on the kit's hosts yet",
                            fix=f"run an arm on a platform that does ({able}), or remove hosts: from the scenario")


def _ignore_sigint() -> Callable[..., Any] | int | None:
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGINT, signal.SIG_IGN)


def _restore_sigint(previous: Any) -> None:
    _restore(signal.SIGINT, previous)


def _sigterm_as_interrupt() -> Callable[..., Any] | int | None:
    """A SIGTERM (e.g. `timeout`, a CI runner) stops the run like Ctrl-C: teardown, status interrupted."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, interrupt)


def _restore(signum: int, previous: Any) -> None:
    if previous is not None:
        signal.signal(signum, previous)


def _iso_epoch(epoch: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
