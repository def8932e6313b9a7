package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/kubefrontdoor/frontdoor/internal/testenv"
	"github.com/kubefrontdoor/frontdoor/tests/sandbox"
	"github.com/kubefrontdoor/frontdoor/translator"
)

// Drain buckets (issue 16, item 5's listener mechanism): the paced drain
// will remove one bucket of filter chains at a time. This test checks what
// it relies on in the real Envoy: when an LDS update removes bucket 0
// (translator.WithoutBuckets), Envoy updates the listener in place: the
// connections of bucket 0 get a GOAWAY and are closed after
// --drain-time-s, watches and all, while a connection of another bucket
// keeps streaming, and a new connection from a bucket-0 port is still
// served (by the last bucket).
//
// The Envoy under test is a second one on the sandbox's control plane
// (clusters, routes, secrets over ADS, the sandbox's bootstrap), whose
// listener comes from a file the test rewrites: the sandbox's own
// listener, split into buckets.

// bucketDrainTime is the second Envoy's --drain-time-s.
const bucketDrainTime = 3 * time.Second

func TestRemovingABucketDrainsOnlyItsConnections(t *testing.T) {
	ctx := setup(t, 4*time.Minute)

	split, err := translator.SplitBuckets(bucketTestListener(t, ctx, testenv.MustFreePort(t)))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ldsPath := filepath.Join(dir, "lds.json")
	writeLDS(t, ldsPath, "1", split)
	gateway := startFileLDSEnvoy(t, ctx, dir, ldsPath, split)

	cs := sandbox.Clientset(t, adminUser().direct())
	ns := createNamespace(t, ctx, "buckets")
	created := func(name string) {
		t.Helper()
		if _, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	type watched struct {
		cc     *h2Conn
		events <-chan string
	}
	open := func(bucket int) watched {
		t.Helper()
		cc, err := dialH2From(ctx, sb, gateway, portInBucket(t, bucket))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cc.Close() })
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, gateway+"/api/v1/namespaces/"+ns+"/configmaps?watch=1", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := cc.RoundTrip(req)
		if err != nil {
			t.Fatalf("watch from %s: %v", cc.local, err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("watch from %s: %s", cc.local, resp.Status)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return watched{cc, watchEvents(resp.Body)}
	}
	drained, idle, kept := open(0), open(0), open(5)
	created("before")
	for _, w := range []watched{drained, idle, kept} {
		if err := waitWatchEvent(ctx, w.events, "ADDED before", 10*time.Second); err != nil {
			t.Fatalf("watch from %s before the update: %v", w.cc.local, err)
		}
	}

	without, err := translator.WithoutBuckets(split, 1)
	if err != nil {
		t.Fatal(err)
	}
	writeLDS(t, ldsPath, "2", without)
	updated := time.Now()

	// Bucket 0's connections are drained the way Envoy drains a removed
	// filter chain: a connection that sends requests gets a GOAWAY on a
	// response (the default gradual drain: more likely as the drain time
	// passes), so its client opens a new connection; every connection of
	// the chain, watches and all, is closed at the drain time. One that
	// only holds a watch gets no GOAWAY before that close (nothing to
	// answer), which the paced drain must account for.
	busyGoAway := make(chan time.Duration, 1)
	go func() {
		for time.Since(updated) < bucketDrainTime+time.Second {
			time.Sleep(200 * time.Millisecond)
			if drained.cc.State().Closing {
				busyGoAway <- time.Since(updated)
				return
			}
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, gateway+"/api/v1/namespaces/"+ns+"/configmaps?limit=1", nil)
			if resp, err := drained.cc.RoundTrip(req); err == nil {
				resp.Body.Close()
			}
		}
		close(busyGoAway)
	}()
	endedAt := make([]time.Duration, 2)
	var wg sync.WaitGroup
	for i, w := range []watched{drained, idle} {
		wg.Go(func() {
			if err := untilWatchEnds(ctx, w.events, bucketDrainTime+10*time.Second); err != nil {
				t.Errorf("bucket 0's watch from %s: %v after its chain was removed (drain time %v)", w.cc.local, err, bucketDrainTime)
				return
			}
			endedAt[i] = time.Since(updated)
		})
	}
	wg.Wait()
	for i, w := range []watched{drained, idle} {
		t.Logf("bucket 0: the watch from %s ended %v after the update", w.cc.local, endedAt[i].Round(time.Millisecond))
		if at := endedAt[i]; at != 0 && (at < bucketDrainTime-time.Second || at > bucketDrainTime+2*time.Second) {
			t.Errorf("bucket 0's watch from %s ended %v after the update, want about the drain time %v", w.cc.local, at, bucketDrainTime)
		}
	}
	if d, ok := <-busyGoAway; !ok {
		t.Errorf("bucket 0's busy connection %s got no GOAWAY during the drain time", drained.cc.local)
	} else {
		t.Logf("bucket 0: the busy connection got its GOAWAY %v after the update", d.Round(time.Millisecond))
		if endedAt[0] != 0 && d >= endedAt[0] {
			t.Errorf("bucket 0's busy connection got its GOAWAY (%v) only when it closed (%v)", d, endedAt[0])
		}
	}

	// Bucket 5's connection was not touched: no GOAWAY, and its watch
	// keeps delivering.
	if st := kept.cc.State(); st.Closed || st.Closing {
		t.Errorf("bucket 5's connection %s was drained too (%+v): the update was not in place", kept.cc.local, st)
	}
	created("after")
	if err := waitWatchEvent(ctx, kept.events, "ADDED after", 10*time.Second); err != nil {
		t.Errorf("watch from bucket 5 (%s) after bucket 0 was removed: %v", kept.cc.local, err)
	}

	// A new connection from a port of the removed bucket is served.
	cc, err := dialH2From(ctx, sb, gateway, portInBucket(t, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, gateway+"/api/v1/namespaces/"+ns+"/configmaps", nil)
	resp, err := cc.RoundTrip(req)
	if err != nil {
		t.Fatalf("a new connection from bucket 0's ports after the update: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("a new connection from bucket 0's ports after the update: %s", resp.Status)
	}
}

// untilWatchEnds waits until the watch's events end.
func untilWatchEnds(ctx context.Context, events <-chan string, timeout time.Duration) error {
	deadline := time.After(timeout)
	for {
		select {
		case ev, ok := <-events:
			if !ok || strings.HasPrefix(ev, "END ") {
				return nil
			}
		case <-deadline:
			return fmt.Errorf("still open after %v", timeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// bucketTestListener is the sandbox Envoy's listener (from its config
// dump) moved to port, on its main address only: the PROXY protocol port
// and its listener filter stay with the sandbox.
func bucketTestListener(t *testing.T, ctx context.Context, port int) *listenerv3.Listener {
	t.Helper()
	dump, err := sb.EnvoyAdmin(ctx, "/config_dump?resource=dynamic_listeners")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Configs []struct {
			ActiveState struct {
				Listener json.RawMessage `json:"listener"`
			} `json:"active_state"`
		} `json:"configs"`
	}
	if err := json.Unmarshal([]byte(dump), &d); err != nil {
		t.Fatal(err)
	}
	if len(d.Configs) != 1 {
		t.Fatalf("%d dynamic listeners in the sandbox Envoy, want 1", len(d.Configs))
	}
	var a anypb.Any
	if err := protojson.Unmarshal(d.Configs[0].ActiveState.Listener, &a); err != nil {
		t.Fatal(err)
	}
	ln := &listenerv3.Listener{}
	if err := a.UnmarshalTo(ln); err != nil {
		t.Fatal(err)
	}
	ln.GetAddress().GetSocketAddress().PortSpecifier = &corev3.SocketAddress_PortValue{PortValue: uint32(port)} //nolint:gosec // a TCP port
	ln.AdditionalAddresses = nil
	var filters []*listenerv3.ListenerFilter
	for _, f := range ln.GetListenerFilters() {
		if !strings.Contains(f.GetName(), "proxy_protocol") {
			filters = append(filters, f)
		}
	}
	ln.ListenerFilters = filters
	return ln
}

// writeLDS replaces the LDS file at path with one listener, atomically (a
// rename, which Envoy's watched directory notices).
func writeLDS(t *testing.T, path, version string, ln *listenerv3.Listener) {
	t.Helper()
	a, err := anypb.New(ln)
	if err != nil {
		t.Fatal(err)
	}
	b, err := protojson.Marshal(&discoveryv3.DiscoveryResponse{VersionInfo: version, Resources: []*anypb.Any{a}})
	if err != nil {
		t.Fatal(err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// startFileLDSEnvoy runs a second Envoy from the sandbox's bootstrap with
// its own admin port and its listener from ldsPath, and waits until ln
// serves /readyz. It returns the listener's URL; the Envoy is killed (by
// its PID) when the test ends.
func startFileLDSEnvoy(t *testing.T, ctx context.Context, dir, ldsPath string, ln *listenerv3.Listener) string {
	t.Helper()
	// The current bootstrap: a rolled gateway (RollGateway) has its own.
	raw, err := os.ReadFile(sb.Gateways[0].BootstrapPath)
	if err != nil {
		t.Fatal(err)
	}
	var boot map[string]any
	if err := yaml.Unmarshal(raw, &boot); err != nil {
		t.Fatal(err)
	}
	adminPort := testenv.MustFreePort(t)
	boot["admin"] = map[string]any{"address": map[string]any{"socket_address": map[string]any{"address": "127.0.0.1", "port_value": adminPort}}}
	dyn := boot["dynamic_resources"].(map[string]any)
	dyn["lds_config"] = map[string]any{
		"path_config_source":   map[string]any{"path": ldsPath, "watched_directory": map[string]any{"path": dir}},
		"resource_api_version": "V3",
	}
	out, err := yaml.Marshal(boot)
	if err != nil {
		t.Fatal(err)
	}
	bootPath := filepath.Join(dir, "envoy.yaml")
	if err := os.WriteFile(bootPath, out, 0o600); err != nil {
		t.Fatal(err)
	}
	testenv.RunEnvoy(t, bootPath, "--drain-time-s", strconv.Itoa(int(bucketDrainTime/time.Second)))
	gateway := fmt.Sprintf("https://127.0.0.1:%d", ln.GetAddress().GetSocketAddress().GetPortValue())
	client, err := sb.HTTPClient(sb.AdminCertPEM, sb.AdminKeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	defer client.CloseIdleConnections()
	if err := poll(ctx, 300*time.Millisecond, func() (bool, error) {
		return sandbox.ExpectStatus(ctx, client, gateway+"/readyz", http.StatusOK) == nil, nil
	}); err != nil {
		t.Fatalf("the second Envoy never served %s/readyz: %v", gateway, err)
	}
	return gateway
}

// portInBucket is a free local port whose connections the listener puts
// in bucket k: reserved like a server's port, so neither the kernel (it is
// below the ephemeral range) nor another test process picks it.
func portInBucket(t *testing.T, k int) int {
	t.Helper()
	p, err := testenv.FreePortWhere(func(p int) bool {
		return p < 65536 && translator.PortBucket(uint16(p)) == k //nolint:gosec // checked above
	})
	if err != nil {
		t.Fatalf("no free port in bucket %d: %v", k, err)
	}
	return p
}
