# Writes the test cluster's configuration files (sourced by cluster.sh; uses its variables).
# Files are only rewritten when their content changes: kube-proxy exits when its
# configuration file is touched, and 'up' must be safe to re-run on a running cluster.
# Everything lives under $state (kubeconfigs, certificates, component configs) or $var_dir
# (containerd and kubelet data, CNI config); nothing is written to /etc.

put() { # file <- stdin, replaced only if different
  local tmp=$1.new
  cat >"$tmp"
  if cmp -s "$tmp" "$1"; then rm -f "$tmp"; else mv -f "$tmp" "$1"; fi
}

write_containerd_config() {
  mkdir -p "$var_dir/containerd" "$run_dir/containerd" "$cni_conf_dir" "$cni_ipam_dir"
  put "$state/containerd.toml" <<EOF
# containerd for the scalelab test cluster: its own root, state and socket, separate from the
# containerd that dockerd runs. Nothing is ever pulled: images are imported with ctr.
version = 2
root = "$var_dir/containerd"
state = "$run_dir/containerd"

[grpc]
  address = "$containerd_sock"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:$PAUSE_TAG"
  # cgroup v1 hosts here have no hugetlb controller mounted (1.6's key name; default true).
  tolerate_missing_hugetlb_controller = true
  # Pod network namespaces under our state dir, so 'down' finds and removes exactly ours.
  netns_mounts_under_state_dir = true
  # Build machines may withhold CAP_SYS_RESOURCE even from root, so lowering oom_score_adj
  # (pause: -998) fails in runc ("nsexec: failed to update /proc/self/oom_score_adj:
  # Permission denied"). Clamp pod scores to containerd's own instead (harmless elsewhere).
  restrict_oom_score_adj = true
  # kubectl exec/logs/port-forward streams: loopback only (the kubelet proxies them).
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        # No systemd: cgroupfs, matching the kubelet's cgroupDriver.
        SystemdCgroup = false
        Root = "$run_dir/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$cni_conf_dir"

[plugins."io.containerd.internal.v1.opt"]
  path = "$var_dir/containerd-opt"
EOF
  # cniVersion 1.0.0: Debian's containerd and plugins are built against libcni 1.1.x, which
  # does not know 1.1.0. Docker sets FORWARD DROP; cluster.sh adds ACCEPT rules for cni0.
  put "$cni_conf_dir/10-scalelab.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "scalelab-test",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$cni_bridge",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$cni_ipam_dir",
        "ranges": [[{"subnet": "$pod_subnet"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
}

write_kubeadm_config() {
  put "$state/kubeadm.yaml" <<EOF
# Used only for 'kubeadm init phase certs/kubeconfig' (offline); no 'kubeadm init'.
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: $node_ip
  bindPort: 6443
nodeRegistration:
  name: $node_name
  criSocket: unix://$containerd_sock
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
# Pinned: the default 'stable-1' would ask dl.k8s.io first.
kubernetesVersion: $K8S_VERSION
clusterName: scalelab-test
controlPlaneEndpoint: 127.0.0.1:6443
certificatesDir: $pki
apiServer:
  certSANs: [127.0.0.1, localhost, $node_ip]
# Local etcd, so 'certs all' also makes the etcd CA, etcd's server and peer certificates and the
# API server's etcd client certificate; cluster.sh runs etcd itself (client TLS, loopback only).
etcd:
  local:
    dataDir: $state/etcd
    serverCertSANs: [127.0.0.1, localhost]
    peerCertSANs: [127.0.0.1, localhost]
networking:
  serviceSubnet: $service_subnet
  podSubnet: $cluster_cidr
  dnsDomain: cluster.local
EOF
}

write_kubelet_config() {
  put "$state/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# No systemd on these machines; containerd 1.6 has no RuntimeConfig RPC, so say it explicitly.
cgroupDriver: cgroupfs
# cgroup v1 host: 1.34 still starts by default; explicit so a version bump fails loudly.
failCgroupV1: false
containerRuntimeEndpoint: unix://$containerd_sock
failSwapOn: false
# Loopback only: the API server reaches it at 127.0.0.1 and pods (metrics-server) through the
# DNAT cluster.sh sets up from cni0 (open_firewall). No read-only port, no anonymous requests.
address: 127.0.0.1
port: 10250
readOnlyPort: 0
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $pki/ca.crt}
authorization:
  mode: Webhook
healthzBindAddress: 127.0.0.1
# The build machine's free disk may be small; keep evictions for real emergencies only.
evictionHard:
  memory.available: 100Mi
  nodefs.available: 5%
  imagefs.available: 5%
  nodefs.inodesFree: 5%
imageGCHighThresholdPercent: 95
imageGCLowThresholdPercent: 90
resolvConf: /etc/resolv.conf
rotateCertificates: false
serializeImagePulls: false
EOF
  put "$state/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: $state/kube-proxy.conf
# No IPVS in this kernel; iptables mode. NodePorts answer on 127.0.0.1 (localhostNodePorts).
mode: iptables
clusterCIDR: $cluster_cidr
hostnameOverride: $node_name
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# NodePorts only on loopback: tests reach them at 127.0.0.1, nothing else on the network can.
nodePortAddresses: [127.0.0.0/8]
iptables:
  localhostNodePorts: true
# No conntrack sysctl writes (they fail in some sandboxes and are not needed here).
conntrack:
  maxPerCore: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
EOF
}
