"""`scalelab density plan`: read the host's limits, predict the first wall per mode, print the budget.

A *wall* is a limit that containers use up one by one (tasks under ``kernel.pid_max``, memcg IDs,
ports on one Linux bridge, ...). For each wall: ``(limit - used now) / cost per container`` is
the number of containers that still fit; the smallest is the first wall, with the exact error it
produces. The plan never changes a sysctl: it says which one would move the wall
(docs/density.md has the sources of every figure).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from scalelab.density import host

__all__ = [
    "MODES",
    "HostLimits",
    "Costs",
    "DEFAULT_COSTS",
    "Wall",
    "Prediction",
    "read_host_limits",
    "memory_floor_bytes",
    "predict",
    "render_plan",
    "costs_from_run",
    "limits_json",
]

MODES = ("runtime", "network", "workload")
GiB = 1024**3
MiB = 1024**2
#: Linux bridges number their ports with 10 bits (``BR_PORT_BITS``, compile-time); port 0 is unused.
BRIDGE_PORTS_MAX = 1023
#: Memory cgroup IDs are 16-bit (``MEM_CGROUP_ID_MAX``); dying cgroups keep theirs until freed.
MEMCG_IDS_MAX = 65535


@dataclass(frozen=True)
class HostLimits:
    """The limits and current usage the walls depend on; ``None`` = could not be read."""

    cpus: int
    mem_total_bytes: int
    mem_available_bytes: int
    load1: float
    tasks_now: int  # kernel tasks (threads) that exist now
    pid_max: int | None
    threads_max: int | None
    cgroup_version: int
    memcg_count: int | None
    inotify_max_instances: int | None
    inotify_instances_root: int | None
    gc_thresh3: int | None
    arp_entries: int
    dockerd_nofile: int | None = None
    dockerd_fds: int | None = None
    containerd_nofile: int | None = None
    containerd_fds: int | None = None
    engine: str = "local"  # local | vm (Docker Desktop: daemon figures not visible) | none
    engine_version: str = ""
    sysctls: dict[str, int | None] = field(default_factory=dict)  # everything read, for the record

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HostLimits:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class Costs:
    """What one container of a mode uses of each limit (docs/density.md: how each was measured)."""

    tasks: float  # kernel tasks: its containerd-shim's threads + the container's processes
    memory_bytes: float  # host memory: shim + kernel objects + the container's own processes
    dockerd_fds: float
    containerd_fds: float
    inotify: float  # inotify instances (containerd-shim watches memory events on cgroup v2)
    bridge_ports: float = 0.0  # one veth on the run's bridge
    neigh: float = 0.0  # host neighbour entries (only once traffic flows)
    source: str = "estimate"


#: Runtime mode: measured on the kit's reference VM (2 cores, Docker 20.10.24, containerd 1.6,
#: cgroup v1) by the run in tests/fixtures/runs/density/20261204-204438-density-runtime-5082 (300
#: containers): 12.4 tasks, 5.1 dockerd fds, 4 containerd fds, 3.1 MiB of MemAvailable each.
#: Network and workload modes: those figures plus estimates (a veth; the agent's ~60 MiB and its
#: json log file). ``scalelab density plan --costs-from RUN`` uses your own measured figures.
DEFAULT_COSTS: dict[str, Costs] = {
    "runtime": Costs(tasks=12.4, memory_bytes=3.1 * MiB, dockerd_fds=5.1, containerd_fds=4, inotify=0, source="measured, reference VM"),
    "network": Costs(tasks=12.4, memory_bytes=3.5 * MiB, dockerd_fds=5.1, containerd_fds=4, inotify=0, bridge_ports=1, neigh=0,
                     source="runtime measured + a veth (estimate)"),
    "workload": Costs(tasks=16, memory_bytes=60 * MiB, dockerd_fds=7, containerd_fds=4, inotify=0, bridge_ports=1, neigh=1,
                      source="estimate"),
}


@dataclass(frozen=True)
class Wall:
    """One limit: how many more containers fit under it, and what happens when they do not."""

    name: str
    limit: int
    used: int
    per_container: float
    fits: int | None  # None: this mode does not use the limit
    error: str
    change: str  # what one would change (never done by the kit)


@dataclass(frozen=True)
class Prediction:
    mode: str
    walls: list[Wall]
    cap: int
    memory_fits: int
    costs: Costs

    @property
    def applicable(self) -> list[Wall]:
        return sorted((w for w in self.walls if w.fits is not None), key=lambda w: w.fits or 0)

    @property
    def first(self) -> Wall:
        return self.applicable[0]

    @property
    def budget(self) -> int:
        """Containers the ramp may start: the cap, the memory floor and the first wall, whichever is lowest."""
        return max(0, min(self.cap, self.memory_fits, self.first.fits or 0))

    @property
    def stops_at(self) -> str:
        """What ends a ramp run with this budget: ``cap``, ``memory floor`` or the first wall's name."""
        if self.budget == self.cap and self.cap <= min(self.memory_fits, self.first.fits or 0):
            return "cap"
        if self.memory_fits <= (self.first.fits or 0):
            return "memory floor"
        return self.first.name


# --- reading -----------------------------------------------------------------------------------

SYSCTLS = {
    "kernel.pid_max": "kernel/pid_max",
    "kernel.threads-max": "kernel/threads-max",
    "fs.inotify.max_user_instances": "fs/inotify/max_user_instances",
    "fs.inotify.max_user_watches": "fs/inotify/max_user_watches",
    "net.ipv4.neigh.default.gc_thresh1": "net/ipv4/neigh/default/gc_thresh1",
    "net.ipv4.neigh.default.gc_thresh2": "net/ipv4/neigh/default/gc_thresh2",
    "net.ipv4.neigh.default.gc_thresh3": "net/ipv4/neigh/default/gc_thresh3",
    "net.netfilter.nf_conntrack_max": "net/netfilter/nf_conntrack_max",
    "fs.file-max": "fs/file-max",
}


def read_host_limits(engine: str = "local", engine_version: str = "", proc: Path = host.PROC, sys_root: Path = host.SYS) -> HostLimits:
    """Every limit of the table, read (never written) from ``/proc`` and ``/sys``."""
    sysctls = {name: host.read_int(proc / "sys" / rel) for name, rel in SYSCTLS.items()}
    mem = host.meminfo(proc)
    load1, tasks = host.loadavg(proc)
    daemons: dict[str, host.ProcFigures | None] = {}
    for name in ("dockerd", "containerd"):
        pid = host.find_process(name, proc) if engine == "local" else None
        daemons[name] = host.process_figures(pid, proc) if pid else None
    if engine == "local" and daemons["dockerd"] is None:
        engine = "vm"  # the engine answers but its daemon is not a process here (Docker Desktop, a remote host)
    d, c = daemons["dockerd"], daemons["containerd"]
    return HostLimits(
        cpus=os.cpu_count() or 1,
        mem_total_bytes=mem.get("MemTotal", 0),
        mem_available_bytes=mem.get("MemAvailable", 0),
        load1=load1,
        tasks_now=tasks,
        pid_max=sysctls["kernel.pid_max"],
        threads_max=sysctls["kernel.threads-max"],
        cgroup_version=host.cgroup_version(sys_root),
        memcg_count=host.memcg_count(proc),
        inotify_max_instances=sysctls["fs.inotify.max_user_instances"],
        inotify_instances_root=host.inotify_instances(0, proc),
        gc_thresh3=sysctls["net.ipv4.neigh.default.gc_thresh3"],
        arp_entries=host.arp_entries(proc),
        dockerd_nofile=d.nofile_limit if d else None,
        dockerd_fds=d.fds if d else None,
        containerd_nofile=c.nofile_limit if c else None,
        containerd_fds=c.fds if c else None,
        engine=engine,
        engine_version=engine_version,
        sysctls=sysctls,
    )


# --- predicting --------------------------------------------------------------------------------


def memory_floor_bytes(mem_total_bytes: int) -> int:
    """The ramp stops when MemAvailable falls below 20% of RAM or 2 GiB, whichever is higher."""
    return max(int(0.2 * mem_total_bytes), 2 * GiB)


def _fits(limit: int | None, used: int | None, per: float) -> int | None:
    if limit is None or per <= 0:
        return None
    return max(0, math.floor((limit - (used or 0)) / per))


def _walls(lim: HostLimits, mode: str, c: Costs) -> list[Wall]:
    pid_error = ("`fork/exec /proc/self/exe: resource temporarily unavailable` (runc), "
                 "then dockerd `runtime/cgo: pthread_create failed: Resource temporarily unavailable`")
    fd_error = "`too many open files` (accept4/socket/open in the daemon's log and the API's error)"
    walls = [
        Wall("tasks (kernel.pid_max)", lim.pid_max or 0, lim.tasks_now, c.tasks, _fits(lim.pid_max, lim.tasks_now, c.tasks),
             pid_error, "sysctl -w kernel.pid_max=4194304"),
        Wall("tasks (kernel.threads-max)", lim.threads_max or 0, lim.tasks_now, c.tasks, _fits(lim.threads_max, lim.tasks_now, c.tasks),
             pid_error, "sysctl -w kernel.threads-max=<2x>"),
        Wall("memcg IDs", MEMCG_IDS_MAX, lim.memcg_count or 0, 1.0, _fits(MEMCG_IDS_MAX, lim.memcg_count, 1.0),
             "`mkdir /sys/fs/cgroup/memory/docker/<id>: no space left on device`",
             "none (16-bit kernel constant): remove leaked/dying cgroups, or reboot"),
        Wall("dockerd open files", lim.dockerd_nofile or 0, lim.dockerd_fds or 0, c.dockerd_fds,
             _fits(lim.dockerd_nofile, lim.dockerd_fds, c.dockerd_fds), fd_error,
             "raise dockerd's LimitNOFILE (systemd unit) or `ulimit -n` before starting dockerd"),
        Wall("containerd open files", lim.containerd_nofile or 0, lim.containerd_fds or 0, c.containerd_fds,
             _fits(lim.containerd_nofile, lim.containerd_fds, c.containerd_fds), fd_error,
             "raise containerd's LimitNOFILE (or dockerd's, which starts it)"),
        Wall("inotify instances (root)", lim.inotify_max_instances or 0, lim.inotify_instances_root or 0, c.inotify,
             _fits(lim.inotify_max_instances, lim.inotify_instances_root, c.inotify),
             "`failed to create fsnotify watcher: too many open files`", "sysctl -w fs.inotify.max_user_instances=512"),
    ]
    if mode in ("network", "workload"):
        walls.append(Wall("ports on one bridge", BRIDGE_PORTS_MAX, 0, c.bridge_ports, _fits(BRIDGE_PORTS_MAX, 0, c.bridge_ports),
                          "`adding interface veth<id> to bridge br-<id> failed: exchange full`",
                          "none (compile-time BR_PORT_BITS=10): spread containers over several networks"))
        walls.append(Wall("neighbour table (gc_thresh3)", lim.gc_thresh3 or 0, lim.arp_entries, c.neigh,
                          _fits(lim.gc_thresh3, lim.arp_entries, c.neigh),
                          "kernel `neighbour: arp_cache: neighbor table overflow!`, then `connect: No buffer space available`",
                          "sysctl -w net.ipv4.neigh.default.gc_thresh3=65536 (and gc_thresh1/2)"))
    return walls


def predict(lim: HostLimits, mode: str, *, cap: int = 300, costs: Costs | None = None) -> Prediction:
    """The walls of ``mode`` on this host, nearest first, and the memory floor's share."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}")
    c = costs or DEFAULT_COSTS[mode]
    if lim.cgroup_version == 2 and c.inotify == 0:
        # On the unified hierarchy each containerd-shim watches its cgroup's memory events with inotify.
        c = replace(c, inotify=1.0)
    spare = lim.mem_available_bytes - memory_floor_bytes(lim.mem_total_bytes)
    memory_fits = max(0, math.floor(spare / c.memory_bytes)) if c.memory_bytes > 0 else cap
    return Prediction(mode=mode, walls=_walls(lim, mode, c), cap=cap, memory_fits=memory_fits, costs=c)


def costs_from_run(run_dir: Path, mode: str) -> Costs:
    """Per-container costs measured by a recorded density run (its last complete batch)."""
    from scalelab.density.record import measured_costs

    return replace(DEFAULT_COSTS[mode], **measured_costs(run_dir), source=f"measured by {run_dir.name}")


# --- printing ----------------------------------------------------------------------------------


def _n(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def render_plan(lim: HostLimits, predictions: list[Prediction]) -> str:
    """The text `scalelab density plan` prints: the limits, then per mode the walls and the budget."""
    floor = memory_floor_bytes(lim.mem_total_bytes)
    lines = [
        f"host: {lim.cpus} CPUs, {lim.mem_total_bytes / GiB:.1f} GiB RAM, {lim.mem_available_bytes / GiB:.1f} GiB available, "
        f"load {lim.load1:.2f}, cgroup v{lim.cgroup_version}, engine {lim.engine} {lim.engine_version}".rstrip(),
        f"limits: pid_max {_n(lim.pid_max)} ({_n(lim.tasks_now)} tasks now), threads-max {_n(lim.threads_max)}, "
        f"memcg {_n(lim.memcg_count)}/{MEMCG_IDS_MAX:,}, inotify instances {_n(lim.inotify_instances_root)}/{_n(lim.inotify_max_instances)}, "
        f"gc_thresh3 {_n(lim.gc_thresh3)} ({lim.arp_entries} entries), dockerd fds {_n(lim.dockerd_fds)}/{_n(lim.dockerd_nofile)}, "
        f"containerd fds {_n(lim.containerd_fds)}/{_n(lim.containerd_nofile)}, bridge ports {BRIDGE_PORTS_MAX} per network",
        f"memory floor: the ramp stops below {floor / GiB:.1f} GiB available (20% of RAM, at least 2 GiB)",
    ]
    if lim.engine == "vm":
        lines.append("note: the Docker daemon runs in a VM (Docker Desktop?): its limits and figures are not visible from here")
    for p in predictions:
        c = p.costs
        lines += ["", f"mode {p.mode}: per container {c.tasks:g} tasks, {c.memory_bytes / MiB:.1f} MiB, "
                  f"{c.dockerd_fds:g}+{c.containerd_fds:g} daemon fds ({c.source})"]
        lines.append(f"  {'wall':<30} {'limit':>9} {'used':>8} {'each':>5} {'fit':>8}")
        for w in p.applicable:
            lines.append(f"  {w.name:<30} {w.limit:>9,} {w.used:>8,} {w.per_container:>5g} {w.fits:>8,}")
        lines.append(f"  {'memory floor':<30} {'':>9} {'':>8} {'':>5} {p.memory_fits:>8,}")
        first = p.first
        lines.append(f"  first wall: {first.name} after ~{first.fits:,} containers; it fails with {first.error}")
        lines.append(f"  to move it (the kit never does): {first.change}")
        lines.append(f"  budget: {p.budget:,} containers (cap {p.cap}, memory floor {p.memory_fits:,}, first wall {first.fits:,}) "
                     f"-> the ramp stops at the {p.stops_at}")
    return "\n".join(lines) + "\n"


def limits_json(lim: HostLimits) -> str:
    return json.dumps(lim.to_dict(), indent=2, sort_keys=True) + "\n"
