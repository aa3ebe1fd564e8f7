"""The simulator: the same scenarios without Docker, written as the same run directories.

`hpa` models the HorizontalPodAutoscaler controller, `metrics` metrics-server, `service` the
ai-agent replicas behind a load balancer, `scalers` who decides the replica count, `engine` runs
an arm and writes its run directory, `calibrate` fits the model to a recorded real run.
Never imports `scalelab.platforms` (and vice versa).
"""

from scalelab.sim.engine import SimResult, prepare_scenario, run_arm, run_scenario, simulate, simulate_runs

__all__ = ["SimResult", "prepare_scenario", "simulate", "run_arm", "run_scenario", "simulate_runs"]
