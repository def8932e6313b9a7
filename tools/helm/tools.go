//go:build tools

// Package tools records the Helm main package this module builds into bin/.
package tools

import _ "helm.sh/helm/v4/cmd/helm"
