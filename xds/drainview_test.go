package xds

import (
	"context"
	"errors"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kubefrontdoor/frontdoor/translator"
)

// TestDrainViewRemovesOnlyTheDrainedNodesBuckets: the view serves a node
// being drained its listener without buckets [0, n), tagged with the step,
// and leaves every other node's resources as they are.
func TestDrainViewRemovesOnlyTheDrainedNodesBuckets(t *testing.T) {
	opts := fleetOptions
	opts.Edge.DrainBuckets = true
	in := goldenInputs(t, "one-cluster")
	in.Options = opts
	out := translator.Translate(in)
	d := NewDrains(true)
	d.removed["draining"] = 3

	res, tag, err := d.View(&corev3.Node{Id: "other"}, out.Resources)
	if err != nil || tag != "" || len(res[resourcev3.ListenerType]) != len(out.Resources[resourcev3.ListenerType]) {
		t.Fatalf("a node not being drained: tag %q, err %v", tag, err)
	}
	if res[resourcev3.ListenerType][0] != out.Resources[resourcev3.ListenerType][0] {
		t.Fatalf("a node not being drained got a different listener")
	}

	res, tag, err = d.View(&corev3.Node{Id: "draining"}, out.Resources)
	if err != nil || tag != "drain-3" {
		t.Fatalf("the drained node: tag %q, err %v", tag, err)
	}
	before := out.Resources[resourcev3.ListenerType][0].(*listenerv3.Listener) //nolint:forcetypeassert // LDS holds listeners
	after := res[resourcev3.ListenerType][0].(*listenerv3.Listener)            //nolint:forcetypeassert // LDS holds listeners
	perBucket := len(before.GetFilterChains()) / translator.ConnectionBuckets
	if want := len(before.GetFilterChains()) - 3*perBucket; len(after.GetFilterChains()) != want {
		t.Fatalf("drained listener has %d chains, want %d (%d per bucket, 3 buckets removed)",
			len(after.GetFilterChains()), want, perBucket)
	}
	if len(before.GetFilterChains()) != perBucket*translator.ConnectionBuckets {
		t.Fatalf("the served listener changed: %d chains", len(before.GetFilterChains()))
	}
}

// TestDrainSetRefusals: a serve without buckets, a step out of range and
// an Envoy that is not connected are refused with errors the drain
// endpoint turns into 409, 400 and 404.
func TestDrainSetRefusals(t *testing.T) {
	ctx := context.Background()
	c := NewController(ControllerOptions{Translator: fleetOptions, Registry: prometheus.NewRegistry()})
	plain := NewDrains(false)
	plain.Attach(c)
	if err := plain.Set(ctx, "a", 1); !errors.Is(err, ErrNotBucketed) {
		t.Errorf("no buckets: %v, want ErrNotBucketed", err)
	}
	d := NewDrains(true)
	d.Attach(c)
	for _, n := range []int{-1, translator.ConnectionBuckets} {
		if err := d.Set(ctx, "a", n); err == nil || errors.Is(err, ErrUnknownNode) {
			t.Errorf("step %d: %v, want a range error", n, err)
		}
	}
	if err := d.Set(ctx, "nobody", 1); !errors.Is(err, ErrUnknownNode) {
		t.Errorf("unknown node: %v, want ErrUnknownNode", err)
	}
	if d.Step("nobody") != 0 {
		t.Errorf("a refused step was recorded")
	}
}
