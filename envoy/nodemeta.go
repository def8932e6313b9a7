package envoy

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"

	"google.golang.org/protobuf/types/known/structpb"
)

// Node metadata fields an Envoy sends with its first xDS request, read by
// the control plane (xds.ListenerView) to specialize that node's config.
// Absent fields mean serve's own settings, so a bootstrap without them gets
// exactly the shared config.
const (
	// NodeMetaListenAddress is the IP address the node's listener binds.
	NodeMetaListenAddress = "frontdoor.dev/listen-address"
	// NodeMetaListenPort is the node's main listener port (a number).
	NodeMetaListenPort = "frontdoor.dev/listen-port"
	// NodeMetaExtraListenPorts is a list of numbers, the node's ports in
	// place of serve's --extra-listen-ports, in the same order.
	NodeMetaExtraListenPorts = "frontdoor.dev/extra-listen-ports"
	// NodeMetaAccessLogPath is the absolute path of the node's own access
	// log file, in place of serve's --access-log file.
	NodeMetaAccessLogPath = "frontdoor.dev/access-log-path"
)

// nodeMetadata renders l and accessLog as node metadata (nil for
// neither). It checks
// what the control plane would refuse, so a bad flag fails at bootstrap
// time instead of leaving an Envoy without config.
func nodeMetadata(l *ListenOverride, accessLog string) (*structpb.Struct, error) {
	fields := map[string]*structpb.Value{}
	if accessLog != "" {
		if !filepath.IsAbs(accessLog) {
			return nil, fmt.Errorf("bootstrap: access log %q is not an absolute path", accessLog)
		}
		fields[NodeMetaAccessLogPath] = structpb.NewStringValue(accessLog)
	}
	if l == nil || (l.Address == "" && l.Port == 0 && len(l.ExtraPorts) == 0) {
		if len(fields) == 0 {
			return nil, nil
		}
		return &structpb.Struct{Fields: fields}, nil
	}
	if l.Address != "" {
		if _, err := netip.ParseAddr(l.Address); err != nil {
			return nil, fmt.Errorf("bootstrap: listen address %q is not an IP address", l.Address)
		}
		fields[NodeMetaListenAddress] = structpb.NewStringValue(l.Address)
	}
	if len(l.ExtraPorts) > 0 && l.Port == 0 {
		return nil, fmt.Errorf("bootstrap: extra listen ports need a listen port")
	}
	all := l.ExtraPorts
	if l.Port != 0 {
		all = append([]uint32{l.Port}, l.ExtraPorts...)
		fields[NodeMetaListenPort] = structpb.NewNumberValue(float64(l.Port))
	}
	for i, p := range all {
		if p == 0 || p > 65535 {
			return nil, fmt.Errorf("bootstrap: listen port %d is not a TCP port", p)
		}
		if slices.Contains(all[:i], p) {
			return nil, fmt.Errorf("bootstrap: listen port %d is given twice", p)
		}
	}
	if len(l.ExtraPorts) > 0 {
		ports := make([]*structpb.Value, len(l.ExtraPorts))
		for i, p := range l.ExtraPorts {
			ports[i] = structpb.NewNumberValue(float64(p))
		}
		fields[NodeMetaExtraListenPorts] = structpb.NewListValue(&structpb.ListValue{Values: ports})
	}
	return &structpb.Struct{Fields: fields}, nil
}
