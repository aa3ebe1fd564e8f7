"""scalelab: measure why Kubernetes exists, on a laptop, with real numbers.

The same CPU-bound ai-agent service runs on docker compose (scaled by hand) and on Kubernetes
(scaled by a HorizontalPodAutoscaler) under the same Locust spike; a simulator replays the same
scenarios without Docker. Every run is recorded in one run-directory format.

The public names below are imported lazily (PEP 562), so `import scalelab.agent` inside the
workload image needs neither pydantic nor PyYAML.
"""

from __future__ import annotations

from typing import Any

from scalelab.versions import KIT_VERSION as __version__

__all__ = ["Scenario", "load_scenario", "Run", "RunWriter", "load_run", "__version__"]

_LAZY = {
    "Scenario": "scalelab.scenario",
    "load_scenario": "scalelab.scenario",
    "Run": "scalelab.telemetry",
    "RunWriter": "scalelab.telemetry",
    "load_run": "scalelab.telemetry",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'scalelab' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
