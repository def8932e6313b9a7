// Package source reads Frontdoor's config and hands it to the control
// plane. Two Sources implement one interface:
//
//   - Kube (kube.go) follows UpstreamClusters, the Secrets they reference
//     and the EndpointSlices they select in a Kubernetes cluster through
//     client-go informers, and writes each UpstreamCluster's status back
//     through the status subresource (statuswriter.go);
//   - Dir (dir.go) polls a directory of YAML files (file mode), decoded by
//     translator.DecodeInputs.
//
// A Source owns reading, change detection and (Kube) status writes. It
// does not translate or serve (the Publisher, xds.Controller, does), does
// not compute conditions (status/ does) and does not poll Envoy (health/
// does; cmd/frontdoor runs it and hands it to Kube as Health). It must not
// import xds, health, gRPC or net/http directly.
package source

import (
	"context"

	"github.com/kubefrontdoor/frontdoor/api/v1alpha1"
	"github.com/kubefrontdoor/frontdoor/status"
	"github.com/kubefrontdoor/frontdoor/translator"
)

// Source reads config until ctx is done, publishing the inputs through p
// at start and after every change. It returns an error only when it cannot
// start (e.g. its caches never sync); a config that fails to translate or
// serve is p's to report.
type Source interface {
	Run(ctx context.Context, p Publisher) error
}

// Publisher is what a Source feeds: xds.Controller.
type Publisher interface {
	// Update translates and serves in; an error means the previous config
	// keeps serving.
	Update(ctx context.Context, in translator.Inputs) error
	// LastGood returns the last accepted version of every served
	// UpstreamCluster: what they reference must still be read, since they
	// may be served in place of a rejected edit.
	LastGood() []*v1alpha1.UpstreamCluster
	// Statuses returns the verdicts of the last Update, with Programmed.
	Statuses() []translator.Status
	// AcksChanged fires (coalesced) when Statuses may change without an
	// Update: an Envoy acknowledged a snapshot or went away.
	AcksChanged() <-chan struct{}
}

// Health is Envoy's view of each UpstreamCluster's servers
// (health.Poller), which Kube writes into statuses.
type Health interface {
	// Servers returns the servers of the named UpstreamCluster, if Envoy
	// reported its cluster.
	Servers(name string) ([]status.ServerHealth, bool)
	// Changed fires (coalesced) when a server's health changes.
	Changed() <-chan struct{}
}

var (
	_ Source = (*Kube)(nil)
	_ Source = (*Dir)(nil)
)
