# Pinned versions of the test cluster (sourced by build.sh and cluster.sh).
#
# Kubernetes 1.34: the newest minor whose kubelet still starts on cgroup v1 by default
# (failCgroupV1 defaults to false; 1.35 refuses unless opted out, KEP-5573) and the last one
# whose containerd matrix still includes containerd 1.x (Debian 12 ships 1.6.20). We take the
# latest 1.34 patch the Go module proxy serves: `go list -m -versions k8s.io/kubernetes`.
K8S_VERSION=v1.34.4
# etcd: kubeadm's pin for 1.31-1.34 (cluster.sh runs it itself, with kubeadm's certificates).
ETCD_VERSION=v3.5.24
# metrics-server: v0.8.1 was the intended pin, but this machine's Go module proxy answers
# "403 This module version is not available" for v0.8.1, and v0.8.0 is not in the checksum
# database it serves (sum.golang.org lookup 404). Its version list shows v0.9.0 only, which
# supports Kubernetes 1.34 and needs Go >= 1.26.4 (we have 1.26.8). Keep
# k8s/metrics-server.yaml's image tag equal to this.
METRICS_SERVER_VERSION=v0.9.0
# The sandbox image kubeadm 1.34 expects (build/pause/Makefile TAG); built locally from pause.c.
PAUSE_TAG=3.10.1
GO_VERSION_EXPECTED=go1.26.8

# --- the kind node image (k8s/node-image/, `make kind-node-image`) ---------------------------
# kind itself, from the Go module proxy; kind v0.33.0 publishes kindest/node:v1.34.11 for users
# with a registry (src/scalelab/versions.py pins it by digest).
KIND_VERSION=v0.33.0
# etcd at the tag kubeadm 1.34 writes into its static pod (constants.DefaultEtcdVersion
# "3.6.5-0"); kubeadm passes 3.6-only flags for that tag, so 3.5.x under it will not start.
NODE_ETCD_VERSION=v3.6.5
NODE_ETCD_TAG=3.6.5-0
# CoreDNS at kubeadm 1.34's constants.CoreDNSVersion.
COREDNS_VERSION=v1.12.1
# crictl (kind load docker-image runs it inside every node); cri-tools follows Kubernetes minors.
CRICTL_VERSION=v1.34.0
