package envoy

import (
	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	overloadv3 "github.com/envoyproxy/go-control-plane/envoy/config/overload/v3"
	downstreamconnsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/resource_monitors/downstream_connections/v3"
	fixedheapv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/resource_monitors/fixed_heap/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Defaults of OverloadOptions, for a large cluster: tens of thousands of
// clients (every kubelet, kube-proxy and controller holds a connection).
// The file-descriptor limit of Envoy's container must be above
// DefaultMaxDownstreamConnections (each connection also costs an upstream
// share and a few fds of Envoy's own).
const (
	DefaultMaxDownstreamConnections = 100_000
	// DefaultMaxHeapBytes is the heap the overload manager measures its
	// actions against: set it to Envoy's memory limit less headroom for
	// what tcmalloc does not count (about 10%).
	DefaultMaxHeapBytes = 4 << 30
)

// Names of the resource monitors and overload actions (Envoy's own).
const (
	fixedHeapMonitor       = "envoy.resource_monitors.fixed_heap"
	downstreamConnsMonitor = "envoy.resource_monitors.global_downstream_max_connections"

	actionShrinkHeap        = "envoy.overload_actions.shrink_heap"
	actionDisableKeepalive  = "envoy.overload_actions.disable_http_keepalive"
	actionStopRequests      = "envoy.overload_actions.stop_accepting_requests"
	actionRejectConnections = "envoy.overload_actions.reject_incoming_connections"
)

// heapActions are the overload actions on heap pressure, as fractions of
// the maximum heap, in the order they fire: return free memory to the
// system; then ask clients to go elsewhere (HTTP/2 GOAWAY, HTTP/1.1
// Connection: close), which client-go answers by reconnecting, through the
// Service, to another replica; then shed new requests (503) and new
// connections. All before the kernel's OOM killer ends every watch at once.
var heapActions = []struct {
	name      string
	threshold float64
}{
	{actionShrinkHeap, 0.90},
	{actionDisableKeepalive, 0.92},
	{actionStopRequests, 0.95},
	{actionRejectConnections, 0.95},
}

// OverloadOptions bound what one Envoy holds before it sheds load. Zero
// fields take the defaults.
type OverloadOptions struct {
	// MaxDownstreamConnections caps client connections over every listener
	// but the admin one: a connection beyond it is closed at accept.
	MaxDownstreamConnections uint64
	// MaxHeapBytes is the heap the heap actions are fractions of.
	MaxHeapBytes uint64
}

// overloadManager is the bootstrap's overload manager: a global connection
// limit (Envoy has none by default and says so in its log) and the heap
// actions.
func overloadManager(o OverloadOptions) *overloadv3.OverloadManager {
	if o.MaxDownstreamConnections == 0 {
		o.MaxDownstreamConnections = DefaultMaxDownstreamConnections
	}
	if o.MaxHeapBytes == 0 {
		o.MaxHeapBytes = DefaultMaxHeapBytes
	}
	om := &overloadv3.OverloadManager{
		ResourceMonitors: []*overloadv3.ResourceMonitor{
			{Name: fixedHeapMonitor, ConfigType: &overloadv3.ResourceMonitor_TypedConfig{
				TypedConfig: mustAny(&fixedheapv3.FixedHeapConfig{MaxHeapSizeBytes: o.MaxHeapBytes}),
			}},
			{Name: downstreamConnsMonitor, ConfigType: &overloadv3.ResourceMonitor_TypedConfig{
				TypedConfig: mustAny(&downstreamconnsv3.DownstreamConnectionsConfig{
					MaxActiveDownstreamConnections: int64(min(o.MaxDownstreamConnections, 1<<62)), //nolint:gosec // capped
				}),
			}},
		},
	}
	for _, a := range heapActions {
		om.Actions = append(om.Actions, &overloadv3.OverloadAction{
			Name: a.name,
			Triggers: []*overloadv3.Trigger{{
				Name:         fixedHeapMonitor,
				TriggerOneof: &overloadv3.Trigger_Threshold{Threshold: &overloadv3.ThresholdTrigger{Value: a.threshold}},
			}},
		})
	}
	return om
}

// RuntimeGuardPauseUpgradeBody makes Envoy hold the bytes a client sends
// after a generic (SPDY) upgrade request until the upstream answers 101.
// Without it, a client could pipeline a whole second request behind an
// upgrade the apiserver refuses, and that request would reach the
// apiserver on the gateway's connection, with the gateway's certificate and
// impersonation rights, never seen by the request service.
const RuntimeGuardPauseUpgradeBody = "envoy.reloadable_features.http_pause_generic_upgrade_request_body"

// staticRuntime pins the runtime guards Frontdoor's safety depends on, so
// an Envoy release that flips a default (or a stray runtime override) does
// not silently change them. There is deliberately no admin layer: these
// cannot be changed through the admin API.
func staticRuntime() *bootstrapv3.LayeredRuntime {
	return &bootstrapv3.LayeredRuntime{Layers: []*bootstrapv3.RuntimeLayer{{
		Name: "frontdoor-pinned",
		LayerSpecifier: &bootstrapv3.RuntimeLayer_StaticLayer{StaticLayer: &structpb.Struct{Fields: map[string]*structpb.Value{
			RuntimeGuardPauseUpgradeBody: structpb.NewBoolValue(true),
		}}},
	}}}
}

// controlPlaneMaxRequests bounds concurrent calls on the frontdoor cluster
// (ext_authz checks, ext_proc streams, the policy feed and ADS share it).
// Envoy's default of 1024 is a real limit for a gateway: at 512 requests/s
// and 2 s per check (a slow webhook token authenticator behind TokenReview)
// it is full, and then every request through this Envoy gets 503, x509
// clients included; in ExtProc mode each request holds a stream until the
// upstream's response headers arrive. Concurrency towards the request
// service is bounded where it should be (the listener's connection limit,
// each check's timeout, the request service's own limits), so the circuit
// breaker is set far above any of them: it only catches a runaway.
// upstream_rq_pending_overflow / upstream_rq_overflow on the frontdoor
// cluster show if it ever trips; remaining_rq (track_remaining) shows the
// headroom.
const controlPlaneMaxRequests = 1_000_000

// controlPlaneCircuitBreakers are the frontdoor cluster's thresholds, the
// same for both priorities.
func controlPlaneCircuitBreakers() *clusterv3.CircuitBreakers {
	th := func(p corev3.RoutingPriority) *clusterv3.CircuitBreakers_Thresholds {
		return &clusterv3.CircuitBreakers_Thresholds{
			Priority:           p,
			MaxConnections:     wrapperspb.UInt32(controlPlaneMaxRequests),
			MaxPendingRequests: wrapperspb.UInt32(controlPlaneMaxRequests),
			MaxRequests:        wrapperspb.UInt32(controlPlaneMaxRequests),
			TrackRemaining:     true,
		}
	}
	return &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{
		th(corev3.RoutingPriority_DEFAULT),
		th(corev3.RoutingPriority_HIGH),
	}}
}

// mustAny packs a message that always marshals (plain config protos).
func mustAny(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic("envoy: packing " + string(m.ProtoReflect().Descriptor().FullName()) + ": " + err.Error())
	}
	return a
}
