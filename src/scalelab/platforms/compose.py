"""The compose platform: the ai-agent replicas behind nginx on one Docker host.

`compose/compose.yaml` runs as project ``scalelab-<run-id>`` through ``docker compose`` (every
command via `scalelab.engine.compose`, so ``-v`` shows it), with the settings in an env file
(`scalelab.platforms.compose_settings`); ``--no-recreate`` keeps running replicas when scaling.
Each scale request is also appended to ``requests.log`` next to the env file; the process
running the experiment reads it and records requests from other processes as ``source=live``.

Observation once a second costs two container listings and nothing else: per-container CPU and
memory come from one Docker stats stream per container, read by a background thread
(`scalelab.engine.streams`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scalelab import engine
from scalelab.engine import stats
from scalelab.engine.streams import StatsStreams
from scalelab.errors import CommandError, PlatformError, PreflightError, ScenarioError
from scalelab.hosts.spec import host_specs
from scalelab.lb.controller import FrontDoor, Replica
from scalelab.netcheck import http_ok, port_free
from scalelab.platforms.base import Observation, PlatformOptions, Say, lifecycle_events
from scalelab.platforms.compose_hosts import ComposeHosts
from scalelab.platforms.compose_inflight import AGENT_PORT, InflightReader, container_ip
from scalelab.platforms.compose_settings import (
    LAB,
    LB_DIR,
    LB_SERVICE,
    PROJECT_LABEL,
    PROJECT_PREFIX,
    RUN_ID_LABEL,
    SERVICE,
    SERVICE_LABEL,
    WEAK_SERVICE,
    ComposeSettings,
    compose_dir,
    state_root,
)
from scalelab.platforms.docker_observe import container_observation
from scalelab.poll import poll_until
from scalelab.registry import platform_spec
from scalelab.scalers.switch import SwitchReader, write_switch

#: the compose file as applied, kept in the run directory
RENDERED_FILE = "compose-rendered.yaml"

__all__ = ["ComposePlatform", "ComposeKind", "KIND", "ComposeSettings", "SERVICE", "running_projects", "down_all", "compose_dir"]


class ComposePlatform:
    """`scalelab.platforms.base.Platform` on docker compose (one Docker host)."""

    name = "compose"

    def __init__(self, settings: ComposeSettings, *, state_root_dir: Path | None = None, hosts: ComposeHosts | None = None) -> None:
        #: a scenario's ``hosts:``: the project runs on Host A's own daemon (scalelab.platforms.compose_hosts)
        self.hosts = hosts
        if hosts is not None and not settings.docker_host:
            settings = dataclasses.replace(settings, docker_host=hosts.docker_host)
        self.settings = settings
        #: where progress goes (the runner sets its view's message)
        self.progress: Callable[[str], None] | None = None
        self.state_dir = (state_root_dir or state_root()) / settings.project
        self.base_url = f"http://127.0.0.1:{settings.port}"
        self.desired = 0
        self._sdk: Any = None  # docker SDK client, made on first use
        self._streams = StatsStreams(settings.docker_host)
        self._inflight = InflightReader()  # each agent's /metrics, for kit scalers
        self._switch = SwitchReader(self.state_dir)  # `scalelab autoscale pause|resume`
        self._seen_running: dict[str, str] = {}  # id -> name
        self._seen_ready: set[str] = set()
        self._log_offset = 0
        self._lock = threading.Lock()
        self._scale_lock = threading.Lock()  # one `compose up --scale` at a time (see `scale`)
        self._applied: int | None = None
        #: the front door's upstream block for every strategy but random (scalelab.lb.controller)
        self.front_door = FrontDoor(settings.lb_strategy, self.state_dir / LB_DIR, self._reload_lb, update_s=settings.lb_update_s,
                                    retry=settings.lb_retry)
        self._lb_events: list[dict[str, Any]] = []  # its reloads since the last observation

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
        elif project not in projects:
            raise PlatformError(f"no scalelab compose project '{project}' is running; running: {', '.join(projects) or 'none'}", fix="pick one of them, or start one with `scalelab up compose`", lab=LAB)
        state_dir = state_root() / project
        if not (state_dir / "settings.json").is_file():
            raise PlatformError(
                f"project {project} was not started by scalelab on this machine (no {state_dir}/settings.json)",
                fix="`scalelab down compose`, then `scalelab up compose`",
            )
        platform = cls(ComposeSettings.read(state_dir))
        platform.desired = len(platform._containers(running_only=True))
        platform._skip_request_log()
        return platform

    @property
    def sdk(self) -> Any:
        if self._sdk is None:
            self._sdk = engine.sdk_client(docker_host=self.settings.docker_host)
        return self._sdk

    def _compose(self, *args: str, fix: str, timeout_s: float = 300.0) -> None:
        env_file = self.settings.write(self.state_dir)
        folder = compose_dir()
        engine.compose(self.settings.project, [folder / "compose.yaml"], args, env_file=env_file, project_dir=folder, timeout_s=timeout_s, fix=fix,
                       env=self.docker_env)

    @property
    def docker_env(self) -> dict[str, str]:
        """Environment for a docker command aimed at the project's daemon (Host A's with hosts; else none)."""
        return {"DOCKER_HOST": self.settings.docker_host} if self.settings.docker_host else {}

    @property
    def pid_exec(self) -> list[str]:
        """What runs a command in the process table the replicas' pids belong to: Host A's (``docker exec``), else this machine's."""
        return ["docker", "exec", self.hosts.hosts[0].container] if self.hosts is not None and self.hosts.hosts else []

    # -- Platform ---------------------------------------------------------------------------
    def preflight(self) -> None:
        """Engine, compose plugin, images, port: a PreflightError naming the fix, before anything starts."""
        engine.sdk_client()  # raises PreflightError when the engine does not answer
        compose_dir()
        if self.hosts is not None:
            self.hosts.preflight()
        if not engine.compose_installed():
            raise PreflightError(
                "the Docker Compose v2 plugin is missing (`docker compose version` fails)",
                fix="install the compose plugin (Debian, no registry: `bash .ci/docker.sh`; Docker Desktop ships it)",
                lab="00-prerequisites",
            )
        for image in (self.settings.agent_image, self.settings.lb_image):
            if not engine.image_exists(image):
                raise PreflightError(f"image {image} is not built on this machine", fix="build it: `make image` (or `scalelab image`)", lab="00-prerequisites")
        port_free_or_raise(self.settings.port)

    def up(self, replicas: int) -> None:
        """Start nginx and ``replicas`` agents (no wait; see `wait_ready`); cleans up on failure."""
        self.desired = replicas
        self._record_request(replicas)
        self.front_door.prepare((compose_dir() / "nginx.conf").read_text(encoding="utf-8"), SERVICE, AGENT_PORT)
        try:
            if self.hosts is not None:
                self.settings.write(self.state_dir)  # the env file and lb folder exist before Host A mounts them
                self.hosts.start(port=self.settings.port, images=[self.settings.agent_image, self.settings.lb_image],
                                 mounts=[compose_dir(), self.state_dir], say=self.progress)
                self.settings = dataclasses.replace(self.settings, lb_bind=self.hosts.hosts[0].ip)
            self._compose("up", "--detach", "--quiet-pull", "--pull", "never", "--remove-orphans", *self._scale_args(replicas),
                          fix="read the message above; `scalelab down compose` cleans up")
        except CommandError as exc:
            self.down()
            raise _platform_error("docker compose up failed", exc) from None
        except BaseException:
            self.down()
            raise

    def wait_ready(self, replicas: int, timeout_s: float) -> None:
        """Bounded poll until ``replicas`` agents are healthy and nginx answers."""
        state = {"ready": 0, "lb": False}

        def ready() -> bool:
            state["ready"] = len(self._containers(healthy_only=True))
            state["lb"] = http_ok(f"{self.base_url}/lb-healthz", timeout_s=1.0)
            return bool(state["ready"] >= replicas and state["lb"])

        if not poll_until(ready, timeout_s=timeout_s, interval_s=0.5):
            raise PlatformError(
                f"compose project {self.settings.project}: {state['ready']}/{replicas} replicas healthy, "
                f"nginx {'answering' if state['lb'] else 'not answering'} on {self.base_url} after {timeout_s:.0f} s",
                fix=f"look at `docker compose -p {self.settings.project} ps` and `... logs`; then `scalelab down compose`",
                lab=LAB,
            )
        self._sync_front_door()

    def scale(self, replicas: int) -> None:
        """``compose up --scale ai-agent=N --no-recreate --no-deps`` (returns once containers start).

        The runner calls this from a thread per decision, and a kit scaler without a cooldown decides
        every second: two compose calls at once race (one still stopping a container the other
        lists: "No such container"). So one call runs at a time, and it applies the newest request
        (``desired``), whichever thread gets there first; a request already applied is skipped.
        """
        if replicas < 0:
            raise PlatformError(f"replicas must be >= 0, got {replicas}")
        self.desired = replicas
        self._record_request(replicas)
        if self.hosts is not None and not self.hosts.first_up():
            return  # Host A is lost: no daemon to ask; the request is recorded, nothing starts anywhere
        with self._scale_lock:
            target = self.desired
            if target == self._applied:
                return
            try:
                self._compose("up", "--detach", "--quiet-pull", "--pull", "never", "--no-recreate", "--no-deps", *self._scale_args(target)[:2], SERVICE,
                              fix="`scalelab down compose` and start again")
            except CommandError as exc:
                raise _platform_error(f"docker compose scale to {target} failed", exc) from None
            self._applied = target

    def current_replicas(self) -> int:
        return self.desired

    def autoscale(self, action: str) -> Path:
        """Ask the run in progress to ``pause`` or ``resume`` its kit scaler (read at its next observation)."""
        return write_switch(self.state_dir, action)

    def observe(self) -> Observation:
        now = time.monotonic()
        # Host A lost (fault node-loss): its daemon is gone with every replica, and nothing restarts them anywhere
        lost = self.hosts is not None and not self.hosts.first_up()
        listing = [] if lost else self._containers(running_only=True)
        running = {c["Id"]: c["Names"][0].lstrip("/") for c in listing}
        ready = set() if lost else {c["Id"] for c in self._containers(healthy_only=True)} & set(running)
        events: list[dict[str, Any]] = self._live_requests() + self._switch.events()
        events += lifecycle_events(self._seen_running, self._seen_ready, running, ready, "docker")
        self._seen_running, self._seen_ready = running, ready
        readings = self._streams.read(list(running), now)
        hosts = self.hosts.rows(len(running)) if self.hosts is not None else []
        limits = {c["Id"]: self.settings.cpu_limit_of(c["Labels"].get(SERVICE_LABEL, SERVICE)) for c in listing}
        if not lost:
            self._sync_front_door(listing, {cid: r[0] for cid, r in readings.items()}, limits)
        events += self._lb_events
        self._lb_events = []
        node = self.hosts.first.name if self.hosts is not None else "docker-host"
        # with hosts the replicas' addresses are Host A's inner ones, not routable from this machine: no in-flight reads
        in_flight = self._inflight.read(listing) if self.hosts is None else {}
        obs = container_observation(
            desired=self.desired, names=running, ready=ready, readings=readings, cpus=limits,
            memory_mb=self.settings.memory_mb, events=events, node_of=lambda _cid: node, in_flight=in_flight,
        )
        obs.hosts = hosts
        return obs

    def down(self) -> None:
        """Remove the project's containers and network; a no-op when nothing runs."""
        self._streams.stop()
        self._inflight.stop()
        if self.hosts is not None:  # the project lives inside the hosts: removing them removes it
            self.hosts.remove()
            self._sdk = None
            shutil.rmtree(self.state_dir, ignore_errors=True)
            return
        try:
            if self._project_exists():
                self._compose("down", "--remove-orphans", "--timeout", "5", "--volumes", fix="retry `scalelab down compose`")
        except CommandError as exc:
            raise _platform_error(f"docker compose down of {self.settings.project} failed", exc) from None
        shutil.rmtree(self.state_dir, ignore_errors=True)

    def stop_host(self, name: str) -> str:
        """Fault node-loss: stop the host called ``name`` (its outer container, with all it runs); returns how."""
        if self.hosts is None:
            raise PlatformError("node-loss needs hosts: this run has none", fix="add hosts: to the scenario (docs/hosts.md)")
        return self.hosts.stop(name)

    def describe(self) -> dict[str, Any]:
        """What actually runs (for the run manifest): project, port, image ids, the applied limits."""
        out: dict[str, Any] = {"compose_project": self.settings.project, "base_url": self.base_url}
        if self.hosts is not None:
            out.update(self.hosts.describe())
        everyone = self._containers(running_only=True)
        agents = [c for c in everyone if c["Labels"].get(SERVICE_LABEL) == SERVICE]
        out["lb_strategy"] = self.settings.lb_strategy
        weak = [c for c in everyone if c["Labels"].get(SERVICE_LABEL) == WEAK_SERVICE]
        if weak:  # unequal replicas: which ones (their names in requests.csv) and the limit Docker applied
            out["weak_replicas"] = sorted(c["Id"][:12] for c in weak)
            out["weak_cpu_limit_cores"] = stats.nano_cpus_to_cores(self.sdk.api.inspect_container(weak[0]["Id"])["HostConfig"].get("NanoCpus"))
        if agents:
            info = self.sdk.api.inspect_container(agents[0]["Id"])
            out["agent_image_id"] = info.get("Image")
            out["agent_nano_cpus"] = info["HostConfig"].get("NanoCpus")
            out["agent_cpu_limit_cores"] = stats.nano_cpus_to_cores(info["HostConfig"].get("NanoCpus"))
            out["agent_memory_limit_bytes"] = info["HostConfig"].get("Memory")
        return out

    def save_rendered(self, run_dir: Path) -> Path:
        """Write the compose file as applied (``docker compose config``, settings interpolated) into the run directory."""
        env_file = self.settings.write(self.state_dir)
        folder = compose_dir()
        text = engine.compose(self.settings.project, [folder / "compose.yaml"], ["config"], env_file=env_file, project_dir=folder, timeout_s=60)
        path = Path(run_dir) / RENDERED_FILE
        path.write_text(f"# Applied by scalelab as compose project {self.settings.project} (docker compose config).\n" + text, encoding="utf-8")
        return path

    def check_limits(self) -> None:
        """Fail if the CPU limit the scenario asked for is not what Docker applied."""
        info = self.describe()
        expected = [("agent", info.get("agent_cpu_limit_cores"), self.settings.cpus)]
        if self.settings.weak_replicas:
            expected.append(("weak agent", info.get("weak_cpu_limit_cores"), self.settings.weak_cpus))
        for what, got, want in expected:
            if got is None or abs(got - want) > 1e-6:
                raise PlatformError(
                    f"the {what} containers run with a CPU limit of {got} cores, expected {want}",
                    fix="your compose version ignores `cpus:`; update Docker Compose to v2",
                )

    # -- internals ----------------------------------------------------------------------------
    def _scale_args(self, replicas: int) -> list[str]:
        """``--scale`` for the agent service (and the weak one): ``replicas`` counts both."""
        weak = min(self.settings.weak_replicas, replicas)
        return ["--scale", f"{SERVICE}={replicas - weak}", "--scale", f"{WEAK_SERVICE}={weak}"]

    def _sync_front_door(self, listing: list[dict[str, Any]] | None = None, cores: dict[str, float | None] | None = None,
                         limits: dict[str, float] | None = None) -> None:
        """List the running replicas in the front door's upstream block (strategies other than random); events for `observe`."""
        if not self.front_door.strategy.upstream:
            return
        listing = self._containers(running_only=True) if listing is None else listing
        replicas = []
        for c in listing:
            ip = container_ip(c)
            if ip:
                limit = (limits or {}).get(c["Id"]) or self.settings.cpu_limit_of(c["Labels"].get(SERVICE_LABEL, SERVICE))
                replicas.append(Replica(c["Id"], c["Id"][:12], f"{ip}:{AGENT_PORT}", limit, (cores or {}).get(c["Id"])))
        self._lb_events += self.front_door.sync(replicas)

    def _reload_lb(self) -> bool:
        """Graceful nginx reload: SIGHUP to the lb container's nginx master (False when no lb runs)."""
        filters = {"label": [f"{PROJECT_LABEL}={self.settings.project}", f"{SERVICE_LABEL}={LB_SERVICE}"], "status": "running"}
        found = self.sdk.api.containers(filters=filters)
        for c in found:
            self.sdk.api.kill(c["Id"], signal="SIGHUP")
        return bool(found)

    def _containers(self, *, running_only: bool = False, healthy_only: bool = False) -> list[dict[str, Any]]:
        # the agents of both services (ai-agent and, for unequal replicas, ai-agent-weak) carry role=workload
        filters: dict[str, Any] = {"label": [f"{PROJECT_LABEL}={self.settings.project}", "scalelab.role=workload"]}
        if running_only or healthy_only:
            filters["status"] = "running"
        if healthy_only:
            filters["health"] = "healthy"
        found: list[dict[str, Any]] = self.sdk.api.containers(all=not (running_only or healthy_only), filters=filters)
        return found

    def _project_exists(self) -> bool:
        label = f"{PROJECT_LABEL}={self.settings.project}"
        return bool(self.sdk.api.containers(all=True, filters={"label": label})) or bool(self.sdk.api.networks(filters={"label": label}))

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
                replicas = int(req["replicas"])
            except (ValueError, KeyError, TypeError):
                continue
            if req.get("pid") == os.getpid():
                continue
            self.desired = replicas
            self._applied = None  # another process scaled: what runs is no longer what this one applied
            events.append({"kind": "scale", "replicas": replicas, "source": "live", "detail": f"scalelab scale compose {replicas} (pid {req.get('pid')})"})
        return events


# --- the platform's life on this engine ------------------------------------------------------


def port_free_or_raise(port: int) -> None:
    if not port_free(port):
        raise PreflightError(
            f"port {port} on 127.0.0.1 is already in use",
            fix=f"stop what uses it (`scalelab down compose` if it is an earlier run; `ss -ltnp 'sport = :{port}'` shows the process) "
            "or pick another port with SCALELAB_PORT=8081",
            lab=LAB,
        )


def _platform_error(what: str, exc: CommandError) -> PlatformError:
    import shlex

    lines = [what, f"  command: {shlex.join(exc.argv)}"]
    lines.extend("  " + line for line in (exc.stderr or exc.stdout or "").strip().splitlines()[-8:])
    return PlatformError("\n".join(lines), fix=exc.fix or "`scalelab down compose` cleans up", lab=LAB)


def running_projects() -> list[str]:
    """Names of the scalelab compose projects that have containers or networks on this engine (or run on a kit host)."""
    client = engine.sdk_client()
    names = {c["Labels"].get(PROJECT_LABEL, "") for c in client.api.containers(all=True, filters={"label": RUN_ID_LABEL})}
    names |= {n["Labels"].get(PROJECT_LABEL, "") for n in client.api.networks(filters={"label": PROJECT_LABEL}) if n.get("Labels")}
    names |= set(_projects_on_hosts())
    return sorted(n for n in names if n.startswith(PROJECT_PREFIX))


def _projects_on_hosts() -> dict[str, ComposeSettings]:
    """Projects a run started on Host A (a scenario's hosts:) whose host still answers on its socket: name -> settings."""
    root = state_root()
    found = {}
    for settings_file in sorted(root.glob("*/settings.json")) if root.is_dir() else []:
        try:
            settings = ComposeSettings.read(settings_file.parent)
        except (ValueError, TypeError, OSError):
            continue
        if settings.docker_host and Path(settings.docker_host.removeprefix("unix://")).exists():
            found[settings.project] = settings
    return found


def down_all(project: str | None = None) -> list[str]:
    """Remove every scalelab compose project (by label and name prefix), or only ``project``; returns their names."""
    removed = []
    on_hosts = _projects_on_hosts()
    for name in [p for p in running_projects() if project is None or p == project]:
        if name in on_hosts:  # kept with --keep on Host A: the hosts go, and the project with them
            from scalelab.hosts.dind import remove_hosts

            remove_hosts(on_hosts[name].run_id)
            shutil.rmtree(state_root() / name, ignore_errors=True)
            removed.append(name)
            continue
        state = state_root() / name
        settings = ComposeSettings.read(state) if (state / "settings.json").is_file() else ComposeSettings(project=name, run_id=name)
        ComposePlatform(settings).down()
        removed.append(name)
    return removed


class ComposeKind:
    """`scalelab.platforms.base.PlatformKind` for docker compose."""

    spec = platform_spec("compose")

    def create(self, scenario: Any, arm: str, *, run_id: str, options: PlatformOptions) -> ComposePlatform:
        specs = host_specs(scenario)
        if specs and scenario.rollout is not None:
            raise ScenarioError(f"{scenario.source or scenario.name}: a rollout on compose with hosts: is not supported yet",
                                fix="remove rollout: or hosts: from the scenario")
        hosts = ComposeHosts(specs, run_id) if specs else None
        return ComposePlatform(ComposeSettings.for_scenario(scenario, run_id, port=options.port, arm_name=arm), hosts=hosts)

    def attach(self, options: PlatformOptions) -> ComposePlatform:
        return ComposePlatform.attach(options.project)

    def running(self, options: PlatformOptions) -> list[str]:
        return running_projects()

    def down_all(self, options: PlatformOptions, say: Say) -> list[str]:
        if not engine.reachable(timeout_s=20):
            raise PreflightError("Docker engine not reachable: no compose projects to remove", fix=engine.ENGINE_FIX)
        return down_all(options.project)

    def doctor_checks(self) -> list[Any]:
        from scalelab.hosts.checks import hosts_check

        return [hosts_check()]


KIND = ComposeKind()
