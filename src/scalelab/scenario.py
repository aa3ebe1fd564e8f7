"""Scenarios: YAML files validated once into frozen models.

A scenario holds a load profile, the workload settings, a price per replica-hour, a latency
objective and one or more arms (platform x scaler x start replicas). Every platform and the
simulator read the same scenario. A bad file fails before anything starts, with a message that
names the file, the field and the allowed values.

Sizing: the figures in a file are written for ``reference_cpu_budget`` cores. `Scenario.sized`
scales per-replica CPU (request and limit) and the offered load by ``budget / reference`` so the
same story (same utilisation, same replica counts) fits a 2-core CI machine and an 8-core
laptop. Service time at the CPU limit grows as the limit shrinks, so the latency objective is
scaled by the inverse factor.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from scalelab.errors import ScenarioError
from scalelab.hosts.spec import MIN_MEMORY_BYTES, NAME_PATTERN, check_names, format_memory, parse_memory
from scalelab.registry import PLATFORMS, check_pair
from scalelab.rollout.strategies import FIELDS as ROLLOUT_FIELDS
from scalelab.rollout.strategies import STRATEGIES as ROLLOUT_STRATEGIES

__all__ = [
    "Scenario",
    "Arm",
    "Workload",
    "Load",
    "ManualScaler",
    "ManualAction",
    "HPAScaler",
    "FixedScaler",
    "ThresholdScaler",
    "ThresholdRule",
    "Behavior",
    "ScalingRules",
    "ScalingPolicy",
    "load_scenario",
    "builtin_scenarios",
    "detect_cpu_budget",
    "parse_duration",
    "apply_overrides",
    "Fault",
    "Rollout",
    "ArmRollout",
    "FrontDoor",
    "WeakReplicas",
    "Host",
]

_DURATION = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m(?!s))?\s*(?:(\d+(?:\.\d+)?)s)?\s*$")


def parse_duration(value: object) -> object:
    """Accept seconds as a number or a string like ``90``, ``90s``, ``1m30s``, ``2h``."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration; use seconds (90), or '90s', '1m30s', '2h'")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return float(text)
        except ValueError:
            pass
        match = _DURATION.match(text)
        if match and any(match.groups()):
            h, m, s = (float(g) if g else 0.0 for g in match.groups())
            return h * 3600 + m * 60 + s
        raise ValueError(f"'{value}' is not a duration; use seconds (90), or '90s', '1m30s', '2h'")
    return value


#: The CPU budgets a scenario may be sized to (cores).
MIN_CPU_BUDGET, MAX_CPU_BUDGET = 0.1, 1024.0
#: A week: no duration in a scenario may be longer.
MAX_SECONDS = 7 * 86400.0
Seconds = Annotated[float, BeforeValidator(parse_duration), Field(ge=0, le=MAX_SECONDS)]


_NUMBER_TYPES = {"<class 'int'>", "<class 'float'>", "int | None", "float | None", "Optional[int]", "Optional[float]"}


class _Frozen(BaseModel):
    # finite numbers only (no .inf / .nan)
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _no_bools_for_numbers(cls, data: object) -> object:
        """``true`` is not 1: a YAML boolean where a number belongs is an error, not one second."""
        if isinstance(data, dict):
            for name, info in cls.model_fields.items():
                value = data.get(name)
                if isinstance(value, bool) and str(info.annotation).replace("typing.", "") in _NUMBER_TYPES:
                    raise ValueError(f"field '{name}': {value!r} is not a number")
        return data


class Workload(_Frozen):
    """The ai-agent service as the scenario sizes it (figures at the reference CPU budget)."""

    work_ms: float = Field(50.0, gt=0, le=5000, description="CPU-ms of one core per request")
    warmup_s: Seconds = Field(5.0, description="cold start: /readyz is false this long")
    cpu_request: float = Field(0.5, gt=0, le=64, description="cores requested per replica")
    cpu_limit: float = Field(0.5, gt=0, le=64, description="cores a replica may use")
    memory_mb: int = Field(256, ge=64, le=65536, description="memory limit (and request) per replica")
    timeout_s: Seconds = Field(10.0, description="client timeout; slower requests count as errors")

    @model_validator(mode="after")
    def _limit_covers_request(self) -> Workload:
        if self.cpu_limit < self.cpu_request:
            raise ValueError(f"cpu_limit ({self.cpu_limit}) must be >= cpu_request ({self.cpu_request})")
        return self


class Load(_Frozen):
    """Offered load over time. ``baseline`` is requests/s (open) or users (closed)."""

    mode: Literal["open", "closed"] = "open"
    profile: Literal["steady", "spike", "wave", "day"] = "spike"
    baseline: float = Field(gt=0, le=100000)
    factor: float = Field(10.0, gt=0, le=1000, description="spike/day peak multiplier; wave amplitude")
    start_s: Seconds = Field(30.0, description="spike start")
    length_s: Seconds = Field(60.0, description="spike length")
    ramp_s: Seconds = Field(0.0, description="linear ramp into and out of the spike")
    period_s: Seconds = Field(120.0, gt=0, description="wave period")
    night_factor: float = Field(0.5, gt=0, le=1, description="day profile: night load / normal load")
    user_rps: float = Field(1.0, gt=0, le=1000, description="closed loop: most requests/s one user sends")
    connections: Literal["keep-alive", "per-request"] = Field(
        "keep-alive",
        description="keep-alive: each client connection carries many requests (a user's own; the open loop's pool); "
        "per-request: a new TCP connection for every request (docs/connections.md)",
    )
    client_connections: int | None = Field(
        None, ge=1, le=10000,
        description="at most this many client connections, shared by all users; default: one per user (closed), "
        "as many as requests in flight (open)",
    )


class ManualAction(_Frozen):
    at_s: Seconds
    replicas: int = Field(ge=0, le=200)


class ManualScaler(_Frozen):
    """An operator plan: scale by hand at fixed times (and whatever the instructor types live)."""

    type: Literal["manual"]
    actions: tuple[ManualAction, ...] = ()
    reaction_s: Seconds = Field(0.0, description="informational: how late the operator reacts")


class FixedScaler(_Frozen):
    type: Literal["fixed"]


class ScalingPolicy(_Frozen):
    type: Literal["Pods", "Percent"]
    value: int = Field(gt=0)
    period_s: int = Field(ge=1, le=1800)


class ScalingRules(_Frozen):
    """One direction of an HPA's ``spec.behavior`` (autoscaling/v2); None fields take the defaults."""

    stabilization_window_s: int | None = Field(None, ge=0, le=3600)
    select_policy: Literal["Max", "Min", "Disabled"] = "Max"
    policies: tuple[ScalingPolicy, ...] | None = None
    tolerance: float | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _non_empty(self) -> ScalingRules:
        if self.policies is not None and len(self.policies) == 0:
            raise ValueError("policies must list at least one policy (or be omitted for the defaults)")
        return self


class Behavior(_Frozen):
    scale_up: ScalingRules | None = None
    scale_down: ScalingRules | None = None


class HPAScaler(_Frozen):
    """A HorizontalPodAutoscaler on CPU utilisation, plus the controller and metrics settings."""

    type: Literal["hpa"]
    min_replicas: int = Field(1, ge=1, le=200)
    max_replicas: int = Field(10, ge=1, le=200)
    target_cpu_pct: int = Field(50, ge=1, le=1000)
    behavior: Behavior | None = None
    # kube-controller-manager flags (the kind "classroom" profile shortens the first two).
    sync_period_s: Seconds = 15.0
    downscale_stabilization_s: Seconds = 300.0
    tolerance: float = Field(0.1, ge=0, le=1)
    cpu_initialization_period_s: Seconds = 300.0
    initial_readiness_delay_s: Seconds = 30.0
    # metrics-server
    metric_resolution_s: Seconds = Field(15.0, ge=10)

    @model_validator(mode="after")
    def _bounds(self) -> HPAScaler:
        if self.max_replicas < self.min_replicas:
            raise ValueError(f"max_replicas ({self.max_replicas}) must be >= min_replicas ({self.min_replicas})")
        return self


class ThresholdRule(_Frozen):
    """One direction of the threshold scaler: per-metric thresholds (None = metric not used), combined by any/all.

    Figures are averages over the ready replicas: CPU and memory in % of the replica's limit,
    in-flight requests per replica. Up fires when a figure is above its threshold, down when below.
    """

    cpu_pct: float | None = Field(None, ge=0, le=10000, description="CPU, % of the limit")
    mem_pct: float | None = Field(None, ge=0, le=10000, description="memory, % of the limit")
    in_flight: float | None = Field(None, ge=0, le=100000, description="requests in flight per replica")
    combine: Literal["any", "all"] = "any"

    @model_validator(mode="after")
    def _one_metric(self) -> ThresholdRule:
        if self.cpu_pct is None and self.mem_pct is None and self.in_flight is None:
            raise ValueError("set at least one of cpu_pct, mem_pct, in_flight")
        return self


class ThresholdScaler(_Frozen):
    """A home-made threshold autoscaler the kit runs itself (`scalelab.scalers.threshold`; docs/threshold-scaler.md)."""

    type: Literal["threshold"]
    min_replicas: int = Field(1, ge=1, le=200)
    max_replicas: int = Field(10, ge=1, le=200)
    interval_s: Seconds = Field(1.0, gt=0, description="evaluation interval")
    window_s: Seconds = Field(1.0, gt=0, le=3600, description="average the figures over the observations of the last window_s (1 s: this second's only)")
    scale_up: ThresholdRule = ThresholdRule(cpu_pct=80, mem_pct=80, in_flight=3, combine="any")
    scale_down: ThresholdRule = ThresholdRule(cpu_pct=30, mem_pct=30, in_flight=1, combine="all")
    step: int = Field(1, ge=1, le=1000, description="replicas (step_unit pods) or % of the current count (percent) per action")
    step_unit: Literal["pods", "percent"] = "pods"
    up_cooldown_s: Seconds = Field(120.0, description="no scale-up sooner than this after the last scale action")
    down_cooldown_s: Seconds = Field(120.0, description="no scale-down sooner than this after the last scale action")
    override_pause_s: Seconds = Field(120.0, description="a manual scale pauses the scaler this long")
    dry_run: bool = Field(False, description="record what it would do (scaler_decision events) without scaling")

    @model_validator(mode="after")
    def _bounds(self) -> ThresholdScaler:
        if self.max_replicas < self.min_replicas:
            raise ValueError(f"max_replicas ({self.max_replicas}) must be >= min_replicas ({self.min_replicas})")
        return self


Scaler = Annotated[ManualScaler | HPAScaler | FixedScaler | ThresholdScaler, Field(discriminator="type")]


#: scaler type -> its settings model (the discriminated union's members, by tag)
SCALER_MODELS: dict[str, type[BaseModel]] = {"manual": ManualScaler, "hpa": HPAScaler, "fixed": FixedScaler, "threshold": ThresholdScaler}


class SwarmRestart(_Frozen):
    condition: Literal["any", "on-failure", "none"] = "any"
    delay_s: Seconds = 5.0
    max_attempts: int = Field(0, ge=0, le=1000, description="0: no limit")
    window_s: Seconds = 0.0


class SwarmUpdate(_Frozen):
    parallelism: int = Field(1, ge=0, le=200, description="0: all at once")
    delay_s: Seconds = 0.0
    failure_action: Literal["pause", "continue", "rollback"] = "pause"
    monitor_s: Seconds = 5.0
    max_failure_ratio: float = Field(0.0, ge=0, le=1)
    order: Literal["stop-first", "start-first"] = "stop-first"


class SwarmPlacement(_Frozen):
    constraints: tuple[str, ...] = ()
    #: spread over the values of these node attributes (e.g. node.labels.zone)
    spread: tuple[str, ...] = ()
    max_replicas_per_node: int | None = Field(None, ge=1, le=200)


class SwarmDeploy(_Frozen):
    """platform: swarm only: the stack's ``deploy:`` settings beyond replicas, limits and reservations (docs/swarm.md)."""

    endpoint_mode: Literal["dnsrr", "vip"] = Field("dnsrr", description="vip needs IPVS in the kernel (`scalelab doctor --platform swarm`)")
    restart_policy: SwarmRestart = SwarmRestart()
    update_config: SwarmUpdate = SwarmUpdate()
    placement: SwarmPlacement = SwarmPlacement()


_PERCENT = re.compile(r"^(100|[1-9]?[0-9])%$")


class ArmRollout(_Frozen):
    """How this arm's platform rolls out (scenario ``rollout:`` says when and to what; docs/rollouts.md).

    On Kubernetes the pod settings apply from the start (the old pods are the ones that stop).
    """

    strategy: str | None = Field(None, description="compose: recreate | double-then-retire; kubernetes: rolling | recreate (default: the first)")
    max_surge: int | str | None = Field(None, description="kubernetes rolling: pods above replicas during the rollout (N or 'P%'; default 25%)")
    max_unavailable: int | str | None = Field(None, description="kubernetes rolling: pods below replicas during the rollout (N or 'P%'; default 25%)")
    readiness: bool = Field(True, description="kubernetes: keep the readiness probe (false: a pod gets traffic once its container runs)")
    pre_stop_s: int = Field(0, ge=0, le=300, description="kubernetes: preStop sleep before SIGTERM (the endpoint removal catches up)")
    grace_s: int | None = Field(None, ge=1, le=3600, description="kubernetes: terminationGracePeriodSeconds, preStop included (default 30)")
    min_ready_s: int = Field(0, ge=0, le=600, description="kubernetes: minReadySeconds before a new pod counts as available")
    health_timeout_s: Seconds = Field(60.0, gt=0, le=600, description="compose double-then-retire: longest wait for the new replicas to be healthy")
    drain: bool = Field(True, description="compose, kubernetes: the agent drains on SIGTERM (false: it exits at once and cuts what is in flight)")

    @field_validator("max_surge", "max_unavailable", mode="before")
    @classmethod
    def _int_or_percent(cls, value: object) -> object:
        if value is None:
            return value
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise ValueError(f"{value!r} is neither a number of pods (1) nor a percentage ('25%')")
        if isinstance(value, int) and not 0 <= value <= 200:
            raise ValueError(f"{value} pods is out of range (0-200)")
        if isinstance(value, str) and not _PERCENT.match(value.strip()):
            raise ValueError(f"'{value}' is not a percentage like '25%' (0-100%)")
        return value.strip() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _consistent(self) -> ArmRollout:
        if self.grace_s is not None and self.pre_stop_s >= self.grace_s:
            raise ValueError(f"pre_stop_s ({self.pre_stop_s}) must be shorter than grace_s ({self.grace_s}): the grace period includes the preStop "
                             "sleep, so SIGTERM would come with no time left to drain")
        if self.max_surge in (0, "0%") and self.max_unavailable in (0, "0%"):
            raise ValueError("max_surge and max_unavailable cannot both be 0: the rollout could never make progress")
        return self

    def check_platform(self, platform: str) -> None:
        """ValueError when the strategy or a set field does not apply to ``platform``."""
        allowed = ROLLOUT_STRATEGIES.get(platform)
        if self.strategy is not None and allowed is not None and self.strategy not in allowed:
            raise ValueError(f"rollout.strategy '{self.strategy}' is not one of {platform}'s: {', '.join(allowed)}")
        if self.strategy is not None and allowed is None:
            known = "; ".join(f"{p}: {', '.join(s)}" for p, s in ROLLOUT_STRATEGIES.items())
            raise ValueError(f"platform {platform} has no rollout strategies yet (there are {known})")
        changed = {name for name, info in type(self).model_fields.items() if getattr(self, name) != info.default}  # survives a dump/validate round trip
        for name in sorted(changed):
            owners = ROLLOUT_FIELDS.get(name)
            if owners is not None and platform not in owners:
                raise ValueError(f"rollout.{name} applies to platform {' and '.join(owners)} only, not {platform}")
        if platform == "kubernetes" and self.strategy == "recreate" and {"max_surge", "max_unavailable"} & changed:
            raise ValueError("rollout.max_surge / max_unavailable apply to strategy rolling, not recreate")


class FrontDoor(_Frozen):
    """platform: compose only: how the kit's nginx spreads requests over the replicas (docs/load-balancing.md)."""

    strategy: str = Field("random", description="random | round-robin | least-conn | random-two | weighted | resource-aware")
    update_s: Seconds = Field(2.0, ge=0.5, le=600, description="resource-aware: seconds between two weight updates")
    retry: bool = Field(True, description="a request whose replica refuses or times out is tried on the next one (nginx proxy_next_upstream; "
                                          "false: proxy_next_upstream off, the client gets the 502)")

    @field_validator("strategy")
    @classmethod
    def _known_strategy(cls, value: str) -> str:
        from scalelab.lb.strategies import STRATEGIES

        if value not in STRATEGIES:
            raise ValueError(f"unknown strategy '{value}'; allowed: {', '.join(STRATEGIES)} (e.g. lb: {{strategy: least-conn}}; docs/load-balancing.md)")
        return value


class WeakReplicas(_Frozen):
    """platform: compose only: this many of the arm's replicas run with a smaller CPU limit (unequal replicas)."""

    replicas: int = Field(1, ge=1, le=199, description="how many of the arm's replicas are weak")
    cpu_factor: float = Field(0.5, gt=0, lt=1, description="their CPU limit is this times workload.cpu_limit")


#: the arm sections that only the compose platform (the kit's own nginx and containers) honours
COMPOSE_ONLY = ("lb", "weak")


class Arm(_Frozen):
    """One way of running the story: a platform, a scaler and the replicas it starts with.

    ``platform`` is any registered platform (`scalelab.registry`); the scaler must be one that
    platform can run (an error lists the allowed pairs).
    """

    platform: str
    scaler: Scaler
    replicas: int = Field(3, ge=1, le=200, description="replicas at the start")
    swarm: SwarmDeploy | None = Field(None, description="platform: swarm only: restart, update, placement, endpoint mode")
    rollout: ArmRollout | None = Field(None, description="how this arm rolls out (strategy, Kubernetes probes and timings; docs/rollouts.md)")
    lb: FrontDoor | None = Field(None, description="platform: compose only: the front door's load-balancing strategy")
    weak: WeakReplicas | None = Field(None, description="platform: compose only: replicas with a smaller CPU limit")

    @field_validator("platform")
    @classmethod
    def _known_platform(cls, value: str) -> str:
        if value not in PLATFORMS:
            raise ValueError(f"unknown platform '{value}'; allowed: {', '.join(PLATFORMS)}")
        return value

    @model_validator(mode="after")
    def _pair(self) -> Arm:
        check_pair(self.platform, self.scaler.type)
        if self.swarm is not None and self.platform != "swarm":
            raise ValueError(f"the 'swarm' section applies to platform: swarm only, not '{self.platform}'")
        if self.rollout is not None:
            self.rollout.check_platform(self.platform)
        for section in COMPOSE_ONLY:
            if getattr(self, section) is not None and self.platform != "compose":
                raise ValueError(f"the '{section}' section applies to platform: compose only (the kit's nginx and containers), not "
                                 f"'{self.platform}'; remove it from this arm (docs/load-balancing.md)")
        if self.weak is not None and self.weak.replicas >= self.replicas:
            raise ValueError(f"weak.replicas ({self.weak.replicas}) must be less than replicas ({self.replicas}): keep at least one full replica")
        return self


class SimModel(_Frozen):
    """What the simulator cannot know in advance; `scalelab calibrate` fits these from a real run.

    None keeps the model's default: the platform's start delay (compose 1 s, Kubernetes 2 s),
    a scrape phase drawn from the seed.
    """

    start_delay_s: Seconds | None = Field(None, ge=0, le=600, description="scale decision -> container/pod running")
    scrape_phase_s: Seconds | None = Field(None, ge=0, le=600, description="metrics-server: first scrape after the HPA starts (mod resolution)")
    host_overhead_cores: float = Field(0.0, ge=0, le=1024, description="CPU the host's other work (control plane, load generator, sampler) takes from the budget")
    idle_cores: float | None = Field(None, ge=0, le=1, description="CPU a ready replica uses without requests (probes, the server's loop); None: 0.002")
    cpu_per_request_ms: float | None = Field(None, gt=0, le=60000, description="CPU a request costs while its replica keeps up, when it differs "
                                             "from workload.work_ms (the quota a replica spends per request while requests wait); None: work_ms")
    load_start_s: float | None = Field(None, ge=0, le=60, description="seconds after t0 the load generator started its arrivals (Locust's start-up): the simulator then replays its arrival times; None: Poisson counts per second")
    replica_speed_cv: float = Field(0.0, ge=0, le=0.5, description="spread of the replicas' service rates at their CPU limit (coefficient of "
                                    "variation, e.g. 0.05 for ±5%); 0: every replica serves at the same rate")


class Fault(_Frozen):
    """A fault the kit injects during a recorded run (`scalelab.faults`), at the same time on every platform."""

    at_s: Seconds = Field(description="seconds after the load starts")
    kind: Literal["kill", "crash", "hang", "node-loss"] = Field(
        description="kill: SIGKILL through the orchestrator's API; crash: the process dies from outside the API (host kill -9); "
        "hang: the replica stops answering but keeps its port; node-loss: one of the scenario's hosts stops (with all it runs)")
    target: Literal["one", "same"] = Field("one", description="one: a ready replica, chosen by the scenario's seed; same: the replica the "
                                           "previous fault hit, ready or not (a crash loop)")
    host: str | None = Field(None, description="node-loss: the name of the host that stops (one of hosts[].name)")

    @model_validator(mode="after")
    def _host_for_node_loss(self) -> Fault:
        if self.kind == "node-loss" and not self.host:
            raise ValueError("kind node-loss needs host: the name of the host that stops (one of hosts[].name), e.g. {at_s: 30s, kind: node-loss, host: B}")
        if self.kind != "node-loss" and self.host is not None:
            raise ValueError(f"host applies to kind node-loss only, not {self.kind} (which picks a replica by the seed)")
        return self


class Host(_Frozen):
    """One host with its own capacity (`scalelab.hosts`; docs/hosts.md): a name and its CPU and memory cap."""

    name: str = Field(pattern=NAME_PATTERN, description="the host's name (A, B, ...): letters, digits, '-', '_', at most 20")
    cpus: float = Field(gt=0, le=1024, description="its CPU cap in cores (0.8 = 80% of one core), at the reference budget")
    memory: str = Field(description="its memory cap, like 1g, 1.5g or 512m")

    @field_validator("memory", mode="before")
    @classmethod
    def _memory_form(cls, value: object) -> object:
        nbytes = parse_memory(value)
        if nbytes < MIN_MEMORY_BYTES:
            raise ValueError(f"{value!r} is too little for a host's own Docker daemon; give it at least {format_memory(MIN_MEMORY_BYTES)}")
        return format_memory(nbytes)

    @property
    def memory_bytes(self) -> int:
        return parse_memory(self.memory)


class Rollout(_Frozen):
    """A rollout the kit starts during a recorded run (`scalelab.rollout`): every replica moves from v1 to ``to``."""

    at_s: Seconds = Field(description="seconds after the load starts, the same on every platform")
    to: Literal["v2"] = Field("v2", description="the agent version to roll to (image scalelab-ai-agent:<kit>-v2, built by `scalelab image`)")


class Scenario(_Frozen):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    description: str = ""
    duration_s: Seconds = Field(ge=1, le=86400 * 2)
    seed: int = Field(0, ge=0, le=2**32 - 1)
    reference_cpu_budget: float = Field(4.0, gt=0, le=1024)
    price_per_replica_hour: float = Field(1.0, ge=0, le=10000)
    latency_objective_ms: float = Field(500.0, gt=0, le=3_600_000, description="p95 objective at the reference budget")
    workload: Workload = Workload()
    load: Load
    arms: dict[str, Arm] = Field(min_length=1)
    sim: SimModel = SimModel()
    faults: tuple[Fault, ...] = Field((), max_length=20, description="faults injected during a recorded run (scalelab.faults)")
    rollout: Rollout | None = Field(None, description="roll every replica to another version during a recorded run (scalelab.rollout)")
    hosts: tuple[Host, ...] = Field((), max_length=8, description="hosts with their own CPU and memory cap (scalelab.hosts; docs/hosts.md): "
                                    "compose runs on the first, Swarm and Kubernetes spread over them; none: one machine, as always")
    # Filled by `sized`: the budget the figures above are scaled to (None = not sized yet).
    cpu_budget: float | None = Field(None, ge=MIN_CPU_BUDGET, le=MAX_CPU_BUDGET)
    source: str = ""

    @field_validator("hosts")
    @classmethod
    def _unique_hosts(cls, value: tuple[Host, ...]) -> tuple[Host, ...]:
        check_names(h.name for h in value)
        return value

    @model_validator(mode="after")
    def _arm_names(self) -> Scenario:
        for key in self.arms:
            if not re.match(r"^[a-z0-9][a-z0-9-]*$", key):
                raise ValueError(f"arm name '{key}' must be lowercase letters, digits and '-'")
        names = [h.name for h in self.hosts]
        for fault in self.faults:
            if fault.at_s >= self.duration_s:
                raise ValueError(f"faults: at_s {fault.at_s:g} is not before the end of the load (duration_s {self.duration_s:g})")
            if fault.host is not None and fault.host not in names:
                raise ValueError(f"faults: node-loss of host '{fault.host}', but the scenario's hosts are: {', '.join(names) or 'none'} "
                                 "(add it to hosts:, or name one of them)")
        if self.rollout is not None and self.rollout.at_s >= self.duration_s:
            raise ValueError(f"rollout: at_s {self.rollout.at_s:g} is not before the end of the load (duration_s {self.duration_s:g})")
        return self

    def arm(self, name: str | None) -> tuple[str, Arm]:
        """The arm called ``name`` (or the only one); a ScenarioError lists the choices."""
        if name is None:
            if len(self.arms) == 1:
                return next(iter(self.arms.items()))
            raise ScenarioError(
                f"scenario '{self.name}' has several arms: {', '.join(self.arms)}",
                fix="pass --arm with one of them",
            )
        if name not in self.arms:
            raise ScenarioError(
                f"scenario '{self.name}' has no arm '{name}'; allowed: {', '.join(self.arms)}",
                fix=f"pass --arm with one of: {', '.join(self.arms)}",
            )
        return name, self.arms[name]

    @property
    def scale(self) -> float:
        return 1.0 if self.cpu_budget is None else self.cpu_budget / self.reference_cpu_budget

    def sized(self, cpu_budget: float | None = None) -> Scenario:
        """A copy scaled to ``cpu_budget`` cores (auto-detected when None). Idempotent."""
        if self.cpu_budget is not None:
            return self
        budget = detect_cpu_budget() if cpu_budget is None else float(cpu_budget)
        if not (MIN_CPU_BUDGET <= budget <= MAX_CPU_BUDGET):  # also false for nan
            raise ScenarioError(
                f"--cpu-budget must be a number of cores from {MIN_CPU_BUDGET:g} to {MAX_CPU_BUDGET:g}, got {cpu_budget!r}",
                fix="pass the cores the workload may use, e.g. --cpu-budget 1 (default: CPUs minus one)",
            )
        s = budget / self.reference_cpu_budget
        data = self.model_dump(mode="json", exclude={"cpu_budget"})
        data["workload"].update(cpu_request=round(self.workload.cpu_request * s, 3), cpu_limit=round(self.workload.cpu_limit * s, 3))
        data["load"]["baseline"] = self.load.baseline * s
        data["latency_objective_ms"] = self.latency_objective_ms / s
        for host in data.get("hosts") or ():  # a host's cap is part of the story: sized like the replicas' limits
            host["cpus"] = round(host["cpus"] * s, 3)
        data["cpu_budget"] = budget
        from scalelab.scenario_io import describe_errors

        try:  # the sized figures must be within the same bounds as written ones
            return Scenario.model_validate(data)
        except ValidationError as exc:
            raise ScenarioError(
                describe_errors(Path(f"{self.source or self.name} sized to {budget:g} cores"), exc),
                fix=f"pick a --cpu-budget nearer the scenario's reference_cpu_budget ({self.reference_cpu_budget:g})",
            ) from None


def detect_cpu_budget() -> float:
    """Cores the workload may use on this host: the CPUs we may run on, less one for load and tools."""
    try:
        cpus: float = float(len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = float(os.cpu_count() or 1)
    quota = _cgroup_cpu_limit()
    if quota is not None:
        cpus = min(cpus, quota)
    return float(max(1.0, round(cpus - 1, 2)))


def _cgroup_cpu_limit() -> float | None:
    for path, parse in (
        ("/sys/fs/cgroup/cpu.max", lambda t: t.split()),
        ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", lambda t: [t.strip(), Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text().strip()]),
    ):
        try:
            quota, period = parse(Path(path).read_text())
        except (OSError, ValueError):
            continue
        if quota in ("max", "-1"):
            return None
        return int(quota) / int(period)
    return None


# The loaders live in scalelab.scenario_io; re-exported so `from scalelab.scenario import load_scenario` keeps working.
from scalelab.scenario_io import apply_overrides, builtin_scenarios, load_scenario  # noqa: E402
