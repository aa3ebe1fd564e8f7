"""The compose platform: the ai-agent replicas behind nginx on one Docker host, scaled by hand.

`compose/compose.yaml` is run with python-on-whales as project ``scalelab-<run-id>``; every
setting it needs (images, CPU and memory limits, work, warm-up, port, run id) goes through an
env file kept in ``~/.cache/scalelab/compose/<project>/compose.env``, so `scalelab scale compose
N` typed in another terminal re-runs compose with exactly the same configuration (and
``--no-recreate``: running replicas are never replaced). Each scale request is also appended to
``requests.log`` next to it; the process running the experiment reads it and records requests
from other processes as ``source=live``.

Observation once a second costs two container listings and nothing else: per-container CPU and
memory come from one Docker stats stream per container, read by a background thread
(`_StatsStream`; the arithmetic is `scalelab.telemetry.sampler`).
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from scalelab.checkout import kit_path
from scalelab import versions
from scalelab.errors import PlatformError, PreflightError
from scalelab.netcheck import port_free
from scalelab.platforms.base import Observation
from scalelab.telemetry import sampler

__all__ = ["ComposeSettings", "ComposePlatform", "SERVICE", "PROJECT_PREFIX", "running_projects", "down_all", "compose_dir"]

SERVICE = "ai-agent"
LB_SERVICE = "lb"
PROJECT_PREFIX = "scalelab-"
RUN_ID_LABEL = "scalelab.run-id"
PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
LAB = "02-compose-spike-manual-scaling"
DEFAULT_PORT = 8080
#: How old a stats reading may be before it no longer counts as this second's.
STATS_FRESH_S = 3.0


def compose_dir() -> Path:
    """The folder holding compose.yaml and nginx.conf (``$SCALELAB_COMPOSE_DIR`` or the checkout's)."""
    return kit_path("compose", "SCALELAB_COMPOSE_DIR", must_contain="compose.yaml", lab=LAB)


def _state_root() -> Path:
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


# --- Docker stats, one stream per container ----------------------------------------------------


class _StatsStream(threading.Thread):
    """Follows ``GET /containers/{id}/stats`` (one document a second) and keeps the latest figures."""

    def __init__(self, container_id: str) -> None:
        super().__init__(name=f"stats-{container_id[:12]}", daemon=True)
        self.container_id = container_id
        self.latest: tuple[float, float | None, int | None] | None = None  # (monotonic, cores, mem bytes)
        self._client: Any = None
        self._stopped = threading.Event()

    def run(self) -> None:
        import docker

        try:
            self._client = docker.from_env(timeout=30)
            for doc in self._client.api.stats(self.container_id, stream=True, decode=True):
                if self._stopped.is_set():
                    break
                self.latest = (time.monotonic(), sampler.cpu_cores(doc), sampler.memory_used_bytes(doc))
        except Exception:  # noqa: BLE001 - the container went away or the stream was closed
            pass
        finally:
            self._close()

    def fresh(self, now: float) -> tuple[float | None, int | None]:
        latest = self.latest
        if latest is None or now - latest[0] > STATS_FRESH_S:
            return None, None
        return latest[1], latest[2]

    def stop(self) -> None:
        self._stopped.set()
        self._close()

    def _close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception:  # noqa: BLE001
                pass


# --- the platform ------------------------------------------------------------------------------


@dataclass
class _Seen:
    running: dict[str, str] = field(default_factory=dict)  # id -> name
    ready: set[str] = field(default_factory=set)


class ComposePlatform:
    """`scalelab.platforms.base.Platform` on docker compose (one Docker host)."""

    name = "compose"

    def __init__(self, settings: ComposeSettings, *, state_root: Path | None = None) -> None:
        self.settings = settings
        self.state_dir = (state_root or _state_root()) / settings.project
        self.base_url = f"http://127.0.0.1:{settings.port}"
        self.desired = 0
        self._docker: Any = None  # python-on-whales client, made on first use
        self._sdk: Any = None  # docker SDK client, made on first use
        self._streams: dict[str, _StatsStream] = {}
        self._seen = _Seen()
        self._log_offset = 0
        self._lock = threading.Lock()

    @classmethod
    def attach(cls, project: str | None = None) -> ComposePlatform:
        """The platform of a running scalelab project (the only one, or the one named)."""
        projects = running_projects()
        if project is None:
            if not projects:
                raise PlatformError("no scalelab compose project is running", fix="start one with `scalelab up compose` (or `make lab01-up`)", lab=LAB)
            if len(projects) > 1:
                raise PlatformError(f"several scalelab projects are running: {', '.join(projects)}", fix="pass --project with one of them")
            project = projects[0]
        state_dir = _state_root() / project
        if not (state_dir / "settings.json").is_file():
            raise PlatformError(
                f"project {project} was not started by scalelab on this machine (no {state_dir}/settings.json)",
                fix="`scalelab down compose`, then `scalelab up compose`",
            )
        platform = cls(ComposeSettings.read(state_dir))
        platform.desired = len(platform._containers(running_only=True))
        platform._skip_request_log()
        return platform

    # -- clients ----------------------------------------------------------------------------
    @property
    def docker(self) -> Any:
        if self._docker is None:
            from python_on_whales import DockerClient

            env_file = self.settings.write(self.state_dir)
            folder = compose_dir()
            self._docker = DockerClient(
                compose_files=[folder / "compose.yaml"],
                compose_project_name=self.settings.project,
                compose_project_directory=folder,
                compose_env_files=[env_file],
            )
        return self._docker

    @property
    def sdk(self) -> Any:
        if self._sdk is None:
            self._sdk = _sdk_client()
        return self._sdk

    # -- Platform ---------------------------------------------------------------------------
    def preflight(self) -> None:
        """Engine, compose plugin, images, port: a PreflightError naming the fix, before anything starts."""
        client = _sdk_client()  # raises PreflightError when the engine does not answer
        self._sdk = client
        compose_dir()
        from python_on_whales import DockerClient

        if not DockerClient().compose.is_installed():
            raise PreflightError(
                "the Docker Compose v2 plugin is missing (`docker compose version` fails)",
                fix="install the compose plugin (Debian, no registry: `bash .ci/docker.sh`; Docker Desktop ships it)",
                lab="00-prerequisites",
            )
        import docker.errors

        for image in (self.settings.agent_image, self.settings.lb_image):
            try:
                client.images.get(image)
            except docker.errors.ImageNotFound:
                raise PreflightError(f"image {image} is not built on this machine", fix="build it: `make image` (or `scalelab image`)", lab="00-prerequisites") from None
        port_free_or_raise(self.settings.port)

    def up(self, replicas: int) -> None:
        """Start nginx and ``replicas`` agents (no wait; see `wait_ready`); cleans up on failure."""
        self.desired = replicas
        self._record_request(replicas)
        try:
            self.docker.compose.up(scales={SERVICE: replicas}, detach=True, quiet=True, pull="never", remove_orphans=True)
        except Exception as exc:
            err = _platform_error("docker compose up failed", exc, fix="read the message above; `scalelab down compose` cleans up")
            self.down()
            raise err from None

    def wait_ready(self, replicas: int, timeout_s: float) -> None:
        """Bounded poll until ``replicas`` agents are healthy and nginx answers."""
        deadline = time.monotonic() + timeout_s
        ready = 0
        lb_ok = False
        while time.monotonic() < deadline:
            ready = len(self._containers(healthy_only=True))
            lb_ok = _http_ok(f"{self.base_url}/lb-healthz", timeout_s=1.0)
            if ready >= replicas and lb_ok:
                return
            time.sleep(0.5)
        raise PlatformError(
            f"compose project {self.settings.project}: {ready}/{replicas} replicas healthy, nginx {'answering' if lb_ok else 'not answering'} "
            f"on {self.base_url} after {timeout_s:.0f} s",
            fix=f"look at `docker compose -p {self.settings.project} ps` and `... logs`; then `scalelab down compose`",
            lab=LAB,
        )

    def scale(self, replicas: int) -> None:
        """``compose up --scale ai-agent=N --no-recreate --no-deps`` (returns once containers start)."""
        if replicas < 0:
            raise PlatformError(f"replicas must be >= 0, got {replicas}")
        self.desired = replicas
        self._record_request(replicas)
        try:
            self.docker.compose.up(
                services=[SERVICE], scales={SERVICE: replicas}, detach=True, quiet=True, recreate=False, dependencies=False, pull="never"
            )
        except Exception as exc:
            raise _platform_error(f"docker compose scale to {replicas} failed", exc, fix="`scalelab down compose` and start again") from None

    def observe(self) -> Observation:
        now = time.monotonic()
        running = {c["Id"]: c["Names"][0].lstrip("/") for c in self._containers(running_only=True)}
        ready = {c["Id"] for c in self._containers(healthy_only=True)} & set(running)
        events: list[dict[str, Any]] = self._live_requests()
        for cid, name in running.items():
            if cid not in self._seen.running:
                events.append({"kind": "replica_start", "replicas": len(running), "source": "docker", "detail": name})
        for cid in sorted(ready - self._seen.ready):
            events.append({"kind": "replica_ready", "replicas": len(ready), "source": "docker", "detail": running[cid]})
        for cid, name in self._seen.running.items():
            if cid not in running:
                events.append({"kind": "replica_stop", "replicas": len(running), "source": "docker", "detail": name})
        self._seen = _Seen(running=running, ready=ready)
        cores, mem = self._stats(running, now)
        # Per container (its hostname, the short id, is what the agent answers with): for the spread (issue 18).
        placement = [
            {"pod": cid[:12], "node": "docker-host", "phase": "running", "ready": int(cid in ready), "cpu_cores": self._streams[cid].fresh(now)[0]}
            for cid in sorted(running)
        ]
        return Observation(
            replicas_desired=self.desired, replicas_ready=len(ready), cpu_cores_used=cores, replicas_measured=len(running), mem_mb=mem, events=events,
            placement=placement,
        )

    def down(self) -> None:
        """Remove the project's containers and network; a no-op when nothing runs."""
        self._stop_streams()
        try:
            if self._project_exists():
                self.docker.compose.down(remove_orphans=True, timeout=5, quiet=True, volumes=True)
        except Exception as exc:
            raise _platform_error(f"docker compose down of {self.settings.project} failed", exc, fix="retry `scalelab down compose`") from None
        shutil.rmtree(self.state_dir, ignore_errors=True)

    # -- extras ---------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """What actually runs (for the run manifest): project, port, image ids, the applied limits."""
        out: dict[str, Any] = {"compose_project": self.settings.project, "base_url": self.base_url}
        agents = self._containers(running_only=True)
        if agents:
            info = self.sdk.api.inspect_container(agents[0]["Id"])
            out["agent_image_id"] = info.get("Image")
            out["agent_nano_cpus"] = info["HostConfig"].get("NanoCpus")
            out["agent_cpu_limit_cores"] = sampler.nano_cpus_to_cores(info["HostConfig"].get("NanoCpus"))
            out["agent_memory_limit_bytes"] = info["HostConfig"].get("Memory")
        return out

    def check_limits(self) -> None:
        """Fail if the CPU limit the scenario asked for is not what Docker applied."""
        got = self.describe().get("agent_cpu_limit_cores")
        if got is None or abs(got - self.settings.cpus) > 1e-6:
            raise PlatformError(
                f"the agent containers run with a CPU limit of {got} cores, expected {self.settings.cpus}",
                fix="your compose version ignores `cpus:`; update Docker Compose to v2",
            )

    # -- internals ----------------------------------------------------------------------------
    def _containers(self, *, running_only: bool = False, healthy_only: bool = False) -> list[dict[str, Any]]:
        filters: dict[str, Any] = {"label": [f"{PROJECT_LABEL}={self.settings.project}", f"{SERVICE_LABEL}={SERVICE}"]}
        if running_only or healthy_only:
            filters["status"] = "running"
        if healthy_only:
            filters["health"] = "healthy"
        return self.sdk.api.containers(all=not (running_only or healthy_only), filters=filters)

    def _project_exists(self) -> bool:
        label = f"{PROJECT_LABEL}={self.settings.project}"
        return bool(self.sdk.api.containers(all=True, filters={"label": label})) or bool(self.sdk.api.networks(filters={"label": label}))

    def _stats(self, running: dict[str, str], now: float) -> tuple[float | None, float | None]:
        for cid in list(self._streams):
            if cid not in running:
                self._streams.pop(cid).stop()
        for cid in running:
            if cid not in self._streams:
                stream = _StatsStream(cid)
                stream.start()
                self._streams[cid] = stream
        readings = [s.fresh(now) for s in self._streams.values()]
        cores = [c for c, _ in readings if c is not None]
        mems = [m for _, m in readings if m is not None]
        if not running:
            return 0.0, 0.0
        return (sum(cores) if cores else None, sum(mems) / 2**20 if mems else None)

    def _stop_streams(self) -> None:
        for stream in self._streams.values():
            stream.stop()
        self._streams.clear()

    # Scale requests: one JSON line per request, so other processes' requests show up as live.
    @property
    def _request_log(self) -> Path:
        return self.state_dir / "requests.log"

    def _record_request(self, replicas: int) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with self._lock, self._request_log.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps({"replicas": replicas, "pid": os.getpid(), "epoch": time.time()}) + "\n")

    def _skip_request_log(self) -> None:
        try:
            self._log_offset = self._request_log.stat().st_size
        except FileNotFoundError:
            self._log_offset = 0

    def _live_requests(self) -> list[dict[str, Any]]:
        try:
            with self._lock, self._request_log.open("r", encoding="utf-8") as fh:
                fh.seek(self._log_offset)
                lines = fh.readlines()
                if lines and not lines[-1].endswith("\n"):
                    lines.pop()
                self._log_offset += sum(len(line.encode()) for line in lines)
        except FileNotFoundError:
            return []
        events = []
        for line in lines:
            try:
                req = json.loads(line)
            except ValueError:
                continue
            if req.get("pid") == os.getpid():
                continue
            self.desired = int(req["replicas"])
            events.append({"kind": "scale", "replicas": self.desired, "source": "live", "detail": f"scalelab scale compose {self.desired} (pid {req.get('pid')})"})
        return events


# --- module-level helpers (CLI: down all, list) ------------------------------------------------


def _sdk_client() -> Any:
    try:
        import docker
        import docker.errors
    except ImportError:  # pragma: no cover - a dependency
        raise PreflightError("the `docker` Python package is missing", fix="pip install 'scalelab'") from None
    try:
        client = docker.from_env(timeout=30)
        client.ping()
    except docker.errors.DockerException as exc:
        raise PreflightError(
            f"the Docker engine is not reachable: {str(exc)[:200]}",
            fix="start Docker (Debian without systemd: `bash .ci/docker.sh`; a laptop: start Docker Desktop), then `docker info`",
            lab="00-prerequisites",
        ) from None
    return client


def port_free_or_raise(port: int) -> None:
    if not port_free(port):
        raise PreflightError(
            f"port {port} on 127.0.0.1 is already in use",
            fix=f"stop what uses it (`scalelab down compose` if it is an earlier run; `ss -ltnp 'sport = :{port}'` shows the process) "
            "or pick another port with SCALELAB_PORT=8081",
            lab=LAB,
        )


def _http_ok(url: str, *, timeout_s: float) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:  # noqa: S310 - 127.0.0.1 only
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _platform_error(what: str, exc: Exception, *, fix: str) -> PlatformError:
    cmd = getattr(exc, "docker_command", None)
    stderr = (getattr(exc, "stderr", None) or "").strip()
    lines = [what]
    if cmd:
        import shlex

        lines.append(f"  command: {shlex.join(str(c) for c in cmd)}")
    if stderr:
        lines.extend("  " + line for line in stderr.splitlines()[-8:])
    elif not cmd:
        lines.append(f"  {type(exc).__name__}: {exc}")
    return PlatformError("\n".join(lines), fix=fix, lab=LAB)


def running_projects() -> list[str]:
    """Names of the scalelab compose projects that have containers or networks on this engine."""
    client = _sdk_client()
    names = {c["Labels"].get(PROJECT_LABEL, "") for c in client.api.containers(all=True, filters={"label": RUN_ID_LABEL})}
    names |= {n["Labels"].get(PROJECT_LABEL, "") for n in client.api.networks(filters={"label": PROJECT_LABEL}) if n.get("Labels")}
    return sorted(n for n in names if n.startswith(PROJECT_PREFIX))


def down_all(project: str | None = None) -> list[str]:
    """Remove every scalelab compose project (by label and name prefix), or only ``project``; returns their names."""
    removed = []
    for project in [p for p in running_projects() if project is None or p == project]:
        state = _state_root() / project
        settings = ComposeSettings.read(state) if (state / "settings.json").is_file() else ComposeSettings(project=project, run_id=project)
        ComposePlatform(settings).down()
        removed.append(project)
    return removed
