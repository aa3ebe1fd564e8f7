// Command coredns is CoreDNS with only the plugins kubeadm's default Corefile uses, built from
// the Go module proxy for the kind node image (registry.k8s.io/coredns/coredns). CoreDNS
// documents this way of compiling a custom plugin set: a main package that imports coremain and
// the wanted plugins. Leaving out the cloud back-ends keeps the cold build short on 2 cores.
// See tests/cluster/build.sh (part "node").
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	// kubeadm's Corefile: errors, health, ready, kubernetes, prometheus, forward, cache, loop,
	// reload, loadbalance (log for debugging).
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/metrics"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
)

var _ = dnsserver.Directives

func main() {
	coremain.Run()
}
