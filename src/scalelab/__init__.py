"""scalelab: measure why Kubernetes exists, on a laptop, with real numbers.

The same CPU-bound ai-agent service runs on docker compose (scaled by hand) and on Kubernetes
(scaled by a HorizontalPodAutoscaler) under the same Locust spike; a simulator replays the same
scenarios without Docker. Every run is recorded in one run-directory format.
"""

from scalelab.scenario import Scenario, load_scenario
from scalelab.telemetry import Run, RunWriter, load_run
from scalelab.versions import KIT_VERSION as __version__

__all__ = ["Scenario", "load_scenario", "Run", "RunWriter", "load_run", "__version__"]
