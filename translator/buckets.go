package translator

import (
	"fmt"
	"strconv"
	"strings"

	xdscorev3 "github.com/cncf/xds/go/xds/core/v3"
	xdsmatcherv3 "github.com/cncf/xds/go/xds/type/matcher/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	networkinputsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/matching/common_inputs/network/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Connection buckets: the listener mechanism of a paced drain (issue 16,
// item 5). Envoy drains the connections of a filter chain that an LDS
// update removes (GOAWAY at once, closed after --drain-time-s) and keeps
// the connections of every chain whose config is unchanged: an in-place
// filter-chain update. So each cluster's chain is served as
// ConnectionBuckets identical chains, told apart by the client's source
// port; a control plane that removes one bucket's chains at a time
// (WithoutBuckets) closes a tenth of the connections per step instead of
// all of them at the end of the drain window.
//
// The split moves chain selection from filter_chain_match to the
// listener's filter_chain_matcher (Envoy ignores filter_chain_match once a
// matcher is set): the server name (SNI) first, with the domain matcher
// (exact names, then the longest "*." wildcard, as server_names matched),
// falling back to the chain without server names; then the source port.
//
// The bucket of a port p is (p/2) mod ConnectionBuckets, read from the
// last two decimal digits of p (string suffixes: the matcher has no
// arithmetic). Halving first matters: Linux hands out even ephemeral ports
// to connect() first, so the last digit alone would leave odd buckets
// empty. Ports below 10 (no two-digit suffix) go to the last bucket, as do
// the ports of removed buckets: the last bucket is never removed before
// the whole listener drains.

// ConnectionBuckets is how many chains each cluster's chain is split into.
// It divides 50, so the two-digit suffixes spread evenly over the buckets
// for even and for odd ports alike.
const ConnectionBuckets = 10

const (
	serverNameInputName   = "envoy.matching.inputs.server_name"
	sourcePortInputName   = "envoy.matching.inputs.source_port"
	domainMatcherName     = "envoy.matching.custom_matchers.domain_matcher"
	filterChainActionName = "filter-chain"
	bucketSeparator       = "/bucket-"
)

// bucketChainName is the name of bucket k of the chain named chain.
func bucketChainName(chain string, k int) string {
	return chain + bucketSeparator + strconv.Itoa(k)
}

// chainBucket is the bucket of a chain named by bucketChainName.
func chainBucket(name string) (int, bool) {
	i := strings.LastIndex(name, bucketSeparator)
	if i < 0 {
		return 0, false
	}
	k, err := strconv.Atoi(name[i+len(bucketSeparator):])
	if err != nil || k < 0 || k >= ConnectionBuckets {
		return 0, false
	}
	return k, true
}

// PortBucket is the bucket the listener puts a connection from source port
// p in (see the package comment above ConnectionBuckets).
func PortBucket(p uint16) int {
	if p < 10 {
		return ConnectionBuckets - 1
	}
	return (int(p%100) / 2) % ConnectionBuckets
}

// SplitBuckets returns a copy of ln with every filter chain split into
// ConnectionBuckets chains by source port. The chains of ln may select by
// server names only (what filterChain produces); at most one has none.
func SplitBuckets(ln *listenerv3.Listener) (*listenerv3.Listener, error) {
	if ln.GetFilterChainMatcher() != nil {
		return nil, fmt.Errorf("listener %q already selects its chains with a matcher", ln.GetName())
	}
	out := proto.Clone(ln).(*listenerv3.Listener)
	out.FilterChains = nil
	var (
		byName   []*xdsmatcherv3.ServerNameMatcher_DomainMatcher
		fallback *xdsmatcherv3.Matcher
	)
	for _, fc := range ln.GetFilterChains() {
		m := fc.GetFilterChainMatch()
		names := m.GetServerNames()
		if m != nil && !proto.Equal(m, &listenerv3.FilterChainMatch{ServerNames: names}) {
			return nil, fmt.Errorf("filter chain %q matches on more than server names", fc.GetName())
		}
		for k := range ConnectionBuckets {
			b := proto.Clone(fc).(*listenerv3.FilterChain)
			b.Name = bucketChainName(fc.GetName(), k)
			b.FilterChainMatch = nil
			out.FilterChains = append(out.FilterChains, b)
		}
		ports := portMatcher(fc.GetName())
		if len(names) == 0 {
			if fallback != nil {
				return nil, fmt.Errorf("filter chain %q: a second chain without server names", fc.GetName())
			}
			fallback = ports
			continue
		}
		byName = append(byName, &xdsmatcherv3.ServerNameMatcher_DomainMatcher{
			Domains: names,
			OnMatch: &xdsmatcherv3.Matcher_OnMatch{OnMatch: &xdsmatcherv3.Matcher_OnMatch_Matcher{Matcher: ports}},
		})
	}
	switch {
	case len(byName) == 0 && fallback == nil:
		return nil, fmt.Errorf("listener %q has no filter chain", ln.GetName())
	case len(byName) == 0:
		out.FilterChainMatcher = fallback
	default:
		out.FilterChainMatcher = &xdsmatcherv3.Matcher{
			MatcherType: &xdsmatcherv3.Matcher_MatcherTree_{MatcherTree: &xdsmatcherv3.Matcher_MatcherTree{
				Input: xdsExtension(serverNameInputName, &networkinputsv3.ServerNameInput{}),
				TreeType: &xdsmatcherv3.Matcher_MatcherTree_CustomMatch{
					CustomMatch: xdsExtension(domainMatcherName, &xdsmatcherv3.ServerNameMatcher{DomainMatchers: byName}),
				},
			}},
		}
		if fallback != nil {
			out.FilterChainMatcher.OnNoMatch = &xdsmatcherv3.Matcher_OnMatch{OnMatch: &xdsmatcherv3.Matcher_OnMatch_Matcher{Matcher: fallback}}
		}
	}
	return out, nil
}

// portMatcher picks the bucket of chain by the connection's source port:
// one list entry per bucket, each the OR of its two-digit port suffixes;
// no match (a port below 10, or the entry of a removed bucket) is the last
// bucket.
func portMatcher(chain string) *xdsmatcherv3.Matcher {
	suffixes := make([][]*xdsmatcherv3.Matcher_MatcherList_Predicate, ConnectionBuckets)
	for s := range 100 {
		k := (s / 2) % ConnectionBuckets
		suffixes[k] = append(suffixes[k], &xdsmatcherv3.Matcher_MatcherList_Predicate{
			MatchType: &xdsmatcherv3.Matcher_MatcherList_Predicate_SinglePredicate_{
				SinglePredicate: &xdsmatcherv3.Matcher_MatcherList_Predicate_SinglePredicate{
					Input: xdsExtension(sourcePortInputName, &networkinputsv3.SourcePortInput{}),
					Matcher: &xdsmatcherv3.Matcher_MatcherList_Predicate_SinglePredicate_ValueMatch{
						ValueMatch: &xdsmatcherv3.StringMatcher{MatchPattern: &xdsmatcherv3.StringMatcher_Suffix{Suffix: fmt.Sprintf("%02d", s)}},
					},
				},
			},
		})
	}
	list := &xdsmatcherv3.Matcher_MatcherList{}
	for k, preds := range suffixes {
		list.Matchers = append(list.Matchers, &xdsmatcherv3.Matcher_MatcherList_FieldMatcher{
			Predicate: &xdsmatcherv3.Matcher_MatcherList_Predicate{
				MatchType: &xdsmatcherv3.Matcher_MatcherList_Predicate_OrMatcher{
					OrMatcher: &xdsmatcherv3.Matcher_MatcherList_Predicate_PredicateList{Predicate: preds},
				},
			},
			OnMatch: chainAction(bucketChainName(chain, k)),
		})
	}
	return &xdsmatcherv3.Matcher{
		MatcherType: &xdsmatcherv3.Matcher_MatcherList_{MatcherList: list},
		OnNoMatch:   chainAction(bucketChainName(chain, ConnectionBuckets-1)),
	}
}

// chainAction selects the filter chain named name.
func chainAction(name string) *xdsmatcherv3.Matcher_OnMatch {
	return &xdsmatcherv3.Matcher_OnMatch{OnMatch: &xdsmatcherv3.Matcher_OnMatch_Action{
		Action: xdsExtension(filterChainActionName, wrapperspb.String(name)),
	}}
}

func xdsExtension(name string, m proto.Message) *xdscorev3.TypedExtensionConfig {
	return &xdscorev3.TypedExtensionConfig{Name: name, TypedConfig: mustAny(m)}
}

// WithoutBuckets returns a copy of ln, a listener SplitBuckets made,
// without the chains of buckets [0, n): what a paced drain serves at its
// n-th step. Every other chain is left exactly as it was, so Envoy updates
// the listener in place and drains only the removed chains' connections;
// a new connection whose port belongs to a removed bucket takes the last
// bucket. n runs from 0 (nothing removed) to ConnectionBuckets-1; the last
// bucket goes with the listener itself.
func WithoutBuckets(ln *listenerv3.Listener, n int) (*listenerv3.Listener, error) {
	if n < 0 || n >= ConnectionBuckets {
		return nil, fmt.Errorf("bucket count %d out of [0, %d)", n, ConnectionBuckets)
	}
	if ln.GetFilterChainMatcher() == nil {
		return nil, fmt.Errorf("listener %q is not split into buckets", ln.GetName())
	}
	out := proto.Clone(ln).(*listenerv3.Listener)
	removed := map[string]bool{}
	out.FilterChains = nil
	for _, fc := range ln.GetFilterChains() {
		k, ok := chainBucket(fc.GetName())
		if !ok {
			return nil, fmt.Errorf("filter chain %q is not a bucket", fc.GetName())
		}
		if k < n {
			removed[fc.GetName()] = true
			continue
		}
		out.FilterChains = append(out.FilterChains, fc)
	}
	dropActions(out.FilterChainMatcher, removed)
	return out, nil
}

// dropActions removes, anywhere in m, the list entries that select a chain
// in removed (no-match actions name the last bucket, which stays).
func dropActions(m *xdsmatcherv3.Matcher, removed map[string]bool) {
	if m == nil {
		return
	}
	dropActions(m.GetOnNoMatch().GetMatcher(), removed)
	if t := m.GetMatcherTree(); t != nil {
		var sn xdsmatcherv3.ServerNameMatcher
		if cm := t.GetCustomMatch(); cm != nil && cm.GetTypedConfig().UnmarshalTo(&sn) == nil {
			for _, d := range sn.GetDomainMatchers() {
				dropActions(d.GetOnMatch().GetMatcher(), removed)
			}
			cm.TypedConfig = mustAny(&sn)
		}
		return
	}
	list := m.GetMatcherList()
	if list == nil {
		return
	}
	kept := list.Matchers[:0]
	for _, fm := range list.GetMatchers() {
		var name wrapperspb.StringValue
		if a := fm.GetOnMatch().GetAction(); a != nil && a.GetTypedConfig().UnmarshalTo(&name) == nil && removed[name.GetValue()] {
			continue
		}
		dropActions(fm.GetOnMatch().GetMatcher(), removed)
		kept = append(kept, fm)
	}
	list.Matchers = kept
}
