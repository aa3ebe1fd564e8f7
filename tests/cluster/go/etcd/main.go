// Command etcd is etcd's server built from the Go module proxy. etcd's server module uses
// replace lines, so `go install go.etcd.io/etcd/server/v3@...` does not work; this wrapper
// module requires it instead. See tests/cluster/build.sh.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
