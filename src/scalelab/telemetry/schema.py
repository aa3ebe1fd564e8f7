"""The run-directory schema: file names, columns and their meaning. One module for everyone.

A run directory ``runs/<run-id>/`` holds:

- ``manifest.json``: what ran (scenario, arm, platform, scaler, versions, git revision, seed,
  UTC start/end, status);
- ``samples.csv``: one row per second (columns below);
- ``events.csv``: scale actions, HPA decisions, container/pod starts and stops;
- ``requests.csv``: one row per request (real runs);
- ``placement.csv``: per replica and second: node, phase, ready, CPU (pods on Kubernetes,
  containers on compose);
- ``replicas.csv``: per replica and second: requests completed, average in-flight, CPU, ready
  (written at the end of a real run from requests.csv and placement.csv; `telemetry.spread`);
- ``hosts.csv``: per host and second (scenarios with ``hosts:``): up, replicas there, cores used,
  its CPU cap and memory (`scalelab.hosts`);
- ``scenario.yaml``: the scenario as sized for this run.

Empty cells mean "not measured on this platform".
"""

from __future__ import annotations

__all__ = [
    "platform_of",
    "MANIFEST",
    "SAMPLES",
    "EVENTS",
    "REQUESTS",
    "PLACEMENT",
    "REPLICAS",
    "REPLICA_COLUMNS",
    "LATER_SAMPLE_COLUMNS",
    "SCENARIO",
    "SAMPLE_COLUMNS",
    "EVENT_COLUMNS",
    "REQUEST_COLUMNS",
    "LATER_REQUEST_COLUMNS",
    "PLACEMENT_COLUMNS",
    "HOSTS",
    "HOST_COLUMNS",
    "STATUSES",
    "platforms",
    "EVENT_KINDS",
    "COLUMN_DOCS",
]

MANIFEST = "manifest.json"
SAMPLES = "samples.csv"
EVENTS = "events.csv"
REQUESTS = "requests.csv"
PLACEMENT = "placement.csv"
REPLICAS = "replicas.csv"
HOSTS = "hosts.csv"
SCENARIO = "scenario.yaml"

STATUSES = ("running", "completed", "interrupted", "failed")
def platforms() -> tuple[str, ...]:
    """Where the replicas ran: every registered platform, or ``sim`` (which records ``modeled_platform``)."""
    from scalelab.registry import platform_names

    return (*platform_names(), "sim")


def platform_of(manifest: dict) -> str | None:
    """The platform a run's manifest stands for: where it ran, or, for a simulated run, the one it modelled."""
    return manifest.get("modeled_platform") if manifest.get("platform") == "sim" else manifest.get("platform")

COLUMN_DOCS: dict[str, str] = {
    "t_s": "seconds since the run started (monotonic clock); every file aligns on it",
    "utc": "UTC wall-clock time of the sample, ISO 8601",
    "arm": "the scenario arm",
    "phase": "warmup | load | cooldown",
    "replicas_desired": "replicas the scaler asked for (compose --scale, Deployment spec.replicas)",
    "replicas_ready": "replicas running and passing readiness",
    "cpu_cores_used": "CPU used by all replicas in this second, in cores",
    "cpu_util_pct": "cpu_cores_used / (running replicas x CPU limit) x 100: average utilisation of the limit",
    "hpa_util_pct": "the CPU utilisation (% of request) the HPA last saw; empty without an HPA",
    "mem_mb": "memory used by all replicas, MiB",
    "offered_load": "load the profile asked for: requests/s (open loop) or users (closed loop)",
    "rps": "requests completed in this second",
    "p50_ms": "median latency of requests completed in this second, ms",
    "p95_ms": "95th percentile latency of requests completed in this second, ms",
    "errors": "failed or timed-out requests in this second",
    "users": "simulated users (closed loop) or in-flight requests (open loop)",
    "cost_usd_cum": "cumulative cost: replica-seconds (desired replicas) x price per replica-hour / 3600",
    "spread_busiest": "busiest ready replica's share of the requests of the last 10 s / the fair share 1/n (1 = even; docs/spread.md)",
    "spread_jain": "Jain's fairness index of requests per ready replica over the last 10 s (1 = even, 1/n = one replica did all)",
}

SAMPLE_COLUMNS: tuple[str, ...] = tuple(COLUMN_DOCS)
#: Sample columns added after the first recorded runs: an older run reads them as empty.
LATER_SAMPLE_COLUMNS: tuple[str, ...] = ("spread_busiest", "spread_jain")

EVENT_COLUMNS: tuple[str, ...] = ("t_s", "utc", "arm", "kind", "replicas", "source", "detail")
EVENT_KINDS = (
    "phase",  # detail: warmup/load/cooldown
    "scale",  # a scale action: source manual-plan | live | api
    "scaler_decision",  # a kit scaler held, paused or (dry-run) would have scaled (detail: the figures)
    "autoscale",  # `scalelab autoscale pause|resume` during a run (detail: pause/resume)
    "hpa_rescale",  # the HPA changed the desired replicas (detail: reason)
    "hpa_condition",  # an HPA condition changed
    "replica_start",  # a container or pod started (detail: name)
    "replica_ready",
    "replica_stop",
    "note",
    "fault",  # a fault the kit injected (scalelab.faults; detail: kind, replica=<name>, how)
    "rollout_start",  # the kit started a rollout (scalelab.rollout; detail: strategy=, to=, image=, replicas=)
    "rollout",  # one step of the rollout (detail: what was done or is awaited)
    "rollout_end",  # every desired replica on the new version and ready (detail: ok wall_s=..., or failed: why)
    "node",  # a swarm node (host) or a Kubernetes node changed state (detail: "<name> ... <state>": ready, down, ...; docs/swarm.md, docs/hosts-on-kind.md)
    "lb",  # the kit rewrote the front door's upstream block and reloaded nginx (detail: strategy, replicas, weights)
)

#: ``version``: what the replica reported in its reply (the agent's ``AGENT_VERSION``; rollouts, docs/rollouts.md);
#: empty for failures and for runs recorded before the column existed. ``error`` stays last (it may hold commas).
REQUEST_COLUMNS: tuple[str, ...] = ("t_s", "response_ms", "ok", "status_code", "replica", "version", "error")
#: columns runs recorded before them lack (read back as empty)
LATER_REQUEST_COLUMNS: tuple[str, ...] = ("version",)
#: ``pod``: the replica's name as it answers requests (the pod name; on compose the container's
#: hostname, its short id). ``cpu_cores``: its CPU in that second (kubelet / docker stats), empty if unknown.
PLACEMENT_COLUMNS: tuple[str, ...] = ("t_s", "pod", "node", "phase", "ready", "cpu_cores")
#: ``replicas.csv``: see `scalelab.telemetry.spread.replica_seconds`.
REPLICA_COLUMNS: tuple[str, ...] = ("t_s", "replica", "requests", "in_flight", "cpu_cores", "ready")
#: ``hosts.csv`` (a scenario's ``hosts:``; `scalelab.hosts.meter`): ``up`` 1 while the host runs (0: stopped,
#: lost); ``replicas`` running on it; ``cpu_cores`` it used in that second (everything on it: its
#: daemon and its containers), empty on its first second or while down; ``cpu_limit_cores`` its cap;
#: ``mem_bytes`` in use (less the inactive page cache).
HOST_COLUMNS: tuple[str, ...] = ("t_s", "host", "up", "replicas", "cpu_cores", "cpu_limit_cores", "mem_bytes")
