package translator_test

import (
	"strconv"
	"strings"
	"testing"

	xdsmatcherv3 "github.com/cncf/xds/go/xds/type/matcher/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/kubefrontdoor/frontdoor/translator"
)

// bucketListener is the listener of the drain-buckets golden case.
func bucketListener(t *testing.T, name string) *listenerv3.Listener {
	t.Helper()
	out := translator.Translate(loadCase(t, name))
	ls := out.Resources[resourcev3.ListenerType]
	if len(ls) != 1 {
		t.Fatalf("%s: %d listeners", name, len(ls))
	}
	return ls[0].(*listenerv3.Listener)
}

// selectChain evaluates the listener's filter_chain_matcher as Envoy does
// for a connection with server name sni from source port port, for the
// matcher shapes SplitBuckets builds (domain matcher, then a list of
// suffix predicates). It returns the chain name, or "" for no chain.
func selectChain(t *testing.T, m *xdsmatcherv3.Matcher, sni string, port uint16) string {
	t.Helper()
	if m == nil {
		return ""
	}
	if tree := m.GetMatcherTree(); tree != nil {
		var sn xdsmatcherv3.ServerNameMatcher
		if err := tree.GetCustomMatch().GetTypedConfig().UnmarshalTo(&sn); err != nil {
			t.Fatal(err)
		}
		best, bestLen := (*xdsmatcherv3.Matcher)(nil), -1
		for _, d := range sn.GetDomainMatchers() {
			for _, dom := range d.GetDomains() {
				switch {
				case dom == sni:
					best, bestLen = d.GetOnMatch().GetMatcher(), 1<<30
				case strings.HasPrefix(dom, "*.") && strings.HasSuffix(sni, dom[1:]) && len(dom) > bestLen:
					best, bestLen = d.GetOnMatch().GetMatcher(), len(dom)
				}
			}
		}
		if best != nil {
			return selectChain(t, best, sni, port)
		}
		return onMatch(t, m.GetOnNoMatch(), sni, port)
	}
	p := strconv.Itoa(int(port))
	for _, fm := range m.GetMatcherList().GetMatchers() {
		for _, pred := range fm.GetPredicate().GetOrMatcher().GetPredicate() {
			if strings.HasSuffix(p, pred.GetSinglePredicate().GetValueMatch().GetSuffix()) {
				return onMatch(t, fm.GetOnMatch(), sni, port)
			}
		}
	}
	return onMatch(t, m.GetOnNoMatch(), sni, port)
}

func onMatch(t *testing.T, om *xdsmatcherv3.Matcher_OnMatch, sni string, port uint16) string {
	t.Helper()
	if om == nil {
		return ""
	}
	if m := om.GetMatcher(); m != nil {
		return selectChain(t, m, sni, port)
	}
	var name wrapperspb.StringValue
	if err := om.GetAction().GetTypedConfig().UnmarshalTo(&name); err != nil {
		t.Fatal(err)
	}
	return name.GetValue()
}

// TestSplitBucketsSelection: with drain buckets on, a connection reaches
// the cluster its SNI named before (exact name, longest wildcard, else the
// cluster without server names) and, within it, the bucket PortBucket
// gives its source port; every selected chain exists.
func TestSplitBucketsSelection(t *testing.T) {
	ln := bucketListener(t, "drain-buckets")
	chains := map[string]bool{}
	for _, fc := range ln.GetFilterChains() {
		chains[fc.GetName()] = true
		if fc.GetFilterChainMatch() != nil {
			t.Errorf("chain %s keeps a filter_chain_match (ignored once the listener has a matcher)", fc.GetName())
		}
	}
	if len(chains) != 3*translator.ConnectionBuckets {
		t.Fatalf("%d chains, want %d", len(chains), 3*translator.ConnectionBuckets)
	}
	for _, c := range []struct{ sni, cluster string }{
		{"alpha.example.com", "alpha"},
		{"beta.example.com", "beta"},
		{"x.beta.example.com", "beta"},
		{"other.example.com", "fallback"},
		{"", "fallback"},
	} {
		for _, port := range []uint16{1, 9, 10, 11, 42, 43, 99, 100, 1024, 32768, 40001, 60998, 65535} {
			want := c.cluster + "/bucket-" + strconv.Itoa(translator.PortBucket(port))
			if got := selectChain(t, ln.GetFilterChainMatcher(), c.sni, port); got != want {
				t.Errorf("SNI %q port %d: chain %q, want %q", c.sni, port, got, want)
			}
		}
	}
}

// TestPortBucketSpread: even ports alone (Linux's first choice for
// connect()) and odd ports alone both spread evenly over the buckets.
func TestPortBucketSpread(t *testing.T) {
	for parity := range 2 {
		counts := make([]int, translator.ConnectionBuckets)
		n := 0
		for p := 32768 + parity; p < 61000; p += 2 {
			counts[translator.PortBucket(uint16(p))]++
			n++
		}
		for k, c := range counts {
			if share := float64(c) / float64(n); share < 0.099 || share > 0.101 {
				t.Errorf("parity %d: bucket %d has %.3f of the ports, want 0.1", parity, k, share)
			}
		}
	}
}

// TestWithoutBuckets: removing buckets [0, n) drops exactly their chains,
// leaves every other chain byte-for-byte as it was (so Envoy keeps their
// connections: an in-place filter-chain update), and sends the ports of
// removed buckets to the last bucket.
func TestWithoutBuckets(t *testing.T) {
	ln := bucketListener(t, "drain-buckets")
	before := map[string]*listenerv3.FilterChain{}
	for _, fc := range ln.GetFilterChains() {
		before[fc.GetName()] = fc
	}
	orig := proto.Clone(ln)
	const n = 3
	out, err := translator.WithoutBuckets(ln, n)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(ln, orig) {
		t.Error("WithoutBuckets changed its input")
	}
	if len(out.GetFilterChains()) != 3*(translator.ConnectionBuckets-n) {
		t.Errorf("%d chains left, want %d", len(out.GetFilterChains()), 3*(translator.ConnectionBuckets-n))
	}
	for _, fc := range out.GetFilterChains() {
		if !proto.Equal(fc, before[fc.GetName()]) {
			t.Errorf("chain %s changed", fc.GetName())
		}
		for k := range n {
			if strings.HasSuffix(fc.GetName(), "/bucket-"+strconv.Itoa(k)) {
				t.Errorf("chain %s of a removed bucket is left", fc.GetName())
			}
		}
	}
	if err := out.ValidateAll(); err != nil {
		t.Fatal(err)
	}
	last := "/bucket-" + strconv.Itoa(translator.ConnectionBuckets-1)
	for p := 10; p < 200; p++ {
		port := uint16(p)
		got := selectChain(t, out.GetFilterChainMatcher(), "alpha.example.com", port)
		want := "alpha/bucket-" + strconv.Itoa(translator.PortBucket(port))
		if translator.PortBucket(port) < n {
			want = "alpha" + last
		}
		if got != want {
			t.Errorf("port %d after removing %d buckets: chain %q, want %q", p, n, got, want)
		}
	}

	same, err := translator.WithoutBuckets(ln, 0)
	if err != nil || !proto.Equal(same, ln) {
		t.Errorf("WithoutBuckets(0) = %v, want the listener unchanged", err)
	}
	for _, bad := range []int{-1, translator.ConnectionBuckets} {
		if _, err := translator.WithoutBuckets(ln, bad); err == nil {
			t.Errorf("WithoutBuckets(%d) succeeded", bad)
		}
	}
	if _, err := translator.WithoutBuckets(bucketListener(t, "sni-clusters"), 1); err == nil {
		t.Error("WithoutBuckets of a listener without buckets succeeded")
	}
}
