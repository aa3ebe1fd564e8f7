//go:build tools

// Package tools pins metrics-server's command for `go mod tidy`. See tests/cluster/build.sh.
package tools

import _ "sigs.k8s.io/metrics-server/cmd/metrics-server"
