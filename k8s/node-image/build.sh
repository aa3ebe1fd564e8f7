#!/usr/bin/env bash
# Builds scalelab's kind node image WITHOUT any container registry (`make kind-node-image`).
#
# Stock `kind build node-image` fetches its base image and the control-plane images from
# registries. This script assembles an equivalent image from what this machine can reach:
#   - a systemd Debian 12 root filesystem (debootstrap, via scalelab.images) with Debian's
#     containerd 1.6, runc, CNI plugins and iptables;
#   - Kubernetes (kubelet, kubeadm, kubectl and the control-plane images) built from the Go module
#     proxy by tests/cluster/build.sh, plus etcd at the tag kubeadm expects, CoreDNS, crictl and
#     kind itself (its part "node");
#   - the images kubeadm needs, built locally under the exact names it asks for
#     (registry.k8s.io/kube-apiserver:v1.34.x, etcd:3.6.5-0, coredns/coredns:v1.12.1, pause,
#     kube-proxy) plus metrics-server, imported into the image's containerd store;
#   - rootfs/ beside this script: entrypoint, systemd units, containerd config, and the pod
#     network (scalelab-podnet, instead of kind's kindnetd).
#
# Result: docker image scalelab-kind-node:<Kubernetes version>, labelled with a hash of its
# inputs; rebuilt only when an input changes (`--force` rebuilds). Caches (outside the
# repository): ${XDG_CACHE_HOME:-$HOME/.cache}/scalelab/{k8s,kind,go,debs}.
# Needs root (debootstrap), Docker, Go, gcc/libc6-dev (pause) and the kit's .venv.
#
#   bash k8s/node-image/build.sh [--force]    prints the image tag on the last line
#   bash k8s/node-image/build.sh tag          prints the tag only
set -euo pipefail

node_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$node_dir/../.." && pwd)
here=$repo/tests/cluster # lib/images.sh expects the test cluster's directory in $here
# shellcheck source=tests/cluster/versions.sh
source "$here/versions.sh"

cache=${SCALELAB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/scalelab}
export PATH=/usr/local/go/bin:/usr/sbin:/sbin:$PATH
python=${PYTHON:-$repo/.venv/bin/python}
export DOCKER_BUILDKIT=0

node_image=scalelab-kind-node:$K8S_VERSION
# Debian bases, versioned by their package lists (bump the suffix when a list changes).
node_base=scalelab-kind-base:bookworm-1
node_packages=systemd,systemd-sysv,dbus,containerd,runc,containernetworking-plugins,iptables,conntrack,socat,ethtool,iproute2,ca-certificates,procps,kmod
proxy_base=scalelab-kube-proxy-base:bookworm-1
proxy_packages=iptables,conntrack
# Units a node container must not run: they change kernel-wide settings (sysctl, binfmt,
# modules) or mount kernel file systems the node does not need.
masked_units=(systemd-sysctl.service systemd-binfmt.service proc-sys-fs-binfmt_misc.automount
  proc-sys-fs-binfmt_misc.mount systemd-modules-load.service kmod-static-nodes.service
  sys-kernel-debug.mount sys-kernel-tracing.mount sys-kernel-config.mount
  sys-fs-fuse-connections.mount dev-hugepages.mount systemd-remount-fs.service getty.target
  console-getty.service systemd-journald-audit.socket)
enabled_units=(containerd.service kubelet.service scalelab-podnet.service)

log() { echo "[node-image $(date +%H:%M:%S)] $*"; }
die() { echo "ERROR: $*" >&2; exit 1; }

# shellcheck source=tests/cluster/lib/images.sh
source "$here/lib/images.sh"

# Everything the image is made of, hashed: this script, rootfs/, the pinned versions, the Go
# wrapper modules and the Go version.
inputs_hash() {
  {
    (cd "$repo" && find k8s/node-image tests/cluster/versions.sh tests/cluster/lib/images.sh \
      tests/cluster/go/kubernetes/go.sum tests/cluster/go/node-*/go.sum -type f -print0 |
      sort -z | xargs -0 sha256sum)
    go env GOVERSION
  } | sha256sum | cut -c1-16
}

image_label() { docker image inspect -f '{{index .Config.Labels "org.scalelab.inputs"}}' "$1" 2>/dev/null; }

debian_base() { # tag packages
  docker image inspect "$1" >/dev/null 2>&1 && return 0
  log "debootstrap Debian bookworm ($2) -> $1"
  "$python" - "$1" "$2" <<'PY'
import sys
from scalelab import images
tag, packages = sys.argv[1], tuple(sys.argv[2].split(","))
cfg = images.default_config(offline=True, probe=False)
images.import_debian_rootfs(tag, packages, cfg)
PY
}

component_images() { # bin_dir node_bin_dir -> prints the image names, one a line
  local bin=$1 nodebin=$2 c
  for c in kube-apiserver kube-controller-manager kube-scheduler; do
    build_scratch_image "registry.k8s.io/$c:$K8S_VERSION" "$bin/$c" 0 /usr/local/bin >&2
    echo "registry.k8s.io/$c:$K8S_VERSION"
  done
  debian_base "$proxy_base" "$proxy_packages" >&2
  build_scratch_image "registry.k8s.io/kube-proxy:$K8S_VERSION" "$bin/kube-proxy" 0 /usr/local/bin "$proxy_base" >&2
  build_scratch_image "registry.k8s.io/etcd:$NODE_ETCD_TAG" "$nodebin/etcd" 0 /usr/local/bin >&2
  build_scratch_image "registry.k8s.io/coredns/coredns:$COREDNS_VERSION" "$nodebin/coredns" 0 >&2
  build_pause_image >&2
  build_metrics_server_image >&2
  echo "registry.k8s.io/kube-proxy:$K8S_VERSION"
  echo "registry.k8s.io/etcd:$NODE_ETCD_TAG"
  echo "registry.k8s.io/coredns/coredns:$COREDNS_VERSION"
  echo "$pause_image"
  echo "$metrics_server_image"
}

# Fills DIR/var/lib/containerd with the images (content only, unpacked by the node's containerd
# on first use, as kind's own node images do), using a private containerd on this host.
preload_images() { # rootfs image...
  local rootfs=$1 tmp pid img
  shift
  tmp=$(mktemp -d)
  mkdir -p "$rootfs/var/lib/containerd"
  cat >"$tmp/config.toml" <<EOF
version = 2
root = "$rootfs/var/lib/containerd"
state = "$tmp/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "$tmp/containerd.sock"
EOF
  containerd --config "$tmp/config.toml" >"$tmp/containerd.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 50); do [[ -S $tmp/containerd.sock ]] && break; sleep 0.2; done
  [[ -S $tmp/containerd.sock ]] || { cat "$tmp/containerd.log" >&2; kill "$pid"; die "containerd for the image store did not start"; }
  for img in "$@"; do
    log "preloading $img"
    docker save "$img" | ctr --address "$tmp/containerd.sock" --namespace k8s.io images import \
      --all-platforms --no-unpack --digests - >/dev/null
    # Pinned: the kubelet's image garbage collection never removes them.
    ctr --address "$tmp/containerd.sock" --namespace k8s.io images label "$(qualified "$img")" \
      io.cri-containerd.pinned=pinned >/dev/null
  done
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  rm -rf "$tmp"
}

link_units() { # rootfs
  local etc=$1/etc/systemd/system u
  mkdir -p "$etc/multi-user.target.wants"
  for u in "${masked_units[@]}"; do ln -sfn /dev/null "$etc/$u"; done
  for u in "${enabled_units[@]}"; do ln -sfn "/etc/systemd/system/$u" "$etc/multi-user.target.wants/$u"; done
}

build() { # [--force]
  local hash start=$SECONDS bin nodebin ctx images old_id
  hash=$(inputs_hash)
  if [[ ${1:-} != --force && $(image_label "$node_image") == "$hash" ]]; then
    log "$node_image is up to date (inputs $hash)"
    echo "$node_image"
    return 0
  fi
  command -v containerd >/dev/null && command -v ctr >/dev/null || die "containerd and ctr are needed (apt-get install containerd)"
  bin=$(bash "$here/build.sh" kubernetes | tail -1)
  bash "$here/build.sh" metrics-server >/dev/null
  nodebin=$(bash "$here/build.sh" node | tail -1)
  log "binaries ready ($((SECONDS - start)) s)"
  bin_dir=$bin # lib/images.sh builds metrics-server's image from $bin_dir
  debian_base "$node_base" "$node_packages"
  mapfile -t images < <(component_images "$bin" "$nodebin")
  log "component images ready ($((SECONDS - start)) s)"

  ctx=$cache/kind/node-$K8S_VERSION
  rm -rf "$ctx"
  mkdir -p "$ctx"
  cp -a "$node_dir/rootfs" "$ctx/rootfs"
  install -D -m 0755 "$bin/kubelet" "$ctx/rootfs/usr/bin/kubelet"
  install -D -m 0755 "$bin/kubeadm" "$ctx/rootfs/usr/bin/kubeadm"
  install -D -m 0755 "$bin/kubectl" "$ctx/rootfs/usr/bin/kubectl"
  install -D -m 0755 "$nodebin/crictl" "$ctx/rootfs/usr/local/bin/crictl"
  echo "$K8S_VERSION" >"$ctx/rootfs/kind/version"
  link_units "$ctx/rootfs"
  preload_images "$ctx/rootfs" "${images[@]}"
  cat >"$ctx/Dockerfile" <<EOF
FROM $node_base
COPY rootfs/ /
ENV container=docker
LABEL org.scalelab.inputs=$hash org.scalelab.kubernetes=$K8S_VERSION
STOPSIGNAL SIGRTMIN+3
ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]
EOF
  log "docker build $node_image"
  old_id=$(docker image inspect -f '{{.Id}}' "$node_image" 2>/dev/null || true)
  docker build -q -t "$node_image" "$ctx" >"$cache/kind/docker-build.log" 2>&1 ||
    { cat "$cache/kind/docker-build.log" >&2; die "docker build of $node_image failed"; }
  # The previous build of this tag, now untagged: remove it unless a node container still uses it.
  if [[ -n $old_id && $old_id != "$(docker image inspect -f '{{.Id}}' "$node_image")" ]]; then
    docker image rm "$old_id" >/dev/null 2>&1 || true
  fi
  rm -rf "$ctx"
  log "built $node_image in $((SECONDS - start)) s ($(docker image inspect -f '{{.Size}}' "$node_image" | awk '{printf "%.0f MB", $1/1e6}'))"
  echo "$node_image"
}

case ${1:-} in
  tag) echo "$node_image" ;;
  "" | --force) build "${1:-}" ;;
  *) echo "usage: $0 [--force|tag]" >&2; exit 2 ;;
esac
