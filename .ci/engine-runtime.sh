#!/usr/bin/env bash
# TEST/CI set-up only (never on a user's machine): makes `docker run --privileged` work on a
# machine whose capability bounding set lacks CAP_SYS_RESOURCE (kind starts every node
# container with --privileged; see .ci/runc-no-sys-resource). Registers the wrapper as the
# engine's DEFAULT runtime (kind cannot choose a runtime) in /etc/docker/daemon.json and reloads
# dockerd with SIGHUP: `runtimes` and `default-runtime` are reloadable, so running containers
# keep going and nothing restarts. A no-op where the capability exists or the wrapper is already
# the default. Idempotent.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
name=scalelab-runc
dest=/usr/local/libexec/scalelab/runc-no-sys-resource
conf=/etc/docker/daemon.json

cap_sys_resource=24
bnd=$(awk '/^CapBnd:/ {print $2}' /proc/self/status)
if (( (16#$bnd >> cap_sys_resource) & 1 )); then
  echo "[engine-runtime] CAP_SYS_RESOURCE is in the bounding set: --privileged works, nothing to do"
  exit 0
fi

install -D -m 0755 "$here/runc-no-sys-resource" "$dest"
changed=$(python3 - "$conf" "$name" "$dest" <<'PY'
import json, os, sys
conf, name, path = sys.argv[1:]
old = json.load(open(conf)) if os.path.exists(conf) else None
want = json.loads(json.dumps(old or {}))
want.setdefault("runtimes", {})[name] = {"path": path}
want["default-runtime"] = name
if want != old:
    os.makedirs(os.path.dirname(conf), exist_ok=True)
    with open(conf + ".tmp", "w") as fh:
        json.dump(want, fh, indent=2)
    os.replace(conf + ".tmp", conf)
    print("yes")
PY
)
current=$(docker info --format '{{.DefaultRuntime}}' 2>/dev/null || true)
if [[ -z $current ]]; then
  echo "[engine-runtime] $conf has runtime $name as default; dockerd reads it when it starts"
  exit 0
fi
if [[ $current != "$name" || -n $changed ]]; then
  pid=$(cat /var/run/docker.pid)
  echo "[engine-runtime] reloading dockerd (pid $pid) with SIGHUP: default runtime $name"
  kill -HUP "$pid"
  for _ in $(seq 1 20); do
    [[ $(docker info --format '{{.DefaultRuntime}}' 2>/dev/null) == "$name" ]] && break
    sleep 0.5
  done
fi
current=$(docker info --format '{{.DefaultRuntime}}')
[[ $current == "$name" ]] || { echo "[engine-runtime] ERROR: default runtime is $current, expected $name" >&2; exit 1; }
echo "[engine-runtime] default runtime: $current ($dest)"
