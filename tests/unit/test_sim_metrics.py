"""metrics-server model: two samples per pod, rate over the window, the synthetic-start exception."""

from __future__ import annotations

import pytest

from scalelab.sim.metrics import ContainerSample, MetricsServer


def test_scrape_grid_and_two_sample_rate() -> None:
    ms = MetricsServer(15.0, offset_s=4.0)
    assert list(ms.due(33.9)) == [4.0, 19.0]
    ms.scrape(4.0, [ContainerSample("a", -100.0, 10.0)])
    assert ms.pod_metrics() == {}  # one sample: not served yet
    ms.scrape(19.0, [ContainerSample("a", -100.0, 10.0 + 15 * 0.2501)])
    m = ms.pod_metrics()["a"]
    assert m.usage_m == 251  # 250.1 m rounds up (Quantity.MilliValue)
    assert (m.timestamp, m.window_s) == (19.0, 15.0)


def test_new_pod_is_missing_for_a_scrape_unless_started_10_to_15_s_before() -> None:
    for age, served in ((5.0, False), (10.0, True), (14.9, True), (15.0, False), (40.0, False)):
        ms = MetricsServer(15.0)
        ms.scrape(100.0, [ContainerSample("a", 100.0 - age, 0.3 * age)])
        got = ms.pod_metrics()
        assert ("a" in got) is served, age
        if served:
            assert got["a"].usage_m == 300 and got["a"].window_s == pytest.approx(age)


def test_deleted_pods_are_forgotten() -> None:
    ms = MetricsServer(15.0)
    ms.scrape(0.0, [ContainerSample("a", -60, 1.0), ContainerSample("b", -60, 1.0)])
    ms.scrape(15.0, [ContainerSample("a", -60, 2.0)])
    assert set(ms.pod_metrics()) == {"a"}
