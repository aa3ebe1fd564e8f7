"""The swarm platform's stack file and nginx config, rendered from the compose files (no Docker here).

The stack's ``ai-agent`` service *is* `compose/compose.yaml`'s service definition (same image,
non-root user, read-only root, tmpfs, cap_drop ALL, healthcheck, environment), interpolated
with the same settings, with the compose-only keys turned into a ``deploy:`` section:

- ``cpus``/``mem_limit``/``pids_limit`` become ``deploy.resources.limits``; the scenario's
  CPU request and the memory limit become ``deploy.resources.reservations`` (the scheduler
  places tasks by reservations);
- ``pull_policy`` goes (stack deploy never builds nor needs a registry on one node);
- ``tmpfs`` (short syntax) becomes a ``type: tmpfs`` volume: stack deploy drops the short form
  without a word (the task's /tmp was read-only), the long form it applies;
- ``security_opt`` goes: services cannot set ``no-new-privileges`` (stack deploy prints
  "Ignoring unsupported options: security_opt"); the non-root user and cap_drop ALL remain.

Replicas, restart_policy, update_config, placement and the endpoint mode come from the scenario
arm (`scalelab.scenario.SwarmDeploy`). The service publishes no port: swarm cannot bind a
published port to 127.0.0.1 and its routing mesh needs IPVS. nginx (the compose front door's
config, pointed at ``tasks.<service>``) runs as a plain container on the stack's attachable
overlay network and publishes 127.0.0.1:PORT only. docs/swarm.md explains the choices.
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from scalelab import versions
from scalelab.platforms.compose_settings import SERVICE, ComposeSettings, compose_dir

__all__ = ["SwarmSettings", "render_stack", "stack_yaml", "compose_service", "render_nginx", "stack_name", "ipvs_status", "DEFAULT_PORT", "NETWORK", "STACK_VERSION", "UNSUPPORTED_KEYS", "WORKERS_ONLY", "host_dicts"]

DEFAULT_PORT = 8090
#: the stack's overlay network (its full name is ``<stack>_net``)
NETWORK = "net"
STACK_VERSION = "3.9"
#: compose-only keys of the service that the stack leaves out (limits move into ``deploy``)
UNSUPPORTED_KEYS = ("pull_policy", "cpus", "mem_limit", "pids_limit", "security_opt", "depends_on", "ports")
#: with hosts, the service's tasks run on the workers only (docs/swarm.md: why not `availability: drain`)
WORKERS_ONLY = "node.role==worker"
_VAR = re.compile(r"(?<!\$)\$\{(\w+)(?::-([^}]*))?\}")


def stack_name(run_id: str) -> str:
    name = ("scalelab-" + run_id).lower()
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name)[:50]


def _seconds(value: float) -> str:
    return f"{value:g}s"


@dataclass(frozen=True)
class SwarmSettings:
    """Everything the stack file and the front door are rendered from; kept as settings.json."""

    stack: str
    run_id: str
    port: int = DEFAULT_PORT
    replicas: int = 2
    agent_image: str = versions.AGENT_IMAGE
    lb_image: str = versions.LB_IMAGE
    cpus: float = 0.5
    cpu_reservation: float = 0.5
    memory_mb: int = 256
    work_ms: float = 50.0
    warmup_s: float = 5.0
    endpoint_mode: str = "dnsrr"
    restart_policy: dict[str, Any] = field(default_factory=lambda: {"condition": "any", "delay_s": 5.0, "max_attempts": 0, "window_s": 0.0})
    update_config: dict[str, Any] = field(
        default_factory=lambda: {"parallelism": 1, "delay_s": 0.0, "failure_action": "pause", "monitor_s": 5.0, "max_failure_ratio": 0.0, "order": "stop-first"}
    )
    placement: dict[str, Any] = field(default_factory=lambda: {"constraints": [], "spread": [], "max_replicas_per_node": None})
    #: the Docker-in-Docker hosts the swarm spans (name, cpus, memory_bytes); empty: the engine alone (single node)
    hosts: tuple[dict[str, Any], ...] = ()

    @classmethod
    def for_scenario(cls, scenario: Any, arm: str, run_id: str, *, port: int | None = None) -> SwarmSettings:
        """Settings from one arm of a sized scenario (``SCALELAB_SWARM_PORT`` and the image overrides apply)."""
        from scalelab.scenario import SwarmDeploy

        _, a = scenario.arm(arm)
        d = a.swarm or SwarmDeploy()
        w = scenario.workload
        return cls(
            stack=stack_name(run_id),
            run_id=run_id,
            port=port or int(os.environ.get("SCALELAB_SWARM_PORT") or DEFAULT_PORT),
            replicas=a.replicas,
            agent_image=os.environ.get("SCALELAB_AGENT_IMAGE") or versions.AGENT_IMAGE,
            lb_image=os.environ.get("SCALELAB_LB_IMAGE") or versions.LB_IMAGE,
            cpus=w.cpu_limit,
            cpu_reservation=w.cpu_request,
            memory_mb=w.memory_mb,
            work_ms=w.work_ms,
            warmup_s=w.warmup_s,
            endpoint_mode=d.endpoint_mode,
            restart_policy=d.restart_policy.model_dump(),
            update_config=d.update_config.model_dump(),
            placement={**d.placement.model_dump(), "constraints": list(d.placement.constraints), "spread": list(d.placement.spread)},
            hosts=host_dicts(scenario),
        )

    @property
    def service(self) -> str:
        """The swarm service's full name (stack prefix included)."""
        return f"{self.stack}_{SERVICE}"

    @property
    def network(self) -> str:
        return f"{self.stack}_{NETWORK}"

    @property
    def lb_container(self) -> str:
        return f"{self.stack}-lb"

    def env(self) -> dict[str, str]:
        """The values compose.yaml is interpolated with (the compose platform's own mapping)."""
        return ComposeSettings(
            project=self.stack, run_id=self.run_id, port=self.port, agent_image=self.agent_image, lb_image=self.lb_image,
            cpus=self.cpus, memory_mb=self.memory_mb, work_ms=self.work_ms, warmup_s=self.warmup_s,
        ).env()

    def write(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        (state_dir / "settings.json").write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def read(cls, state_dir: Path) -> SwarmSettings:
        data = json.loads((state_dir / "settings.json").read_text(encoding="utf-8"))
        data["hosts"] = tuple(data.get("hosts") or ())
        return cls(**data)


def host_dicts(scenario: Any) -> tuple[dict[str, Any], ...]:
    """The scenario's ``hosts:`` as plain (name, cpus, memory_bytes) mappings; () when it has none."""
    from scalelab.hosts.spec import host_specs

    return tuple({"name": h.name, "cpus": h.cpus, "memory_bytes": h.memory_bytes} for h in host_specs(scenario))


def _interpolate(value: Any, env: dict[str, str]) -> Any:
    """``${NAME:-default}`` as compose does; ``$$`` stays (stack deploy turns it into ``$``)."""
    if isinstance(value, str):
        return _VAR.sub(lambda m: env.get(m.group(1), m.group(2) or ""), value)
    if isinstance(value, list):
        return [_interpolate(v, env) for v in value]
    if isinstance(value, dict):
        return {k: _interpolate(v, env) for k, v in value.items()}
    return value


def _tmpfs_mount(entry: str) -> dict[str, Any]:
    """``/tmp:size=16m`` (compose's short tmpfs) as a long-syntax tmpfs volume, which swarm services honour."""
    target, _, opts = entry.partition(":")
    mount: dict[str, Any] = {"type": "tmpfs", "target": target}
    for opt in filter(None, opts.split(",")):
        key, _, value = opt.partition("=")
        if key == "size":
            units = {"k": 2**10, "m": 2**20, "g": 2**30}
            mount["tmpfs"] = {"size": int(float(value[:-1]) * units[value[-1].lower()]) if value[-1].lower() in units else int(value)}
    return mount


def compose_service(folder: Path | None = None) -> dict[str, Any]:
    """compose.yaml's ``ai-agent`` service, as written (not interpolated)."""
    path = (folder or compose_dir()) / "compose.yaml"
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    service: dict[str, Any] = doc["services"][SERVICE]
    return service


def render_stack(s: SwarmSettings, *, folder: Path | None = None) -> dict[str, Any]:
    """The stack file (as a mapping) for ``docker stack deploy``."""
    env = s.env()
    svc = _interpolate(compose_service(folder), env)
    pids = svc.get("pids_limit")
    if svc.get("tmpfs"):  # stack deploy drops the short `tmpfs:` list silently: mount them as tmpfs volumes
        svc["volumes"] = [*svc.get("volumes", []), *(_tmpfs_mount(entry) for entry in svc.pop("tmpfs"))]
    for key in UNSUPPORTED_KEYS:
        svc.pop(key, None)
    labels = {**svc.get("labels", {}), "scalelab.platform": "swarm", "scalelab.stack": s.stack}
    svc["labels"] = labels
    svc["networks"] = [NETWORK]
    limits: dict[str, Any] = {"cpus": f"{s.cpus:g}", "memory": f"{s.memory_mb}M"}
    if pids:
        limits["pids"] = int(pids)
    r, u, p = s.restart_policy, s.update_config, s.placement
    restart: dict[str, Any] = {"condition": r["condition"], "delay": _seconds(r["delay_s"])}
    if r.get("max_attempts"):
        restart["max_attempts"] = int(r["max_attempts"])
    if r.get("window_s"):
        restart["window"] = _seconds(r["window_s"])
    placement: dict[str, Any] = {}
    constraints = list(p.get("constraints") or [])
    if s.hosts and WORKERS_ONLY not in constraints:  # tasks on the hosts; the engine (manager) keeps only the front door
        constraints.append(WORKERS_ONLY)
    if constraints:
        placement["constraints"] = constraints
    if p.get("spread"):
        placement["preferences"] = [{"spread": x} for x in p["spread"]]
    if p.get("max_replicas_per_node"):
        placement["max_replicas_per_node"] = int(p["max_replicas_per_node"])
    deploy: dict[str, Any] = {
        "mode": "replicated",
        "replicas": s.replicas,
        "endpoint_mode": s.endpoint_mode,
        "resources": {"limits": limits, "reservations": {"cpus": f"{s.cpu_reservation:g}", "memory": f"{s.memory_mb}M"}},
        "restart_policy": restart,
        "update_config": {
            "parallelism": int(u["parallelism"]),
            "delay": _seconds(u["delay_s"]),
            "failure_action": u["failure_action"],
            "monitor": _seconds(u["monitor_s"]),
            "max_failure_ratio": float(u["max_failure_ratio"]),
            "order": u["order"],
        },
        "labels": {"scalelab.run-id": s.run_id, "scalelab.platform": "swarm", "scalelab.stack": s.stack},
    }
    if placement:
        deploy["placement"] = placement
    svc["deploy"] = deploy
    return {
        "version": STACK_VERSION,
        "services": {SERVICE: svc},
        "networks": {NETWORK: {"driver": "overlay", "attachable": True, "labels": {"scalelab.run-id": s.run_id, "scalelab.platform": "swarm"}}},
    }


def stack_yaml(s: SwarmSettings, *, folder: Path | None = None) -> str:
    head = (
        f"# Rendered by scalelab for stack {s.stack} from compose/compose.yaml's {SERVICE} service\n"
        "# (see src/scalelab/platforms/swarm_stack.py); deployed with `docker stack deploy`.\n"
    )
    return head + yaml.safe_dump(render_stack(s, folder=folder), sort_keys=False, width=200)


def render_nginx(s: SwarmSettings, *, folder: Path | None = None) -> str:
    """compose/nginx.conf with the backend pointed at the swarm service.

    dnsrr: ``tasks.<service>`` resolves to every task's address (nginx re-resolves each second);
    vip: ``<service>`` resolves to the virtual IP that IPVS balances.
    """
    text = ((folder or compose_dir()) / "nginx.conf").read_text(encoding="utf-8")
    needle = f"http://{SERVICE}:8000"
    if needle not in text:
        raise ValueError(f"nginx.conf has no `{needle}` backend to point at the swarm service")
    target = f"tasks.{s.service}" if s.endpoint_mode == "dnsrr" else s.service
    return text.replace(needle, f"http://{target}:8000")


def ipvs_status(proc: Path = Path("/proc")) -> tuple[bool | None, str]:
    """Whether swarm's VIP and routing mesh can balance here (True/False; None: cannot tell) and why."""
    if not sys.platform.startswith("linux"):
        return None, "Docker runs in a VM whose kernel the kit cannot read; dnsrr works on every kernel"
    if (proc / "net" / "ip_vs").exists():
        return True, "IPVS is in the kernel (/proc/net/ip_vs exists): VIP and the routing mesh balance; dnsrr works too"
    if not (proc / "modules").exists():
        return False, ("no IPVS: /proc/net/ip_vs is absent and the kernel loads no modules (/proc/modules absent), "
                       "so a service VIP gives `No route to host`; the kit uses endpoint_mode dnsrr behind its nginx")
    return False, ("IPVS is not loaded (/proc/net/ip_vs absent); dockerd may load the ip_vs module when swarm starts "
                   "(`sudo modprobe ip_vs` to check); until then use endpoint_mode dnsrr (the default)")
