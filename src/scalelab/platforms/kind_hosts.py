"""A scenario's ``hosts:`` on the kind cluster: each host is one worker node container.

kind has no per-node resource setting, but every node is a Docker container whose pods live in
cgroups nested under the container's own (kind gives each node a private cgroup namespace), so
a cap on the container binds everything the node runs. `KindHosts`:

- maps ``hosts:`` in order onto the workers (``scalelab-worker`` = the first host, ...), and
  refuses before anything starts when there are more hosts than workers;
- caps each mapped worker at its host's CPU and memory (``docker update --cpu-period
  --cpu-quota --memory --memory-swap``) when the run starts, and lifts the caps at the end;
- gives ``hosts.csv`` its rows every second (`scalelab.hosts.meter.HostMeter`): pods on the
  node, the node container's CPU and memory read from its cgroup, its cap (every worker is
  listed; a worker no host maps onto shows the machine's cores as its cap);
- loses a host (fault ``node-loss``): ``docker kill`` of its node container, as a power cut;
  the end of the run starts it again.

What the kubelet and the scheduler see is unchanged: the kubelet reads the machine's CPUs and
memory, not the container's cgroup limits, so every worker's capacity and allocatable stay the
machine's (docs/hosts-on-kind.md). The cap binds usage, the scheduler places by requests.

Any other cluster: nodes are not containers the kit may change, so ``hosts:`` is refused there.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scalelab import _run
from scalelab.errors import PreflightError
from scalelab.hosts.dind import LAB  # lab 09's name, set once it is written

__all__ = ["KindHost", "KindHosts", "plan_hosts", "worker_containers", "cap_argv", "uncap_argvs", "CPU_PERIOD_US", "MIN_NODE_MEMORY_BYTES"]

#: the CFS period the caps use (Docker's default); the quota is cpus x period
CPU_PERIOD_US = 100_000
#: the smallest quota the kernel takes (1 ms per period)
MIN_QUOTA_US = 1_000
#: below this a kind worker (kubelet, containerd, kube-proxy, the pod network) has no room for pods
MIN_NODE_MEMORY_BYTES = 768 * 2**20
_ROLE = "io.x-k8s.kind.role"
_CLUSTER = "io.x-k8s.kind.cluster"


@dataclass
class KindHost:
    """One worker node: the host name it plays (the node's own name when no host maps onto it) and its cap."""

    name: str
    node: str
    #: the CPU cap in cores (the machine's cores when ``capped`` is False)
    cpus: float
    memory_bytes: int | None = None
    capped: bool = False

    @property
    def container(self) -> str:
        """kind names each node container after its node."""
        return self.node


def _natural(name: str) -> tuple[Any, ...]:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name))


def worker_containers(cluster: str) -> list[str]:
    """The cluster's worker node containers in kind's order (worker, worker2, ...), running or not."""
    proc = _run.run(["docker", "ps", "--all", "--filter", f"label={_CLUSTER}={cluster}", "--filter", f"label={_ROLE}=worker",
                     "--format", "{{.Names}}"], check=False, timeout_s=30)
    return sorted((n for n in proc.stdout.split() if n), key=_natural) if proc.returncode == 0 else []


def plan_hosts(specs: Sequence[Any], workers: Sequence[str], *, cluster: str, machine_cpus: float, source: str = "the scenario") -> list[KindHost]:
    """``hosts:`` (objects with name, cpus, memory_bytes) onto the workers, in order; PreflightError when they do not fit."""
    if len(specs) > len(workers):
        have = f"{len(workers)} worker(s) ({', '.join(workers)})" if workers else "no worker node"
        raise PreflightError(
            f"{source}: hosts: lists {len(specs)} hosts ({', '.join(s.name for s in specs)}), but the kind cluster '{cluster}' has {have}; "
            "each host is one worker node",
            fix="list at most as many hosts as workers in hosts:, or add `- role: worker` lines to k8s/kind-cluster.yaml and recreate "
                "the cluster (`scalelab cluster down && scalelab cluster up`)",
            lab=LAB,
        )
    small = [s for s in specs if s.memory_bytes < MIN_NODE_MEMORY_BYTES]
    if small:
        raise PreflightError(
            f"{source}: hosts: {', '.join(f'{s.name} (memory {s.memory_bytes // 2**20} MiB)' for s in small)} leave a kind worker no room: "
            f"its kubelet, containerd and pod network alone use about 200 MiB",
            fix=f"give every host at least {MIN_NODE_MEMORY_BYTES // 2**20}m of memory in hosts: when it runs Kubernetes",
            lab=LAB,
        )
    out = [KindHost(s.name, node, float(s.cpus), int(s.memory_bytes), capped=True) for s, node in zip(specs, workers)]
    out += [KindHost(node, node, float(machine_cpus)) for node in workers[len(specs):]]
    return out


def cap_argv(host: KindHost) -> list[str]:
    """``docker update`` that caps a node container at its host's CPU and memory (no swap beyond it)."""
    quota = max(MIN_QUOTA_US, round(host.cpus * CPU_PERIOD_US))
    mem = str(host.memory_bytes)
    return ["docker", "update", "--cpu-period", str(CPU_PERIOD_US), "--cpu-quota", str(quota), "--memory", mem, "--memory-swap", mem, host.container]


def uncap_argvs(container: str, machine_memory_bytes: int) -> list[list[str]]:
    """``docker update`` commands that lift the caps, one per resource so one refusal does not keep the other:
    no CPU quota; memory and memory+swap back to the machine's memory (Docker cannot unset a memory
    limit; with both raised together runc writes the swap limit first, as cgroup v1 wants, while
    ``--memory-swap -1`` next to a raised memory limit is refused: "invalid argument")."""
    mem = str(machine_memory_bytes)
    return [["docker", "update", "--cpu-quota", "-1", container],
            ["docker", "update", "--memory", mem, "--memory-swap", mem, container]]


def _machine() -> tuple[float, int]:
    """(CPUs, memory bytes) of the machine the Docker engine runs on."""
    out = _run.run(["docker", "info", "--format", "{{.NCPU}} {{.MemTotal}}"], timeout_s=30).stdout.split()
    return float(out[0]), int(out[1])


class KindHosts:
    """The run's workers as hosts: caps, per-second rows for hosts.csv, node loss, and the clean-up of all three."""

    def __init__(self, hosts: Sequence[KindHost], *, machine_memory_bytes: int, usage: Callable[[Any], tuple[float, int] | None] | None = None) -> None:
        from scalelab.hosts.meter import HostMeter

        self.hosts = list(hosts)
        self.machine_memory_bytes = machine_memory_bytes
        self.meter = HostMeter(self.hosts, usage=usage or _node_usage)
        self._capped: list[KindHost] = []
        self._stopped: list[KindHost] = []

    @classmethod
    def for_run(cls, specs: Sequence[Any], kind_cluster: str | None, *, source: str, describe: str) -> KindHosts | None:
        """The plan for a run: None on a cluster that is not kind's (``hosts:`` refused there) or whose nodes are not local containers."""
        if kind_cluster is None:
            if specs:
                raise PreflightError(
                    f"{source}: hosts: gives hosts their own CPU and memory, which the kit does on the kind cluster's node containers only, "
                    f"and {describe} is not a kind cluster",
                    fix="run it on the kind cluster (`scalelab cluster up`, then --context kind-scalelab), or remove hosts: from the "
                        "scenario (on your own cluster, size the nodes themselves)",
                    lab=LAB,
                )
            return None
        workers = worker_containers(kind_cluster)
        if not workers and not specs:
            return None  # a kind cluster of one node, or one on another machine: nothing to meter
        cpus, memory = _machine()
        return cls(plan_hosts(specs, workers, cluster=kind_cluster, machine_cpus=cpus, source=source), machine_memory_bytes=memory)

    def by_node(self) -> dict[str, KindHost]:
        return {h.node: h for h in self.hosts}

    def apply_caps(self) -> None:
        for host in self.hosts:
            if host.capped:
                self._capped.append(host)
                _run.run(cap_argv(host), timeout_s=30, fix=f"is the kind node container {host.container} there? `docker ps -a`")

    def describe(self) -> list[dict[str, Any]]:
        """For the run manifest: which host is which node, and its cap."""
        return [{"host": h.name, "node": h.node, "cpus": h.cpus if h.capped else None, "memory_bytes": h.memory_bytes} for h in self.hosts]

    def rows(self, pods_per_node: Mapping[str, int]) -> list[dict[str, Any]]:
        """hosts.csv rows of this second (without ``t_s``): ``pods_per_node`` counts the run's live pods by node."""
        return self.meter.rows({h.name: pods_per_node.get(h.node, 0) for h in self.hosts})

    @property
    def stopped_nodes(self) -> set[str]:
        return {h.node for h in self._stopped}

    def stop(self, name: str) -> str:
        """Lose host ``name``: SIGKILL its node container (a power cut: no graceful node shutdown). Returns how."""
        host = next((h for h in self.hosts if h.name == name), None)
        if host is None:
            raise PreflightError(f"no host '{name}' on this kind cluster (hosts: {', '.join(h.name for h in self.hosts)})",
                                 fix="name one of the scenario's hosts in the node-loss fault", lab=LAB)
        _run.run(["docker", "kill", "--signal", "KILL", host.container], timeout_s=30)
        self._stopped.append(host)
        return f"docker kill {host.container} (kind node {host.node}, host {host.name} lost)"

    def restore(self, say: Callable[[str], None] = print) -> None:
        """Lift the caps and start the node containers a node loss stopped (their kubelet rejoins in seconds)."""
        for host in self._capped:
            for argv in uncap_argvs(host.container, self.machine_memory_bytes):
                proc = _run.run(argv, check=False, timeout_s=30)
                if proc.returncode != 0:
                    say(f"could not lift the cap of kind node {host.node} ({' '.join(argv[2:-1])}): {(proc.stderr or proc.stdout).strip()[:300]}; "
                        "`scalelab cluster down` removes the node")
        self._capped = []
        for host in self._stopped:
            say(f"starting kind node {host.node} again (host {host.name} was stopped by a node-loss fault)")
            _run.run(["docker", "start", host.container], check=False, timeout_s=60)
        self._stopped = []


#: node container -> (cpu usage file, memory usage file, memory.stat file or None): found once per start
_NODE_PATHS: dict[str, tuple[Path, Path, Path | None]] = {}


def container_cgroup(proc_cgroup: str, container_id: str) -> str:
    """``/proc/<pid>/cgroup`` of a container's PID 1 cut back to the container's own cgroup in every hierarchy.

    A kind node's PID 1 is systemd, which moves itself into ``init.scope`` wherever it accounts
    (on cgroup v1 the memory hierarchy): read there, a node would "use" the 2 MB of systemd alone.
    The container's cgroup is the path up to the component named after its id (``<id>`` with
    Docker's cgroupfs driver, ``docker-<id>.scope`` with systemd's).
    """
    out = []
    for line in proc_cgroup.splitlines():
        head, sep, path = line.rpartition(":")
        parts = path.split("/")
        cut = next((i for i, part in enumerate(parts) if container_id in part), None)
        out.append(f"{head}{sep}{'/'.join(parts[:cut + 1]) if cut is not None else path}")
    return "\n".join(out)


def _node_usage(host: Any) -> tuple[float, int] | None:
    """The node container's (CPU seconds, memory bytes) from its own cgroup, everything the node runs included (None: stopped)."""
    from scalelab.hosts.dind import cgroup_files, read_usage

    name = host.container
    paths = _NODE_PATHS.get(name)
    if paths is None:
        proc = _run.run(["docker", "inspect", "--format", "{{.State.Running}} {{.State.Pid}} {{.Id}}", name], check=False, timeout_s=30)
        fields = proc.stdout.split()
        if proc.returncode != 0 or len(fields) != 3 or fields[0] != "true" or fields[1] in ("", "0"):
            return None
        try:
            paths = cgroup_files(container_cgroup(Path(f"/proc/{fields[1]}/cgroup").read_text(), fields[2]))
        except OSError:
            return None
        _NODE_PATHS[name] = paths
    try:
        return read_usage(*paths)
    except (OSError, ValueError, StopIteration):
        _NODE_PATHS.pop(name, None)  # stopped (lost) since the last reading
        return None
