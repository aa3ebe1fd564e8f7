"""Build the kit's images: the ai-agent workload and the nginx load balancer.

Two paths, one Dockerfile (repo root), chosen by `mode`:

* **online** (a normal machine): the agent builds on the official `python:3.11-slim-bookworm`
  and pip installs from PyPI; the load balancer is the official nginx image, retagged.
* **offline** (no container registry, e.g. CI or a workshop on bad Wi-Fi): the bases are Debian
  root filesystems made on the host with debootstrap and `docker import`; the agent installs
  only from a wheelhouse downloaded on the host (`pip download`, cached outside the repository).

Everything is cached and skipped when already done: base image present, wheelhouse complete.
Builds use the legacy builder (`DOCKER_BUILDKIT=0`) and never `--pull`.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from scalelab import _run, engine, versions
from scalelab.checkout import find_repo_root
from scalelab.engine import image_exists, image_size_bytes
from scalelab.errors import PreflightError

__all__ = [
    "BuiltImage",
    "ImageBuildConfig",
    "build_agent",
    "build_agent_v2_image",
    "build_all",
    "cache_dir",
    "debootstrap_argv",
    "find_repo_root",
    "image_exists",
    "image_size_bytes",
    "resolve_offline",
]

Say = Callable[[str], None]

REQUIREMENTS_FILE = "requirements-agent.txt"
#: Tool wheels: the build backend the host needs to turn the scalelab source into a wheel
#: without PyPI, and pip, which the image runs from its wheel (so pip never lands in the image).
BUILD_TOOLS = ("pip", "setuptools>=77,<81", "wheel")
BUILD_TOOL_NAMES = frozenset({"pip", "setuptools", "wheel"})
#: Debian packages of the offline bases (Python 3.11.2 on glibc 2.36, like python:3.11-slim-bookworm).
AGENT_BASE_PACKAGES = ("python3", "python3-venv")
LB_PACKAGES = ("nginx-light",)
DEBIAN_SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
#: The Debian archive keys (package debian-archive-keyring) debootstrap checks the Release file
#: against; with --force-check-gpg it refuses an archive it cannot verify (docs/security.md).
DEBIAN_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
#: Wheel platforms accepted for the image's CPython 3.11 / glibc 2.36.
WHEEL_PLATFORMS = ("manylinux_2_36_x86_64", "manylinux2014_x86_64", "manylinux_2_17_x86_64", "linux_x86_64")
LB_UID = 65532
ONLINE_FIX = "if Docker Hub is not reachable from here, build without it: `sudo scalelab image --offline` (debootstrap)"
#: Paths removed from a debootstrap rootfs before import: docs, man pages, locales, apt caches.
ROOTFS_TRIM = (
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "usr/share/lintian",
    "var/cache/apt",
    "var/lib/apt/lists",
    "var/cache/debconf/templates.dat-old",
    "var/log",
)

#: Default config baked into the offline load-balancer image; compose mounts its own over it.
LB_DEFAULT_NGINX_CONF = """\
# scalelab-lb default config: non-root friendly (port 8080, pid and temp files in /tmp).
# The compose arm mounts compose/nginx.conf over this file.
worker_processes 1;
pid /tmp/nginx.pid;
error_log stderr warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path /tmp/client_body;
    proxy_temp_path /tmp/proxy;
    fastcgi_temp_path /tmp/fastcgi;
    uwsgi_temp_path /tmp/uwsgi;
    scgi_temp_path /tmp/scgi;
    server {
        listen 8080;
        location / { return 200 "scalelab-lb: no upstream configured\\n"; }
    }
}
"""


@dataclass(frozen=True)
class ImageBuildConfig:
    """What `scalelab image` does; built once from the CLI flags."""

    offline: bool
    no_cache: bool = False
    repo_root: Path = Path(".")
    cache: Path = Path(".")
    mirror: str = DEFAULT_MIRROR
    build_timeout_s: float = 1200.0


@dataclass(frozen=True)
class BuiltImage:
    tag: str
    size_bytes: int
    seconds: float
    action: str  # "built" or "present"

    @property
    def size_mb(self) -> float:
        return self.size_bytes / 1e6


# --- locations ------------------------------------------------------------------------------


def cache_dir() -> Path:
    """``${XDG_CACHE_HOME:-~/.cache}/scalelab`` (or ``$SCALELAB_CACHE``): outside the repository."""
    explicit = os.environ.get("SCALELAB_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "scalelab"


# --- docker queries -------------------------------------------------------------------------


def require_docker(timeout_s: float = 15.0) -> None:
    engine.require_engine(timeout_s)


# --- online / offline -----------------------------------------------------------------------


def _registry_reachable(timeout_s: float) -> bool:
    """One bounded HTTPS probe of Docker Hub's registry API (401 means it answers)."""
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen("https://registry-1.docker.io/v2/", timeout=timeout_s)
    except urllib.error.HTTPError as exc:
        return exc.code in (200, 401)
    except (OSError, ValueError):
        return False
    return True


def resolve_offline(flag: bool | None, *, probe: bool = True, probe_timeout_s: float = 3.0) -> bool:
    """`--offline/--online` wins; then ``SCALELAB_OFFLINE``; then auto: online only if the official
    bases are already local or (``probe``) Docker Hub answers one bounded request."""
    if flag is not None:
        return flag
    env = os.environ.get("SCALELAB_OFFLINE", "").strip().lower()
    if env in ("1", "true", "yes"):
        return True
    if env in ("0", "false", "no"):
        return False
    if image_exists(versions.ONLINE_PYTHON_BASE) and image_exists(versions.ONLINE_NGINX_IMAGE):
        return False
    return not (probe and _registry_reachable(probe_timeout_s))


# --- offline bases: debootstrap + docker import ---------------------------------------------


def _require_debootstrap() -> str:
    path = shutil.which("debootstrap") or next(
        (p for p in ("/usr/sbin/debootstrap", "/sbin/debootstrap") if os.path.exists(p)), None
    )
    if path is None:
        raise PreflightError(
            "debootstrap is not installed (needed to make the offline base images)",
            fix="sudo apt-get install -y debootstrap   (or use `scalelab image --online` on a machine with registry access)",
            lab="00-prerequisites",
        )
    if os.geteuid() != 0:
        raise PreflightError(
            "debootstrap needs root to build the offline base images",
            fix="run `sudo scalelab image --offline`, or `scalelab image --online` where Docker Hub is reachable",
            lab="00-prerequisites",
        )
    if not os.path.exists(DEBIAN_KEYRING):
        raise PreflightError(
            f"the Debian archive keyring {DEBIAN_KEYRING} is missing: debootstrap could not verify what it downloads",
            fix="sudo apt-get install -y debian-archive-keyring",
            lab="00-prerequisites",
        )
    return path


def debootstrap_argv(debootstrap: str, packages: tuple[str, ...], debs: Path, rootfs: Path, mirror: str) -> list[str | Path]:
    """The debootstrap command line: a minimal Debian whose Release file must carry a valid
    signature from the Debian archive keys (then every package is checked against its hash)."""
    return [
        debootstrap, "--variant=minbase", f"--include={','.join(packages)}",
        "--force-check-gpg", f"--keyring={DEBIAN_KEYRING}",
        f"--cache-dir={debs}", DEBIAN_SUITE, rootfs, mirror,
    ]  # fmt: skip


def _trim_rootfs(rootfs: Path) -> None:
    for rel in ROOTFS_TRIM:
        target = rootfs / rel
        if target.is_dir():
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir(parents=True, exist_ok=True)
    # Docs go, Debian copyright files stay.
    for path in sorted((rootfs / "usr/share/doc").rglob("*"), reverse=True):
        if path.is_file() or path.is_symlink():
            if path.name != "copyright":
                path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()


def import_debian_rootfs(
    tag: str,
    packages: tuple[str, ...],
    cfg: ImageBuildConfig,
    *,
    changes: tuple[str, ...] = (),
    extra_files: dict[str, str] | None = None,
    timeout_s: float = 900.0,
) -> None:
    """debootstrap a minimal Debian with `packages`, trim it and `docker import` it as `tag`."""
    debootstrap = _require_debootstrap()
    debs = cfg.cache / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rootfs-", dir=cfg.cache) as tmp:
        rootfs = Path(tmp) / "rootfs"
        argv = debootstrap_argv(debootstrap, packages, debs, rootfs, cfg.mirror)
        fix = f"check that {cfg.mirror} is reachable (apt-get update works), or set SCALELAB_DEBIAN_MIRROR"  # noqa: S608
        try:
            _run.run(argv, timeout_s=timeout_s, fix=fix)
        finally:
            _unmount_below(rootfs)  # a failed debootstrap can leave /proc or /sys mounted in the chroot
        _trim_rootfs(rootfs)
        for rel, text in (extra_files or {}).items():
            dest = rootfs / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(text)
        tarball = Path(tmp) / "rootfs.tar"
        _run.run(["tar", "--numeric-owner", "-C", rootfs, "-cf", tarball, "."], timeout_s=300)
        argv = ["docker", "import"]
        for change in changes:
            argv += ["--change", change]
        _run.run([*argv, tarball, tag], timeout_s=300)


def _unmount_below(root: Path) -> None:
    prefix = str(root.resolve()) + "/"
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    for mount in sorted((m for m in mounts if m.startswith(prefix)), reverse=True):
        _run.run(["umount", "-l", mount], check=False, timeout_s=30)


# --- wheelhouse -----------------------------------------------------------------------------


def _requirements(cfg: ImageBuildConfig) -> list[str]:
    """The ``name==version`` pins (a line may carry ``--hash=...`` options after its pin)."""
    text = (cfg.repo_root / REQUIREMENTS_FILE).read_text()
    lines = (line.split("#")[0].strip() for line in text.splitlines())
    return [line.split()[0] for line in lines if line and not line.startswith("-")]


def wheelhouse_dir(cfg: ImageBuildConfig) -> Path:
    return cfg.cache / "wheelhouse" / "cp311-manylinux-x86_64"


def _wheelhouse_complete(cfg: ImageBuildConfig) -> bool:
    """Every pinned requirement (``name==version``) has a wheel in the wheelhouse."""
    house = wheelhouse_dir(cfg)
    if not house.is_dir():
        return False
    have = {p.name.split("-")[0].lower().replace("_", "-") + "==" + p.name.split("-")[1] for p in house.glob("*.whl")}
    names = {p.name.split("-")[0].lower().replace("_", "-") for p in house.glob("*.whl")}
    if not BUILD_TOOL_NAMES <= names:
        return False
    return all(req.lower().replace("_", "-") in have for req in _requirements(cfg))


def ensure_wheelhouse(cfg: ImageBuildConfig, say: Say) -> bool:
    """Download the agent's wheels for CPython 3.11 on x86_64 Linux; returns True if it downloaded."""
    house = wheelhouse_dir(cfg)
    if _wheelhouse_complete(cfg) and not cfg.no_cache:
        say(f"wheelhouse complete: {house}")
        return False
    house.mkdir(parents=True, exist_ok=True)
    say(f"downloading wheels into {house}")
    pip: list[str | os.PathLike[str]] = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "-q", "-d", house]
    target: list[str | os.PathLike[str]] = ["--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311"]
    for plat in WHEEL_PLATFORMS:
        target += ["--platform", plat]
    fix = "check that PyPI is reachable (pip download), or copy a complete wheelhouse into " + str(house)
    _run.run([*pip, *target, "-r", cfg.repo_root / REQUIREMENTS_FILE], timeout_s=600, fix=fix)
    _run.run([*pip, "--only-binary=:all:", *BUILD_TOOLS], timeout_s=600, fix=fix)
    return True


# --- agent image ----------------------------------------------------------------------------


def _stage_agent_context(cfg: ImageBuildConfig, ctx: Path) -> None:
    """Build context: Dockerfile, requirements, ``wheels/`` (dependencies: all of them offline,
    none online) and ``app/`` (the scalelab wheel), each with the pip wheel that installs it.

    Dependencies and the kit's own code are separate layers, so a code change rebuilds in seconds.
    """
    if ctx.exists():
        shutil.rmtree(ctx)
    wheels, app, pkg = ctx / "wheels", ctx / "app", ctx / "pkg"
    for d in (wheels, app, pkg):
        d.mkdir(parents=True)
    shutil.copytree(
        cfg.repo_root / "src" / "scalelab", pkg / "src" / "scalelab", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(cfg.repo_root / name, pkg / name)
    shutil.copy2(cfg.repo_root / REQUIREMENTS_FILE, ctx / REQUIREMENTS_FILE)
    shutil.copy2(cfg.repo_root / "Dockerfile", ctx / "Dockerfile")
    house = wheelhouse_dir(cfg)
    # Built on the host from the staged copy with the backend from the wheelhouse (no PyPI once
    # cached); SOURCE_DATE_EPOCH makes the wheel byte-identical, so unchanged code hits the cache.
    _run.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-index", "--find-links", house, "-w", app, pkg],
        env={"SOURCE_DATE_EPOCH": "315532800"},
        timeout_s=300,
        fix="run `scalelab image --no-cache` to refresh the wheelhouse (it needs setuptools and wheel)",
    )
    shutil.rmtree(pkg)
    for whl in house.glob("*.whl"):
        name = whl.name.split("-")[0].lower()
        if name == "pip":
            shutil.copy2(whl, wheels / whl.name)
            shutil.copy2(whl, app / whl.name)
        elif cfg.offline and name not in BUILD_TOOL_NAMES:
            shutil.copy2(whl, wheels / whl.name)


def build_agent_image(cfg: ImageBuildConfig, say: Say) -> None:
    ctx = cfg.cache / "build" / "agent-context"
    _stage_agent_context(cfg, ctx)
    if cfg.offline:
        build_args = {"BASE_IMAGE": versions.BASE_IMAGE, "PIP_INDEX": "--no-index"}
    else:
        build_args = {"BASE_IMAGE": versions.ONLINE_PYTHON_BASE, "PIP_INDEX": ""}
    argv: list[str | Path] = ["docker", "build", "-t", versions.AGENT_IMAGE]
    for key, value in build_args.items():
        argv += ["--build-arg", f"{key}={value}"]
    if cfg.no_cache:
        argv.append("--no-cache")
    argv += ["-f", ctx / "Dockerfile", ctx]
    say(f"building {versions.AGENT_IMAGE} from {build_args['BASE_IMAGE']} (legacy builder)")
    fix = "" if cfg.offline else ONLINE_FIX
    _run.run(argv, env={"DOCKER_BUILDKIT": "0"}, timeout_s=cfg.build_timeout_s, fix=fix)


#: The v2 agent: one metadata-only layer on the v1 image (no second install, about a second).
AGENT_V2_DOCKERFILE = f"""\
# scalelab-ai-agent v2 (built by `scalelab image`): the v1 image with the version it reports changed.
FROM {versions.AGENT_IMAGE}
ENV AGENT_VERSION=v2
LABEL org.opencontainers.image.version="{versions.KIT_VERSION}-v2"
"""


def build_agent_v2_image(cfg: ImageBuildConfig, say: Say) -> None:
    """``AGENT_IMAGE_V2`` from the local v1 image (legacy builder, never --pull: no registry needed)."""
    ctx = cfg.cache / "build" / "agent-v2-context"
    ctx.mkdir(parents=True, exist_ok=True)
    (ctx / "Dockerfile").write_text(AGENT_V2_DOCKERFILE, encoding="utf-8")
    say(f"tagging {versions.AGENT_IMAGE_V2}: {versions.AGENT_IMAGE} + AGENT_VERSION=v2 (one metadata layer)")
    _run.run(["docker", "build", "-q", "-t", versions.AGENT_IMAGE_V2, ctx], env={"DOCKER_BUILDKIT": "0"}, timeout_s=120,
             fix=f"build {versions.AGENT_IMAGE} first (`scalelab image`)")


# --- load balancer image --------------------------------------------------------------------


def build_lb_image(cfg: ImageBuildConfig, say: Say) -> None:
    if not cfg.offline:
        say(f"pulling {versions.ONLINE_NGINX_IMAGE} and tagging it {versions.LB_IMAGE}")
        _run.run(["docker", "pull", versions.ONLINE_NGINX_IMAGE], timeout_s=600, fix=ONLINE_FIX)
        _run.run(["docker", "tag", versions.ONLINE_NGINX_IMAGE, versions.LB_IMAGE], timeout_s=60)
        return
    say(f"debootstrap Debian {DEBIAN_SUITE} + nginx-light -> {versions.LB_IMAGE}")
    import_debian_rootfs(
        versions.LB_IMAGE,
        LB_PACKAGES,
        cfg,
        changes=(
            f"USER {LB_UID}:{LB_UID}",
            "EXPOSE 8080",
            'CMD ["nginx", "-e", "stderr", "-g", "daemon off;"]',
        ),
        extra_files={"etc/nginx/nginx.conf": LB_DEFAULT_NGINX_CONF},
    )


# --- all ------------------------------------------------------------------------------------


def _timed(tag: str, needed: bool, action: Callable[[], None]) -> BuiltImage:
    start = time.monotonic()
    if needed:
        action()
    return BuiltImage(tag, image_size_bytes(tag), time.monotonic() - start, "built" if needed else "present")


def _ensure_base(cfg: ImageBuildConfig, say: Say) -> BuiltImage:
    need_base = not image_exists(versions.BASE_IMAGE)
    if need_base:
        say(f"debootstrap Debian {DEBIAN_SUITE} + python3 -> {versions.BASE_IMAGE} (about 1-2 minutes)")
    else:
        say(f"base image present: {versions.BASE_IMAGE}")
    return _timed(
        versions.BASE_IMAGE,
        need_base,
        lambda: import_debian_rootfs(versions.BASE_IMAGE, AGENT_BASE_PACKAGES, cfg, changes=("ENV LANG=C.UTF-8",)),
    )


def build_agent(cfg: ImageBuildConfig, say: Say) -> list[BuiltImage]:
    """The agent image (v1, and v2 on top of it) and what it needs: the offline base (if missing) and the wheelhouse."""
    require_docker()
    cfg.cache.mkdir(parents=True, exist_ok=True)
    results = [_ensure_base(cfg, say)] if cfg.offline else []
    ensure_wheelhouse(cfg, say)
    results.append(_timed(versions.AGENT_IMAGE, True, lambda: build_agent_image(cfg, say)))
    results.append(_timed(versions.AGENT_IMAGE_V2, True, lambda: build_agent_v2_image(cfg, say)))
    return results


def build_all(cfg: ImageBuildConfig, say: Say) -> list[BuiltImage]:
    """Base (offline, if missing), wheelhouse (if incomplete), agent image, load-balancer image."""
    results = build_agent(cfg, say)
    need_lb = cfg.no_cache or not image_exists(versions.LB_IMAGE)
    if not need_lb:
        say(f"load-balancer image present: {versions.LB_IMAGE}")
    results.append(_timed(versions.LB_IMAGE, need_lb, lambda: build_lb_image(cfg, say)))
    return results


def default_config(offline: bool | None, *, no_cache: bool = False, probe: bool = True) -> ImageBuildConfig:
    return ImageBuildConfig(
        offline=resolve_offline(offline, probe=probe),
        no_cache=no_cache,
        repo_root=find_repo_root(),
        cache=cache_dir(),
        mirror=os.environ.get("SCALELAB_DEBIAN_MIRROR", DEFAULT_MIRROR),
    )
