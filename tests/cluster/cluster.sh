#!/usr/bin/env bash
# A real single-node Kubernetes for scalelab's tests, built and run without any container
# registry (see /work/shared/docs/offline-infrastructure.md §5-13).
#
#   cluster.sh up        build missing binaries, start everything, wait until usable
#   cluster.sh down      stop everything 'up' started and remove its state (idempotent)
#   cluster.sh status    what runs, with memory figures
#   cluster.sh logs [N]  last N (default 40) lines of every component log
#   cluster.sh load IMAGE...   import Docker images into the cluster (like 'kind load')
#
# Kubeconfig: ${XDG_CACHE_HOME:-$HOME/.cache}/scalelab/test-cluster/kubeconfig, context
# scalelab-test. Needs root, Docker (for building/importing images) and Go (for build.sh).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/cluster/versions.sh
source "$here/versions.sh"

cache=${SCALELAB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/scalelab}
state=$cache/test-cluster          # kubeconfigs, certificates, configs, PID files, logs
pki=$state/pki
pid_dir=$state/pids
log_dir=$state/logs
var_dir=/var/lib/scalelab-test-cluster   # containerd root, kubelet root, CNI config and IPAM
run_dir=/run/scalelab-test-cluster       # containerd state and socket, runc state
containerd_sock=$run_dir/containerd.sock
cni_conf_dir=$var_dir/cni/net.d
cni_ipam_dir=$var_dir/cni/ipam
cni_bridge=cni0
pod_subnet=10.244.0.0/24
cluster_cidr=10.244.0.0/16
service_subnet=10.96.0.0/12
node_name=scalelab-node
context=scalelab-test
kubeconfig=$state/kubeconfig
# the agent, and its v2 tag for rollouts (scalelab image builds both; src/scalelab/versions.py)
workload_images=(scalelab-ai-agent:0.1.0 scalelab-ai-agent:0.1.0-v2)
fw_comment=scalelab-test-cluster
api_service_ip=10.96.0.1           # the `kubernetes` Service: first address of $service_subnet
nft_table=scalelab_test            # DNAT from the pods to the loopback-only API server and kubelet
# Host settings 'up' changes, itself or through kube-proxy (route_localnet) and the kubelet
# (its kernel tunables): the values before the first 'up' are recorded and 'down' restores them.
host_sysctls=(net.ipv4.ip_forward net.ipv4.conf.all.route_localnet net.bridge.bridge-nf-call-iptables
  vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
  kernel.keys.root_maxkeys kernel.keys.root_maxbytes)
# Start order; 'down' stops in reverse.
components=(containerd etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy)

export PATH=/usr/local/go/bin:/usr/sbin:/sbin:$PATH

log() { echo "[cluster $(date +%H:%M:%S)] $*"; }
die() { echo "ERROR: $*" >&2; exit 1; }

# shellcheck source=tests/cluster/lib/config.sh
source "$here/lib/config.sh"
# shellcheck source=tests/cluster/lib/images.sh
source "$here/lib/images.sh"

# Empty when Go is missing: 'down' and 'status' still work, 'up' builds (and reports) first.
bin_dir=$(bash "$here/build.sh" bindir 2>/dev/null) || bin_dir=

kubectl_() { "$bin_dir/kubectl" --kubeconfig "$kubeconfig" "$@"; }

# ---------------------------------------------------------------- processes

pid_of() { # component -> pid if it runs
  local f=$pid_dir/$1.pid pid
  [[ -f $f ]] || return 1
  pid=$(<"$f")
  [[ -d /proc/$pid ]] && [[ $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) == *"$1"* ]] || return 1
  echo "$pid"
}

start() { # component binary args...
  local name=$1; shift
  if pid_of "$name" >/dev/null; then log "$name already runs"; return 0; fi
  log "starting $name (log: $log_dir/$name.log)"
  # Close every inherited descriptor above 2 first: a daemon must not keep the caller's files
  # open (a `flock LOCKFILE cluster.sh up` would otherwise stay locked as long as containerd runs).
  (
    for fd in /proc/$BASHPID/fd/*; do
      fd=${fd##*/}
      if ((fd > 2 && fd != 255)); then eval "exec $fd>&-"; fi
    done
    exec setsid "$@"
  ) >>"$log_dir/$name.log" 2>&1 </dev/null &
  echo $! >"$pid_dir/$name.pid"
}

stop() { # component
  local pid
  pid=$(pid_of "$1") || { rm -f "$pid_dir/$1.pid"; return 0; }
  log "stopping $1 (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 40); do [[ -d /proc/$pid ]] || break; sleep 0.25; done
  if [[ -d /proc/$pid ]]; then kill -KILL "$pid" 2>/dev/null || true; sleep 0.5; fi
  rm -f "$pid_dir/$1.pid"
}

wait_for() { # timeout_s description command...
  local timeout_s=$1 what=$2 deadline; shift 2
  deadline=$((SECONDS + timeout_s))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      echo "ERROR: timed out after ${timeout_s}s waiting for $what" >&2
      logs 30 >&2
      exit 1
    fi
    sleep 1
  done
  log "$what: ok"
}

# ---------------------------------------------------------------- up

install_packages() {
  local need=() p
  for p in containerd runc containernetworking-plugins conntrack iptables nftables socat iproute2 curl gcc libc6-dev; do
    dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
  done
  ((${#need[@]})) || return 0
  log "installing from Debian: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
}

preflight() {
  docker info >/dev/null 2>&1 || bash "$here/../../.ci/docker.sh" >/dev/null
  node_ip=$(ip -4 route get 1.1.1.1 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p')
  [[ -n $node_ip ]] || node_ip=$(ip -4 -o addr show scope global | awk '{print $4}' | cut -d/ -f1 | head -1)
  [[ -n $node_ip ]] || die "no global IPv4 address for the node (needed as the node's InternalIP)"
  local port c
  for c in "${components[@]}"; do pid_of "$c" >/dev/null && return 0; done  # re-running 'up'
  for port in 2379 2380 6443 10250 10257 10259; do
    if ss -Htln "sport = :$port" | grep -q .; then
      die "port $port is already in use (another cluster, e.g. kind?): $(ss -Htlnp "sport = :$port" | head -1)"
    fi
  done
  # NodePorts hold no socket (kube-proxy answers them with iptables), so a kind cluster's
  # 127.0.0.1:30080 can stay: while a run of this cluster has a Service on 30080, connections
  # from this host to 127.0.0.1:30080 reach this cluster (kube-proxy's DNAT comes first).
  if ss -Htln "sport = :30080" | grep -q .; then
    log "note: 127.0.0.1:30080 is published by something else ($(ss -Htlnp "sport = :30080" | head -1 | awk '{print $NF}')); this cluster's NodePort 30080 takes precedence for local connections while a run uses it"
  fi
  local avail_kb
  avail_kb=$(df -Pk /var/lib | awk 'NR==2 {print $4}')
  ((avail_kb > 4 * 1024 * 1024)) || log "warning: only $((avail_kb / 1024)) MiB free under /var/lib"
}

make_certs() {
  [[ -f $state/admin.conf && -f $state/kube-proxy.conf && -f $pki/front-proxy-client.crt &&
    -f $pki/apiserver-etcd-client.crt ]] && return 0
  log "generating certificates and kubeconfigs with kubeadm (offline phases)"
  "$bin_dir/kubeadm" init phase certs all --config "$state/kubeadm.yaml" >/dev/null
  "$bin_dir/kubeadm" init phase kubeconfig all --config "$state/kubeadm.yaml" --kubeconfig-dir "$state" >/dev/null
  "$bin_dir/kubeadm" kubeconfig user --config "$state/kubeadm.yaml" --client-name system:kube-proxy \
    >"$state/kube-proxy.conf" 2>/dev/null
  # The kubeconfig handed to tests: admin.conf with a stable context name.
  cp "$state/admin.conf" "$kubeconfig"
  kubectl_ config rename-context "$(kubectl_ config current-context)" "$context" >/dev/null
  chmod 600 "$state"/*.conf "$kubeconfig"
}

# The sysctl values and the FORWARD chain as they were before the first 'up' (kept across re-runs).
save_host_state() {
  local key f
  for key in "${host_sysctls[@]}"; do
    f=$state/saved-${key##*.}
    [[ -f $f ]] && continue
    sysctl -n "$key" >"$f" 2>/dev/null || rm -f "$f"
  done
  [[ -f $state/saved-forward-rules ]] || iptables -S FORWARD >"$state/saved-forward-rules"
}

restore_host_state() {
  local key f
  for key in "${host_sysctls[@]}"; do
    f=$state/saved-${key##*.}
    [[ -f $f ]] || continue
    [[ $(sysctl -n "$key" 2>/dev/null) == "$(<"$f")" ]] && continue
    log "restoring $key=$(<"$f")"
    sysctl -qw "$key=$(<"$f")" || log "warning: could not restore $key"
  done
  if [[ -f $state/saved-forward-rules ]] && ! cmp -s <(iptables -S FORWARD) "$state/saved-forward-rules"; then
    log "note: the FORWARD chain differs from before 'up' (changed by something else meanwhile):"
    diff <(iptables -S FORWARD) "$state/saved-forward-rules" | sed 's/^/    /' || true
  fi
}

open_firewall() {
  save_host_state
  # Docker sets FORWARD DROP. Pods may open connections out; towards the pods only replies are
  # forwarded, so nothing on the network reaches a pod through this host (this host itself
  # reaches them directly). Both rules carry $fw_comment; 'down' removes exactly those.
  local out=(-i "$cni_bridge" -m comment --comment "$fw_comment" -j ACCEPT)
  local back=(-o "$cni_bridge" -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "$fw_comment" -j ACCEPT)
  iptables -C FORWARD "${out[@]}" 2>/dev/null || iptables -I FORWARD 1 "${out[@]}"
  iptables -C FORWARD "${back[@]}" 2>/dev/null || iptables -I FORWARD 1 "${back[@]}"
  sysctl -qw net.ipv4.ip_forward=1
  [[ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]] && sysctl -qw net.bridge.bridge-nf-call-iptables=1
  # Packets DNATed to 127.0.0.1 from cni0 need route_localnet (kube-proxy sets it too, for
  # NodePorts on 127.0.0.1); the kubelet's KUBE-FIREWALL chain drops every other packet from
  # outside to 127.0.0.0/8.
  sysctl -qw net.ipv4.conf.all.route_localnet=1
  loopback_dnat
}

# The API server and the kubelet listen on 127.0.0.1 only. Pods reach them at the addresses the
# cluster advertises (the `kubernetes` Service, the node's InternalIP) through DNAT to loopback,
# applied only to packets from cni0 and to this host's own connections: what arrives on any
# other interface is never translated and finds nothing listening. Our chains run at priority
# -110, before kube-proxy's nat rules (-100), so the Service address is translated here first.
loopback_dnat() {
  nft -f - <<EOF
table ip $nft_table
delete table ip $nft_table
table ip $nft_table {
  chain prerouting {
    type nat hook prerouting priority -110; policy accept;
    iifname "$cni_bridge" ip daddr $api_service_ip tcp dport 443 dnat to 127.0.0.1:6443
    iifname "$cni_bridge" ip daddr $node_ip tcp dport 6443 dnat to 127.0.0.1:6443
    iifname "$cni_bridge" ip daddr $node_ip tcp dport 10250 dnat to 127.0.0.1:10250
  }
  chain output {
    type nat hook output priority -110; policy accept;
    ip daddr $api_service_ip tcp dport 443 dnat to 127.0.0.1:6443
    ip daddr $node_ip tcp dport 6443 dnat to 127.0.0.1:6443
    ip daddr $node_ip tcp dport 10250 dnat to 127.0.0.1:10250
  }
}
EOF
}

start_control_plane() {
  # etcd on loopback with kubeadm's certificates: clients (the API server) and the peer port
  # need a certificate from the etcd CA. Only /health and /metrics stay plain HTTP (2381).
  local etcd_tls=(--cert-file="$pki/etcd/server.crt" --key-file="$pki/etcd/server.key"
    --trusted-ca-file="$pki/etcd/ca.crt" --client-cert-auth=true
    --peer-cert-file="$pki/etcd/peer.crt" --peer-key-file="$pki/etcd/peer.key"
    --peer-trusted-ca-file="$pki/etcd/ca.crt" --peer-client-cert-auth=true)
  start etcd "$bin_dir/etcd" --name default --data-dir "$state/etcd" "${etcd_tls[@]}" \
    --listen-client-urls https://127.0.0.1:2379 --advertise-client-urls https://127.0.0.1:2379 \
    --listen-peer-urls https://127.0.0.1:2380 --initial-advertise-peer-urls https://127.0.0.1:2380 \
    --initial-cluster default=https://127.0.0.1:2380 --listen-metrics-urls http://127.0.0.1:2381 \
    --unsafe-no-fsync --snapshot-count 10000 --log-level warn
  wait_for 60 "etcd health (client TLS)" curl -fsS --cacert "$pki/etcd/ca.crt" \
    --cert "$pki/etcd/healthcheck-client.crt" --key "$pki/etcd/healthcheck-client.key" \
    https://127.0.0.1:2379/health

  # Loopback only (pods come in through loopback_dnat), no anonymous requests, no privileged pods.
  start kube-apiserver "$bin_dir/kube-apiserver" \
    --advertise-address="$node_ip" --bind-address=127.0.0.1 --secure-port=6443 \
    --anonymous-auth=false \
    --etcd-servers=https://127.0.0.1:2379 --etcd-cafile="$pki/etcd/ca.crt" \
    --etcd-certfile="$pki/apiserver-etcd-client.crt" --etcd-keyfile="$pki/apiserver-etcd-client.key" \
    --service-cluster-ip-range="$service_subnet" \
    --client-ca-file="$pki/ca.crt" \
    --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
    --kubelet-client-certificate="$pki/apiserver-kubelet-client.crt" \
    --kubelet-client-key="$pki/apiserver-kubelet-client.key" \
    --kubelet-preferred-address-types=InternalIP,Hostname \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
    --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
    --requestheader-client-ca-file="$pki/front-proxy-ca.crt" \
    --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User \
    --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$pki/front-proxy-client.crt" \
    --proxy-client-key-file="$pki/front-proxy-client.key" \
    --enable-aggregator-routing=true
  wait_for 120 "kube-apiserver /readyz" kubectl_ get --raw=/readyz

  # Bindings a full 'kubeadm init' would create; phases alone do not.
  local super=("$bin_dir/kubectl" --kubeconfig "$state/super-admin.conf")
  "${super[@]}" get clusterrolebinding kubeadm:cluster-admins >/dev/null 2>&1 ||
    "${super[@]}" create clusterrolebinding kubeadm:cluster-admins \
      --clusterrole=cluster-admin --group=kubeadm:cluster-admins >/dev/null
  kubectl_ get clusterrolebinding scalelab:kube-apiserver-kubelet-client >/dev/null 2>&1 ||
    kubectl_ create clusterrolebinding scalelab:kube-apiserver-kubelet-client \
      --clusterrole=system:kubelet-api-admin --user=kube-apiserver-kubelet-client >/dev/null
  kubectl_ get clusterrolebinding scalelab:node-proxier >/dev/null 2>&1 ||
    kubectl_ create clusterrolebinding scalelab:node-proxier \
      --clusterrole=system:node-proxier --user=system:kube-proxy >/dev/null

  # HPA: controller defaults except the two flags the classroom kind profile also sets
  # (k8s/kind-cluster.yaml): 5 s sync and 30 s downscale stabilization.
  start kube-controller-manager "$bin_dir/kube-controller-manager" \
    --kubeconfig="$state/controller-manager.conf" \
    --authentication-kubeconfig="$state/controller-manager.conf" \
    --authorization-kubeconfig="$state/controller-manager.conf" \
    --bind-address=127.0.0.1 --leader-elect=false \
    --client-ca-file="$pki/ca.crt" --requestheader-client-ca-file="$pki/front-proxy-ca.crt" \
    --cluster-signing-cert-file="$pki/ca.crt" --cluster-signing-key-file="$pki/ca.key" \
    --root-ca-file="$pki/ca.crt" --service-account-private-key-file="$pki/sa.key" \
    --use-service-account-credentials=true \
    --service-cluster-ip-range="$service_subnet" --cluster-cidr="$cluster_cidr" \
    --controllers='*,bootstrapsigner,tokencleaner' \
    --horizontal-pod-autoscaler-sync-period=5s \
    --horizontal-pod-autoscaler-downscale-stabilization=30s
  start kube-scheduler "$bin_dir/kube-scheduler" \
    --kubeconfig="$state/scheduler.conf" \
    --authentication-kubeconfig="$state/scheduler.conf" \
    --authorization-kubeconfig="$state/scheduler.conf" \
    --bind-address=127.0.0.1 --leader-elect=false
}

start_node() {
  mkdir -p "$var_dir/kubelet"
  start kubelet "$bin_dir/kubelet" --config="$state/kubelet.yaml" \
    --kubeconfig="$state/kubelet.conf" --root-dir="$var_dir/kubelet" \
    --cert-dir="$var_dir/kubelet/pki" \
    --node-ip="$node_ip" --hostname-override="$node_name"
  start kube-proxy "$bin_dir/kube-proxy" --config="$state/kube-proxy.yaml"
  wait_for 120 "node $node_name Ready" \
    kubectl_ wait --for=condition=Ready "node/$node_name" --timeout=5s
}

start_metrics_server() {
  kubectl_ apply -f "$here/../../k8s/metrics-server.yaml" >/dev/null
  wait_for 180 "metrics-server rollout" \
    kubectl_ -n kube-system rollout status deployment/metrics-server --timeout=5s
  wait_for 120 "APIService v1beta1.metrics.k8s.io Available" \
    kubectl_ wait --for=condition=Available apiservice/v1beta1.metrics.k8s.io --timeout=5s
  wait_for 120 "metrics.k8s.io serving pod metrics" pod_metrics_served
}

pod_metrics_served() {
  kubectl_ get --raw /apis/metrics.k8s.io/v1beta1/namespaces/kube-system/pods | grep -q '"containers"'
}

control_plane_memory() { # -> "current_MiB peak_MiB" summed over our processes (VmRSS, VmHWM)
  local c pid rss=0 hwm=0 r h
  for c in "${components[@]}"; do
    pid=$(pid_of "$c") || continue
    r=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    h=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    rss=$((rss + ${r:-0})); hwm=$((hwm + ${h:-0}))
  done
  echo "$((rss / 1024)) $((hwm / 1024))"
}

rotate_logs() { # keep the previous cluster's logs as *.log.1 when starting from scratch
  local c f
  for c in "${components[@]}"; do pid_of "$c" >/dev/null && return 0; done
  for f in "$log_dir"/*.log; do [[ -f $f ]] && mv -f "$f" "$f.1"; done
  return 0
}

up() {
  local t0=$SECONDS build_s=0 b0 built
  [[ $(id -u) == 0 ]] || die "the test cluster needs root (containerd, kubelet, iptables)"
  install_packages
  preflight
  b0=$SECONDS
  built=$(bash "$here/build.sh" all | tee -a /dev/stderr | grep -c 'building' || true)
  ((built == 0)) || build_s=$((SECONDS - b0))
  bin_dir=$(bash "$here/build.sh" bindir)
  local t1=$SECONDS
  mkdir -p "$state" "$pki" "$pid_dir" "$log_dir" "$var_dir" "$run_dir"
  rotate_logs
  write_kubeadm_config
  write_containerd_config
  write_kubelet_config
  make_certs
  open_firewall

  build_pause_image
  build_metrics_server_image
  start containerd containerd --config "$state/containerd.toml"
  wait_for 30 "containerd socket" ctr --address "$containerd_sock" version
  local images=("$pause_image" "$metrics_server_image")
  local img
  for img in "${workload_images[@]}"; do
    docker image inspect "$img" >/dev/null 2>&1 && images+=("$img") ||
      log "note: $img is not in Docker yet (make image); 'cluster.sh load' it later"
  done
  # shellcheck disable=SC2206
  images+=(${SCALELAB_TEST_CLUSTER_IMAGES:-})
  import_images "${images[@]}"

  start_control_plane
  start_node
  start_metrics_server

  local mem
  read -r -a mem <<<"$(control_plane_memory)"
  log "cluster is up: kubeconfig $kubeconfig, context $context"
  ((build_s == 0)) && log "timing: cold build skipped (binaries cached in $bin_dir)" ||
    log "timing: build ${build_s}s"
  log "timing: start (certs, images, components, metrics) $((SECONDS - t1))s; total $((SECONDS - t0))s"
  log "memory: control plane + node (etcd, apiserver, kcm, scheduler, kubelet, kube-proxy, containerd): RSS now ${mem[0]} MiB, sum of peaks ${mem[1]} MiB"
}

# ---------------------------------------------------------------- down

drain_pods() {
  # With the scheduler and controllers stopped nothing is recreated; the kubelet then stops
  # each pod properly (CNI DEL, unmounts) before we stop it.
  pid_of kube-apiserver >/dev/null && pid_of kubelet >/dev/null || return 0
  log "deleting all pods so the kubelet tears them down"
  timeout 20 "$bin_dir/kubectl" --kubeconfig "$kubeconfig" delete pods --all --all-namespaces \
    --grace-period=1 --wait=false >/dev/null 2>&1 || true
  local deadline=$((SECONDS + 45))
  while ((SECONDS < deadline)); do
    [[ -z $(ctr_ tasks ls -q 2>/dev/null) ]] && break
    sleep 1
  done
}

remove_leftover_containers() {
  pid_of containerd >/dev/null || return 0
  local id
  for id in $(ctr_ tasks ls -q 2>/dev/null); do
    ctr_ tasks kill -a -s SIGKILL "$id" >/dev/null 2>&1 || true
  done
  sleep 1
  for id in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks delete -f "$id" >/dev/null 2>&1 || true; done
  for id in $(ctr_ containers ls -q 2>/dev/null); do ctr_ containers delete "$id" >/dev/null 2>&1 || true; done
}

remove_network_state() {
  # kube-proxy's own rules (KUBE-* chains).
  [[ -x $bin_dir/kube-proxy ]] && "$bin_dir/kube-proxy" --cleanup >/dev/null 2>&1 || true
  # Our FORWARD rules and any per-pod masquerade/portmap chains the bridge plugin left behind.
  local rule
  while rule=$(iptables -S FORWARD | grep -F -- "--comment $fw_comment") && [[ -n $rule ]]; do
    rule=$(head -1 <<<"$rule")
    # shellcheck disable=SC2086
    iptables ${rule/-A /-D } || break
  done
  local table chain
  for table in nat filter; do
    for chain in $(iptables -t "$table" -S | grep -F 'name: \"scalelab-test\"' | grep -o -- '-j CNI-[0-9a-f]*' | awk '{print $2}' | sort -u); do
      while rule=$(iptables -t "$table" -S | grep -F -- "-j $chain" | head -1) && [[ -n $rule ]]; do
        # shellcheck disable=SC2086
        eval iptables -t "$table" "${rule/-A /-D }" || break
      done
      iptables -t "$table" -F "$chain" 2>/dev/null || true
      iptables -t "$table" -X "$chain" 2>/dev/null || true
    done
  done
  ip link show "$cni_bridge" >/dev/null 2>&1 && ip link delete "$cni_bridge" || true
  nft delete table ip "$nft_table" 2>/dev/null || true
  # Sysctls first (route_localnet is what KUBE-FIREWALL guards), then the kubelet's chains.
  restore_host_state
  remove_kubelet_chains
}

# The kubelet's own chains (KUBE-FIREWALL guards route_localnet; canaries and the hint), for
# IPv4 and IPv6.
remove_kubelet_chains() {
  local ipt table chain
  for ipt in iptables ip6tables; do
    command -v "$ipt" >/dev/null || continue
    for table in filter nat mangle; do
      for chain in KUBE-FIREWALL KUBE-KUBELET-CANARY KUBE-IPTABLES-HINT; do
        "$ipt" -t "$table" -S "$chain" >/dev/null 2>&1 || continue
        while "$ipt" -t "$table" -D INPUT -j "$chain" 2>/dev/null; do :; done
        while "$ipt" -t "$table" -D OUTPUT -j "$chain" 2>/dev/null; do :; done
        "$ipt" -t "$table" -F "$chain" 2>/dev/null || true
        "$ipt" -t "$table" -X "$chain" 2>/dev/null || true
      done
    done
  done
}

unmount_ours() {
  local m
  # Deepest first: pod volumes, rootfs overlays, shm and netns mounts under our dirs.
  for m in $(findmnt -rn -o TARGET | grep -E "^($var_dir|$run_dir)(/|$)" | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
}

remove_cgroups() {
  local d
  for d in /sys/fs/cgroup/*/kubepods; do
    [[ -d $d ]] || continue
    find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
}

down() {
  [[ $(id -u) == 0 ]] || die "the test cluster needs root"
  mkdir -p "$pid_dir"
  stop kube-controller-manager
  stop kube-scheduler
  drain_pods
  stop kube-proxy
  stop kubelet
  remove_leftover_containers
  stop kube-apiserver
  stop etcd
  stop containerd
  remove_network_state
  unmount_ours
  remove_cgroups
  rm -rf "$var_dir" "$run_dir"
  # Keep the logs for post-mortems; everything else under $state is per-cluster state.
  find "$state" -mindepth 1 -maxdepth 1 ! -name logs -exec rm -rf {} + 2>/dev/null || true
  log "test cluster is down"
}

# ---------------------------------------------------------------- status, logs

status() {
  local c pid any=0
  for c in "${components[@]}"; do
    if pid=$(pid_of "$c"); then
      any=1
      printf '%-24s running  pid %-7s RSS %5s MiB\n' "$c" "$pid" \
        "$(($(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status") / 1024))"
    else
      printf '%-24s stopped\n' "$c"
    fi
  done
  ((any)) || return 0
  local mem
  read -r -a mem <<<"$(control_plane_memory)"
  echo "memory: RSS now ${mem[0]} MiB, sum of per-process peaks ${mem[1]} MiB"
  echo "listening TCP sockets of these processes (all on loopback):"
  for c in "${components[@]}"; do
    pid=$(pid_of "$c") || continue
    ss -H -ltnp | grep -F "pid=$pid," | awk -v c="$c" '{printf "  %-24s %s\n", c, $4}' || true
  done
  echo "kubeconfig: $kubeconfig (context $context)"
  if pid_of kube-apiserver >/dev/null; then
    kubectl_ get nodes -o wide 2>&1 || true
    kubectl_ get pods -A -o wide 2>&1 || true
  fi
}

logs() { # [lines]
  local n=${1:-40} f
  for f in "$log_dir"/*.log; do
    [[ -f $f ]] || continue
    echo "===== $f (last $n lines)"
    tail -n "$n" "$f"
  done
}

load() { # image...
  (($#)) || die "usage: cluster.sh load IMAGE..."
  pid_of containerd >/dev/null || die "the test cluster is not up (cluster.sh up)"
  import_images "$@"
}

case ${1:-} in
  up) up ;;
  down) down ;;
  status) status ;;
  logs) logs "${2:-40}" ;;
  load) shift; load "$@" ;;
  *) echo "usage: $0 up|down|status|logs [N]|load IMAGE..." >&2; exit 2 ;;
esac
