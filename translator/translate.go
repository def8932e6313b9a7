// Package translator turns UpstreamClusters (and the Secrets they reference)
// into the xDS resources Envoy serves and the policy table the request
// service enforces. It is a pure function: no I/O, no clocks, no globals, so
// its output can be golden-tested and the same inputs always produce the same
// version.
//
// It must not import client-go, gRPC, net/http or os (reading Kubernetes and
// files is source/'s job, serving xds/'s); lint (depguard) and TestImports
// enforce it.
package translator

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"

	"github.com/kubefrontdoor/frontdoor/api/v1alpha1"
	"github.com/kubefrontdoor/frontdoor/policy"
)

// Status is the translator's verdict on one UpstreamCluster.
type Status struct {
	// Name is the UpstreamCluster's name.
	Name string
	// ObservedGeneration is the generation the conditions describe.
	ObservedGeneration int64
	// Conditions are Accepted and ResolvedRefs; xds/ adds Programmed.
	Conditions []metav1.Condition
	// ServerCount is how many enabled servers were translated.
	ServerCount int32
}

// Output is one complete, consistent configuration.
type Output struct {
	// Version identifies the content: equal inputs give equal versions.
	Version string
	// Resources holds the xDS resources by type URL
	// (github.com/envoyproxy/go-control-plane/pkg/resource/v3 constants),
	// each list sorted by resource name.
	Resources map[string][]types.Resource
	// Policy is the request service's table for the same version.
	Policy *policy.Table
	// Statuses has one entry per input UpstreamCluster, sorted by name.
	Statuses []Status
	// Probes are the servers the control plane health-checks for Envoy
	// (probes.go), sorted by cluster and address; part of the version.
	Probes []ProbeTarget
}

// Translate builds the complete configuration for in. It never fails as a
// whole: an UpstreamCluster that cannot be translated gets a False
// condition in Statuses and is left out, and the others keep serving.
//
// The pipeline has two stages, as in Envoy Gateway: buildIR validates the
// CRDs and resolves Secrets into a plain IR (with the statuses), then each
// IR cluster becomes xDS protos that are validated before anything leaves.
func Translate(in Inputs) *Output {
	ir, statuses := buildIR(in)
	ir.Listener.Edge = in.Options.Edge.withDefaults()

	byName := map[string]*statusBuilder{}
	for _, st := range statuses {
		if !st.rejected() {
			byName[st.uc.Name] = st // accepted names are unique
		}
	}
	var built []*clusterResources
	for _, c := range ir.Clusters {
		c.ServerHealth = in.Health[c.Name]
		cr, err := buildClusterResources(ir.Listener, c)
		if err != nil {
			byName[c.Name].reject(v1alpha1.ReasonInvalidConfig, err.Error())
			continue
		}
		built = append(built, cr)
	}

	out, err := assemble(ir.Listener, built)
	if err != nil {
		// Only the shared listener can fail here (each chain passed on its
		// own); nothing can be served without it.
		for _, cr := range built {
			byName[cr.ir.Name].reject(v1alpha1.ReasonInvalidConfig, err.Error())
		}
		out, _ = assemble(ir.Listener, nil)
	}
	for _, st := range statuses {
		out.Statuses = append(out.Statuses, st.status())
	}
	return out
}
