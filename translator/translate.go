// Package translator turns UpstreamClusters (and the Secrets they reference)
// into the xDS resources Envoy serves and the policy table the request
// service enforces. It is a pure function: no I/O, no clocks, no globals, so
// its output can be golden-tested and the same inputs always produce the same
// version.
package translator

import (
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"

	"github.com/kubefrontdoor/frontdoor/api/v1alpha1"
	"github.com/kubefrontdoor/frontdoor/policy"
)

// Options are the gateway-wide settings that are not part of any CRD.
type Options struct {
	// ListenerAddress and ListenerPort are where Envoy serves clients.
	ListenerAddress string
	ListenerPort    uint32
	// AccessLogPath is the file Envoy writes its JSON access log to; empty
	// means Envoy's stdout.
	AccessLogPath string
	// DisableAccessLog turns Envoy's access log off.
	DisableAccessLog bool
	// InProcessModule is the absolute path of frontdoor's dynamic module on
	// the Envoy host; clusters with requestService InProcess need it.
	InProcessModule string
	// InProcessPolicyAddress is where the module reaches frontdoor serve's
	// gRPC server for the policy table (host:port or unix:///path).
	InProcessPolicyAddress string
	// InProcessMetricsAddress, when set, is where the module serves the
	// pipeline's metrics.
	InProcessMetricsAddress string
}

// Inputs is everything one translation reads.
type Inputs struct {
	Options          Options
	UpstreamClusters []*v1alpha1.UpstreamCluster
	// Secrets are the Secrets UpstreamClusters may reference (others are ignored).
	Secrets []*corev1.Secret
	// EndpointSlices are the slices spec.endpointsFrom may select (others
	// are ignored).
	EndpointSlices []*discoveryv1.EndpointSlice
}

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

	byName := map[string]*statusBuilder{}
	for _, st := range statuses {
		if !st.rejected() {
			byName[st.uc.Name] = st // accepted names are unique
		}
	}
	var built []*clusterResources
	for _, c := range ir.Clusters {
		cr, err := buildClusterResources(c)
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
