"""The swarm platform: the ai-agent as a Docker Swarm service, nginx in front, on this one engine.

With a scenario's ``hosts:`` the engine manages a swarm of Docker-in-Docker hosts and the tasks
run on them (`scalelab.platforms.swarm_hosts`; docs/swarm.md, "Several hosts"); without, what
follows is the whole story.

Lifecycle (every command through `scalelab._run.run`, so ``-v`` shows it):

- ``preflight``: engine, images, port, and the engine's swarm state: an engine already in a
  swarm the kit did not create, or a node that is not a manager, is a PreflightError before
  anything starts; ``endpoint_mode: vip`` without IPVS too.
- ``up``: ``docker swarm init --advertise-addr 127.0.0.1`` only when the engine is in no swarm
  (recorded in ``~/.cache/scalelab/swarm/swarm-owner.json``), ``docker stack deploy`` of the
  stack rendered by `scalelab.platforms.swarm_stack`, and nginx as a plain container on the
  stack's attachable overlay network, published on 127.0.0.1 only.
- ``scale``: ``docker service scale --detach``; the replica count anyone sets (``docker service
  scale`` by hand, `scalelab scale swarm`) is read back from the service spec and recorded as a
  ``live`` scale event.
- ``observe``: the service's tasks (desired, running, healthy), per-task CPU and memory from one
  stats stream per task container (`scalelab.engine.streams`), placement rows (task, node) and
  the scheduler's messages for tasks that cannot run.
- ``down``: the nginx container, ``docker stack rm``, wait until the network is gone, and
  ``docker swarm leave --force`` only when the kit created the swarm and no other kit stack is
  left (plus the ``docker_gwbridge`` network swarm init made, if it was not there before).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from scalelab import engine
from scalelab.engine import stats
from scalelab.engine.streams import StatsStreams
from scalelab.errors import CommandError, PlatformError, PreflightError, ScenarioError
from scalelab.netcheck import http_ok, port_free
from scalelab.platforms.base import Observation, PlatformOptions, Say, lifecycle_events
from scalelab.platforms.docker_observe import container_observation
from scalelab.platforms.swarm_hosts import SwarmHosts
from scalelab.platforms.swarm_stack import SwarmSettings, ipvs_status, render_nginx, stack_yaml
from scalelab.platforms.swarm_state import (
    DOWN_FIX,
    LAB,
    OWNER_FILE,
    PLATFORM_LABEL,
    STACK_LABEL,
    _docker,
    _network_exists,
    check_swarm_usable,
    ensure_swarm,
    kit_owns_swarm,
    leave_swarm_if_ours,
    running_stacks,
    state_root,
    swarm_state,
)
from scalelab.poll import poll_until
from scalelab.registry import platform_spec

__all__ = ["SwarmPlatform", "SwarmKind", "KIND", "swarm_state", "running_stacks", "down_all", "state_root", "OWNER_FILE"]

RENDERED_FILE = "swarm-stack.yaml"
RENDERED_NGINX = "swarm-nginx.conf"


class SwarmPlatform:
    """`scalelab.platforms.base.Platform` on a single-node Docker Swarm."""

    name = "swarm"

    def __init__(self, settings: SwarmSettings) -> None:
        self.settings = settings
        self.state_dir = state_root() / settings.stack
        self.base_url = f"http://127.0.0.1:{settings.port}"
        self.desired = settings.replicas
        self._sdk: Any = None
        self._streams = StatsStreams()
        self._seen_running: dict[str, str] = {}
        self._seen_ready: set[str] = set()
        self._seen_notes: set[str] = set()
        self._nodes: dict[str, str] = {}
        self._deployed_at: float | None = None
        self.deploy_to_healthy_s: float | None = None
        #: the Docker-in-Docker hosts the swarm spans (None: the engine alone, a single node)
        self.hosts: SwarmHosts | None = SwarmHosts(settings.hosts, owner=settings.run_id) if settings.hosts else None
        #: hosts.csv rows of the last observation (empty without hosts)
        self.host_rows: list[dict[str, Any]] = []
        #: where long steps (starting hosts, loading images) are said; the runner points it at its view
        self.progress: Say | None = None

    @property
    def sdk(self) -> Any:
        if self._sdk is None:
            self._sdk = engine.sdk_client()
        return self._sdk

    # -- Platform ---------------------------------------------------------------------------
    def preflight(self) -> None:
        self._sdk = engine.sdk_client()  # PreflightError when the engine does not answer
        for image in (self.settings.agent_image, self.settings.lb_image):
            if not engine.image_exists(image):
                raise PreflightError(f"image {image} is not built on this machine", fix="build it: `make image` (or `scalelab image`)", lab="00-prerequisites")
        if not port_free(self.settings.port):
            raise PreflightError(
                f"port {self.settings.port} on 127.0.0.1 is already in use",
                fix=f"stop what uses it (`ss -ltnp 'sport = :{self.settings.port}'`; `scalelab down swarm` if it is an earlier run) or pick another with SCALELAB_SWARM_PORT",
                lab=LAB,
            )
        check_swarm_usable(self._sdk)
        if self.hosts is not None:
            sw = swarm_state(self._sdk)
            if sw.get("LocalNodeState") == "active" and sw.get("NodeAddr") == "127.0.0.1":
                raise PreflightError("the kit's single-node swarm on this engine advertises 127.0.0.1: hosts cannot join it",
                                     fix="`scalelab down swarm` (it stops the other kit stacks and leaves the swarm), then run again", lab=LAB)
            self.hosts.preflight(self.progress)
        if self.settings.endpoint_mode == "vip":
            ok, why = ipvs_status()
            if ok is False:
                raise PreflightError(f"endpoint_mode vip cannot balance on this machine: {why}", fix="set the arm's swarm.endpoint_mode to dnsrr (the default)", lab=LAB)

    def up(self, replicas: int) -> None:
        """swarm init (if needed), stack deploy, the nginx front door; cleans up on failure."""
        self.desired = replicas
        import dataclasses

        self.settings = dataclasses.replace(self.settings, replicas=replicas)
        self.settings.write(self.state_dir)
        stack_file = self.state_dir / "stack.yaml"
        stack_file.write_text(stack_yaml(self.settings), encoding="utf-8")
        nginx_conf = self.state_dir / "nginx.conf"
        nginx_conf.write_text(render_nginx(self.settings), encoding="utf-8")
        try:
            if self.hosts is not None:
                self.hosts.start([self.settings.agent_image], self.progress)
                manager = self.hosts.manager_addr(self.sdk)
                ensure_swarm(self.sdk, advertise_addr=manager)
                self.hosts.join(self.sdk, manager)
            else:
                ensure_swarm(self.sdk)
            self._deployed_at = time.monotonic()
            _docker("stack", "deploy", "--resolve-image", "never", "-c", str(stack_file), self.settings.stack, timeout_s=180)
            s = self.settings
            _docker(
                "run", "--detach", "--name", s.lb_container, "--network", s.network,
                "--publish", f"127.0.0.1:{s.port}:8080",
                "--user", "65532:65532", "--read-only", "--tmpfs", "/tmp:size=16m", "--cap-drop", "ALL",
                "--security-opt", "no-new-privileges:true", "--cpus", "0.25", "--memory", "64m", "--pids-limit", "128",
                "--label", f"scalelab.run-id={s.run_id}", "--label", PLATFORM_LABEL, "--label", f"scalelab.stack={s.stack}", "--label", "scalelab.role=lb",
                "--volume", f"{nginx_conf}:/etc/nginx/nginx.conf:ro",
                s.lb_image, "nginx", "-e", "stderr", "-g", "daemon off;",
                timeout_s=60,
            )
        except CommandError as exc:
            self.down()
            raise _platform_error("swarm deploy failed", exc) from None
        except PlatformError:
            self.down()
            raise

    def wait_ready(self, replicas: int, timeout_s: float) -> None:
        state: dict[str, Any] = {"ready": 0, "lb": False}

        def ready() -> bool:
            state["ready"] = len(self._task_containers(healthy=True))
            state["lb"] = http_ok(f"{self.base_url}/lb-healthz", timeout_s=1.0)
            return bool(state["ready"] >= replicas and state["lb"])

        if not poll_until(ready, timeout_s=timeout_s, interval_s=0.5):
            raise PlatformError(
                f"swarm stack {self.settings.stack}: {state['ready']}/{replicas} tasks healthy, "
                f"nginx {'answering' if state['lb'] else 'not answering'} on {self.base_url} after {timeout_s:.0f} s",
                fix=f"look at `docker service ps {self.settings.service} --no-trunc`; then `scalelab down swarm`",
                lab=LAB,
            )
        if self._deployed_at is not None and self.deploy_to_healthy_s is None:
            self.deploy_to_healthy_s = round(time.monotonic() - self._deployed_at, 2)

    def scale(self, replicas: int) -> None:
        if replicas < 0:
            raise PlatformError(f"replicas must be >= 0, got {replicas}")
        self.desired = replicas
        try:
            _docker("service", "scale", "--detach", f"{self.settings.service}={replicas}", timeout_s=60)
        except CommandError as exc:
            raise _platform_error(f"docker service scale to {replicas} failed", exc) from None

    def current_replicas(self) -> int:
        return self.desired

    def observe(self) -> Observation:
        now = time.monotonic()
        events: list[dict[str, Any]] = []
        spec_replicas = self._spec_replicas()
        if spec_replicas is not None and spec_replicas != self.desired:
            events.append({"kind": "scale", "replicas": spec_replicas, "source": "live", "detail": f"service spec set to {spec_replicas} outside this run"})
            self.desired = spec_replicas
        tasks = self._tasks()
        # A task is running once its container runs. Swarm's own task state says "starting" until the
        # healthcheck passes and "running" only then, so it would hide the warm-up (and its CPU).
        live = self._task_containers(healthy=False)
        running: dict[str, dict[str, Any]] = {}
        for t in tasks:
            status = t.get("Status", {})
            cid = (status.get("ContainerStatus") or {}).get("ContainerID")
            if cid and cid in live:
                running[cid] = t
            elif t.get("DesiredState") == "running" and status.get("Err"):
                note = f"task {self.settings.service}.{t.get('Slot')} {status.get('State')}: {status['Err']}"
                if note not in self._seen_notes:
                    self._seen_notes.add(note)
                    events.append({"kind": "note", "replicas": None, "source": "swarm", "detail": note})
        names = {cid: f"{self.settings.service}.{t.get('Slot')}.{cid[:12]}" for cid, t in running.items()}
        ready = set(self._task_containers(healthy=True)) & set(running)
        events += lifecycle_events(self._seen_running, self._seen_ready, names, ready, "swarm")
        self._seen_running, self._seen_ready = names, ready
        urls = {cid: host.docker_host for cid, host in live.items() if host is not None and cid in running}
        readings = self._streams.read(list(running), now, base_urls=urls) if urls else self._streams.read(list(running), now)

        def node_of(cid: str) -> str:
            host = live.get(cid)
            return str(host.name) if host is not None else self._node_name(running[cid].get("NodeID", ""))

        if self.hosts is not None:
            events += self.hosts.node_events(self.sdk)
            per_host: dict[str, int] = {}
            for cid in running:
                per_host[node_of(cid)] = per_host.get(node_of(cid), 0) + 1
            self.host_rows = self.hosts.rows(per_host)
        obs = container_observation(
            desired=self.desired, names=names, ready=ready, readings=readings, cpus=self.settings.cpus,
            memory_mb=self.settings.memory_mb, events=events, node_of=node_of,
        )
        obs.hosts = self.host_rows
        return obs

    def stop_host(self, name: str) -> str:
        """The node-loss fault: stop host ``name`` (its container, so its daemon and tasks), leaving Swarm to notice."""
        if self.hosts is None:
            raise PlatformError("node-loss needs a swarm that spans hosts: this one is the engine alone",
                                fix="add `hosts:` (two or more) to the scenario", lab=LAB)
        return self.hosts.stop(name)

    def down(self) -> None:
        """Front door, stack, network; the swarm too when the kit made it and nothing else of the kit uses it."""
        self._streams.stop()
        s = self.settings
        try:
            if self.sdk.api.containers(all=True, filters={"name": s.lb_container}):
                _docker("rm", "--force", s.lb_container, check=False)
            if swarm_state(self.sdk).get("ControlAvailable") and self.sdk.api.services(filters={"label": f"{STACK_LABEL}={s.stack}"}):
                _docker("stack", "rm", s.stack)
            gone = poll_until(lambda: not self._leftovers(), timeout_s=90, interval_s=1.0)
            if not gone:
                raise PlatformError(f"stack {s.stack} still has {', '.join(self._leftovers())} after 90 s", fix="`docker stack rm` it again, then `scalelab down swarm`", lab=LAB)
            if self.hosts is not None:
                self.hosts.leave_and_remove(self.sdk, manager=bool(swarm_state(self.sdk).get("ControlAvailable")))
            leave_swarm_if_ours(self.sdk)
        except CommandError as exc:
            raise _platform_error(f"removing swarm stack {s.stack} failed", exc) from None
        shutil.rmtree(self.state_dir, ignore_errors=True)

    def describe(self) -> dict[str, Any]:
        s = self.settings
        out: dict[str, Any] = {"swarm_stack": s.stack, "service": s.service, "base_url": self.base_url, "endpoint_mode": s.endpoint_mode,
                               "network": s.network, "swarm_created_by_kit": kit_owns_swarm(self.sdk), "deploy_to_healthy_s": self.deploy_to_healthy_s}
        if self.hosts is not None:
            out["hosts"] = [{"name": h.name, "container": h.container, "ip": h.ip, "cpus": h.cpus, "memory_bytes": h.memory_bytes} for h in self.hosts.hosts]
            out["manager"] = {"node": "this engine", "addr": swarm_state(self.sdk).get("NodeAddr"), "tasks": "none (constraint node.role==worker)"}
        try:
            spec = self.sdk.api.inspect_service(s.service)["Spec"]
        except Exception:  # noqa: BLE001 - not deployed (yet)
            return out
        res = spec.get("TaskTemplate", {}).get("Resources", {})
        out["agent_cpu_limit_cores"] = stats.nano_cpus_to_cores(res.get("Limits", {}).get("NanoCPUs"))
        out["agent_cpu_reservation_cores"] = stats.nano_cpus_to_cores(res.get("Reservations", {}).get("NanoCPUs"))
        out["agent_memory_limit_bytes"] = res.get("Limits", {}).get("MemoryBytes")
        out["update_config"] = spec.get("UpdateConfig")
        out["restart_policy"] = spec.get("TaskTemplate", {}).get("RestartPolicy")
        out["placement"] = spec.get("TaskTemplate", {}).get("Placement")
        live = self._task_containers(healthy=False)
        if live:
            cid, host = next(iter(live.items()))
            client = self.sdk if host is None else self.hosts._client(host) if self.hosts is not None else None
            info = client.api.inspect_container(cid) if client is not None else {}
            out["agent_image_id"] = info.get("Image")
            out["agent_nano_cpus"] = info["HostConfig"].get("NanoCpus")
        return out

    def save_rendered(self, run_dir: Path) -> Path:
        path = Path(run_dir) / RENDERED_FILE
        path.write_text(stack_yaml(self.settings), encoding="utf-8")
        (Path(run_dir) / RENDERED_NGINX).write_text(render_nginx(self.settings), encoding="utf-8")
        return path

    def check_limits(self) -> None:
        got = self.describe().get("agent_cpu_limit_cores")
        if got is None or abs(got - self.settings.cpus) > 1e-6:
            raise PlatformError(f"the swarm service runs with a CPU limit of {got} cores, expected {self.settings.cpus}",
                                fix="check the stack file's deploy.resources.limits (`docker service inspect`)", lab=LAB)

    # -- internals ----------------------------------------------------------------------------
    def _tasks(self) -> list[dict[str, Any]]:
        try:
            found: list[dict[str, Any]] = self.sdk.api.tasks(filters={"service": self.settings.service, "desired-state": "running"})
        except Exception:  # noqa: BLE001 - the service is gone (down) or the node left the swarm
            return []
        return [t for t in found if t.get("ServiceID")]

    def _spec_replicas(self) -> int | None:
        try:
            spec = self.sdk.api.inspect_service(self.settings.service)["Spec"]
        except Exception:  # noqa: BLE001
            return None
        value = spec.get("Mode", {}).get("Replicated", {}).get("Replicas")
        return int(value) if value is not None else None

    def _task_containers(self, *, healthy: bool) -> dict[str, Any]:
        """The service's running task containers (``healthy``: only those whose healthcheck passes) -> their host (None: the engine)."""
        if self.hosts is not None:
            return self.hosts.containers(self.settings.service, healthy=healthy)
        filters = {"label": f"com.docker.swarm.service.name={self.settings.service}", "status": "running", **({"health": "healthy"} if healthy else {})}
        return {c["Id"]: None for c in self.sdk.api.containers(filters=filters)}

    def _node_name(self, node_id: str) -> str:
        if node_id and node_id not in self._nodes:
            try:
                self._nodes = {n["ID"]: n.get("Description", {}).get("Hostname", n["ID"][:12]) for n in self.sdk.api.nodes()}
            except Exception:  # noqa: BLE001
                return node_id[:12]
        return self._nodes.get(node_id, node_id[:12] or "unknown")

    def _leftovers(self) -> list[str]:
        s, out = self.settings, []
        if self.sdk.api.containers(all=True, filters={"label": f"com.docker.swarm.service.name={s.service}"}):
            out.append("task containers")
        if self.hosts is not None and self.hosts.containers(s.service, healthy=False):
            out.append("task containers on the hosts")
        if self.sdk.api.containers(all=True, filters={"name": s.lb_container}):
            out.append("the nginx container")
        if _network_exists(self.sdk, s.network):
            out.append(f"network {s.network}")
        return out


def _platform_error(what: str, exc: CommandError) -> PlatformError:
    import shlex

    lines = [what, f"  command: {shlex.join(exc.argv)}"]
    lines.extend("  " + line for line in (exc.stderr or exc.stdout or "").strip().splitlines()[-8:])
    return PlatformError("\n".join(lines), fix=exc.fix or DOWN_FIX, lab=LAB)


def _settings_for(stack: str) -> SwarmSettings:
    state = state_root() / stack
    if (state / "settings.json").is_file():
        return SwarmSettings.read(state)
    return SwarmSettings(stack=stack, run_id=stack.removeprefix("scalelab-"))


def down_all(stack: str | None = None, say: Say | None = None) -> list[str]:
    """Remove every stack the kit deployed (or only ``stack``), then the kit's swarm if nothing is left."""
    sdk = engine.sdk_client()
    removed = []
    for name in [n for n in running_stacks(sdk) if stack is None or n == stack]:
        SwarmPlatform(_settings_for(name)).down()
        removed.append(name)
    leave_swarm_if_ours(sdk, say)
    return removed


class SwarmKind:
    """`scalelab.platforms.base.PlatformKind` for Docker Swarm (one node, or the engine managing a scenario's hosts)."""

    spec = platform_spec("swarm")

    def create(self, scenario: Any, arm: str, *, run_id: str, options: PlatformOptions) -> SwarmPlatform:
        settings = SwarmSettings.for_scenario(scenario, arm, run_id, port=options.port)
        replica_faults = sorted({f.kind for f in scenario.faults if f.kind != "node-loss"})
        if settings.hosts and replica_faults:  # their hook (scalelab.faults.inject.SwarmInjector) looks on the engine, not in the hosts
            raise ScenarioError(f"{scenario.source or scenario.name}: faults of kind {', '.join(replica_faults)} are not implemented yet on a swarm that spans hosts:",
                                fix="keep node-loss (the kind a swarm of hosts is for), or remove hosts: to run them on the single-node swarm")
        return SwarmPlatform(settings)

    def attach(self, options: PlatformOptions) -> SwarmPlatform:
        stacks = running_stacks(engine.sdk_client())
        name = options.project
        if name is None:
            if len(stacks) != 1:
                raise PlatformError(f"{len(stacks)} scalelab swarm stacks are running{': ' + ', '.join(stacks) if stacks else ''}",
                                    fix="start one with `scalelab up swarm`" if not stacks else "pass --project with one of them", lab=LAB)
            name = stacks[0]
        elif name not in stacks:
            raise PlatformError(f"no scalelab swarm stack '{name}' is running; running: {', '.join(stacks) or 'none'}", fix="pick one of them", lab=LAB)
        if not (state_root() / name / "settings.json").is_file():
            raise PlatformError(f"stack {name} was not started by scalelab on this machine", fix="`scalelab down swarm`, then `scalelab up swarm`", lab=LAB)
        platform = SwarmPlatform(SwarmSettings.read(state_root() / name))
        platform.desired = platform._spec_replicas() or 0
        if platform.hosts is not None:
            platform.hosts.reattach(platform.sdk)
        return platform

    def running(self, options: PlatformOptions) -> list[str]:
        return running_stacks(engine.sdk_client())

    def down_all(self, options: PlatformOptions, say: Say) -> list[str]:
        if not engine.reachable(timeout_s=20):
            raise PreflightError("Docker engine not reachable: no swarm stacks to remove", fix=engine.ENGINE_FIX)
        return down_all(options.project, say)

    def doctor_checks(self) -> list[Any]:
        from scalelab.doctor import Check

        ok, why = ipvs_status()
        mode = "vip or dnsrr" if ok else "dnsrr (the default)"
        checks = [Check("ipvs", f"swarm load balancing: {mode}", True, why, required=False)]
        if engine.reachable(timeout_s=20):
            sdk = engine.sdk_client()
            try:
                check_swarm_usable(sdk)
                sw = swarm_state(sdk)
                detail = "no swarm yet: the kit will `docker swarm init` and leave it afterwards" if sw.get("LocalNodeState") == "inactive" else "the kit's own swarm"
                checks.append(Check("swarm", "engine's swarm state usable", True, detail))
            except PreflightError as exc:
                checks.append(Check("swarm", "engine's swarm state usable", False, exc.message, exc.fix or ""))
        return checks


KIND = SwarmKind()
