"""`scalelab doctor`: what this machine has, what is missing, and the one-line fix for each.

Checks never change anything. The report says whether the chosen path (sim, compose or
kubernetes) can run; problems that only matter to another path are shown as warnings.
"""

from __future__ import annotations

import os
import platform as host_platform
import re
import shutil
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from scalelab._run import run
from scalelab.engine import ENGINE_FIX, engine_version, image_exists
from scalelab.errors import CommandError
from scalelab.netcheck import port_free
from scalelab.registry import platform_names, platform_spec
from scalelab.scenario import detect_cpu_budget
from scalelab.versions import AGENT_IMAGE, LB_IMAGE, component_versions

__all__ = ["Check", "Report", "check", "print_report", "port_free", "paths"]

#: the simulator's path needs only Python; each platform's needs and ports are in its registry spec
SIM_NEEDS = frozenset({"python", "packages"})


def paths() -> tuple[str, ...]:
    """What `doctor --platform` accepts: the simulator and every registered platform."""
    return ("sim", *platform_names())


@dataclass
class Check:
    key: str
    name: str
    ok: bool
    detail: str = ""
    fix: str = ""
    required: bool = True


@dataclass
class Report:
    platform: str
    checks: list[Check] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks if c.required)


def _version(argv: list[str], pattern: str = r"v?(\d+\.\d+[\w.+-]*)", timeout_s: float = 15) -> tuple[bool, str]:
    if shutil.which(argv[0]) is None:
        return False, "not found"
    try:
        proc = run(argv, check=False, timeout_s=timeout_s)
    except CommandError as exc:
        return False, exc.stderr.strip().splitlines()[0] if exc.stderr.strip() else str(exc)
    text = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0:
        return False, text.splitlines()[-1] if text else f"exit {proc.returncode}"
    match = re.search(pattern, text)
    return True, match.group(0) if match else text.splitlines()[0]


def _mem_available_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        return None
    return None


def _cgroup_version() -> str:
    return "v2" if Path("/sys/fs/cgroup/cgroup.controllers").exists() else "v1"


def _checks(platform: str, ports: Iterable[int]) -> Iterable[Check]:
    py_ok = sys.version_info >= (3, 11)
    yield Check("python", "Python >= 3.11", py_ok, host_platform.python_version(), "install Python 3.11+ and re-run `make setup`")

    missing = []
    for mod in ("pandas", "matplotlib", "yaml", "pydantic", "click", "rich"):
        try:
            __import__(mod)
        except ImportError:
            missing.append(mod)
    yield Check("packages", "Python packages", not missing, "all present" if not missing else "missing: " + ", ".join(missing), "run `make setup`")

    ok, ver = _version(["docker", "version", "--format", "{{.Client.Version}}"])
    yield Check("docker", "Docker CLI", ok, ver, "install Docker Desktop or Docker Engine: https://docs.docker.com/engine/install/")
    engine_ok = False
    if ok:
        ever = engine_version(timeout_s=20)
        engine_ok = ever is not None
        yield Check("engine", "Docker engine reachable", engine_ok, ever or "not answering", ENGINE_FIX)
        cok, cver = _version(["docker", "compose", "version", "--short"])
        yield Check("compose", "Compose v2 plugin", cok, cver, "install the plugin: `sudo apt-get install docker-compose-plugin` (or Docker Desktop)")
    else:
        yield Check("engine", "Docker engine reachable", False, "no Docker CLI", "install Docker first")
        yield Check("compose", "Compose v2 plugin", False, "no Docker CLI", "install Docker first")
    if engine_ok:
        absent = [img for img in (AGENT_IMAGE, LB_IMAGE) if not image_exists(img)]
        yield Check("images", "kit images built", not absent, "present" if not absent else "missing: " + ", ".join(absent), "run `make image`")
    else:
        yield Check("images", "kit images built", False, "engine not reachable", "start Docker, then `make image`")

    kok, kver = _version(["kind", "version"])
    yield Check("kind", "kind", kok, kver, "install kind: https://kind.sigs.k8s.io/docs/user/quick-start/#installation", required=False)
    tok, tver = _version(["kubectl", "version", "--client"], r"v\d+\.\d+\.\d+")
    yield Check("kubectl", "kubectl", tok, tver, "install kubectl: https://kubernetes.io/docs/tasks/tools/")
    kubeconfig = os.environ.get("KUBECONFIG", str(Path.home() / ".kube" / "config"))
    has_kubeconfig = any(Path(p).is_file() for p in kubeconfig.split(os.pathsep) if p)
    yield Check(
        "cluster-tool",
        "kind, or a kubeconfig for an existing cluster",
        kok or has_kubeconfig,
        "kind" if kok else ("kubeconfig " + kubeconfig if has_kubeconfig else "neither"),
        "install kind (then `make lab03-cluster`), or point KUBECONFIG at a cluster",
    )
    cg = _cgroup_version()
    yield Check(
        "cgroup",
        "cgroup version",
        True,
        cg + (" (kind node images must be Kubernetes <= 1.34; the kit pins one)" if cg == "v1" else ""),
        required=False,
    )

    for port in ports:
        free = port_free(port)
        yield Check("ports", f"port 127.0.0.1:{port} free", free, "free" if free else "in use", f"stop what listens there (`ss -ltnp 'sport = :{port}'`) or pick another port")

    mem = _mem_available_gib()
    mem_ok = mem is None or mem >= 2.0
    yield Check("memory", "memory available >= 2 GiB", mem_ok, "unknown" if mem is None else f"{mem:.1f} GiB", "close other programs (kind needs ~2-3 GiB)")
    budget = detect_cpu_budget()
    yield Check("cpu", "CPU budget for the workload", budget >= 1, f"{os.cpu_count()} CPUs -> budget {budget:g} cores", "use a machine with 2+ cores", required=False)


def check(platform: str = "sim", *, extra_ports: Iterable[int] = ()) -> Report:
    spec = None if platform == "sim" else platform_spec(platform)
    ports = (spec.ports if spec else ()) + tuple(extra_ports)
    needed = spec.doctor_needs if spec else SIM_NEEDS
    report = Report(platform=platform, versions=component_versions())
    for item in _checks(platform, ports):
        item.required = item.required and item.key in needed
        report.checks.append(item)
    if spec is not None:
        from scalelab.platforms import kind_for

        report.checks.extend(kind_for(platform).doctor_checks())
    return report


def print_report(report: Report, echo: Callable[..., object] | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"scalelab doctor — path: {report.platform}", title_justify="left")
    table.add_column("", width=2)
    table.add_column("check")
    table.add_column("found")
    table.add_column("fix")
    for c in report.checks:
        mark = "[green]ok[/]" if c.ok else ("[red]!![/]" if c.required else "[yellow]--[/]")
        table.add_row(mark, c.name, c.detail, "" if c.ok else c.fix)
    console.print(table)
    versions = Table(title="component versions", title_justify="left")
    versions.add_column("component")
    versions.add_column("version")
    for k, v in report.versions.items():
        versions.add_row(k, v)
    console.print(versions)
    if report.ok:
        console.print(f"[green]The {report.platform} path can run on this machine.[/]")
    else:
        bad = [c.name for c in report.checks if c.required and not c.ok]
        console.print(f"[red]The {report.platform} path cannot run yet: fix {', '.join(bad)} (see the fix column).[/]")
