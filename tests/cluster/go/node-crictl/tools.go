//go:build tools

// Package tools pins crictl for `go mod tidy`: kind's `load docker-image` runs crictl inside
// every node, and Debian 12 has no crictl package. See tests/cluster/build.sh (part "node").
package tools

import _ "sigs.k8s.io/cri-tools/cmd/crictl"
