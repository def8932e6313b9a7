package xds

import (
	"context"
	"strings"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"

	"github.com/kubefrontdoor/frontdoor/api/v1alpha1"
	"github.com/kubefrontdoor/frontdoor/translator"
)

// TestProgrammedCountsEnvoyAcks: the Programmed message counts the
// connected Envoys that acknowledged the served snapshot; a NACK does not
// count, and a new snapshot needs a new ACK.
func TestProgrammedCountsEnvoyAcks(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := NewController(ControllerOptions{Translator: translator.Options{ListenerAddress: "127.0.0.1", ListenerPort: 6443}, Registry: prometheus.NewRegistry()})
	in := goldenInputs(t, "one-cluster")
	if err := c.Update(ctx, in); err != nil {
		t.Fatal(err)
	}
	message := func() string {
		return condition(findStatus(t, c.Statuses(), "alpha"), v1alpha1.ConditionProgrammed).Message
	}
	waitMessage := func(want string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !strings.Contains(message(), want) {
			if time.Now().After(deadline) {
				t.Fatalf("Programmed message %q, want it to contain %q", message(), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitMessage("acknowledged by 0 of 0 connected Envoys")

	stream, resp := openADS(ctx, t, c, "envoy", resourcev3.ClusterType)
	waitMessage("acknowledged by 0 of 1 connected Envoys")

	// A NACK is no acknowledgement.
	if err := stream.Send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.ClusterType, ResponseNonce: resp.GetNonce(),
		ErrorDetail: &rpcstatus.Status{Message: "rejected"}}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	waitMessage("acknowledged by 0 of 1 connected Envoys")

	// A new snapshot, answered by an ACK, counts.
	next := edit(in, "alpha", func(uc *v1alpha1.UpstreamCluster) { uc.Spec.LoadBalancing.Policy = v1alpha1.Random })
	if err := c.Update(ctx, next); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetSystemVersionInfo() != c.Current().Version {
		t.Fatalf("response version %q, want the snapshot's %q", resp.GetSystemVersionInfo(), c.Current().Version)
	}
	if err := stream.Send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.ClusterType, ResponseNonce: resp.GetNonce()}); err != nil {
		t.Fatal(err)
	}
	waitMessage("acknowledged by 1 of 1 connected Envoys")
}
