package xds

import (
	"context"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	rlsconfv3 "github.com/envoyproxy/go-control-plane/ratelimit/config/ratelimit/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/kubefrontdoor/frontdoor/internal/testgrpc"
	"github.com/kubefrontdoor/frontdoor/translator"
)

// TestRateLimitServiceGetsItsConfig: the ratelimit service's xDS client
// (state of the world, its own node id, type RateLimitConfig) gets an
// answer even when no cluster has a Global token bucket (the service waits
// for one before serving), and the RateLimitConfig of each cluster that
// has one.
func TestRateLimitServiceGetsItsConfig(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, c := range []struct {
		input   string
		domains []string
	}{{"one-cluster", nil}, {"global-ratelimit", []string{"g"}}} {
		ctrl := NewController(ControllerOptions{
			Translator: translator.Options{ListenerAddress: "127.0.0.1", ListenerPort: 6443, RateLimitAddress: "127.0.0.1:8081"},
			Registry:   prometheus.NewRegistry(),
		})
		if err := ctrl.Update(ctx, goldenInputs(t, c.input)); err != nil {
			t.Fatal(err)
		}
		conn := testgrpc.Loopback(t, func(gs *grpc.Server) { ctrl.RegisterADS(ctx, gs) })
		stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.Send(&discoveryv3.DiscoveryRequest{
			Node: &corev3.Node{Id: "ratelimit-0"}, TypeUrl: resourcev3.RateLimitConfigType,
		}); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("%s: %v", c.input, err)
		}
		var domains []string
		for _, a := range resp.GetResources() {
			var rl rlsconfv3.RateLimitConfig
			if err := a.UnmarshalTo(&rl); err != nil {
				t.Fatal(err)
			}
			domains = append(domains, rl.GetDomain())
		}
		if resp.GetTypeUrl() != resourcev3.RateLimitConfigType || len(domains) != len(c.domains) || (len(domains) > 0 && domains[0] != c.domains[0]) {
			t.Errorf("%s: response of type %s with domains %v, want %v", c.input, resp.GetTypeUrl(), domains, c.domains)
		}
	}
}

// TestRateLimitServiceIsNoProxy: serve's drain waits until no Envoy is
// connected; the ratelimit service's stream, open for as long as it runs,
// must not count as one (nor in frontdoor_xds_connected_proxies), while an
// Envoy's stream counts from its first request until it closes.
func TestRateLimitServiceIsNoProxy(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ctrl := NewController(ControllerOptions{
		Translator: translator.Options{ListenerAddress: "127.0.0.1", ListenerPort: 6443, RateLimitAddress: "127.0.0.1:8081"},
		Registry:   prometheus.NewRegistry(),
	})
	if err := ctrl.Update(ctx, goldenInputs(t, "global-ratelimit")); err != nil {
		t.Fatal(err)
	}
	conn := testgrpc.Loopback(t, func(gs *grpc.Server) { ctrl.RegisterADS(ctx, gs) })
	ads := discoveryv3.NewAggregatedDiscoveryServiceClient(conn)
	open := func(node, typeURL string) context.CancelFunc {
		sctx, stop := context.WithCancel(ctx)
		stream, err := ads.StreamAggregatedResources(sctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: node}, TypeUrl: typeURL}); err != nil {
			t.Fatal(err)
		}
		if _, err := stream.Recv(); err != nil {
			t.Fatalf("%s: %v", node, err)
		}
		return stop
	}
	waitProxies := func(want int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for ctrl.ConnectedProxies() != want {
			if time.Now().After(deadline) {
				t.Fatalf("%d connected proxies, want %d", ctrl.ConnectedProxies(), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	defer open("ratelimit-0", resourcev3.RateLimitConfigType)()
	waitProxies(0)
	stopEnvoy := open("envoy-0", resourcev3.ClusterType)
	waitProxies(1)
	stopEnvoy()
	waitProxies(0)
}
