package translator

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kubefrontdoor/frontdoor/api/v1alpha1"
)

// Defaults of fields that the CRD defaults with kubebuilder markers. File
// mode has no apiserver to apply them, so the translator applies them again.
const (
	DefaultHealthCheckPath     = "/readyz"
	DefaultHealthCheckInterval = 5 * time.Second
	DefaultHealthCheckTimeout  = 2 * time.Second
	DefaultUnhealthyThreshold  = 2
	DefaultHealthyThreshold    = 1

	DefaultTokenCacheTTL         = 2 * time.Minute
	DefaultTokenNegativeCacheTTL = 10 * time.Second

	DefaultListenerAddress = "0.0.0.0"
	DefaultListenerPort    = 6443

	DefaultConsecutive5xx             = 5
	DefaultConsecutiveConnectFailures = 3
	DefaultBaseEjectionTime           = 10 * time.Second
	DefaultMaxEjectionPercent         = 50
)

// buildIR validates every input and resolves its references. It returns the
// IR of the accepted clusters and one statusBuilder per non-nil input,
// sorted by name. Clusters are processed in name order so that "the later
// one" of two with the same name is well defined and independent of input
// order; server names go to the older object (claimServerNames).
func buildIR(in Inputs) (*IR, []*statusBuilder) {
	ir := &IR{Listener: ListenerIR{Address: in.Options.ListenerAddress, Port: in.Options.ListenerPort, ExtraPorts: in.Options.ListenerExtraPorts,
		RateLimitAddress: in.Options.RateLimitAddress}}
	if ir.Listener.Address == "" {
		ir.Listener.Address = DefaultListenerAddress
	}
	if ir.Listener.Port == 0 {
		ir.Listener.Port = DefaultListenerPort
	}

	var statuses []*statusBuilder
	for _, uc := range in.UpstreamClusters {
		if uc != nil {
			statuses = append(statuses, &statusBuilder{uc: uc})
		}
	}
	// Stable: of two inputs with the same name, the first given is "first".
	slices.SortStableFunc(statuses, func(a, b *statusBuilder) int { return strings.Compare(a.uc.Name, b.uc.Name) })

	secrets := newSecretIndex(in.Secrets, in.Options.SecretNamespaces)
	endpointSlices := newSliceIndex(in.EndpointSlices)
	seen := map[string]bool{}
	var candidates []*ClusterIR
	var owners []*statusBuilder
	for _, st := range statuses {
		if seen[st.uc.Name] {
			st.reject(v1alpha1.ReasonDuplicateName, fmt.Sprintf("another UpstreamCluster is already named %q", st.uc.Name))
		}
		seen[st.uc.Name] = true

		c := buildCluster(st, secrets, endpointSlices, in.Options)
		if !st.rejected() {
			st.serverCount = int32(len(c.Servers)) //nolint:gosec // the CRD caps servers far below 2^31
			candidates = append(candidates, c)
			owners = append(owners, st)
		}
	}

	ir.Clusters = claimServerNames(candidates, owners)
	return ir, statuses
}

// claimServerNames lets the candidates claim their server names, oldest
// first (creationTimestamp, then name), and returns those that got every
// one, in name order. The older object keeps a contested name, so nobody
// can take a name (or the default chain) from a serving cluster by creating
// a new object whose name sorts first; the newer is rejected with
// ConflictingServerNames, naming the holder. Objects without a timestamp
// (file mode, unless the file sets metadata.creationTimestamp) tie and go
// by name. Only clusters that are otherwise valid claim names, so a broken
// cluster cannot take a name away from a working one.
func claimServerNames(candidates []*ClusterIR, owners []*statusBuilder) []*ClusterIR {
	order := make([]int, len(candidates))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		ta, tb := owners[a].uc.CreationTimestamp.Time, owners[b].uc.CreationTimestamp.Time
		return cmp.Or(ta.Compare(tb), strings.Compare(candidates[a].Name, candidates[b].Name))
	})
	won := make([]bool, len(candidates))
	claimed := map[string]string{} // server name ("" = default chain) → cluster
	for _, i := range order {
		c := candidates[i]
		names := c.ServerNames
		if len(names) == 0 {
			names = []string{""}
		}
		var conflicts []string
		for _, n := range names {
			if owner, ok := claimed[n]; ok {
				if n == "" {
					conflicts = append(conflicts, fmt.Sprintf("the default filter chain (no serverNames) is already served by %q", owner))
				} else {
					conflicts = append(conflicts, fmt.Sprintf("server name %q is already served by %q", n, owner))
				}
			}
		}
		if len(conflicts) > 0 {
			owners[i].reject(v1alpha1.ReasonConflictingServerNames,
				strings.Join(conflicts, "; ")+" (the older UpstreamCluster, or of two created in the same second the first by name, keeps a contested name)")
			continue
		}
		for _, n := range names {
			claimed[n] = c.Name
		}
		won[i] = true
	}
	var out []*ClusterIR
	for i, c := range candidates {
		if won[i] {
			out = append(out, c)
		}
	}
	return out
}

// buildCluster validates one UpstreamCluster, defaults it and resolves
// what it references, recording the verdict in st. The stages go in the
// order of the Accepted reasons' precedence: the spec (with what the
// EndpointSlices say about it), then the Secrets, then what needs the
// Secrets' content or the gateway's flags. References are resolved even
// for a rejected spec, so the ResolvedRefs condition is truthful on its own.
func buildCluster(st *statusBuilder, secrets secretIndex, endpointSlices sliceIndex, opts Options) *ClusterIR {
	spec := &st.uc.Spec
	eps, errs := validateUpstreamCluster(st.uc)
	c, resolveErrs := buildSpec(st.uc.Name, spec, eps, endpointSlices)
	errs = append(resolveErrs, errs...) // about spec.servers: first, as servers are
	if len(errs) == 0 {
		c.Dispatch, errs = buildDispatch(spec, c, eps)
	}
	st.invalid(errs)

	if err := resolveSecrets(c, spec, secrets); err != nil {
		st.unresolved(err)
	}
	revErrs, revRefErr := resolveRevocation(c, spec, secrets)
	st.invalid(revErrs)
	if revRefErr != nil {
		st.unresolved(revRefErr)
	}

	c.AccessLog = AccessLogIR{Disabled: opts.DisableAccessLog, Path: opts.AccessLogPath,
		FailuresOnly: opts.AccessLogFailuresOnly, SlowerThan: opts.AccessLogSlowerThan}
	c.Module = ModuleIR{Path: opts.InProcessModule, PolicyAddress: opts.InProcessPolicyAddress, MetricsAddress: opts.InProcessMetricsAddress}
	st.invalid(append(checkInsecureClientConfig(spec.ClientConfig, secrets), validateRequestService(c)...))
	st.invalid(checkGlobalRateLimitService(spec, opts))
	return c
}

// validateRequestService checks c's mode's own requirements, as an error
// on spec.requestService.
func validateRequestService(c *ClusterIR) field.ErrorList {
	if v, ok := requestServiceOf(c).(modeValidator); ok {
		if err := v.validate(c); err != nil {
			return field.ErrorList{field.Invalid(field.NewPath("spec", "requestService"), string(c.RequestService), err.Error())}
		}
	}
	return nil
}

// buildSpec defaults the spec into a ClusterIR (without dispatch policies
// and Secrets). The only error is resolving endpointsFrom to no server.
func buildSpec(name string, spec *v1alpha1.UpstreamClusterSpec, eps endpoints, endpointSlices sliceIndex) (*ClusterIR, field.ErrorList) {
	c := &ClusterIR{Name: name}
	var errs field.ErrorList
	c.Servers, c.SNI, c.ResolveDNS, errs = buildServers(spec, eps, endpointSlices)
	c.ServerNames = buildServerNames(spec.SecureServing.ServerNames)
	c.ServerSANs = buildServerSANs(spec, eps)
	c.HealthCheck = buildHealthCheck(spec.HealthCheck)
	c.Outlier = buildOutlier(spec.OutlierDetection)
	c.LoadBalancing = loadBalancing(spec.LoadBalancing.Policy, LBRoundRobin)
	c.RequestService = buildRequestService(spec.RequestService)
	c.X509 = spec.Authentication.X509.Enabled == nil || *spec.Authentication.X509.Enabled
	c.TokenReview = buildTokenReview(spec.Authentication.TokenReview)
	var jwtErr error
	if c.JWT, jwtErr = buildJWT(spec.Authentication.JWT); jwtErr != nil {
		errs = append(errs, field.InternalError(field.NewPath("spec", "authentication", "jwt"), jwtErr))
	}
	c.Anonymous = spec.Authentication.Anonymous.Enabled
	c.Forwarding = buildForwarding(spec.ClientConfig.IdentityForwarding)
	return c, errs
}

// buildServers collects the enabled servers and decides how Envoy reaches
// them: SNI only when every server shares one DNS name (an IP in SNI is
// forbidden by RFC 6066), and DNS resolution when any host is a name.
//
// The servers found through endpointsFrom (parsed, sorted and deduplicated)
// follow the static ones; one that repeats a static server is the same
// server, not an error. Finding no server at all is, and only the slices
// can tell (validateServers checks the spec without endpointsFrom).
func buildServers(spec *v1alpha1.UpstreamClusterSpec, eps endpoints, endpointSlices sliceIndex) (out []ServerIR, sni string, dns bool, errs field.ErrorList) {
	seen := map[ServerIR]bool{}
	add := func(srv ServerIR) {
		if !seen[srv] {
			seen[srv] = true
			out = append(out, srv)
		}
	}
	static := false
	for _, s := range spec.Servers {
		if srv, ok := eps.server(s.Endpoint); ok && !s.Disabled {
			add(srv)
		}
		static = static || !s.Disabled
	}
	if ef := spec.EndpointsFrom; ef != nil {
		discovered, notes := endpointSlices.servers(ef.Service)
		for _, srv := range discovered {
			add(srv)
		}
		if !static && len(out) == 0 {
			msg := fmt.Sprintf("no enabled server, and no ready endpoint in the EndpointSlices of Service %s/%s", ef.Service.Namespace, ef.Service.Name)
			if len(notes) > 0 {
				msg += " (" + strings.Join(notes, "; ") + ")"
			}
			errs = append(errs, field.Required(field.NewPath("spec", "servers"), msg))
		}
	}

	hosts := map[string]bool{}
	allDNS := true
	for _, srv := range out {
		hosts[srv.Host] = true
		allDNS = allDNS && !srv.IsIP
		dns = dns || !srv.IsIP
	}
	if allDNS && len(hosts) == 1 {
		sni = out[0].Host
	}
	return out, sni, dns, errs
}

// buildServerSANs lists what a server certificate must name: the host of
// each enabled static server as it is reached, and for endpointsFrom the
// Service's DNS names (<name>.<namespace>.svc, with or without the cluster
// domain: kube-apiserver's own certificate names kubernetes.default.svc, and
// a Service's serving certificate its Service). Discovered endpoints are
// not listed by address: a pod IP is not an identity, and the list must not
// change with the endpoints.
func buildServerSANs(spec *v1alpha1.UpstreamClusterSpec, eps endpoints) []SANIR {
	var out []SANIR
	seen := map[SANIR]bool{}
	add := func(san SANIR) {
		if !seen[san] {
			seen[san] = true
			out = append(out, san)
		}
	}
	for _, s := range spec.Servers {
		if srv, ok := eps.server(s.Endpoint); ok && !s.Disabled {
			add(SANIR{Name: srv.Host, IsIP: srv.IsIP})
		}
	}
	if ef := spec.EndpointsFrom; ef != nil {
		svc := ef.Service.Name + "." + ef.Service.Namespace + ".svc"
		add(SANIR{Name: svc})
		add(SANIR{Name: svc + ".", Prefix: true})
	}
	return out
}

// buildServerNames returns the SNI names lowercased, sorted and
// deduplicated.
func buildServerNames(names []string) []string {
	var out []string
	for _, n := range names {
		out = append(out, strings.ToLower(n))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func buildHealthCheck(hc v1alpha1.HealthCheck) HealthCheckIR {
	out := HealthCheckIR{
		Path:               cmp.Or(hc.Path, DefaultHealthCheckPath),
		Interval:           durationOr(hc.Interval, DefaultHealthCheckInterval),
		Timeout:            durationOr(hc.Timeout, DefaultHealthCheckTimeout),
		UnhealthyThreshold: DefaultUnhealthyThreshold,
		HealthyThreshold:   DefaultHealthyThreshold,
	}
	if hc.UnhealthyThreshold > 0 {
		out.UnhealthyThreshold = uint32(hc.UnhealthyThreshold)
	}
	if hc.HealthyThreshold > 0 {
		out.HealthyThreshold = uint32(hc.HealthyThreshold)
	}
	return out
}

func buildOutlier(od v1alpha1.OutlierDetection) OutlierIR {
	out := OutlierIR{
		Consecutive5xx:             DefaultConsecutive5xx,
		ConsecutiveConnectFailures: DefaultConsecutiveConnectFailures,
		BaseEjectionTime:           durationOr(od.BaseEjectionTime, DefaultBaseEjectionTime),
		MaxEjectionPercent:         DefaultMaxEjectionPercent,
	}
	count := func(v *int32, dst *uint32) {
		if v != nil && *v >= 0 {
			*dst = uint32(*v)
		}
	}
	count(od.Consecutive5xx, &out.Consecutive5xx)
	count(od.ConsecutiveConnectFailures, &out.ConsecutiveConnectFailures)
	count(od.MaxEjectionPercent, &out.MaxEjectionPercent)
	return out
}

// durationOr is d, or def when the optional field d is not set (an
// explicit zero stays zero: validation decides whether it is allowed).
func durationOr(d *metav1.Duration, def time.Duration) time.Duration {
	if d == nil {
		return def
	}
	return d.Duration
}

// loadBalancingPolicies is the one mapping of the API's load-balancing
// policies (spec.loadBalancing.policy, a dispatch policy's strategy) to the
// IR's; validation lists its keys as the supported values.
var loadBalancingPolicies = map[v1alpha1.LoadBalancingPolicy]LoadBalancingIR{
	v1alpha1.RoundRobin:   LBRoundRobin,
	v1alpha1.Random:       LBRandom,
	v1alpha1.LeastRequest: LBLeastRequest,
}

// loadBalancing is policy p, or def when p is empty (or invalid, which
// validation has reported).
func loadBalancing(p v1alpha1.LoadBalancingPolicy, def LoadBalancingIR) LoadBalancingIR {
	if lb, ok := loadBalancingPolicies[p]; ok {
		return lb
	}
	return def
}

// defaultRequestService is the mode of a cluster that names none.
const defaultRequestService = RequestServiceIR(v1alpha1.RequestServiceExtAuthz)

func buildRequestService(rs v1alpha1.RequestService) RequestServiceIR {
	if _, ok := requestServices[RequestServiceIR(rs)]; !ok {
		return defaultRequestService
	}
	return RequestServiceIR(rs)
}

func buildTokenReview(tr v1alpha1.TokenReviewAuthentication) TokenReviewIR {
	out := TokenReviewIR{
		Enabled:          tr.Enabled == nil || *tr.Enabled,
		CacheTTL:         durationOr(tr.CacheTTL, DefaultTokenCacheTTL),
		NegativeCacheTTL: durationOr(tr.NegativeCacheTTL, DefaultTokenNegativeCacheTTL),
	}
	for _, a := range tr.Audiences {
		if a != "" {
			out.Audiences = append(out.Audiences, a)
		}
	}
	slices.Sort(out.Audiences)
	out.Audiences = slices.Compact(out.Audiences)
	return out
}
