// Command etcd is etcd's server at the version kubeadm 1.34 expects for its static pod
// (registry.k8s.io/etcd:3.6.5-0), built from the Go module proxy for the kind node image.
// etcd's server module uses replace lines, so this wrapper module requires it instead of
// `go install`. See tests/cluster/build.sh (part "node").
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
