package soak

import (
	"os"
	"testing"
	"time"

	"github.com/kubefrontdoor/frontdoor/tests/sandbox"
)

// TestSoakSmoke runs a short soak on the in-process request service: the
// harness works (every kind of request succeeds, samples read Envoy and the
// module, the load reaches the module's replayed decisions, whose memory the
// long soak watches) and nothing fails under its mixed load. Memory flatness
// needs the long run (`make soak`); 20 seconds only proves the machinery.
func TestSoakSmoke(t *testing.T) {
	ctx := sandbox.SlowTest(t, "a sandbox", 5*time.Minute)
	sb, err := sandbox.Start(ctx, sandbox.Options{Dir: t.TempDir(), RequestService: "InProcess", Progress: os.Stderr})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Stop()
	r, err := Run(ctx, sb, "InProcess", Options{Duration: 20 * time.Second, Warmup: 5 * time.Second, Interval: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	last := r.Samples[len(r.Samples)-1]
	if r.EnvoyRestarted || last.Failures != 0 || last.Requests < 500 {
		t.Fatalf("Envoy restarted %v, %d of %d requests failed (first: %v)", r.EnvoyRestarted, last.Failures, last.Requests, r.Failures)
	}
	if last.EnvoyRSS == 0 || last.ModuleHeap == 0 || last.ModuleGoroutine == 0 {
		t.Errorf("samples miss Envoy or the module: %+v", last)
	}
	if last.Replayed == 0 {
		t.Errorf("no request was answered by a replayed decision: the soak's repeated certificate GETs should be")
	}
}
