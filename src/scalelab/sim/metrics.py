"""A model of metrics-server: what metrics.k8s.io serves the HPA, and when (docs/hpa-controller.md §14-15).

metrics-server scrapes every kubelet at ``s_k = s_0 + k·R`` (R = ``--metric-resolution``) and
keeps the last two cumulative CPU samples per container. A pod is served only when it has two:
CPU = (cum_last − cum_prev) / (t_last − t_prev) in nanocores, ``window`` = t_last − t_prev,
``timestamp`` = t_last. Exception: a container that started at least 10 s but less than one
resolution before its first sample gets a synthetic (startTime, 0) point, so it is served after
one scrape. The HPA reads the latest served value, so it sees a new load level R…2R late.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from scalelab.sim.hpa import PodMetric

__all__ = ["ContainerSample", "MetricsServer", "SYNTHETIC_MIN_AGE_S"]

#: metrics-server's ``freshContainerMinMetricsResolution``.
SYNTHETIC_MIN_AGE_S = 10.0


@dataclass(frozen=True)
class ContainerSample:
    """A kubelet reading of one pod: its start time and cumulative CPU in core-seconds."""

    pod: str
    start_time: float
    cumulative_cpu_s: float


class MetricsServer:
    """Scrapes on a fixed grid, keeps two samples per pod, serves rates like metrics.k8s.io."""

    def __init__(self, resolution_s: float = 15.0, offset_s: float = 0.0) -> None:
        if resolution_s <= 0:
            raise ValueError("resolution_s must be > 0")
        self.resolution_s = float(resolution_s)
        self.offset_s = float(offset_s) % self.resolution_s
        self._samples: dict[str, tuple[tuple[float, float] | None, tuple[float, float]]] = {}
        self._k = 0

    def next_scrape_s(self) -> float:
        return self.offset_s + self._k * self.resolution_s

    def due(self, until_s: float) -> Iterator[float]:
        """Scrape times not yet taken that are ``<= until_s`` (advances the grid)."""
        while self.next_scrape_s() <= until_s:
            t = self.next_scrape_s()
            self._k += 1
            yield t

    def scrape(self, t: float, containers: Iterable[ContainerSample]) -> None:
        """Record one scrape at ``t``; pods not listed are forgotten (deleted or not running)."""
        self.scrape_readings(t, [(c.pod, c.start_time, c.cumulative_cpu_s) for c in containers])

    def scrape_readings(self, t: float, readings: Iterable[tuple[str, float, float]]) -> None:
        """`scrape` given each pod's reading as a plain (pod, start time, cumulative CPU) tuple: the
        simulator scrapes every 15 s of a simulated day and skips building a `ContainerSample` each."""
        fresh: dict[str, tuple[tuple[float, float] | None, tuple[float, float]]] = {}
        samples = self._samples
        for pod, start_time, cumulative_cpu_s in readings:
            last = (t, cumulative_cpu_s)
            known = samples.get(pod)
            if known is not None:
                fresh[pod] = (known[1], last)
                continue
            age = t - start_time
            prev = (start_time, 0.0) if SYNTHETIC_MIN_AGE_S <= age < self.resolution_s else None
            fresh[pod] = (prev, last)
        self._samples = fresh

    def pod_metrics(self) -> dict[str, PodMetric]:
        """What ``kubectl top pods`` / the HPA would get now: pods with two samples only."""
        out: dict[str, PodMetric] = {}
        for pod, (prev, last) in self._samples.items():
            if prev is None or last[0] <= prev[0] or last[1] < prev[1]:
                continue
            window = last[0] - prev[0]
            nanocores = int((last[1] - prev[1]) / window * 1e9)
            out[pod] = PodMetric(_milli_ceil(nanocores), last[0], window)
        return out


def _milli_ceil(nanocores: int) -> int:
    """``Quantity.MilliValue()`` of a nano-unit quantity: rounds up."""
    return -(-nanocores // 1_000_000) if nanocores > 0 else 0

