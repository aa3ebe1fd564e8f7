"""Safe by default, checked: the rules every platform's files and running arms are held to.

Pure checkers the safety test suite runs (docs/security.md):

- `restricted_violations`: a pod spec against the Kubernetes "restricted" Pod Security
  Standard (the baseline controls plus the restricted ones, as the API server's admission applies
  them), plus the kit's own rule that the root filesystem is read-only.
- `compose_violations`: a compose service against the compose arm's hardening (non-root user,
  read-only root, every capability dropped, no-new-privileges, CPU, memory and pids limits,
  ports published on 127.0.0.1 only, no host namespaces, no Docker socket).
- `parse_ss` / `listening_sockets` / `is_loopback`: the machine's listening TCP sockets with their
  processes (``ss -ltnp``), to check that what the kit runs listens on 127.0.0.0/8 only.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from scalelab import _run

__all__ = [
    "POD_WORKLOAD_KINDS",
    "pod_specs",
    "restricted_violations",
    "compose_violations",
    "Listener",
    "parse_ss",
    "listening_sockets",
    "is_loopback",
]

# --- Kubernetes: the "restricted" Pod Security Standard --------------------------------------------

#: Kinds that carry a pod template, and where it sits.
POD_WORKLOAD_KINDS = ("Pod", "Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "CronJob")
_RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"}
_SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}  # fmt: skip
_SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
_SECCOMP_OK = {"RuntimeDefault", "Localhost"}


def pod_specs(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """``(name, pod metadata, pod spec)`` of every pod a manifest document creates (none for other kinds)."""
    kind = doc.get("kind")
    name = f"{kind} {(doc.get('metadata') or {}).get('name', '?')}"
    if kind == "Pod":
        yield name, doc.get("metadata") or {}, doc.get("spec") or {}
        return
    if kind not in POD_WORKLOAD_KINDS:
        return
    spec = doc.get("spec") or {}
    if kind == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec")) or {}
    template = spec.get("template") or {}
    yield name, template.get("metadata") or {}, template.get("spec") or {}


def _containers(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for c in spec.get(key) or []:
            yield f"{key[:-1]} {c.get('name', '?')}", c


def restricted_violations(spec: dict[str, Any], *, meta: dict[str, Any] | None = None, read_only_root: bool = True) -> list[str]:
    """Every way a pod spec breaks the "restricted" Pod Security Standard (empty when it complies).

    ``read_only_root`` adds the kit's own rule (not part of the standard): every container's root
    filesystem is read-only.
    """
    out: list[str] = []
    psc = spec.get("securityContext") or {}
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            out.append(f"spec.{field} must not be true")
    out += _sc_common("spec.securityContext", psc)
    for sysctl in psc.get("sysctls") or []:
        if sysctl.get("name") not in _SAFE_SYSCTLS:
            out.append(f"spec.securityContext.sysctls: {sysctl.get('name')} is not a safe sysctl")
    for vol in spec.get("volumes") or []:
        kinds = set(vol) - {"name"}
        if not kinds <= _RESTRICTED_VOLUMES:
            out.append(f"volume {vol.get('name')}: type {', '.join(sorted(kinds - _RESTRICTED_VOLUMES))} is not allowed")
    for key, value in ((meta or {}).get("annotations") or {}).items():
        if key.startswith("container.apparmor.security.beta.kubernetes.io/") and not (value == "runtime/default" or str(value).startswith("localhost/")):
            out.append(f"annotation {key}={value}: AppArmor must be runtime/default or localhost/*")
    if psc.get("runAsNonRoot") is False:
        out.append("spec.securityContext.runAsNonRoot must not be false")
    pod_non_root = psc.get("runAsNonRoot") is True
    pod_seccomp = (psc.get("seccompProfile") or {}).get("type")
    for where, c in _containers(spec):
        sc = c.get("securityContext") or {}
        out += _sc_common(f"{where}: securityContext", sc)
        if sc.get("privileged"):
            out.append(f"{where}: privileged must not be true")
        if sc.get("allowPrivilegeEscalation") is not False:
            out.append(f"{where}: allowPrivilegeEscalation must be false")
        if sc.get("runAsNonRoot") is False or not (pod_non_root or sc.get("runAsNonRoot") is True):
            out.append(f"{where}: runAsNonRoot must be true (pod or container)")
        seccomp = (sc.get("seccompProfile") or {}).get("type") or pod_seccomp
        if seccomp not in _SECCOMP_OK:
            out.append(f"{where}: seccompProfile.type must be RuntimeDefault or Localhost (pod or container), not {seccomp}")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            out.append(f"{where}: capabilities.drop must include ALL")
        extra = [cap for cap in caps.get("add") or [] if cap != "NET_BIND_SERVICE"]
        if extra:
            out.append(f"{where}: capabilities.add may hold only NET_BIND_SERVICE, not {', '.join(extra)}")
        for port in c.get("ports") or []:
            if port.get("hostPort"):
                out.append(f"{where}: hostPort {port['hostPort']} is not allowed")
        for hook, handler in _handlers(c):
            if (handler.get("httpGet") or {}).get("host") or (handler.get("tcpSocket") or {}).get("host"):
                out.append(f"{where}: {hook} must not set a host (it would reach beyond the pod)")
        if read_only_root and sc.get("readOnlyRootFilesystem") is not True:
            out.append(f"{where}: readOnlyRootFilesystem must be true (kit rule: mount an emptyDir where it writes)")
    return out


def _handlers(c: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        if c.get(probe):
            yield probe, c[probe]
    for hook, handler in (c.get("lifecycle") or {}).items():
        yield f"lifecycle.{hook}", handler or {}


def _sc_common(where: str, sc: dict[str, Any]) -> list[str]:
    """The checks that apply alike to the pod's and each container's securityContext."""
    out = []
    if sc.get("runAsUser") == 0:
        out.append(f"{where}.runAsUser must not be 0")
    if (sc.get("seccompProfile") or {}).get("type") == "Unconfined":
        out.append(f"{where}.seccompProfile must not be Unconfined")
    if (sc.get("appArmorProfile") or {}).get("type") == "Unconfined":
        out.append(f"{where}.appArmorProfile must not be Unconfined")
    if (sc.get("windowsOptions") or {}).get("hostProcess"):
        out.append(f"{where}.windowsOptions.hostProcess must not be true")
    se = sc.get("seLinuxOptions") or {}
    if se.get("type", "") not in _SELINUX_TYPES or se.get("user") or se.get("role"):
        out.append(f"{where}.seLinuxOptions: only a container type, no user or role")
    if sc.get("procMount", "Default") != "Default":
        out.append(f"{where}.procMount must be Default")
    return out


# --- compose --------------------------------------------------------------------------------------


#: a published address given as ``${VAR:-<address>}``: the default is checked
_INTERPOLATED_IP = re.compile(r"^\$\{\w+:-([^}]*)\}:")


def compose_violations(name: str, service: dict[str, Any]) -> list[str]:
    """Every way a compose service breaks the compose arm's hardening (empty when it complies)."""
    out: list[str] = []
    where = f"service {name}"
    user = str(service.get("user") or "")
    if not user or user.split(":")[0] in ("0", "root"):
        out.append(f"{where}: `user` must name a non-root user (got {user or 'none: the image decides'})")
    if service.get("read_only") is not True:
        out.append(f"{where}: `read_only: true` (mount a tmpfs where it writes)")
    if "ALL" not in (service.get("cap_drop") or []):
        out.append(f"{where}: `cap_drop: [ALL]`")
    if service.get("cap_add"):
        out.append(f"{where}: no `cap_add` ({service['cap_add']})")
    if service.get("privileged"):
        out.append(f"{where}: `privileged` must not be set")
    if not any(str(o).replace("=", ":") in ("no-new-privileges:true", "no-new-privileges") for o in service.get("security_opt") or []):
        out.append(f"{where}: `security_opt: [no-new-privileges:true]`")
    limits = ((service.get("deploy") or {}).get("resources") or {}).get("limits") or {}
    if not (service.get("cpus") or limits.get("cpus")):
        out.append(f"{where}: a CPU limit (`cpus`)")
    if not (service.get("mem_limit") or limits.get("memory")):
        out.append(f"{where}: a memory limit (`mem_limit`)")
    if not (service.get("pids_limit") or limits.get("pids")):
        out.append(f"{where}: a pids limit (`pids_limit`)")
    for field in ("network_mode", "pid", "ipc", "userns_mode", "uts"):
        if str(service.get(field) or "").startswith("host"):
            out.append(f"{where}: `{field}: host` shares the host's namespace")
    for port in service.get("ports") or []:
        host_ip = port.get("host_ip") if isinstance(port, dict) else (str(port).split(":")[0] if str(port).count(":") >= 2 else None)
        default = _INTERPOLATED_IP.match(str(port))  # ${VAR:-127.0.0.1}:...: what compose publishes unless the kit sets VAR
        if default:
            host_ip = default.group(1)
        if host_ip is None or not is_loopback(host_ip):
            out.append(f"{where}: port {port} must be published on 127.0.0.1 only")
    for vol in service.get("volumes") or []:
        if "docker.sock" in str(vol):
            out.append(f"{where}: the Docker socket must not be mounted ({vol})")
    return out


# --- listening sockets ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Listener:
    """One listening TCP socket: local address, port and the processes holding it (name, pid)."""

    address: str
    port: int
    processes: tuple[tuple[str, int], ...]

    @property
    def endpoint(self) -> str:
        return f"[{self.address}]:{self.port}" if ":" in self.address else f"{self.address}:{self.port}"

    def __str__(self) -> str:
        procs = ", ".join(f"{n}/{p}" for n, p in self.processes) or "?"
        return f"{self.endpoint} ({procs})"


_PROC = re.compile(r'\("([^"]*)",pid=(\d+),fd=\d+\)')


def parse_ss(text: str) -> list[Listener]:
    """The sockets of ``ss -H -ltnp`` output (columns: state, recv-q, send-q, local, peer, users)."""
    out = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 5 or fields[0] != "LISTEN":
            continue
        local = fields[3]
        host, _, port = local.rpartition(":")
        host = host.strip("[]").split("%")[0]  # [::1] -> ::1; 127.0.0.53%lo -> 127.0.0.53
        procs = tuple((name, int(pid)) for name, pid in _PROC.findall(" ".join(fields[5:])))
        out.append(Listener(host, int(port), procs))
    return out


def listening_sockets() -> list[Listener]:
    """Every listening TCP socket of this machine's network namespace (root sees every process)."""
    return parse_ss(_run.run(["ss", "-H", "-ltnp"], timeout_s=30).stdout)


def is_loopback(address: str) -> bool:
    """True for 127.0.0.0/8, ::1 and IPv4-mapped loopback; False for wildcards (``*``, ``0.0.0.0``, ``::``)."""
    if address in ("localhost",):
        return True
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback
