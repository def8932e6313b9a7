package translator

import (
	"fmt"
	"slices"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	proxyprotocolv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/proxy_protocol/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
)

// The listener's ports: one Envoy listener (one name, one drain, one set of
// filter chains) bound to the main port and any extra ports
// (additional_addresses), each of which may expect the PROXY protocol.

// proxyProtocolName is the listener filter that reads a PROXY protocol
// (v1 or v2) header before TLS and makes its source the connection's
// remote address: what the access log, the request service and the
// apiservers' audit sourceIPs (through X-Forwarded-For) then see.
const proxyProtocolName = "envoy.filters.listener.proxy_protocol"

// ListenerPorts checks a listener's ports: the main port, extra ports and
// the ports that expect the PROXY protocol are TCP ports, none repeats, and
// every PROXY protocol port is one the listener serves.
func ListenerPorts(main uint32, extra, proxyProtocol []uint32) error {
	all := append([]uint32{main}, extra...)
	for i, p := range all {
		if p == 0 || p > 65535 {
			return fmt.Errorf("listener port %d is not a TCP port", p)
		}
		if slices.Contains(all[:i], p) {
			return fmt.Errorf("listener port %d is given twice", p)
		}
	}
	for _, p := range proxyProtocol {
		if !slices.Contains(all, p) {
			return fmt.Errorf("PROXY protocol port %d is not one of the listener's ports %v", p, all)
		}
	}
	return nil
}

// additionalAddresses binds the listener's extra ports on its address.
func additionalAddresses(l ListenerIR) []*listenerv3.AdditionalAddress {
	var out []*listenerv3.AdditionalAddress
	for _, p := range l.ExtraPorts {
		out = append(out, &listenerv3.AdditionalAddress{Address: socketAddress(l.Address, p)})
	}
	return out
}

// proxyProtocolFilter reads the PROXY protocol header on the ports that
// expect one, before the tls_inspector. The header is required there (a
// connection without one is closed): a port that also took connections
// without it would let any client that reaches it claim any address. On
// every other port the filter is disabled by destination port, the
// connection's own local port (read before the header rewrites it). nil
// when no port expects the PROXY protocol.
func proxyProtocolFilter(l ListenerIR) *listenerv3.ListenerFilter {
	if len(l.Edge.ProxyProtocolPorts) == 0 {
		return nil
	}
	f := &listenerv3.ListenerFilter{
		Name:       proxyProtocolName,
		ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: mustAny(&proxyprotocolv3.ProxyProtocol{})},
	}
	var plain []*listenerv3.ListenerFilterChainMatchPredicate
	for _, p := range append([]uint32{l.Port}, l.ExtraPorts...) {
		if !slices.Contains(l.Edge.ProxyProtocolPorts, p) {
			plain = append(plain, &listenerv3.ListenerFilterChainMatchPredicate{
				Rule: &listenerv3.ListenerFilterChainMatchPredicate_DestinationPortRange{
					DestinationPortRange: &typev3.Int32Range{Start: int32(p), End: int32(p) + 1}, //nolint:gosec // TCP ports (ListenerPorts)
				},
			})
		}
	}
	switch len(plain) {
	case 0:
	case 1:
		f.FilterDisabled = plain[0]
	default:
		f.FilterDisabled = &listenerv3.ListenerFilterChainMatchPredicate{
			Rule: &listenerv3.ListenerFilterChainMatchPredicate_OrMatch{
				OrMatch: &listenerv3.ListenerFilterChainMatchPredicate_MatchSet{Rules: plain},
			},
		}
	}
	return f
}
