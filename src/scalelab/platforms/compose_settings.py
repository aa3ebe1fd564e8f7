"""The compose platform's settings: what compose.yaml is interpolated with, and where it lives.

Every setting (images, CPU and memory limits, work, warm-up, port, run id) goes through an env
file kept in ``~/.cache/scalelab/compose/<project>/compose.env``, so `scalelab scale compose N`
typed in another terminal re-runs compose with exactly the same configuration.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from scalelab import versions
from scalelab.checkout import kit_path

__all__ = ["ComposeSettings", "SERVICE", "WEAK_SERVICE", "LB_SERVICE", "LB_DIR", "PROJECT_PREFIX", "RUN_ID_LABEL", "PROJECT_LABEL", "SERVICE_LABEL", "LAB",
           "DEFAULT_PORT", "compose_dir", "state_root", "project_name", "default_port"]

SERVICE = "ai-agent"
#: the unequal replicas (a scenario arm's ``weak`` section): same service, smaller CPU limit
WEAK_SERVICE = "ai-agent-weak"
LB_SERVICE = "lb"
#: the folder of the front door's files inside the project's state directory (mounted into the lb)
LB_DIR = "lb.d"
PROJECT_PREFIX = "scalelab-"
RUN_ID_LABEL = "scalelab.run-id"
PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
LAB = "02-compose-spike-manual-scaling"
DEFAULT_PORT = 8080


def compose_dir() -> Path:
    """The folder holding compose.yaml and nginx.conf (``$SCALELAB_COMPOSE_DIR`` or the checkout's)."""
    return kit_path("compose", "SCALELAB_COMPOSE_DIR", must_contain="compose.yaml", lab=LAB)


def state_root() -> Path:
    from scalelab.images import cache_dir

    return cache_dir() / "compose"


def project_name(run_id: str) -> str:
    name = (PROJECT_PREFIX + run_id).lower()
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name)


@dataclass(frozen=True)
class ComposeSettings:
    """Everything compose.yaml is interpolated with; written to and read from the env file."""

    project: str
    run_id: str
    port: int = DEFAULT_PORT
    agent_image: str = versions.AGENT_IMAGE
    lb_image: str = versions.LB_IMAGE
    cpus: float = 0.5
    memory_mb: int = 256
    work_ms: float = 50.0
    warmup_s: float = 5.0
    #: the front door's strategy (scalelab.lb.strategies) and, for resource-aware, its update period
    lb_strategy: str = "random"
    lb_update_s: float = 2.0
    #: unequal replicas: how many of the replicas run as the weak service, and its CPU limit
    weak_replicas: int = 0
    weak_cpus: float = 0.0
    #: a scenario with ``hosts:``: the daemon of Host A (``unix://`` socket; scalelab.platforms.compose_hosts); "" = this machine's
    docker_host: str = ""
    #: where the front door's port is published: 127.0.0.1; on Host A its address on the kit's hosts network
    lb_bind: str = "127.0.0.1"
    #: the arm's ``lb.retry`` (nginx tries the next replica) and ``rollout.drain`` (the agent drains on SIGTERM)
    lb_retry: bool = True
    agent_drain: bool = True

    @classmethod
    def for_scenario(cls, scenario: Any, run_id: str, *, port: int | None = None, arm_name: str | None = None) -> ComposeSettings:
        """Settings from a sized `scalelab.scenario.Scenario`: its workload, and the arm's ``lb`` and ``weak`` sections.

        ``arm_name`` None: the scenario's first compose arm (``scalelab up compose``).

        ``SCALELAB_PORT``, ``SCALELAB_AGENT_IMAGE`` and ``SCALELAB_LB_IMAGE`` override the defaults.
        """
        w = scenario.workload
        arm = next((a for a in scenario.arms.values() if a.platform == "compose"), None) if arm_name is None else scenario.arms[arm_name]
        lb = arm.lb if arm is not None else None
        weak = arm.weak if arm is not None else None
        return cls(
            project=project_name(run_id),
            run_id=run_id,
            port=port or default_port(),
            agent_image=os.environ.get("SCALELAB_AGENT_IMAGE") or versions.AGENT_IMAGE,
            lb_image=os.environ.get("SCALELAB_LB_IMAGE") or versions.LB_IMAGE,
            cpus=w.cpu_limit,
            memory_mb=w.memory_mb,
            work_ms=w.work_ms,
            warmup_s=w.warmup_s,
            lb_strategy=lb.strategy if lb is not None else "random",
            lb_update_s=lb.update_s if lb is not None else 2.0,
            weak_replicas=weak.replicas if weak is not None else 0,
            weak_cpus=round(w.cpu_limit * weak.cpu_factor, 3) if weak is not None else 0.0,
            lb_retry=lb.retry if lb is not None else True,
            agent_drain=arm.rollout.drain if arm is not None and arm.rollout is not None else True,
        )

    def env(self) -> dict[str, str]:
        return {
            "SCALELAB_RUN_ID": self.run_id,
            "SCALELAB_PORT": str(self.port),
            "SCALELAB_AGENT_IMAGE": self.agent_image,
            "SCALELAB_LB_IMAGE": self.lb_image,
            "SCALELAB_AGENT_CPUS": f"{self.cpus:g}",
            "SCALELAB_AGENT_MEMORY": f"{self.memory_mb}m",
            "SCALELAB_WORK_MS": f"{self.work_ms:g}",
            "SCALELAB_WARMUP_S": f"{self.warmup_s:g}",
            "SCALELAB_WEAK_CPUS": f"{self.weak_cpus or self.cpus:g}",
            "SCALELAB_WEAK_REPLICAS": str(self.weak_replicas),
            "SCALELAB_AGENT_DRAIN": "1" if self.agent_drain else "0",
            # random with retry: compose/nginx.conf as mounted; else the kit's derived config in the lb folder
            "SCALELAB_LB_CONF": f"/etc/nginx/{LB_DIR}/nginx.conf" if self.lb_strategy != "random" or not self.lb_retry else "/etc/nginx/nginx.conf",
            "SCALELAB_LB_DIR": f"./{LB_DIR}",
            # on Host A: Host A's address on the kit's hosts network, which Host A publishes on this machine's 127.0.0.1
            "SCALELAB_LB_BIND": self.lb_bind,
        }

    def cpu_limit_of(self, service: str) -> float:
        """The CPU limit (cores) of a replica of ``service`` (the weak service's or the normal one's)."""
        return self.weak_cpus if service == WEAK_SERVICE and self.weak_cpus else self.cpus

    def write(self, state_dir: Path) -> Path:
        state_dir.mkdir(parents=True, exist_ok=True)
        (state_dir / "settings.json").write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")
        path = state_dir / "compose.env"
        env = {**self.env(), "SCALELAB_LB_DIR": str(state_dir / LB_DIR)}
        path.write_text("".join(f"{k}={v}\n" for k, v in env.items()), encoding="utf-8")
        return path

    @classmethod
    def read(cls, state_dir: Path) -> ComposeSettings:
        return cls(**json.loads((state_dir / "settings.json").read_text(encoding="utf-8")))


def default_port() -> int:
    return int(os.environ.get("SCALELAB_PORT") or DEFAULT_PORT)
