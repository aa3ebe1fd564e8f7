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

__all__ = ["ComposeSettings", "SERVICE", "LB_SERVICE", "PROJECT_PREFIX", "RUN_ID_LABEL", "PROJECT_LABEL", "SERVICE_LABEL", "LAB",
           "DEFAULT_PORT", "compose_dir", "state_root", "project_name", "default_port"]

SERVICE = "ai-agent"
LB_SERVICE = "lb"
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

    @classmethod
    def for_scenario(cls, scenario: Any, run_id: str, *, port: int | None = None) -> ComposeSettings:
        """Settings from a sized `scalelab.scenario.Scenario` (its workload section).

        ``SCALELAB_PORT``, ``SCALELAB_AGENT_IMAGE`` and ``SCALELAB_LB_IMAGE`` override the defaults.
        """
        w = scenario.workload
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
        }

    def write(self, state_dir: Path) -> Path:
        state_dir.mkdir(parents=True, exist_ok=True)
        (state_dir / "settings.json").write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")
        path = state_dir / "compose.env"
        path.write_text("".join(f"{k}={v}\n" for k, v in self.env().items()), encoding="utf-8")
        return path

    @classmethod
    def read(cls, state_dir: Path) -> ComposeSettings:
        return cls(**json.loads((state_dir / "settings.json").read_text(encoding="utf-8")))


def default_port() -> int:
    return int(os.environ.get("SCALELAB_PORT") or DEFAULT_PORT)
