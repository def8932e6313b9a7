package translator

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"net/netip"
	"slices"
	"strings"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"

	"github.com/kubefrontdoor/frontdoor/envoy"
	"github.com/kubefrontdoor/frontdoor/policy"
)

// resourceTypes is the order resources are hashed in: the order Envoy
// applies them over ADS, so it reads like the config's dependency chain.
var resourceTypes = []string{
	resourcev3.ClusterType,
	resourcev3.EndpointType,
	resourcev3.ListenerType,
	resourcev3.RouteType,
	resourcev3.SecretType,
	// Only the ratelimit service asks for these (globalratelimit.go).
	resourcev3.RateLimitConfigType,
}

// clusterResources are the xDS resources owned by one cluster. The shared
// listener is assembled from each cluster's filter chain.
type clusterResources struct {
	ir          *ClusterIR
	resources   map[string][]types.Resource
	filterChain *listenerv3.FilterChain
}

// validator is the ValidateAll method every generated Envoy message has.
type validator interface{ ValidateAll() error }

// buildClusterResources turns one ClusterIR into protos and validates each.
// Any error (including a panic from a builder, which would be a bug) is
// returned so the caller can reject just this cluster.
func buildClusterResources(l ListenerIR, c *ClusterIR) (out *clusterResources, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("internal error building Envoy config: %v", r)
		}
	}()
	out = &clusterResources{ir: c, resources: map[string][]types.Resource{}}
	add := func(typeURL string, r types.Resource) { out.resources[typeURL] = append(out.resources[typeURL], r) }

	cl, up := cluster(c), upgradeCluster(c)
	if cl.GetEdsClusterConfig() != nil {
		la := loadAssignment(c)
		name := versionedEDSName(cl, up)
		cl.GetEdsClusterConfig().ServiceName = name
		up.GetEdsClusterConfig().ServiceName = name
		la.ClusterName = name
		add(resourcev3.EndpointType, la)
	}
	add(resourcev3.ClusterType, cl)
	add(resourcev3.ClusterType, up)
	policyClusters(c, add)
	add(resourcev3.RouteType, routeConfiguration(c))
	if rl := rateLimitConfig(c); rl != nil {
		add(resourcev3.RateLimitConfigType, rl)
	}
	for _, s := range secrets(c) {
		add(resourcev3.SecretType, s)
	}
	out.filterChain = filterChain(l, c)

	for _, typeURL := range resourceTypes {
		for _, r := range out.resources[typeURL] {
			v, ok := r.(validator)
			if !ok {
				continue // the ratelimit service's config has no validation rules
			}
			if err := v.ValidateAll(); err != nil {
				return nil, fmt.Errorf("%s %q: %w", shortType(typeURL), resourceName(r), err)
			}
		}
	}
	if err := out.filterChain.ValidateAll(); err != nil {
		return nil, fmt.Errorf("filter chain %q: %w", c.Name, err)
	}
	// The chain is validated inside a listener too, so listener-level
	// rules (addresses, filter order) are checked per cluster as well.
	if err := listener(ListenerIR{Address: DefaultListenerAddress, Port: DefaultListenerPort},
		[]*listenerv3.FilterChain{out.filterChain}).ValidateAll(); err != nil {
		return nil, fmt.Errorf("listener with filter chain %q: %w", c.Name, err)
	}
	return out, nil
}

// assemble merges the clusters' resources, adds the shared listener (only
// when a cluster is left to serve), sorts every list by name, and computes
// the version over resources and policy.
func assemble(l ListenerIR, clusters []*clusterResources) (*Output, error) {
	out := &Output{
		Resources: map[string][]types.Resource{},
		Policy:    &policy.Table{Clusters: map[string]*policy.Cluster{}},
	}
	var chains []*listenerv3.FilterChain
	for _, cr := range clusters {
		for typeURL, rs := range cr.resources {
			out.Resources[typeURL] = append(out.Resources[typeURL], rs...)
		}
		chains = append(chains, cr.filterChain)
		out.Policy.Clusters[cr.ir.Name] = &policy.Cluster{
			Name:        cr.ir.Name,
			X509:        cr.ir.X509,
			ClientCAPEM: cr.ir.ClientCA,
			Revocation:  cr.ir.Revocation,
			DefaultRule: envoy.DefaultRule,
			Dispatch:    dispatchPolicy(cr.ir),

			TokenReview: policy.TokenReview{
				Enabled:          cr.ir.TokenReview.Enabled,
				CacheTTL:         policy.Duration(cr.ir.TokenReview.CacheTTL),
				NegativeCacheTTL: policy.Duration(cr.ir.TokenReview.NegativeCacheTTL),
				Audiences:        cr.ir.TokenReview.Audiences,
			},
			JWT:       cr.ir.JWT,
			Anonymous: cr.ir.Anonymous,
			Upstream:  upstreamPolicy(cr.ir),
		}
		identityPolicy(cr.ir, out.Policy.Clusters[cr.ir.Name])
		out.Probes = append(out.Probes, probeTargets(cr.ir)...)
	}
	if len(out.Resources[resourcev3.RateLimitConfigType]) > 0 {
		rls := rateLimitServiceCluster(l.RateLimitAddress)
		if err := rls.ValidateAll(); err != nil {
			return nil, fmt.Errorf("rate limit service cluster (%q): %w", l.RateLimitAddress, err)
		}
		out.Resources[resourcev3.ClusterType] = append(out.Resources[resourcev3.ClusterType], rls)
	}
	if len(chains) > 0 {
		if _, err := netip.ParseAddr(l.Address); err != nil {
			return nil, fmt.Errorf("listener address %q is not an IP address", l.Address)
		}
		ln := listener(l, chains)
		if l.Edge.DrainBuckets {
			var err error
			if ln, err = SplitBuckets(ln); err != nil {
				return nil, err
			}
		}
		if err := ln.ValidateAll(); err != nil {
			return nil, fmt.Errorf("listener %q: %w", ln.Name, err)
		}
		out.Resources[resourcev3.ListenerType] = []types.Resource{ln}
	}
	for _, rs := range out.Resources {
		slices.SortFunc(rs, func(a, b types.Resource) int { return strings.Compare(resourceName(a), resourceName(b)) })
	}
	slices.SortFunc(out.Probes, func(a, b ProbeTarget) int {
		return cmp.Or(strings.Compare(a.Cluster, b.Cluster), strings.Compare(a.Address, b.Address))
	})
	out.Version = version(out.Resources, out.Policy, out.Probes)
	out.Policy.Version = out.Version
	return out, nil
}

// version hashes every resource (deterministic marshal, in type and name
// order), the policy table's whole encoding and the probe targets (a
// health-check edit changes no Envoy resource of an EDS cluster), so a
// change of any changes the version, and equal inputs give equal versions
// across processes. The table's Version is still empty here.
func version(resources map[string][]types.Resource, pt *policy.Table, probes []ProbeTarget) string {
	h := sha256.New()
	marshal := proto.MarshalOptions{Deterministic: true}
	for _, typeURL := range resourceTypes {
		for _, r := range resources[typeURL] {
			b, err := marshal.Marshal(r)
			if err != nil {
				// Every resource was validated; marshal cannot fail. Hash
				// the error so the version still changes with the input.
				b = []byte(err.Error())
			}
			writeField(h, []byte(typeURL))
			writeField(h, []byte(resourceName(r)))
			writeField(h, b)
		}
	}
	b, err := pt.Encode()
	if err != nil {
		b = []byte(err.Error()) // plain data always encodes; see above
	}
	writeField(h, []byte("policy"))
	writeField(h, b)
	pb, err := json.Marshal(probes)
	if err != nil {
		pb = []byte(err.Error()) // plain data always encodes; see above
	}
	writeField(h, []byte("probes"))
	writeField(h, pb)
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// writeField writes a length-prefixed field, so ("ab","c") and ("a","bc")
// hash differently.
func writeField(h hash.Hash, b []byte) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(b)))
	h.Write(n[:])
	h.Write(b)
}

func resourceName(r types.Resource) string {
	if n, ok := r.(interface{ GetName() string }); ok {
		return n.GetName()
	}
	if n, ok := r.(interface{ GetClusterName() string }); ok {
		return n.GetClusterName()
	}
	return ""
}

func shortType(typeURL string) string { return typeURL[strings.LastIndexByte(typeURL, '.')+1:] }

// upstreamPolicy is how the request service reaches the cluster's servers
// for its own reviews: the same servers, identity and CA as Envoy's cluster.
func upstreamPolicy(c *ClusterIR) policy.Upstream {
	u := policy.Upstream{
		ServerName:    c.SNI,
		ClientCertPEM: c.UpstreamClient.CertPEM,
		ClientKeyPEM:  c.UpstreamClient.KeyPEM,
		CAPEM:         c.UpstreamCA,
	}
	for _, s := range c.Servers {
		host := s.Host
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
		u.ServerURLs = append(u.ServerURLs, fmt.Sprintf("https://%s:%d", host, s.Port))
	}
	return u
}

// versionedEDSName names the endpoints of c's clusters after the clusters'
// own content: "<cluster>@<digest>". Envoy re-subscribes to the endpoints of
// a cluster it rebuilt (any CDS change to it), but over delta ADS the server
// only sends resources that changed, so an unchanged endpoint resource is
// never resent and Envoy waits out its 15 s initial fetch timeout before the
// rebuilt cluster takes traffic. A cluster change now renames its endpoints,
// which the server sends at once; an endpoints-only change keeps the name and
// stays an EDS update that touches no cluster.
func versionedEDSName(clusters ...*clusterv3.Cluster) string {
	h := sha256.New()
	for _, cl := range clusters {
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(cl)
		if err != nil {
			panic(fmt.Sprintf("marshal cluster %s: %v", cl.GetName(), err)) // recovered by buildClusterResources
		}
		h.Write(b)
	}
	return clusters[0].GetName() + "@" + hex.EncodeToString(h.Sum(nil))[:12]
}
