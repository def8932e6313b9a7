package xds

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/kubefrontdoor/frontdoor/translator"
)

// fakeHealth is a HealthSource whose first verdicts arrive when the test
// says, as a prober's would after its first probes.
type fakeHealth struct {
	mu       sync.Mutex
	verdicts translator.ServerHealth
	targets  []translator.ProbeTarget
	first    chan struct{}
	changed  chan struct{}
}

func (f *fakeHealth) SetTargets(targets []translator.ProbeTarget) <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	isNew := len(f.targets) == 0 && len(targets) > 0
	f.targets = targets
	if !isNew {
		return nil
	}
	return f.first
}

func (f *fakeHealth) Verdicts() translator.ServerHealth {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.verdicts
}

func (f *fakeHealth) Changed() <-chan struct{} { return f.changed }

func (f *fakeHealth) set(v translator.ServerHealth) {
	f.mu.Lock()
	f.verdicts = v
	f.mu.Unlock()
}

// endpointHealth maps every endpoint address of every load assignment to
// its health status.
func endpointHealth(t *testing.T, out *translator.Output) map[string]map[string]corev3.HealthStatus {
	t.Helper()
	got := map[string]map[string]corev3.HealthStatus{}
	for _, r := range out.Resources[resourcev3.EndpointType] {
		la := r.(*endpointv3.ClusterLoadAssignment)
		got[la.GetClusterName()] = map[string]corev3.HealthStatus{}
		for _, l := range la.GetEndpoints() {
			for _, e := range l.GetLbEndpoints() {
				a := e.GetEndpoint().GetAddress().GetSocketAddress()
				got[la.GetClusterName()][a.GetAddress()] = e.GetHealthStatus()
			}
		}
	}
	return got
}

// The controller publishes the health source's verdicts as the EDS health
// status of every endpoint of every cluster (default, upgrade and each
// dispatch policy's): the first publish waits for the first verdicts, and a
// verdict change republishes with only the endpoints changed (same
// clusters, same endpoint names), so Envoy gets an EDS update alone.
func TestControllerPublishesHealthVerdicts(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h := &fakeHealth{first: make(chan struct{}), changed: make(chan struct{}, 1)}
	c := NewController(ControllerOptions{Health: h, Registry: prometheus.NewRegistry()})
	in := goldenInputs(t, "dispatch-policies")

	go func() {
		time.Sleep(100 * time.Millisecond) // the first probes take a while
		h.set(translator.ServerHealth{"a": {"10.0.0.1:6443": true, "10.0.0.2:6443": false}})
		close(h.first)
	}()
	if err := c.Update(ctx, in); err != nil {
		t.Fatal(err)
	}
	first := c.Current()
	if len(h.targets) == 0 {
		t.Fatal("no probe targets handed to the health source")
	}
	eps := endpointHealth(t, first)
	if len(eps) < 2 {
		t.Fatalf("want the default and policy endpoints, got %v", eps)
	}
	for name, hosts := range eps {
		if st, ok := hosts["10.0.0.1"]; ok && st != corev3.HealthStatus_HEALTHY {
			t.Errorf("%s: 10.0.0.1 is %v, want HEALTHY", name, st)
		}
		if st, ok := hosts["10.0.0.2"]; ok && st != corev3.HealthStatus_UNHEALTHY {
			t.Errorf("%s: 10.0.0.2 is %v, want UNHEALTHY", name, st)
		}
	}
	for _, r := range first.Resources[resourcev3.ClusterType] {
		// Cluster "dns" names its servers by DNS: Envoy resolves and
		// checks those itself (translator/probes.go).
		if cl := r.(*clusterv3.Cluster); !strings.HasPrefix(cl.GetName(), "dns/") && len(cl.GetHealthChecks()) != 0 {
			t.Errorf("cluster %s keeps an active health check in Envoy", cl.GetName())
		}
	}

	go c.FollowHealth(ctx)
	h.set(translator.ServerHealth{"a": {"10.0.0.1:6443": true, "10.0.0.2:6443": true}})
	h.changed <- struct{}{}
	deadline := time.Now().Add(5 * time.Second)
	for c.Current().Version == first.Version && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	second := c.Current()
	if second.Version == first.Version {
		t.Fatal("a verdict change was not published")
	}
	for name, hosts := range endpointHealth(t, second) {
		if _, ok := eps[name]; !ok {
			t.Errorf("endpoints %s renamed by a verdict change", name)
		}
		if st, ok := hosts["10.0.0.2"]; ok && st != corev3.HealthStatus_HEALTHY {
			t.Errorf("%s: 10.0.0.2 is %v after recovery, want HEALTHY", name, st)
		}
	}
	a, b := first.Resources[resourcev3.ClusterType], second.Resources[resourcev3.ClusterType]
	if len(a) != len(b) {
		t.Fatalf("clusters %d then %d", len(a), len(b))
	}
	for i := range a {
		if !proto.Equal(a[i], b[i]) {
			t.Errorf("cluster %v changed with a verdict", resourceNameOf(a[i]))
		}
	}
}

func resourceNameOf(r any) string {
	if n, ok := r.(interface{ GetName() string }); ok {
		return n.GetName()
	}
	return ""
}
