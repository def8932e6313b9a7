package envoy

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/kubefrontdoor/frontdoor/internal/testenv"
)

// The bootstrap pins the generic-upgrade pause guard on, with no admin
// layer that could turn it off at run time.
func TestBootstrapPinsUpgradePauseGuard(t *testing.T) {
	b, err := Bootstrap(testOpts)
	if err != nil {
		t.Fatal(err)
	}
	layers := b.GetLayeredRuntime().GetLayers()
	if len(layers) != 1 {
		t.Fatalf("runtime layers %v, want exactly one static layer", layers)
	}
	v, ok := layers[0].GetStaticLayer().GetFields()[RuntimeGuardPauseUpgradeBody]
	if !ok || !v.GetBoolValue() {
		t.Errorf("static runtime layer %v does not pin %s on", layers[0], RuntimeGuardPauseUpgradeBody)
	}
}

// The frontdoor cluster's circuit breakers are explicit and far above
// Envoy's default of 1024 requests, for both priorities.
func TestBootstrapControlPlaneCircuitBreakers(t *testing.T) {
	b, err := Bootstrap(testOpts)
	if err != nil {
		t.Fatal(err)
	}
	th := b.GetStaticResources().GetClusters()[0].GetCircuitBreakers().GetThresholds()
	if len(th) != 2 {
		t.Fatalf("thresholds %v, want DEFAULT and HIGH", th)
	}
	for _, x := range th {
		for what, v := range map[string]uint32{
			"max_requests":         x.GetMaxRequests().GetValue(),
			"max_pending_requests": x.GetMaxPendingRequests().GetValue(),
			"max_connections":      x.GetMaxConnections().GetValue(),
		} {
			if v < 100_000 {
				t.Errorf("%s %s = %d, want at least 100000", x.GetPriority(), what, v)
			}
		}
	}
}

// The overload manager has the connection limit (default and flag value)
// and the heap actions, and the admin listener is outside the limit.
func TestBootstrapOverloadManager(t *testing.T) {
	for _, tc := range []struct {
		opts      OverloadOptions
		wantConns string
		wantHeap  string
	}{
		{wantConns: strconv.Itoa(DefaultMaxDownstreamConnections), wantHeap: strconv.Itoa(DefaultMaxHeapBytes)},
		{opts: OverloadOptions{MaxDownstreamConnections: 7, MaxHeapBytes: 1 << 20}, wantConns: "7", wantHeap: "1048576"},
	} {
		o := testOpts
		o.Overload = tc.opts
		b, err := Bootstrap(o)
		if err != nil {
			t.Fatal(err)
		}
		if !b.GetAdmin().GetIgnoreGlobalConnLimit() {
			t.Error("admin listener counts against the global connection limit")
		}
		j, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(b.GetOverloadManager())
		if err != nil {
			t.Fatal(err)
		}
		s := string(j)
		for _, want := range []string{
			`"max_active_downstream_connections":"` + tc.wantConns + `"`,
			`"max_heap_size_bytes":"` + tc.wantHeap + `"`,
			actionShrinkHeap, actionDisableKeepalive, actionStopRequests, actionRejectConnections,
		} {
			if !strings.Contains(s, want) {
				t.Errorf("overload manager lacks %s:\n%s", want, s)
			}
		}
	}
}

// TestOverloadConnectionLimitRealEnvoy runs the real Envoy on the rendered
// bootstrap with a limit of 2 client connections (plus a plain listener to
// connect to, in place of the ADS-delivered one): two connections are
// served, a third is closed at accept, the admin interface still answers,
// and once a connection closes a new one is served again.
func TestOverloadConnectionLimitRealEnvoy(t *testing.T) {
	adminPort, port := testenv.MustFreePort(t), testenv.MustFreePort(t)
	b, err := Bootstrap(BootstrapOptions{
		NodeID: "n", XDSAddress: "127.0.0.1:1", AdminAddress: "127.0.0.1:" + strconv.Itoa(adminPort),
		Overload: OverloadOptions{MaxDownstreamConnections: 2},
	})
	if err != nil {
		t.Fatal(err)
	}
	j, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	var config map[string]any
	if err := json.Unmarshal(j, &config); err != nil {
		t.Fatal(err)
	}
	// No control plane here: a static listener stands in for the gateway's.
	delete(config, "dynamic_resources")
	config["static_resources"].(map[string]any)["listeners"] = []any{httpListener("clients", port,
		map[string]any{"direct_response": map[string]any{"status": 200}})}
	runEnvoy(t, config, adminPort)

	addr := "127.0.0.1:" + strconv.Itoa(port)
	served := func(c net.Conn) bool {
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			return false
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	c1, c2 := dial(), dial()
	if !served(c1) || !served(c2) {
		t.Fatal("connections within the limit were not served")
	}
	if served(dial()) {
		t.Fatal("a third connection was served with a limit of 2")
	}
	// The admin listener is outside the limit; the refusal is counted
	// (on Envoy's own schedule: poll).
	var stats string
	for deadline := time.Now().Add(5 * time.Second); ; {
		resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(adminPort) + "/stats?filter=downstream_global_cx_overflow")
		if err != nil {
			t.Fatalf("admin interface unreachable at the connection limit: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		stats = string(b)
		if strings.Contains(stats, "listener.127.0.0.1_"+strconv.Itoa(port)+".downstream_global_cx_overflow: 1") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the refused connection was not counted as a global connection overflow:\n%s", stats)
		}
		time.Sleep(100 * time.Millisecond)
	}
	c1.Close()
	// Envoy notices the close asynchronously.
	deadline := time.Now().Add(5 * time.Second)
	for !served(dial()) {
		if time.Now().After(deadline) {
			t.Fatal("no connection served after one of the two closed")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
