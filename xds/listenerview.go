package xds

import (
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/kubefrontdoor/frontdoor/envoy"
	"github.com/kubefrontdoor/frontdoor/translator"
)

// listenOverride is what a node asks of its listener in its metadata
// (envoy.NodeMeta*); zero fields keep serve's.
type listenOverride struct {
	address string
	port    uint32
	extra   []uint32
	hasPort bool
}

// ListenerView gives a node the listener address and ports it asks for in
// its node metadata (frontdoor bootstrap --listen-address, --listen-port,
// --extra-listen-ports), so several Envoys on one host and one serve each
// bind their own. serve's main port maps to the node's, each extra port to
// the node's extra port in the same position (so it keeps its PROXY
// protocol setting; the proxy_protocol filter's per-port predicate is
// rewritten with it); serve's extra ports the node names no port for are
// not bound on it. A node without that metadata gets the listener as
// translated.
func ListenerView(node *corev3.Node, res map[string][]types.Resource) (map[string][]types.Resource, string, error) {
	o, err := parseListenOverride(node.GetMetadata())
	if err != nil || o == nil {
		return res, "", err
	}
	listeners := res[resourcev3.ListenerType]
	idx := -1
	for i, r := range listeners {
		if l, ok := r.(*listenerv3.Listener); ok && l.GetName() == envoy.ListenerName {
			idx = i
		}
	}
	if idx < 0 {
		return res, "", nil // nothing served yet: nothing to move
	}
	l := proto.Clone(listeners[idx]).(*listenerv3.Listener) //nolint:forcetypeassert // cloned from a *Listener
	main := l.GetAddress().GetSocketAddress()
	if main == nil {
		return nil, "", fmt.Errorf("listener %s has no socket address", l.GetName())
	}
	ports := map[uint32]uint32{} // serve's port → the node's
	if o.hasPort {
		ports[main.GetPortValue()] = o.port
	}
	var kept []*listenerv3.AdditionalAddress
	for i, a := range l.GetAdditionalAddresses() {
		sa := a.GetAddress().GetSocketAddress()
		switch {
		case sa == nil:
			kept = append(kept, a)
			continue
		case o.hasPort && i >= len(o.extra):
			continue // the node binds fewer extra ports than serve names
		case o.hasPort:
			ports[sa.GetPortValue()] = o.extra[i]
		}
		moveSocket(sa, o.address, ports)
		kept = append(kept, a)
	}
	l.AdditionalAddresses = kept
	moveSocket(main, o.address, ports)
	for _, f := range l.GetListenerFilters() {
		movePortPredicate(f.GetFilterDisabled(), ports)
	}

	out := make(map[string][]types.Resource, len(res))
	for typ, rs := range res {
		out[typ] = rs
	}
	moved := make([]types.Resource, len(listeners))
	copy(moved, listeners)
	moved[idx] = l
	out[resourcev3.ListenerType] = moved
	return out, o.tag(main.GetAddress(), main.GetPortValue()), nil
}

// moveSocket sets sa's address (unless empty) and maps its port.
func moveSocket(sa *corev3.SocketAddress, address string, ports map[uint32]uint32) {
	if address != "" {
		sa.Address = address
	}
	if p, ok := ports[sa.GetPortValue()]; ok {
		sa.PortSpecifier = &corev3.SocketAddress_PortValue{PortValue: p}
	}
}

// movePortPredicate maps the single-port destination ranges in p (the
// proxy_protocol filter's "plain port" predicate, see translator/ports.go).
func movePortPredicate(p *listenerv3.ListenerFilterChainMatchPredicate, ports map[uint32]uint32) {
	if p == nil {
		return
	}
	if r := p.GetDestinationPortRange(); r != nil && r.GetEnd() == r.GetStart()+1 && r.GetStart() >= 0 {
		if np, ok := ports[uint32(r.GetStart())]; ok {
			r.Start, r.End = int32(np), int32(np)+1 //nolint:gosec // TCP ports (checked by parseListenOverride)
		}
	}
	for _, sub := range p.GetOrMatch().GetRules() {
		movePortPredicate(sub, ports)
	}
	for _, sub := range p.GetAndMatch().GetRules() {
		movePortPredicate(sub, ports)
	}
	movePortPredicate(p.GetNotMatch(), ports)
}

// tag names the node's listener in its snapshot version.
func (o *listenOverride) tag(address string, port uint32) string {
	parts := []string{address, strconv.FormatUint(uint64(port), 10)}
	for _, p := range o.extra {
		parts = append(parts, strconv.FormatUint(uint64(p), 10))
	}
	return "listen=" + strings.Join(parts, ",")
}

// parseListenOverride reads the envoy.NodeMeta* fields; nil when there
// are none. Values a bootstrap would refuse are an error.
func parseListenOverride(md *structpb.Struct) (*listenOverride, error) {
	f := md.GetFields()
	addr, hasAddr := f[envoy.NodeMetaListenAddress]
	port, hasPort := f[envoy.NodeMetaListenPort]
	extra, hasExtra := f[envoy.NodeMetaExtraListenPorts]
	if !hasAddr && !hasPort && !hasExtra {
		return nil, nil
	}
	o := &listenOverride{hasPort: hasPort}
	if hasAddr {
		o.address = addr.GetStringValue()
		if _, err := netip.ParseAddr(o.address); err != nil {
			return nil, fmt.Errorf("node metadata %s: %q is not an IP address", envoy.NodeMetaListenAddress, o.address)
		}
	}
	if hasExtra && !hasPort {
		return nil, fmt.Errorf("node metadata %s needs %s", envoy.NodeMetaExtraListenPorts, envoy.NodeMetaListenPort)
	}
	if hasPort {
		p, err := portValue(envoy.NodeMetaListenPort, port)
		if err != nil {
			return nil, err
		}
		o.port = p
		if hasExtra {
			if extra.GetListValue() == nil {
				return nil, fmt.Errorf("node metadata %s is not a list", envoy.NodeMetaExtraListenPorts)
			}
			for _, v := range extra.GetListValue().GetValues() {
				p, err := portValue(envoy.NodeMetaExtraListenPorts, v)
				if err != nil {
					return nil, err
				}
				o.extra = append(o.extra, p)
			}
		}
		if err := translator.ListenerPorts(o.port, o.extra, nil); err != nil {
			return nil, fmt.Errorf("node metadata: %w", err)
		}
	}
	return o, nil
}

func portValue(field string, v *structpb.Value) (uint32, error) {
	n, ok := v.GetKind().(*structpb.Value_NumberValue)
	if !ok || n.NumberValue != math.Trunc(n.NumberValue) || n.NumberValue < 1 || n.NumberValue > 65535 {
		return 0, fmt.Errorf("node metadata %s: %v is not a TCP port", field, v.AsInterface())
	}
	return uint32(n.NumberValue), nil
}
