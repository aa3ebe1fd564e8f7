//go:build tools

// Package tools pins the kind command for `go mod tidy`. See tests/cluster/build.sh (part "node").
package tools

import _ "sigs.k8s.io/kind"
