package xds

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"

	"github.com/kubefrontdoor/frontdoor/internal/testgrpc"
	"github.com/kubefrontdoor/frontdoor/policy"
	"github.com/kubefrontdoor/frontdoor/translator"
	"github.com/kubefrontdoor/frontdoor/translator/translatortest"
)

type recordingSink struct{ tables []*policy.Table }

func (r *recordingSink) SetPolicy(t *policy.Table) { r.tables = append(r.tables, t) }

// goldenInputs loads a translator golden input (with its shared PEMs) as
// the translator's own tests do; the controller sets the Options.
func goldenInputs(t *testing.T, name string) translator.Inputs {
	t.Helper()
	return translatortest.MustLoad(t, os.DirFS(filepath.Join("..", "translator", "testdata", "in")), name)
}

// openADS serves c's ADS on a real gRPC server on 127.0.0.1
// (testgrpc.Loopback) and opens a delta ADS stream to it, as Envoy's
// bootstrap does (see envoy.Bootstrap): the first request, from node
// nodeID, subscribes to typeURL, and the first response is returned with
// the stream. The server and the connection close when the test ends.
func openADS(ctx context.Context, t *testing.T, c *Controller, nodeID, typeURL string) (discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesClient, *discoveryv3.DeltaDiscoveryResponse) {
	t.Helper()
	conn := testgrpc.Loopback(t, func(gs *grpc.Server) { c.RegisterADS(ctx, gs) })
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).DeltaAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	node := &corev3.Node{Id: nodeID, Cluster: "frontdoor"}
	if err := stream.Send(&discoveryv3.DeltaDiscoveryRequest{Node: node, TypeUrl: typeURL}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	return stream, resp
}

// TestControllerServesSnapshotOverADS: a real gRPC ADS stream on 127.0.0.1
// receives the translated listener; the policy reaches the sink first; an
// identical update publishes nothing new.
func TestControllerServesSnapshotOverADS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	reg := prometheus.NewRegistry()
	sink := &recordingSink{}
	c := NewController(ControllerOptions{
		Translator: translator.Options{ListenerAddress: "127.0.0.1", ListenerPort: 6443},
		Sink:       sink, Registry: reg,
	})
	in := goldenInputs(t, "one-cluster")
	if err := c.Update(ctx, in); err != nil {
		t.Fatal(err)
	}
	if err := c.Update(ctx, in); err != nil {
		t.Fatal(err)
	}
	if !c.Ready() || len(sink.tables) != 1 {
		t.Fatalf("ready %v, policy tables %d: want true, 1 (an identical update publishes nothing)", c.Ready(), len(sink.tables))
	}
	if got := testutil.ToFloat64(c.metrics.pushes); got != 1 {
		t.Fatalf("pushes = %v, want 1", got)
	}
	if sink.tables[0].Clusters["alpha"] == nil {
		t.Fatalf("policy lacks cluster alpha: %+v", sink.tables[0])
	}

	stream, resp := openADS(ctx, t, c, "any-envoy", resourcev3.ListenerType)
	if len(resp.GetResources()) != 1 || resp.GetResources()[0].GetName() != "frontdoor" {
		t.Fatalf("LDS delta response has %d resources, want the listener frontdoor", len(resp.GetResources()))
	}
	// Secrets are subscribed by name, a subset at a time, as Envoy does
	// while clusters warm; the server must answer the subset.
	if err := stream.Send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.SecretType,
		ResourceNamesSubscribe: []string{"alpha/upstream-client"}}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil || len(resp.GetResources()) != 1 {
		t.Fatalf("SDS subset: %d resources, err %v; want 1", len(resp.GetResources()), err)
	}
	if got := testutil.ToFloat64(c.metrics.connectedProxies); got != 1 {
		t.Fatalf("connected proxies = %v, want 1", got)
	}

	// A NACK is counted.
	if err := stream.Send(&discoveryv3.DeltaDiscoveryRequest{
		TypeUrl: resourcev3.ListenerType, ResponseNonce: resp.GetNonce(),
		ErrorDetail: &rpcstatus.Status{Message: "bad listener"},
	}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for testutil.ToFloat64(c.metrics.nacks.WithLabelValues(resourcev3.ListenerType)) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("NACK not counted")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestControllerSkipsRejectedClusters documents the file
// mode rule: rejected clusters are reported and skipped; a config where one
// cluster is bad still serves the good one.
func TestControllerSkipsRejectedClusters(t *testing.T) {
	reg := prometheus.NewRegistry()
	sink := &recordingSink{}
	c := NewController(ControllerOptions{Translator: translator.Options{ListenerAddress: "127.0.0.1", ListenerPort: 6443}, Sink: sink, Registry: reg})
	in := goldenInputs(t, "bad-secret-ref")
	if err := c.Update(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	if testutil.ToFloat64(c.metrics.clustersRejected) < 1 {
		t.Fatal("a rejected cluster must be counted")
	}
	if n, _ := testutil.GatherAndCount(reg, "frontdoor_config_errors_total"); n < 1 {
		t.Fatal("frontdoor_config_errors_total must name the rejected cluster")
	}
}
