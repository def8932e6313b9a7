package xds

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	dynmodfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/dynamic_modules/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/kubefrontdoor/frontdoor/api/v1alpha1"
	"github.com/kubefrontdoor/frontdoor/envoy"
	"github.com/kubefrontdoor/frontdoor/internal/testgrpc"
	"github.com/kubefrontdoor/frontdoor/translator"
)

// fleetOptions serve 6443 plus 6444, a PROXY protocol port, as the sandbox does.
var fleetOptions = translator.Options{
	ListenerAddress: "127.0.0.1", ListenerPort: 6443, ListenerExtraPorts: []uint32{6444},
	Edge: translator.EdgeOptions{ProxyProtocolPorts: []uint32{6444}},
}

// listenMeta is the node metadata `frontdoor bootstrap --listen-port port
// --extra-listen-ports extra...` sends.
func listenMeta(t *testing.T, port float64, extra ...any) *structpb.Struct {
	t.Helper()
	m := map[string]any{envoy.NodeMetaListenPort: port}
	if len(extra) > 0 {
		m[envoy.NodeMetaExtraListenPorts] = extra
	}
	s, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// adsStream opens one more delta ADS stream on conn (one server, as the
// Envoys of a fleet share one serve) as node, subscribing to typeURL, and
// returns it with its first response.
func adsStream(ctx context.Context, t *testing.T, conn grpc.ClientConnInterface, node *corev3.Node, typeURL string) (discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesClient, *discoveryv3.DeltaDiscoveryResponse) {
	t.Helper()
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).DeltaAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&discoveryv3.DeltaDiscoveryRequest{Node: node, TypeUrl: typeURL}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	return stream, resp
}

func decodeListener(t *testing.T, resp *discoveryv3.DeltaDiscoveryResponse) *listenerv3.Listener {
	t.Helper()
	if len(resp.GetResources()) != 1 {
		t.Fatalf("LDS response has %d resources, want 1", len(resp.GetResources()))
	}
	l := &listenerv3.Listener{}
	if err := resp.GetResources()[0].GetResource().UnmarshalTo(l); err != nil {
		t.Fatal(err)
	}
	return l
}

// listenerPorts are the listener's main port, its additional ports, and
// the ports its proxy_protocol filter is disabled on (the plain ones).
func listenerPorts(l *listenerv3.Listener) (main uint32, extra, plain []uint32) {
	main = l.GetAddress().GetSocketAddress().GetPortValue()
	for _, a := range l.GetAdditionalAddresses() {
		extra = append(extra, a.GetAddress().GetSocketAddress().GetPortValue())
	}
	for _, f := range l.GetListenerFilters() {
		if r := f.GetFilterDisabled().GetDestinationPortRange(); r != nil {
			plain = append(plain, uint32(r.GetStart())) //nolint:gosec // a port
		}
	}
	return main, extra, plain
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestNodesGetTheirOwnListener: two Envoys on one serve. The one without
// node metadata gets serve's listener and the translated version; the one
// asking for port 7443 (extra 7444) gets its listener there, the PROXY
// protocol setting moved with the port, a version made from the same
// translation; both ACKs count for Programmed; an edit reaches both with
// the node's listener kept.
func TestNodesGetTheirOwnListener(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := NewController(ControllerOptions{Translator: fleetOptions, Registry: prometheus.NewRegistry()})
	in := goldenInputs(t, "one-cluster")
	if err := c.Update(ctx, in); err != nil {
		t.Fatal(err)
	}
	conn := testgrpc.Loopback(t, func(gs *grpc.Server) { c.RegisterADS(ctx, gs) })
	sa, ra := adsStream(ctx, t, conn, &corev3.Node{Id: "envoy-a"}, resourcev3.ListenerType)
	sb, rb := adsStream(ctx, t, conn, &corev3.Node{Id: "envoy-b", Metadata: listenMeta(t, 7443, 7444)}, resourcev3.ListenerType)

	base := c.Current().Version
	if ra.GetSystemVersionInfo() != base {
		t.Fatalf("envoy-a version %q, want the translated %q", ra.GetSystemVersionInfo(), base)
	}
	if v := rb.GetSystemVersionInfo(); v == base || baseVersion(v) != base {
		t.Fatalf("envoy-b version %q, want one made from %q with its own tag", v, base)
	}
	main, extra, plain := listenerPorts(decodeListener(t, ra))
	if main != 6443 || len(extra) != 1 || extra[0] != 6444 || len(plain) != 1 || plain[0] != 6443 {
		t.Fatalf("envoy-a listener: main %d extra %v plain %v; want 6443 [6444] [6443]", main, extra, plain)
	}
	lb := decodeListener(t, rb)
	main, extra, plain = listenerPorts(lb)
	if main != 7443 || len(extra) != 1 || extra[0] != 7444 || len(plain) != 1 || plain[0] != 7443 {
		t.Fatalf("envoy-b listener: main %d extra %v plain %v; want 7443 [7444] [7443] (7444 keeps the PROXY protocol)", main, extra, plain)
	}
	if got := lb.GetAddress().GetSocketAddress().GetAddress(); got != "127.0.0.1" {
		t.Fatalf("envoy-b listener address %q, want serve's 127.0.0.1", got)
	}

	for _, s := range []struct {
		stream discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesClient
		resp   *discoveryv3.DeltaDiscoveryResponse
	}{{sa, ra}, {sb, rb}} {
		if err := s.stream.Send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.ListenerType, ResponseNonce: s.resp.GetNonce()}); err != nil {
			t.Fatal(err)
		}
	}
	programmed := func() string {
		return condition(findStatus(t, c.Statuses(), "alpha"), v1alpha1.ConditionProgrammed).Message
	}
	waitFor(t, "both ACKs to count", func() bool { return strings.Contains(programmed(), "acknowledged by 2 of 2 connected Envoys") })

	// An edit reaches both; each keeps its own listener.
	next := edit(in, "alpha", func(uc *v1alpha1.UpstreamCluster) { uc.Spec.SecureServing.ServerNames = []string{"alpha.example.com"} })
	if err := c.Update(ctx, next); err != nil {
		t.Fatal(err)
	}
	ra, err := sa.Recv()
	if err != nil {
		t.Fatal(err)
	}
	rb, err = sb.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if baseVersion(ra.GetSystemVersionInfo()) != c.Current().Version || baseVersion(rb.GetSystemVersionInfo()) != c.Current().Version || c.Current().Version == base {
		t.Fatalf("after the edit: versions %q and %q, want both made from the new %q", ra.GetSystemVersionInfo(), rb.GetSystemVersionInfo(), c.Current().Version)
	}
	if main, _, _ := listenerPorts(decodeListener(t, rb)); main != 7443 {
		t.Fatalf("envoy-b listener after the edit on %d, want 7443", main)
	}
	if main, _, _ := listenerPorts(decodeListener(t, ra)); main != 6443 {
		t.Fatalf("envoy-a listener after the edit on %d, want 6443", main)
	}
	waitFor(t, "the new snapshot to await ACKs", func() bool { return strings.Contains(programmed(), "acknowledged by 0 of 2 connected Envoys") })
	if err := sb.Send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.ListenerType, ResponseNonce: rb.GetNonce()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "envoy-b's ACK of the edit", func() bool { return strings.Contains(programmed(), "acknowledged by 1 of 2 connected Envoys") })
}

// TestNodeWithFewerExtraPorts: a node that names a listen port but no
// extra ports binds only its own port (never serve's extra port, which the
// first Envoy holds); the PROXY protocol filter then has nothing to skip
// but its main port.
func TestNodeWithFewerExtraPorts(t *testing.T) {
	out := translator.Translate(translator.Inputs{Options: fleetOptions, UpstreamClusters: goldenInputs(t, "one-cluster").UpstreamClusters, Secrets: goldenInputs(t, "one-cluster").Secrets})
	res, tag, err := ListenerView(&corev3.Node{Id: "n", Metadata: listenMeta(t, 7443)}, out.Resources)
	if err != nil || tag == "" {
		t.Fatalf("ListenerView: tag %q, err %v", tag, err)
	}
	var l *listenerv3.Listener
	for _, r := range res[resourcev3.ListenerType] {
		l = r.(*listenerv3.Listener) //nolint:forcetypeassert // LDS holds listeners
	}
	main, extra, plain := listenerPorts(l)
	if main != 7443 || len(extra) != 0 || len(plain) != 1 || plain[0] != 7443 {
		t.Fatalf("listener: main %d extra %v plain %v; want 7443 [] [7443]", main, extra, plain)
	}
	// The shared output is untouched.
	shared := out.Resources[resourcev3.ListenerType][0].(*listenerv3.Listener) //nolint:forcetypeassert // LDS holds listeners
	if main, extra, _ := listenerPorts(shared); main != 6443 || len(extra) != 1 {
		t.Fatalf("the shared listener changed: main %d extra %v", main, extra)
	}
}

// TestBadNodeMetadataLeavesOnlyThatNodeWithoutConfig: metadata asking for
// port 70000 is an error for that node (counted, no snapshot), not for the
// control plane: the next node is served.
func TestBadNodeMetadataLeavesOnlyThatNodeWithoutConfig(t *testing.T) {
	for name, md := range map[string]*structpb.Struct{
		"port too big":       listenMeta(t, 70000),
		"fractional port":    listenMeta(t, 7443.5),
		"extra port repeats": listenMeta(t, 7443, 7443),
		"address not an IP":  {Fields: map[string]*structpb.Value{envoy.NodeMetaListenAddress: structpb.NewStringValue("localhost")}},
		"extra without port": {Fields: map[string]*structpb.Value{envoy.NodeMetaExtraListenPorts: structpb.NewListValue(&structpb.ListValue{})}},
		"port is a string":   {Fields: map[string]*structpb.Value{envoy.NodeMetaListenPort: structpb.NewStringValue("7443")}},
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			c := NewController(ControllerOptions{Translator: fleetOptions, Registry: prometheus.NewRegistry()})
			if err := c.Update(ctx, goldenInputs(t, "one-cluster")); err != nil {
				t.Fatal(err)
			}
			conn := testgrpc.Loopback(t, func(gs *grpc.Server) { c.RegisterADS(ctx, gs) })
			bad, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).DeltaAggregatedResources(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := bad.Send(&discoveryv3.DeltaDiscoveryRequest{Node: &corev3.Node{Id: "bad", Metadata: md}, TypeUrl: resourcev3.ListenerType}); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the node error to be counted", func() bool { return testutil.ToFloat64(c.metrics.nodeErrors) == 1 })
			if v, known := c.Nodes()["bad"]; !known || v != "" {
				t.Fatalf("node bad: known %v, version %q; want known without a snapshot", known, v)
			}
			_, resp := adsStream(ctx, t, conn, &corev3.Node{Id: "good"}, resourcev3.ListenerType)
			if resp.GetSystemVersionInfo() != c.Current().Version {
				t.Fatalf("node good got version %q, want %q", resp.GetSystemVersionInfo(), c.Current().Version)
			}
		})
	}
}

// TestDisconnectedNodesAreForgotten: a node's snapshot outlives its stream
// (a reconnect finds its state) but not nodeRetention; forgetting happens
// when another node connects or a config is published.
func TestDisconnectedNodesAreForgotten(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := NewController(ControllerOptions{Translator: fleetOptions, Registry: prometheus.NewRegistry()})
	now := time.Now()
	c.now = func() time.Time { return now }
	if err := c.Update(ctx, goldenInputs(t, "one-cluster")); err != nil {
		t.Fatal(err)
	}
	conn := testgrpc.Loopback(t, func(gs *grpc.Server) { c.RegisterADS(ctx, gs) })
	sctx, scancel := context.WithCancel(ctx)
	adsStream(sctx, t, conn, &corev3.Node{Id: "old"}, resourcev3.ListenerType)
	scancel()
	waitFor(t, "the stream to close", func() bool { return c.ConnectedProxies() == 0 })

	now = now.Add(nodeRetention - time.Second)
	adsStream(ctx, t, conn, &corev3.Node{Id: "new-1"}, resourcev3.ListenerType)
	if _, known := c.Nodes()["old"]; !known {
		t.Fatal("node old forgotten before nodeRetention")
	}
	now = now.Add(2 * time.Second)
	adsStream(ctx, t, conn, &corev3.Node{Id: "new-2"}, resourcev3.ListenerType)
	if _, known := c.Nodes()["old"]; known {
		t.Fatal("node old still known after nodeRetention")
	}
	if _, err := c.cache.GetSnapshot("old"); err == nil {
		t.Fatal("node old's snapshot is still in the cache")
	}
	if _, known := c.Nodes()["new-1"]; !known {
		t.Fatal("connected node new-1 forgotten")
	}
}

// TestRepublishNodeAppliesAViewsOwnState is the hook per-node state (a
// paced drain) builds on: a view reading its own state about one node, and
// RepublishNode after that state changes, changes that node's config only.
func TestRepublishNodeAppliesAViewsOwnState(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	draining := map[string]bool{}
	drain := func(node *corev3.Node, res map[string][]types.Resource) (map[string][]types.Resource, string, error) {
		if !draining[node.GetId()] {
			return res, "", nil
		}
		out := map[string][]types.Resource{}
		for typ, rs := range res {
			out[typ] = rs
		}
		var ls []types.Resource
		for _, r := range res[resourcev3.ListenerType] {
			l := proto.Clone(r).(*listenerv3.Listener) //nolint:forcetypeassert // LDS holds listeners
			l.FilterChains = nil
			ls = append(ls, l)
		}
		out[resourcev3.ListenerType] = ls
		return out, "drained", nil
	}
	c := NewController(ControllerOptions{Translator: fleetOptions, Registry: prometheus.NewRegistry(),
		NodeViews: append([]NodeView{drain}, DefaultNodeViews...)})
	if err := c.Update(ctx, goldenInputs(t, "one-cluster")); err != nil {
		t.Fatal(err)
	}
	conn := testgrpc.Loopback(t, func(gs *grpc.Server) { c.RegisterADS(ctx, gs) })
	sa, ra := adsStream(ctx, t, conn, &corev3.Node{Id: "a"}, resourcev3.ListenerType)
	sb, rb := adsStream(ctx, t, conn, &corev3.Node{Id: "b", Metadata: listenMeta(t, 7443)}, resourcev3.ListenerType)
	for _, p := range []struct {
		s discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesClient
		r *discoveryv3.DeltaDiscoveryResponse
	}{{sa, ra}, {sb, rb}} {
		if err := p.s.Send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.ListenerType, ResponseNonce: p.r.GetNonce()}); err != nil {
			t.Fatal(err)
		}
	}

	draining["b"] = true
	c.RepublishNode(ctx, "b")
	rb, err := sb.Recv()
	if err != nil {
		t.Fatal(err)
	}
	lb := decodeListener(t, rb)
	if len(lb.GetFilterChains()) != 0 || lb.GetAddress().GetSocketAddress().GetPortValue() != 7443 {
		t.Fatalf("node b after RepublishNode: %d filter chains on port %d, want 0 on 7443 (both views applied)",
			len(lb.GetFilterChains()), lb.GetAddress().GetSocketAddress().GetPortValue())
	}
	if want := NodeVersion(c.Current().Version, "drained", "listen=127.0.0.1,7443"); rb.GetSystemVersionInfo() != want {
		t.Fatalf("node b version %q, want %q", rb.GetSystemVersionInfo(), want)
	}
	if c.Nodes()["a"] != c.Current().Version {
		t.Fatalf("node a's version changed to %q", c.Nodes()["a"])
	}
	// Node a got nothing new.
	rctx, rcancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer rcancel()
	done := make(chan error, 1)
	go func() { _, err := sa.Recv(); done <- err }()
	select {
	case err := <-done:
		t.Fatalf("node a received a response (err %v); only b's state changed", err)
	case <-rctx.Done():
	}
}

// TestNodeViewMayNotDropAReferencedResource: a view's result is checked
// before it is served: a listener whose route is gone is refused for that
// node (counted), which keeps its previous snapshot.
func TestNodeViewMayNotDropAReferencedResource(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	broken := false
	dropRoutes := func(_ *corev3.Node, res map[string][]types.Resource) (map[string][]types.Resource, string, error) {
		if !broken {
			return res, "", nil
		}
		out := map[string][]types.Resource{}
		for typ, rs := range res {
			out[typ] = rs
		}
		delete(out, resourcev3.RouteType)
		return out, "no-routes", nil
	}
	c := NewController(ControllerOptions{Translator: fleetOptions, Registry: prometheus.NewRegistry(), NodeViews: []NodeView{dropRoutes}})
	if err := c.Update(ctx, goldenInputs(t, "one-cluster")); err != nil {
		t.Fatal(err)
	}
	conn := testgrpc.Loopback(t, func(gs *grpc.Server) { c.RegisterADS(ctx, gs) })
	adsStream(ctx, t, conn, &corev3.Node{Id: "n"}, resourcev3.ListenerType)
	broken = true
	c.RepublishNode(ctx, "n")
	if got := testutil.ToFloat64(c.metrics.nodeErrors); got != 1 {
		t.Fatalf("node errors = %v, want 1", got)
	}
	if c.Nodes()["n"] != c.Current().Version {
		t.Fatalf("node n at %q, want its previous snapshot %q", c.Nodes()["n"], c.Current().Version)
	}
}

// TestNodeGetsItsOwnAccessLog: a node naming its own access log file gets
// every file access log moved there, serve's file stays in the shared
// output; a relative path is refused.
func TestNodeGetsItsOwnAccessLog(t *testing.T) {
	opts := fleetOptions
	opts.AccessLogPath = "/var/log/frontdoor/shared.log"
	in := goldenInputs(t, "one-cluster")
	in.Options = opts
	out := translator.Translate(in)
	meta := func(p string) *structpb.Struct {
		return &structpb.Struct{Fields: map[string]*structpb.Value{envoy.NodeMetaAccessLogPath: structpb.NewStringValue(p)}}
	}
	res, tag, err := AccessLogView(&corev3.Node{Id: "n", Metadata: meta("/var/log/frontdoor/envoy-2.log")}, out.Resources)
	if err != nil || tag == "" {
		t.Fatalf("AccessLogView: tag %q, err %v", tag, err)
	}
	paths := func(res map[string][]types.Resource) []string {
		var ps []string
		eachHCM(t, res, func(hcm *hcmv3.HttpConnectionManager) {
			for _, al := range hcm.GetAccessLog() {
				file := &filev3.FileAccessLog{}
				if err := al.GetTypedConfig().UnmarshalTo(file); err != nil {
					t.Fatal(err)
				}
				ps = append(ps, file.GetPath())
			}
		})
		return ps
	}
	if got := paths(res); len(got) == 0 || slices.ContainsFunc(got, func(p string) bool { return p != "/var/log/frontdoor/envoy-2.log" }) {
		t.Fatalf("node's access logs %v, want every one at /var/log/frontdoor/envoy-2.log", got)
	}
	if got := paths(out.Resources); len(got) == 0 || got[0] != "/var/log/frontdoor/shared.log" {
		t.Fatalf("the shared output's access logs changed: %v", got)
	}
	if _, _, err := AccessLogView(&corev3.Node{Id: "n", Metadata: meta("envoy.log")}, out.Resources); err == nil {
		t.Fatal("a relative access log path was accepted")
	}
}

// TestNodeGetsItsOwnModuleAccessLog: in process the module writes the
// lines of the requests it filters, so its config's access log file moves
// with Envoy's; a module logging to stdout stays there.
func TestNodeGetsItsOwnModuleAccessLog(t *testing.T) {
	in := goldenInputs(t, "inprocess")
	in.Options.AccessLogPath = "/var/log/frontdoor/shared.log"
	out := translator.Translate(in)
	meta := &structpb.Struct{Fields: map[string]*structpb.Value{envoy.NodeMetaAccessLogPath: structpb.NewStringValue("/var/log/frontdoor/envoy-2.log")}}
	moduleLogs := func(res map[string][]types.Resource) []string {
		var ps []string
		eachHCM(t, res, func(hcm *hcmv3.HttpConnectionManager) {
			for _, hf := range hcm.GetHttpFilters() {
				dm := &dynmodfilterv3.DynamicModuleFilter{}
				if hf.GetName() != envoy.InProcessFilterName || hf.GetTypedConfig().UnmarshalTo(dm) != nil {
					continue
				}
				raw := &wrapperspb.StringValue{}
				var cfg envoy.InProcessConfig
				if err := dm.GetFilterConfig().UnmarshalTo(raw); err != nil || json.Unmarshal([]byte(raw.GetValue()), &cfg) != nil || cfg.AccessLog == nil {
					t.Fatalf("the module's config %q: %v", raw.GetValue(), err)
				}
				ps = append(ps, cfg.AccessLog.Path)
			}
		})
		return ps
	}
	res, _, err := AccessLogView(&corev3.Node{Id: "n", Metadata: meta}, out.Resources)
	if err != nil {
		t.Fatal(err)
	}
	if got := moduleLogs(res); len(got) == 0 || slices.ContainsFunc(got, func(p string) bool { return p != "/var/log/frontdoor/envoy-2.log" }) {
		t.Fatalf("the node's module access logs %v, want every one at /var/log/frontdoor/envoy-2.log", got)
	}
	if got := moduleLogs(out.Resources); len(got) == 0 || got[0] != "/var/log/frontdoor/shared.log" {
		t.Fatalf("the shared output's module access logs changed: %v", got)
	}

	in.Options.AccessLogPath = "" // stdout: each Envoy's own already
	out = translator.Translate(in)
	if res, tag, err := AccessLogView(&corev3.Node{Id: "n", Metadata: meta}, out.Resources); err != nil || tag != "" || !slices.Equal(moduleLogs(res), []string{""}) {
		t.Fatalf("stdout module log: tag %q, err %v, paths %q; want it untouched", tag, err, moduleLogs(res))
	}
}

// eachHCM calls fn with every HTTP connection manager of res's listeners.
func eachHCM(t *testing.T, res map[string][]types.Resource, fn func(*hcmv3.HttpConnectionManager)) {
	t.Helper()
	for _, r := range res[resourcev3.ListenerType] {
		for _, fc := range r.(*listenerv3.Listener).GetFilterChains() { //nolint:forcetypeassert // LDS holds listeners
			for _, f := range fc.GetFilters() {
				hcm := &hcmv3.HttpConnectionManager{}
				if err := f.GetTypedConfig().UnmarshalTo(hcm); err != nil {
					t.Fatal(err)
				}
				fn(hcm)
			}
		}
	}
}
