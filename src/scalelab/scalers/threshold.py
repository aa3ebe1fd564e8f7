"""A home-made threshold autoscaler, the kind a team writes for compose (docs/threshold-scaler.md).

Every ``interval_s`` it averages the ready replicas' CPU and memory (% of their limits) and the
requests in flight per replica (over its observations of the last ``window_s``: 1 s reacts to a
single noisy second), and applies the scenario's rules:

- **up** when the ``scale_up`` rule fires (default: CPU > 80 % *or* memory > 80 % *or* more than
  3 in flight per replica), by ``step`` replicas (or ``step`` % of the current count), at most
  ``max_replicas``, and not sooner than ``up_cooldown_s`` after the last scale action;
- **down** when the ``scale_down`` rule fires (default: CPU < 30 % *and* memory < 30 % *and*
  fewer than 1 in flight), by the same step, at least ``min_replicas``, not sooner than
  ``down_cooldown_s`` after the last scale action;
- a count outside ``[min, max]`` is brought inside at once.

A metric the platform does not measure (None in every ready replica) is left out of the rule and
shown as ``n/a``; a rule with no measured metric never fires. A manual scale (a live
`scalelab scale`) pauses the scaler for ``override_pause_s``; `pause`/`resume` switch it off and on.
``dry_run`` records what it would do without scaling (cooldowns run as if it had acted).

Every scale carries the figures that triggered it in ``detail``; a rule that fires but is held
(cooldown, bound, pause) is recorded as a ``scaler_decision`` once per reason until the next scale
action, not every second.
The same object runs in a real run (`scalelab.runner`) and in the simulator
(`scalelab.sim.scalers`).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any

from scalelab.scalers.base import ReplicaStat, ScaleDecision, ScalerView

__all__ = ["ThresholdAutoscaler", "Figures", "measure", "over_window", "rule_fires", "step_target"]

DECISION = "scaler_decision"


@dataclass(frozen=True)
class Figures:
    """Averages over the ready replicas; None = not measured."""

    ready: int
    cpu_pct: float | None
    mem_pct: float | None
    in_flight: float | None

    def text(self) -> str:
        def f(v: float | None, unit: str) -> str:
            return "n/a" if v is None else f"{v:.1f}{unit}"

        return f"cpu {f(self.cpu_pct, '%')}, mem {f(self.mem_pct, '%')}, in-flight/replica {f(self.in_flight, '')} over {self.ready} ready"


def _mean(values: list[float | None]) -> float | None:
    got = [v for v in values if v is not None]
    return sum(got) / len(got) if got else None


def measure(replicas: tuple[ReplicaStat, ...]) -> Figures:
    ready = [r for r in replicas if r.ready]
    return Figures(
        len(ready),
        _mean([r.cpu_pct_of_limit for r in ready]),
        _mean([r.mem_pct_of_limit for r in ready]),
        _mean([r.in_flight for r in ready]),
    )


def over_window(history: deque[tuple[float, Figures]], t_s: float, now: Figures, window_s: float) -> Figures:
    """Append ``now`` (observed at ``t_s``) to ``history`` and average the figures of the last ``window_s``.

    Each figure is the mean of the observations that measured it (None only if none did); ``ready``
    is this observation's.
    """
    history.append((t_s, now))
    while history and history[0][0] <= t_s - window_s + 1e-9:
        history.popleft()
    seen = [f for _, f in history]
    return Figures(
        now.ready,
        _mean([f.cpu_pct for f in seen]),
        _mean([f.mem_pct for f in seen]),
        _mean([f.in_flight for f in seen]),
    )


_METRICS = (("cpu_pct", "cpu"), ("mem_pct", "mem"), ("in_flight", "in-flight"))


def rule_fires(rule: Any, figures: Figures, up: bool) -> tuple[bool, str]:
    """Whether ``rule`` fires on ``figures`` (above its thresholds when ``up``, below when not), and why."""
    results: list[bool] = []
    parts: list[str] = []
    for field, label in _METRICS:
        limit = getattr(rule, field)
        if limit is None:
            continue
        value = getattr(figures, field)
        if value is None:
            parts.append(f"{label} n/a")
            continue
        hit = value > limit if up else value < limit
        results.append(hit)
        parts.append(f"{label} {value:.1f} {'>' if up else '<'} {limit:g}: {'yes' if hit else 'no'}")
    fired = bool(results) and (any(results) if rule.combine == "any" else all(results))
    return fired, f"{rule.combine}({'; '.join(parts)})"


def step_target(current: int, step: int, unit: str, up: bool) -> int:
    """The count one step away: ``step`` replicas, or ``step`` % of ``current`` (at least one)."""
    delta = step if unit == "pods" else max(1, math.ceil(current * step / 100.0))
    return current + delta if up else current - delta


class ThresholdAutoscaler:
    """`scalelab.scalers.base.KitScaler` for ``scaler: threshold`` (a `scalelab.scenario.ThresholdScaler`)."""

    source = "threshold"

    def __init__(self, config: Any) -> None:
        self.cfg = config
        self._next = float(config.interval_s)
        self._last_action_s = -math.inf
        self._paused_until = -math.inf
        self._switched_off = False
        self._pending_notes: list[ScaleDecision] = []
        self._last_hold: str | None = None
        self._history: deque[tuple[float, Figures]] = deque()

    # -- the contract --------------------------------------------------------------------------
    def next_due_s(self) -> float | None:
        return self._next

    def override(self, t_s: float, replicas: int) -> None:
        """A manual scale: pause for ``override_pause_s`` and count it as the last scale action."""
        self._paused_until = t_s + float(self.cfg.override_pause_s)
        self._last_action_s = t_s
        self._last_hold = None
        self._pending_notes.append(
            ScaleDecision(t_s, None, self.source, f"paused: manual scale to {replicas}; resumes at t={self._paused_until:g} s", kind=DECISION)
        )

    def pause(self, t_s: float, why: str = "switched off") -> None:
        """Off until `resume` (``scalelab autoscale pause``)."""
        if not self._switched_off:
            self._switched_off = True
            self._pending_notes.append(ScaleDecision(t_s, None, self.source, f"paused: {why}", kind=DECISION))

    def resume(self, t_s: float, why: str = "switched on") -> None:
        if self._switched_off:
            self._switched_off = False
            self._last_hold = None
            self._pending_notes.append(ScaleDecision(t_s, None, self.source, f"resumed: {why}", kind=DECISION))

    def decide(self, view: ScalerView) -> list[ScaleDecision]:
        t = view.t_s
        interval = float(self.cfg.interval_s)
        self._next = (math.floor(t / interval + 1e-9) + 1) * interval
        out, self._pending_notes = self._pending_notes, []
        decision = self._evaluate(view)
        if decision is not None:
            out.append(decision)
        return out

    # -- the rules -----------------------------------------------------------------------------
    def _evaluate(self, view: ScalerView) -> ScaleDecision | None:
        cfg, t, current = self.cfg, view.t_s, view.desired
        figures = over_window(self._history, t, measure(view.replicas), float(cfg.window_s))
        if self._switched_off:
            return None
        if t < self._paused_until:
            return None
        if current < cfg.min_replicas or current > cfg.max_replicas:
            target = min(max(current, cfg.min_replicas), cfg.max_replicas)
            return self._scale(t, target, f"{current} -> {target}: outside min {cfg.min_replicas} / max {cfg.max_replicas}; {figures.text()}")
        if figures.ready == 0:
            return None
        up, up_why = rule_fires(cfg.scale_up, figures, up=True)
        if up:
            target = min(step_target(current, cfg.step, cfg.step_unit, up=True), cfg.max_replicas)
            return self._try(t, current, target, float(cfg.up_cooldown_s), "up", f"scale up: {up_why}; {figures.text()}")
        down, down_why = rule_fires(cfg.scale_down, figures, up=False)
        if down:
            target = max(step_target(current, cfg.step, cfg.step_unit, up=False), cfg.min_replicas)
            return self._try(t, current, target, float(cfg.down_cooldown_s), "down", f"scale down: {down_why}; {figures.text()}")
        return None

    def _try(self, t: float, current: int, target: int, cooldown: float, direction: str, why: str) -> ScaleDecision | None:
        if target == current:
            bound = "max_replicas" if direction == "up" else "min_replicas"
            return self._hold(t, f"{direction}-at-bound", f"held at {bound} {current}: {why}")
        left = self._last_action_s + cooldown - t
        if left > 1e-9:
            return self._hold(t, f"{direction}-cooldown", f"held by the {direction} cooldown ({cooldown:g} s, {left:.0f} s left): {why}")
        return self._scale(t, target, f"{current} -> {target}: {why}")

    def _scale(self, t: float, target: int, why: str) -> ScaleDecision:
        self._last_action_s = t
        self._last_hold = None
        if self.cfg.dry_run:
            return ScaleDecision(t, target, self.source, f"dry-run, would scale {why}", kind=DECISION)
        return ScaleDecision(t, target, self.source, why)

    def _hold(self, t: float, reason: str, detail: str) -> ScaleDecision | None:
        if reason == self._last_hold:
            return None
        self._last_hold = reason
        return ScaleDecision(t, None, self.source, detail, kind=DECISION)
