"""The one list of platforms and scalers: what each is, what it can do, where its code lives.

Scenario validation, the run schema, the CLI's choices, `doctor`, `clean`, the operator verbs
and the simulator all read this registry; none keeps a list of its own. A platform is one
module that defines ``KIND`` (a `scalelab.platforms.base.PlatformKind`) plus one `PlatformSpec`
line in `PLATFORMS` (or a `register` call). They are registered in the lesson's order (one host,
a swarm, a cluster): reports list arms in that order. The spec itself is plain data, so the simulator and
the scenario read it without importing any platform code (nor Docker or Kubernetes clients).

Scalers come in two sorts:

- **kit scalers** the kit runs itself, the same code in a real run and in the simulator
  (`scalelab.scalers`): ``manual`` (an operator's plan), ``fixed``, and any other registered;
- **in-platform scalers** a platform configures and observes (``hpa`` on Kubernetes): the
  platform's spec names them in ``autoscalers``; the simulator models them.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from scalelab.errors import ScalelabError

__all__ = [
    "PlatformSpec",
    "ScalerSpec",
    "PLATFORMS",
    "SCALERS",
    "register",
    "register_scaler",
    "platform_spec",
    "platform_names",
    "platform_kind",
    "scaler_spec",
    "allowed_pairs",
    "check_pair",
]


@dataclass(frozen=True)
class PlatformSpec:
    """What the rest of the kit needs to know about a platform, without importing it."""

    name: str
    #: the module that defines ``KIND`` (imported only when the platform is used)
    module: str
    summary: str
    #: in-platform autoscalers it configures (scaler types), e.g. ("hpa",)
    autoscalers: tuple[str, ...] = ()
    #: whether the kit can set the replica count (so kit scalers work on it)
    kit_scalable: bool = True
    #: replicas are spread over several nodes (False: everything lands on one host)
    spreads_over_nodes: bool = False
    #: simulator: seconds from a scale decision to the replica running
    sim_start_delay_s: float = 1.0
    #: simulator: how the front door spreads requests ("round-robin" per request, "random")
    sim_spreading: str = "round-robin"
    #: simulator: seconds from a replica's start until the front door sends it requests even before
    #: it is ready (None: only ready replicas get requests, as behind a Service)
    sim_route_after_start_s: float | None = None
    #: 127.0.0.1 ports a run needs free (doctor checks them)
    ports: tuple[int, ...] = ()
    #: the `scalelab doctor` checks (keys) that must pass for this path
    doctor_needs: frozenset[str] = frozenset()
    #: the lab that explains it (for error messages)
    lab: str = ""
    #: it runs a scenario's ``hosts:`` (scalelab.hosts): compose on Host A, others spread over them
    runs_on_hosts: bool = False


@dataclass(frozen=True)
class ScalerSpec:
    name: str
    summary: str
    #: True: the kit runs it (scalelab.scalers); False: a platform's own (see PlatformSpec.autoscalers)
    kit: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


_BASE_NEEDS = frozenset({"python", "packages"})

PLATFORMS: dict[str, PlatformSpec] = {}
SCALERS: dict[str, ScalerSpec] = {}


def register(spec: PlatformSpec) -> PlatformSpec:
    """Add (or replace) a platform; returns the spec."""
    PLATFORMS[spec.name] = spec
    return spec


def register_scaler(spec: ScalerSpec) -> ScalerSpec:
    SCALERS[spec.name] = spec
    return spec


register(
    PlatformSpec(
        name="compose",
        module="scalelab.platforms.compose",
        summary="docker compose on one host, nginx as the front door",
        sim_start_delay_s=1.0,
        # nginx resolves the replicas per request and takes one of Docker's addresses in its order,
        # which Docker rotates (compose/nginx.conf): at random, as a Service does. The recorded
        # runs show it: after a scale-up the old replicas' queues differ by seconds.
        sim_spreading="random",
        # nginx resolves the name again every second and Docker's DNS lists a container as soon as
        # it runs, before its health check says ready: the recorded runs show requests reaching a
        # new replica 1-2 s after it started and ~7 s before it was ready
        sim_route_after_start_s=1.0,
        ports=(8080,),
        doctor_needs=_BASE_NEEDS | {"docker", "engine", "compose", "images", "ports", "memory"},
        lab="02-compose-spike-manual-scaling",
        runs_on_hosts=True,
    )
)
register(
    PlatformSpec(
        name="swarm",
        module="scalelab.platforms.swarm",
        summary="a Docker Swarm service (dnsrr) behind the kit's nginx on 127.0.0.1: one node, or the engine managing a scenario's hosts",
        kit_scalable=True,
        spreads_over_nodes=True,
        sim_start_delay_s=3.4,  # measured: docs/swarm.md (20261205-000207-classroom-spike-swarm-manual-5b1a)
        sim_spreading="round-robin",
        ports=(8090,),
        doctor_needs=_BASE_NEEDS | {"docker", "engine", "images", "ports", "memory", "swarm"},
        lab="08-swarm",
        runs_on_hosts=True,
    )
)
register(
    PlatformSpec(
        name="kubernetes",
        module="scalelab.platforms.kubernetes",
        summary="a Deployment on kind or any cluster from a kubeconfig",
        autoscalers=("hpa",),
        spreads_over_nodes=True,
        runs_on_hosts=True,  # on kind: one worker node container per host (scalelab.platforms.kind_hosts)
        sim_start_delay_s=2.0,
        sim_spreading="random",
        ports=(30080,),
        doctor_needs=_BASE_NEEDS | {"kubectl", "cluster-tool", "ports", "memory"},
        lab="03-kind-cluster-and-hpa",
    )
)

register_scaler(ScalerSpec("manual", "an operator's plan: scale to N at fixed times (and live `scalelab scale`)"))
register_scaler(ScalerSpec("fixed", "the replica count never changes"))
register_scaler(ScalerSpec("threshold", "a home-made threshold autoscaler: CPU, memory, in-flight rules with cooldowns (the kit runs it)"))
register_scaler(ScalerSpec("hpa", "the Kubernetes HorizontalPodAutoscaler (in-platform)", kit=False))


def platform_names() -> tuple[str, ...]:
    return tuple(PLATFORMS)


def platform_spec(name: str) -> PlatformSpec:
    """The spec of ``name``; a ScalelabError lists the registered platforms."""
    try:
        return PLATFORMS[name]
    except KeyError:
        raise ScalelabError(f"unknown platform '{name}'; allowed: {', '.join(PLATFORMS)}", fix=f"use one of: {', '.join(PLATFORMS)}") from None


def platform_kind(name: str) -> Any:
    """The platform's ``KIND`` object (a `PlatformKind`), importing its module on first use."""
    spec = platform_spec(name)
    module: ModuleType = importlib.import_module(spec.module)
    kind = getattr(module, "KIND", None)
    if kind is None:
        raise ScalelabError(f"platform module {spec.module} defines no KIND", fix="define KIND = <a PlatformKind> in it")
    return kind


def scaler_spec(name: str) -> ScalerSpec:
    try:
        return SCALERS[name]
    except KeyError:
        raise ScalelabError(f"unknown scaler '{name}'; allowed: {', '.join(SCALERS)}", fix=f"use one of: {', '.join(SCALERS)}") from None


def allowed_pairs() -> list[tuple[str, str]]:
    """Every (platform, scaler) pair a scenario arm may use."""
    pairs = []
    for p in PLATFORMS.values():
        for s in SCALERS.values():
            if (s.kit and p.kit_scalable) or s.name in p.autoscalers:
                pairs.append((p.name, s.name))
    return pairs


def check_pair(platform: str, scaler: str) -> None:
    """Raise ValueError (for pydantic) when ``scaler`` cannot run on ``platform``, listing the pairs."""
    if platform not in PLATFORMS:
        raise ValueError(f"unknown platform '{platform}'; allowed: {', '.join(PLATFORMS)}")
    if (platform, scaler) not in allowed_pairs():
        pairs = ", ".join(f"{p}+{s}" for p, s in allowed_pairs())
        raise ValueError(f"scaler '{scaler}' cannot run on platform '{platform}'; allowed pairs: {pairs}")
