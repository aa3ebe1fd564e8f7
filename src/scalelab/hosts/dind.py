"""Hosts with their own capacity: one Docker daemon per "host", each in a capped container (Docker in Docker).

A scenario's ``hosts: [{name, cpus, memory}]`` becomes one *outer* container per host on this
machine's engine, started from the kit's host image (Debian with docker.io, iptables and procps),
capped with ``--cpus`` and ``--memory``. Inside it runs a Docker daemon of its own: compose
pointed at Host A (``DOCKER_HOST=host.docker_host``) puts every replica on Host A, and Host A's
cap is all they share. docs/hosts.md has the why and the numbers.

Three things make that true on an ordinary Linux engine (checked on cgroup v1, Docker 20.10):

- **No ``--privileged``** (it fails where the capability bounding set lacks CAP_SYS_RESOURCE):
  the container gets every capability but that one, no seccomp or AppArmor profile, all device
  nodes, the writable cgroup tree and a volume for ``/var/lib/docker`` (`run_argv` has the flags).
- **The cap binds the inner containers**: with the host's cgroup tree mounted, the inner daemon
  would create its containers' cgroups at the top, beside the outer container, outside its cap.
  The host's init script starts ``dockerd --cgroup-parent <its own cgroup>/scalelab-inner``, so
  they nest under the outer container.
- **No TCP port**: the inner daemon also listens on a unix socket in a folder of the kit's cache,
  mounted into the host; ``docker_host`` is that socket's ``unix://`` URL.

Every object carries ``scalelab.role=host`` and ``scalelab.host-owner=<run id>``, so
`remove_hosts` (and ``scalelab clean``) remove exactly what the kit started.

The host image is built here from the kit's offline path (debootstrap, ``docker import``; about
half a minute, cached by a tag that changes with its contents). On a machine with a registry it
is a two-line Dockerfile on ``debian:bookworm-slim`` instead (`ensure_host_image`).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from scalelab import _run
from scalelab.errors import CommandError, PlatformError, PreflightError
from scalelab.hosts.spec import HostSpec
from scalelab.images import DEFAULT_MIRROR, ImageBuildConfig, cache_dir, import_debian_rootfs, resolve_offline
from scalelab.poll import poll_until

__all__ = [
    "HostSpec",
    "Host",
    "HOST_IMAGE",
    "ensure_host_image",
    "start_hosts",
    "load_images",
    "stop_host",
    "remove_hosts",
    "host_usage",
    "kit_hosts",
    "run_argv",
    "ROLE_LABEL",
    "OWNER_LABEL",
    "NAME_LABEL",
]

Progress = Callable[[str], None]

ROLE_LABEL = "scalelab.role"
ROLE = "host"
OWNER_LABEL = "scalelab.host-owner"
NAME_LABEL = "scalelab.host"
#: where the host's init script puts the inner daemon's second socket (a folder of the kit's cache)
SOCKET_DIR_IN_HOST = "/scalelab-host"
SOCKET_NAME = "docker.sock"
#: Debian packages of the host image: the daemon, the NAT it sets up, `ps` for debugging
HOST_PACKAGES = ("docker.io", "iptables", "procps")
#: How long an inner daemon may take to answer after its container started.
START_TIMEOUT_S = 90.0
LAB = "09-one-host-is-not-enough"

#: The host's PID 1 (POSIX sh; ``awk`` is in every Debian base).
INIT_SCRIPT = """\
#!/bin/sh
# scalelab host: a Docker daemon in a capped container (src/scalelab/hosts/dind.py, docs/hosts.md).
set -eu
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
  # cgroup v2 (a private cgroup namespace): move this shell out of the root so children may have controllers
  mkdir -p /sys/fs/cgroup/init
  echo $$ > /sys/fs/cgroup/init/cgroup.procs
  sed -e 's/ / +/g' -e 's/^/+/' /sys/fs/cgroup/cgroup.controllers > /sys/fs/cgroup/cgroup.subtree_control || true
  parent=/scalelab-inner
else
  # cgroup v1 (the host's tree mounted): this container's own cpu cgroup; the inner containers nest below it
  parent=$(awk -F: '$2 ~ /(^|,)cpu(,|$)/ {print $3; exit}' /proc/self/cgroup)
  parent="${parent%/}/scalelab-inner"
fi
mkdir -p /scalelab-host
rm -f /scalelab-host/docker.sock
exec dockerd --host unix:///var/run/docker.sock --host unix:///scalelab-host/docker.sock \\
  --cgroup-parent "$parent" --log-level warn --log-opt max-size=10m --log-opt max-file=2 "$@"
"""

ONLINE_DOCKERFILE = """\
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends {packages} && rm -rf /var/lib/apt/lists/*
COPY scalelab-host-init /usr/local/bin/scalelab-host-init
ENTRYPOINT ["/bin/sh", "/usr/local/bin/scalelab-host-init"]
"""


def _image_tag() -> str:
    """``scalelab-host:bookworm-<hash>``: the hash of the init script and the packages, so a change rebuilds."""
    digest = hashlib.sha256((INIT_SCRIPT + " ".join(HOST_PACKAGES)).encode()).hexdigest()[:10]
    return f"scalelab-host:bookworm-{digest}"


#: the host image's tag (cached by it: a present image is never rebuilt)
HOST_IMAGE = _image_tag()


@dataclass
class Host:
    """A running host: its outer container, the inner daemon's URL, its address and capacity."""

    name: str
    #: the outer container's name on this machine's engine
    container: str
    #: ``unix://...``: the inner daemon (as DOCKER_HOST, or ``docker -H``)
    docker_host: str
    #: the outer container's address on the kit's hosts network
    ip: str
    cpus: float
    memory_bytes: int

    @property
    def env(self) -> dict[str, str]:
        """Environment for a command aimed at this host's daemon."""
        return {"DOCKER_HOST": self.docker_host}


def _say(progress: Progress | None) -> Progress:
    return progress or (lambda _msg: None)


# --- the image ---------------------------------------------------------------------------------


def _image_exists(tag: str) -> bool:
    return _run.run(["docker", "image", "inspect", "--format", "{{.Id}}", tag], check=False, timeout_s=30).returncode == 0


def ensure_host_image(progress: Progress | None = None, *, offline: bool | None = None) -> str:
    """The host image's tag, built when missing: offline from debootstrap (root, no registry),
    online from ``debian:bookworm-slim`` (``offline`` None: decided as for `scalelab image`)."""
    say = _say(progress)
    tag = HOST_IMAGE
    if _image_exists(tag):
        say(f"host image present: {tag}")
        return tag
    started = time.monotonic()
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    if resolve_offline(offline):
        say(f"building the host image {tag}: debootstrap Debian + {', '.join(HOST_PACKAGES)} (about a minute, once)")
        cfg = ImageBuildConfig(offline=True, cache=cache, mirror=os.environ.get("SCALELAB_DEBIAN_MIRROR", DEFAULT_MIRROR))
        import_debian_rootfs(
            tag,
            HOST_PACKAGES,
            cfg,
            changes=('ENTRYPOINT ["/bin/sh", "/usr/local/bin/scalelab-host-init"]',),
            extra_files={"usr/local/bin/scalelab-host-init": INIT_SCRIPT},
        )
    else:
        say(f"building the host image {tag} from debian:bookworm-slim")
        with tempfile.TemporaryDirectory(prefix="host-image-", dir=cache) as tmp:
            ctx = Path(tmp)
            (ctx / "Dockerfile").write_text(ONLINE_DOCKERFILE.format(packages=" ".join(HOST_PACKAGES)), encoding="utf-8")
            (ctx / "scalelab-host-init").write_text(INIT_SCRIPT, encoding="utf-8")
            _run.run(["docker", "build", "-q", "-t", tag, ctx], env={"DOCKER_BUILDKIT": "0"}, timeout_s=900,
                     fix="if Docker Hub is not reachable from here, build it offline: `sudo scalelab image --offline` then retry")
    say(f"host image built: {tag} in {time.monotonic() - started:.0f} s")
    return tag


# --- starting -------------------------------------------------------------------------------


def owner_key(owner: str) -> str:
    """A short, stable key of the owner (run id) for names and paths (a unix socket path must stay short)."""
    return hashlib.sha1(owner.encode(), usedforsecurity=False).hexdigest()[:8]


def container_name(owner: str, name: str) -> str:
    return f"scalelab-host-{owner_key(owner)}-{name.lower()}"


def network_name(owner: str) -> str:
    return f"scalelab-hosts-{owner_key(owner)}"


def socket_dir(owner: str, name: str) -> Path:
    return cache_dir() / "hosts" / owner_key(owner) / name.lower()


def _labels(owner: str, name: str | None = None) -> list[str]:
    argv = ["--label", f"{ROLE_LABEL}={ROLE}", "--label", f"{OWNER_LABEL}={owner}"]
    if name is not None:
        argv += ["--label", f"{NAME_LABEL}={name}"]
    return argv


def _cgroup_v2() -> bool:
    return Path("/sys/fs/cgroup/cgroup.controllers").is_file()


def run_argv(spec: HostSpec, *, owner: str, image: str, volume: str, sockets: Path, publish: Sequence[int] = (),
             mounts: Sequence[Path] = (), cgroup_v2: bool = False) -> list[str]:
    """``docker run`` of one host: capped, not ``--privileged`` (see the module docstring), labelled as the kit's."""
    argv = ["docker", "run", "--detach", "--name", container_name(owner, spec.name), "--hostname", spec.name.lower(),
            *_labels(owner, spec.name), "--network", network_name(owner),
            "--cpus", f"{spec.cpus:g}", "--memory", spec.memory, "--memory-swap", spec.memory,
            "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
            "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined", "--security-opt", "systempaths=unconfined",
            "--device-cgroup-rule", "a *:* rwm", "--tmpfs", "/run", "--tmpfs", "/var/run",
            "--volume", f"{volume}:/var/lib/docker", "--volume", f"{sockets}:{SOCKET_DIR_IN_HOST}",
            "--stop-timeout", "10"]  # fmt: skip
    if cgroup_v2:
        argv += ["--cgroupns", "private"]
    else:
        argv += ["--volume", "/sys/fs/cgroup:/sys/fs/cgroup:rw"]
    for path in mounts:  # the same path inside: the inner daemon's bind mounts (compose's nginx.conf) resolve there
        argv += ["--volume", f"{path}:{path}:ro"]
    for port in publish:
        argv += ["--publish", f"127.0.0.1:{port}:{port}"]
    return [*argv, image]


def check_specs(specs: Sequence[HostSpec]) -> None:
    cpus = os.cpu_count() or 1
    for spec in specs:
        if spec.cpus > cpus:
            raise PreflightError(f"host {spec.name} asks for {spec.cpus:g} CPUs; this machine has {cpus}",
                                 fix=f"lower hosts[].cpus of {spec.name} to at most {cpus}", lab=LAB)
        path = socket_dir("x" * 40, spec.name) / SOCKET_NAME
        if len(str(path)) > 100:
            raise PreflightError(f"the host sockets' folder {path.parent.parent} is too deep for a unix socket (over 100 characters)",
                                 fix="point SCALELAB_CACHE at a shorter folder, e.g. SCALELAB_CACHE=/var/tmp/scalelab", lab=LAB)


def start_hosts(specs: Sequence[HostSpec], *, owner: str, progress: Progress | None = None,
                publish: Mapping[str, Sequence[int]] | None = None, mounts: Sequence[Path] = ()) -> list[Host]:
    """Start one host per spec and wait until every inner daemon answers; on failure remove them all.

    ``publish``: host name -> ports published on 127.0.0.1 of this machine (same number inside);
    ``mounts``: folders of this machine mounted read-only at the same path in every host.
    """
    say = _say(progress)
    if not specs:
        return []
    check_specs(specs)
    image = ensure_host_image(progress)
    started = time.monotonic()
    try:
        _run.run(["docker", "network", "create", *_labels(owner), network_name(owner)], timeout_s=60,
                 fix="`scalelab clean` removes what an earlier run left")
        for spec in specs:
            sockets = socket_dir(owner, spec.name)
            sockets.mkdir(parents=True, exist_ok=True)
            (sockets / SOCKET_NAME).unlink(missing_ok=True)
            volume = container_name(owner, spec.name)
            _run.run(["docker", "volume", "create", *_labels(owner, spec.name), volume], timeout_s=60)
            say(f"starting host {spec.name}: {spec.cpus:g} CPU, {spec.memory} memory ({container_name(owner, spec.name)})")
            argv = run_argv(spec, owner=owner, image=image, volume=volume, sockets=sockets, publish=(publish or {}).get(spec.name, ()),
                            mounts=mounts, cgroup_v2=_cgroup_v2())
            _run.run(argv, timeout_s=120, fix="`scalelab doctor` says what a host needs; `scalelab clean` removes what is left")
        hosts = [_wait_answering(spec, owner, started, say) for spec in specs]
    except BaseException:
        remove_hosts(owner)
        raise
    say(f"{len(hosts)} host(s) answering after {time.monotonic() - started:.1f} s")
    return hosts


def _inner(docker_host: str, *args: str, timeout_s: float = 10.0, check: bool = False) -> subprocess.CompletedProcess[str]:
    return _run.run(["docker", *args], env={"DOCKER_HOST": docker_host}, check=check, timeout_s=timeout_s)


def _wait_answering(spec: HostSpec, owner: str, started: float, say: Progress) -> Host:
    name = container_name(owner, spec.name)
    docker_host = f"unix://{socket_dir(owner, spec.name) / SOCKET_NAME}"

    def answers() -> bool:
        try:
            return _inner(docker_host, "version", "--format", "{{.Server.Version}}", timeout_s=5).returncode == 0
        except CommandError:
            return False

    if not poll_until(answers, timeout_s=START_TIMEOUT_S, interval_s=0.5):
        logs = _run.run(["docker", "logs", "--tail", "15", name], check=False, timeout_s=30)
        state = _run.run(["docker", "inspect", "--format", "{{.State.Status}} (exit {{.State.ExitCode}})", name], check=False, timeout_s=30)
        raise PlatformError(
            f"host {spec.name}: its Docker daemon did not answer within {START_TIMEOUT_S:.0f} s; container {state.stdout.strip()}; "
            f"last log lines:\n{(logs.stdout + logs.stderr).strip()[-1500:]}",
            fix="`scalelab doctor` lists what a host needs (cgroups, capabilities); `scalelab clean` removes what is left",
            lab=LAB,
        )
    info = json.loads(_run.run(["docker", "inspect", name], timeout_s=30).stdout)[0]
    ip = info["NetworkSettings"]["Networks"][network_name(owner)]["IPAddress"]
    say(f"host {spec.name} answers at {docker_host} ({ip}) after {time.monotonic() - started:.1f} s")
    return Host(spec.name, name, docker_host, ip, spec.cpus, spec.memory_bytes)


# --- using them ------------------------------------------------------------------------------


def load_images(host: Host, images: Sequence[str], progress: Progress | None = None) -> list[str]:
    """``docker save`` here, ``docker load`` into the host's daemon (skips images it has); returns those loaded."""
    say = _say(progress)
    missing = [i for i in images if _inner(host.docker_host, "image", "inspect", "--format", "{{.Id}}", i, timeout_s=30).returncode != 0]
    if not missing:
        return []
    started = time.monotonic()
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="host-images-", dir=cache) as tmp:
        tar = Path(tmp) / "images.tar"
        _run.run(["docker", "save", "--output", tar, *missing], timeout_s=600, fix="build the images first: `make image`")
        _run.run(["docker", "load", "--quiet", "--input", tar], env=host.env, timeout_s=600,
                 fix=f"host {host.name} may be short of memory or disk: raise hosts[].memory")
    say(f"host {host.name}: loaded {', '.join(missing)} in {time.monotonic() - started:.1f} s")
    return missing


def stop_host(host: Host) -> str:
    """Stop the host's outer container at once (SIGKILL: the power goes, its daemon and every container on
    it with it, nobody drains anything); returns how. The container stays, stopped, until `remove_hosts`."""
    _run.run(["docker", "kill", "--signal", "KILL", host.container], timeout_s=60)
    _forget_paths(host.container)
    return f"docker kill {host.container} (host {host.name} lost)"


def kit_hosts(owner: str | None = None) -> list[str]:
    """Names of the host containers the kit started (of ``owner``, or of every run)."""
    selector = f"{OWNER_LABEL}={owner}" if owner else OWNER_LABEL
    proc = _run.run(["docker", "ps", "--all", "--filter", f"label={ROLE_LABEL}={ROLE}", "--filter", f"label={selector}", "--format", "{{.Names}}"],
                    timeout_s=30)
    return sorted(line for line in proc.stdout.split() if line)


def remove_hosts(owner: str | None) -> list[str]:
    """Remove the hosts of ``owner`` (None: of every run): containers, their volumes, network and socket folders.

    Returns the container names removed; a no-op when there are none.
    """
    names = kit_hosts(owner)
    if names:
        _run.run(["docker", "rm", "--force", "--volumes", *names], check=False, timeout_s=120)
    selector = f"label={OWNER_LABEL}={owner}" if owner else f"label={OWNER_LABEL}"
    role = f"label={ROLE_LABEL}={ROLE}"
    volumes = _run.run(["docker", "volume", "ls", "--quiet", "--filter", role, "--filter", selector], check=False, timeout_s=30).stdout.split()
    if volumes:
        _run.run(["docker", "volume", "rm", "--force", *volumes], check=False, timeout_s=120)
    networks = _run.run(["docker", "network", "ls", "--quiet", "--filter", role, "--filter", selector], check=False, timeout_s=30).stdout.split()
    if networks:
        _run.run(["docker", "network", "rm", *networks], check=False, timeout_s=60)
    import shutil

    root = cache_dir() / "hosts"
    for folder in [root / owner_key(owner)] if owner else (list(root.iterdir()) if root.is_dir() else []):
        shutil.rmtree(folder, ignore_errors=True)
    for name in names:
        _forget_paths(name)
    return names


# --- measuring --------------------------------------------------------------------------------

#: container -> (cpu usage file, memory usage file, memory.stat file or None): found once per container
_PATHS: dict[str, tuple[Path, Path, Path | None]] = {}


def _forget_paths(container: str) -> None:
    _PATHS.pop(container, None)


def cgroup_files(proc_cgroup: str, root: Path = Path("/sys/fs/cgroup")) -> tuple[Path, Path, Path | None]:
    """From a process's ``/proc/<pid>/cgroup``: its CPU usage file, memory usage file and memory.stat (v1), or
    cpu.stat, memory.current and memory.stat (v2)."""
    cpu = mem = unified = None
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        names = controllers.split(",")
        if "cpuacct" in names:
            cpu = root / controllers / path.lstrip("/") / "cpuacct.usage"
        if "memory" in names:
            mem = root / controllers / path.lstrip("/")
        if controllers == "":
            unified = root / path.lstrip("/")
    if cpu is not None and mem is not None:
        return cpu, mem / "memory.usage_in_bytes", mem / "memory.stat"
    if unified is not None:
        return unified / "cpu.stat", unified / "memory.current", unified / "memory.stat"
    raise PlatformError(f"no cpuacct/memory cgroup in:\n{proc_cgroup}", fix="hosts need cgroup v1 (cpuacct, memory) or v2")


def _paths(container: str) -> tuple[Path, Path, Path | None] | None:
    found = _PATHS.get(container)
    if found is not None:
        return found
    proc = _run.run(["docker", "inspect", "--format", "{{.State.Running}} {{.State.Pid}}", container], check=False, timeout_s=30)
    running, _, pid = proc.stdout.strip().partition(" ")
    if proc.returncode != 0 or running != "true" or not pid.isdigit() or pid == "0":
        return None
    try:
        found = cgroup_files(Path(f"/proc/{pid}/cgroup").read_text())
    except OSError:
        return None
    _PATHS[container] = found
    return found


def read_usage(cpu_file: Path, mem_file: Path, stat_file: Path | None) -> tuple[float, int]:
    """(CPU seconds used since the cgroup was made, memory in use less the inactive page cache), as ``docker stats`` counts it."""
    text = cpu_file.read_text()
    if cpu_file.name == "cpu.stat":  # v2: usage_usec
        usec = next(int(line.split()[1]) for line in text.splitlines() if line.startswith("usage_usec"))
        cpu_s = usec / 1e6
    else:
        cpu_s = int(text.strip()) / 1e9
    mem = int(mem_file.read_text().strip())
    if stat_file is not None:
        stat = dict(line.split() for line in stat_file.read_text().splitlines() if line.count(" ") == 1)
        inactive = stat.get("total_inactive_file", stat.get("inactive_file", "0"))
        mem = max(0, mem - int(inactive))
    return cpu_s, mem


def host_usage(host: Host) -> tuple[float, int] | None:
    """The host's (CPU seconds used in total, memory bytes in use), read from its outer container's cgroup.

    Two readings a second apart give its cores (``Δcpu_seconds / Δt``); everything on the host
    counts (its daemon and every inner container). None when the host is not running (stopped: lost).
    """
    paths = _paths(host.container)
    if paths is None:
        return None
    try:
        return read_usage(*paths)
    except (OSError, ValueError, StopIteration):
        _forget_paths(host.container)  # the container went away between two readings
        return None
