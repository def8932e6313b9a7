package translator_test

import (
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubefrontdoor/frontdoor/translator"
)

// Health verdicts become the EDS health status of the server in every
// load assignment (the default cluster's and each policy's); a server
// without a verdict has none (UNKNOWN, healthy to Envoy). Clusters over IP
// servers carry no active health check; a DNS cluster keeps Envoy's (over
// HTTP/1.1 in its upgrade twins) and gets no probe target.
func TestHealthVerdictsBecomeEDSStatus(t *testing.T) {
	in := loadCase(t, "dispatch-policies")
	in.Health = translator.ServerHealth{"a": {"10.0.0.2:6443": false}}
	out := translator.Translate(in)

	seen := 0
	for _, r := range out.Resources[resourcev3.EndpointType] {
		la := r.(*endpointv3.ClusterLoadAssignment)
		for _, l := range la.GetEndpoints() {
			for _, e := range l.GetLbEndpoints() {
				addr := e.GetEndpoint().GetAddress().GetSocketAddress().GetAddress()
				want := corev3.HealthStatus_UNKNOWN
				if addr == "10.0.0.2" {
					want = corev3.HealthStatus_UNHEALTHY
					seen++
				}
				if got := e.GetHealthStatus(); got != want {
					t.Errorf("%s: %s is %v, want %v", la.GetClusterName(), addr, got, want)
				}
			}
		}
	}
	if seen < 2 {
		t.Errorf("10.0.0.2 is UNHEALTHY in %d load assignments, want the default's and its policies'", seen)
	}
	for _, r := range out.Resources[resourcev3.ClusterType] {
		cl := r.(*clusterv3.Cluster)
		dns := strings.HasPrefix(cl.GetName(), "dns/")
		if !dns && len(cl.GetHealthChecks()) != 0 {
			t.Errorf("%s (IP servers) has an Envoy health check", cl.GetName())
		}
		if dns {
			if len(cl.GetHealthChecks()) != 1 {
				t.Errorf("%s (DNS servers) has %d Envoy health checks, want 1", cl.GetName(), len(cl.GetHealthChecks()))
				continue
			}
			want := typev3.CodecClientType_HTTP2
			if strings.HasSuffix(cl.GetName(), ".upgrade") || cl.GetName() == "dns/upgrade" {
				want = typev3.CodecClientType_HTTP1
			}
			if got := cl.GetHealthChecks()[0].GetHttpHealthCheck().GetCodecClientType(); got != want {
				t.Errorf("%s health-checks over %v, want %v", cl.GetName(), got, want)
			}
		}
	}
	for _, p := range out.Probes {
		if p.Cluster == "dns" {
			t.Errorf("probe target %s/%s of a DNS cluster", p.Cluster, p.Address)
		}
	}
	if len(out.Probes) != 2 {
		t.Errorf("%d probe targets, want the two enabled servers of a", len(out.Probes))
	}
}

// A health-check edit changes no Envoy resource of an IP cluster, only its
// probe targets; the version must still change, or the controller would
// keep probing with the old settings.
func TestHealthCheckEditChangesVersion(t *testing.T) {
	in := loadCase(t, "dispatch-policies")
	before := translator.Translate(in)
	for _, uc := range in.UpstreamClusters {
		if uc.Name == "a" {
			uc.Spec.HealthCheck.Interval = &metav1.Duration{Duration: 7 * time.Second}
		}
	}
	after := translator.Translate(in)
	if before.Version == after.Version {
		t.Error("a health-check interval edit kept the version")
	}
	for _, p := range after.Probes {
		if p.Cluster == "a" && p.Interval != 7*time.Second {
			t.Errorf("probe %s interval %v, want 7s", p.Address, p.Interval)
		}
	}
}
