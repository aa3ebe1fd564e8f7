"""Load profiles: pure functions of time shared by the Locust shape and the simulator.

Each returns the offered load level at ``t`` seconds: requests/s in open-loop mode, users in
closed-loop mode (the unit is the scenario's, the shape is the same). ``t`` may also be a numpy
array of times (the simulator computes a whole day at once); a float gives a float.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import numpy as np

from scalelab.scenario import Load

__all__ = ["steady", "spike", "wave", "day", "PROFILES", "profile_for", "level_at", "spike_window"]


def steady(t: float, *, baseline: float) -> float:
    return baseline


def _ramp(t: float, edge: float, ramp_s: float) -> float:
    """0 before ``edge``, 1 after ``edge + ramp_s``, linear in between."""
    if isinstance(t, np.ndarray):
        return (t >= edge).astype(float) if ramp_s <= 0 else np.clip((t - edge) / ramp_s, 0.0, 1.0)
    if ramp_s <= 0:
        return 1.0 if t >= edge else 0.0
    return min(1.0, max(0.0, (t - edge) / ramp_s))


def spike(t: float, *, baseline: float, factor: float, start_s: float, length_s: float, ramp_s: float = 0.0) -> float:
    """Baseline, then ``factor`` x baseline from ``start_s`` for ``length_s``, then baseline."""
    up = _ramp(t, start_s, ramp_s)
    down = _ramp(t, start_s + length_s, ramp_s)
    return baseline * (1.0 + (factor - 1.0) * (up - down))


def wave(t: float, *, baseline: float, factor: float, period_s: float) -> float:
    """A sine between baseline and factor x baseline, starting at baseline."""
    cos = np.cos if isinstance(t, np.ndarray) else math.cos
    phase = (1.0 - cos(2.0 * math.pi * t / period_s)) / 2.0
    return baseline * (1.0 + (factor - 1.0) * phase)


# Hours of the compressed day: night [0, 7) and [19, 24), normal [7, 12) and [13, 19), peak [12, 13).
_DAY_EDGES = ((7.0, "normal"), (12.0, "peak"), (13.0, "normal"), (19.0, "night"))


def day(t: float, *, baseline: float, factor: float, night_factor: float, duration_s: float, ramp_s: float = 0.0) -> float:
    """A 24-hour curve compressed into ``duration_s``: 12 night hours, 11 normal, 1 peak hour.

    ``ramp_s`` is in the same compressed seconds; each change of level ramps linearly over it.
    """
    level = {"night": baseline * night_factor, "normal": baseline, "peak": baseline * factor}
    hour_s = duration_s / 24.0
    value = level["night"]
    prev = "night"
    for hour, name in _DAY_EDGES:
        frac = _ramp(t, hour * hour_s, ramp_s)
        value += (level[name] - level[prev]) * frac
        prev = name
    return value


PROFILES: dict[str, Callable[..., float]] = {"steady": steady, "spike": spike, "wave": wave, "day": day}


def profile_for(load: Load, duration_s: float) -> Callable[[float], float]:
    """The scenario's profile as a function of time alone."""
    if load.profile == "steady":
        return partial(steady, baseline=load.baseline)
    if load.profile == "spike":
        return partial(spike, baseline=load.baseline, factor=load.factor, start_s=load.start_s, length_s=load.length_s, ramp_s=load.ramp_s)
    if load.profile == "wave":
        return partial(wave, baseline=load.baseline, factor=load.factor, period_s=load.period_s)
    return partial(day, baseline=load.baseline, factor=load.factor, night_factor=load.night_factor, duration_s=duration_s, ramp_s=load.ramp_s)


def level_at(load: Load, duration_s: float, t: float) -> float:
    return profile_for(load, duration_s)(t)


def spike_window(load: Load, duration_s: float) -> tuple[float, float] | None:
    """(start, end) of the high-load period in seconds, for chart annotations and analysis."""
    if load.profile == "spike":
        return (load.start_s, load.start_s + load.length_s)
    if load.profile == "day":
        hour_s = duration_s / 24.0
        return (12 * hour_s, 13 * hour_s)
    return None
