package translator

import (
	"testing"
)

// With every port expecting the PROXY protocol, the filter is never
// disabled; with none, there is no filter.
func TestProxyProtocolFilterPorts(t *testing.T) {
	all := ListenerIR{Port: 6443, ExtraPorts: []uint32{8443}, Edge: EdgeOptions{ProxyProtocolPorts: []uint32{8443, 6443}}}
	if f := proxyProtocolFilter(all); f == nil || f.FilterDisabled != nil {
		t.Errorf("every port PROXY protocol: filter %v, want one that is never disabled", f)
	}
	one := ListenerIR{Port: 6443, ExtraPorts: []uint32{8443}, Edge: EdgeOptions{ProxyProtocolPorts: []uint32{8443}}}
	f := proxyProtocolFilter(one)
	if r := f.GetFilterDisabled().GetDestinationPortRange(); r.GetStart() != 6443 || r.GetEnd() != 6444 {
		t.Errorf("PROXY protocol on 8443 only: disabled on %v, want exactly 6443", r)
	}
	if f := proxyProtocolFilter(ListenerIR{Port: 6443, ExtraPorts: []uint32{8443}}); f != nil {
		t.Errorf("no PROXY protocol port: filter %v", f)
	}
}

func TestListenerPorts(t *testing.T) {
	if err := ListenerPorts(6443, []uint32{443}, []uint32{443}); err != nil {
		t.Error(err)
	}
	for name, err := range map[string]error{
		"repeated":        ListenerPorts(6443, []uint32{6443}, nil),
		"zero":            ListenerPorts(0, nil, nil),
		"too large":       ListenerPorts(6443, []uint32{65536}, nil),
		"proxy elsewhere": ListenerPorts(6443, nil, []uint32{443}),
	} {
		if err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
