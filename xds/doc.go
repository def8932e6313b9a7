// Package xds serves the translated config. The Controller takes the
// inputs a config source (source/) hands it, translates them keeping each
// rejected object's last good version (lastgood.go), hands the policy
// table to the request service, and sets the snapshot its ADS server
// (server.go) streams to every Envoy; it tracks which snapshot each Envoy
// acknowledged (acks.go) and exports the control plane's metrics
// (metrics.go). Its Statuses add the Programmed condition (computed by
// status/) to the translator's verdicts.
//
// It owns serving only: reading Kubernetes or files and writing statuses
// (source/) and polling Envoy's admin API (health/) live elsewhere, and
// cmd/frontdoor wires them together. It must not import client-go, source,
// health or envoy/admin (TestImports).
package xds
