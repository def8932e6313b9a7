package envoy

import (
	"testing"
)

// TestListenOverrideBecomesNodeMetadata: the Envoy's own listener travels
// as node metadata under the names the control plane reads; no override,
// no metadata (the shared config, as before).
func TestListenOverrideBecomesNodeMetadata(t *testing.T) {
	b, err := Bootstrap(BootstrapOptions{NodeID: "n", XDSAddress: "127.0.0.1:1", AdminAddress: "127.0.0.1:2",
		Listen: &ListenOverride{Address: "127.0.0.2", Port: 7443, ExtraPorts: []uint32{7444, 7445}}})
	if err != nil {
		t.Fatal(err)
	}
	f := b.GetNode().GetMetadata().GetFields()
	if f[NodeMetaListenAddress].GetStringValue() != "127.0.0.2" || f[NodeMetaListenPort].GetNumberValue() != 7443 {
		t.Fatalf("node metadata %v", f)
	}
	extra := f[NodeMetaExtraListenPorts].GetListValue().GetValues()
	if len(extra) != 2 || extra[0].GetNumberValue() != 7444 || extra[1].GetNumberValue() != 7445 {
		t.Fatalf("extra ports metadata %v", extra)
	}
	logOnly, err := Bootstrap(BootstrapOptions{NodeID: "n", XDSAddress: "127.0.0.1:1", AdminAddress: "127.0.0.1:2", AccessLogPath: "/var/log/envoy-2.log"})
	if err != nil {
		t.Fatal(err)
	}
	if got := logOnly.GetNode().GetMetadata().GetFields()[NodeMetaAccessLogPath].GetStringValue(); got != "/var/log/envoy-2.log" {
		t.Fatalf("access log metadata %q", got)
	}
	if _, err := Bootstrap(BootstrapOptions{NodeID: "n", XDSAddress: "127.0.0.1:1", AdminAddress: "127.0.0.1:2", AccessLogPath: "envoy.log"}); err == nil {
		t.Fatal("a relative access log path was accepted")
	}
	plain, err := Bootstrap(BootstrapOptions{NodeID: "n", XDSAddress: "127.0.0.1:1", AdminAddress: "127.0.0.1:2"})
	if err != nil {
		t.Fatal(err)
	}
	if plain.GetNode().GetMetadata() != nil {
		t.Fatalf("metadata without an override: %v", plain.GetNode().GetMetadata())
	}
}

// TestBadListenOverrideIsRefused: what the control plane would refuse
// fails at bootstrap time instead of leaving an Envoy without config.
func TestBadListenOverrideIsRefused(t *testing.T) {
	for name, l := range map[string]ListenOverride{
		"address not an IP":  {Address: "localhost"},
		"port too big":       {Port: 70000},
		"extra without port": {ExtraPorts: []uint32{7444}},
		"extra repeats main": {Port: 7443, ExtraPorts: []uint32{7443}},
		"extra port zero":    {Port: 7443, ExtraPorts: []uint32{0}},
		"extra port too big": {Port: 7443, ExtraPorts: []uint32{65536}},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Bootstrap(BootstrapOptions{NodeID: "n", XDSAddress: "127.0.0.1:1", AdminAddress: "127.0.0.1:2", Listen: &l}); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}
