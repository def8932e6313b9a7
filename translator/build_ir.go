package translator

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

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
)

// buildIR validates every input and resolves its references. It returns the
// IR of the accepted clusters and one statusBuilder per non-nil input,
// sorted by name. Clusters are processed in name order so that "the later one"
// in conflicts is well defined and independent of input order.
func buildIR(in Inputs) (*IR, []*statusBuilder) {
	ir := &IR{Listener: ListenerIR{Address: in.Options.ListenerAddress, Port: in.Options.ListenerPort}}
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

	secrets := newSecretIndex(in.Secrets)
	endpoints := newSliceIndex(in.EndpointSlices)
	seen := map[string]bool{}
	var candidates []*ClusterIR
	var owners []*statusBuilder
	for _, st := range statuses {
		if seen[st.uc.Name] {
			st.reject(v1alpha1.ReasonDuplicateName, fmt.Sprintf("another UpstreamCluster is already named %q", st.uc.Name))
		}
		seen[st.uc.Name] = true

		c := buildCluster(st, secrets, endpoints)
		c.AccessLog = AccessLogIR{Disabled: in.Options.DisableAccessLog, Path: in.Options.AccessLogPath}
		c.Module = ModuleIR{Path: in.Options.InProcessModule, PolicyAddress: in.Options.InProcessPolicyAddress,
			MetricsAddress: in.Options.InProcessMetricsAddress}
		if err := validateRequestService(c); err != nil {
			st.reject(v1alpha1.ReasonInvalidRequestService, err.Error())
		}
		if !st.rejected() {
			candidates = append(candidates, c)
			owners = append(owners, st)
		}
	}

	// Server names are claimed in name order; only clusters that are
	// otherwise valid claim names, so a broken cluster cannot take a name
	// (or the default chain) away from a working one.
	claimed := map[string]string{} // server name ("" = default chain) → cluster
	for i, c := range candidates {
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
			owners[i].reject(v1alpha1.ReasonConflictingServerNames, strings.Join(conflicts, "; "))
			continue
		}
		for _, n := range names {
			claimed[n] = c.Name
		}
		ir.Clusters = append(ir.Clusters, c)
	}

	return ir, statuses
}

// buildCluster validates one UpstreamCluster and resolves its Secrets. It
// always resolves the references, even for a rejected spec, so the
// ResolvedRefs condition is truthful on its own.
func buildCluster(st *statusBuilder, secrets secretIndex, endpoints sliceIndex) *ClusterIR {
	spec := &st.uc.Spec
	c := &ClusterIR{Name: st.uc.Name}

	var discovered []ServerIR
	var notes []string
	if spec.EndpointsFrom != nil {
		discovered, notes = endpoints.servers(spec.EndpointsFrom.Service)
	}
	c.Servers, c.SNI, c.ResolveDNS = buildServers(st, spec.Servers, discovered, notes)
	c.ServerNames = buildServerNames(st, spec.SecureServing.ServerNames)
	c.HealthCheck = buildHealthCheck(st, spec.HealthCheck)
	c.Outlier = buildOutlier(st, spec.OutlierDetection)
	c.LoadBalancing = buildLoadBalancing(st, spec.LoadBalancing)
	c.RequestService = buildRequestService(st, spec.RequestService)
	c.X509 = spec.Authentication.X509.Enabled == nil || *spec.Authentication.X509.Enabled
	c.TokenReview = buildTokenReview(st, spec.Authentication.TokenReview)
	c.Anonymous = spec.Authentication.Anonymous.Enabled
	if !st.rejected() {
		c.Dispatch = buildDispatch(st, c)
	}

	var err error
	if c.Serving, err = secrets.certKey(spec.SecureServing.SecretRef); err != nil {
		st.unresolved(err.(*refError))
	}
	if ref := spec.SecureServing.ClientCASecretRef; ref != nil {
		if c.ClientCA, err = secrets.caBundle(*ref); err != nil {
			st.unresolved(err.(*refError))
		}
	}
	if c.UpstreamClient, err = secrets.certKey(spec.ClientConfig.SecretRef); err != nil {
		st.unresolved(err.(*refError))
	}
	if ref := spec.ClientConfig.SecretRef; spec.ClientConfig.InsecureSkipTLSVerify {
		// KubeGateway panics on a CA together with insecure; here the
		// contradiction is a condition and nothing else is affected.
		if _, err := secrets.value(ref, keyCACert); err == nil {
			st.reject(v1alpha1.ReasonInvalidClientConfig, fmt.Sprintf(
				"clientConfig.insecureSkipTLSVerify is set but Secret %s/%s has a %s: verify the servers with the CA or skip verification, not both",
				ref.Namespace, ref.Name, keyCACert))
		}
	} else if c.UpstreamCA, err = secrets.caBundle(ref); err != nil {
		st.unresolved(err.(*refError))
	}
	if !st.rejected() {
		st.serverCount = int32(len(c.Servers))
	}
	return c
}

// buildServers parses the enabled servers and decides how Envoy reaches
// them: SNI only when every server shares one DNS name (an IP in SNI is
// forbidden by RFC 6066), and DNS resolution when any host is a name.
//
// discovered are the servers found through endpointsFrom (already parsed,
// sorted and deduplicated); they follow the static ones, and one that
// repeats a static server is the same server, not an error.
func buildServers(st *statusBuilder, servers []v1alpha1.Server, discovered []ServerIR, notes []string) (out []ServerIR, sni string, dns bool) {
	seen := map[string]bool{}
	hosts := map[string]bool{}
	allDNS := true
	for i, s := range servers {
		if s.Disabled {
			continue
		}
		srv, err := parseEndpoint(s.Endpoint)
		if err != nil {
			st.reject(v1alpha1.ReasonInvalidServer, fmt.Sprintf("servers[%d]: %v", i, err))
			return nil, "", false
		}
		key := fmt.Sprintf("%s|%d", srv.Host, srv.Port)
		if seen[key] {
			st.reject(v1alpha1.ReasonInvalidServer, fmt.Sprintf("servers[%d]: endpoint %q repeats an earlier server", i, s.Endpoint))
			return nil, "", false
		}
		seen[key] = true
		hosts[srv.Host] = true
		allDNS = allDNS && !srv.IsIP
		dns = dns || !srv.IsIP
		out = append(out, srv)
	}
	for _, srv := range discovered {
		key := fmt.Sprintf("%s|%d", srv.Host, srv.Port)
		if seen[key] {
			continue
		}
		seen[key] = true
		hosts[srv.Host] = true
		allDNS = allDNS && !srv.IsIP
		dns = dns || !srv.IsIP
		out = append(out, srv)
	}
	if len(out) == 0 {
		msg := "no enabled server"
		if st.uc.Spec.EndpointsFrom != nil {
			svc := st.uc.Spec.EndpointsFrom.Service
			msg = fmt.Sprintf("no enabled server and no ready endpoint in the EndpointSlices of Service %s/%s", svc.Namespace, svc.Name)
			if len(notes) > 0 {
				msg += " (" + strings.Join(notes, "; ") + ")"
			}
		}
		st.reject(v1alpha1.ReasonNoServers, msg)
		return nil, "", false
	}
	if allDNS && len(hosts) == 1 {
		sni = out[0].Host
	}
	return out, sni, dns
}

// buildServerNames checks the SNI names (DNS names, optionally with a
// leading "*." wildcard as Envoy's server_names accept) and returns them
// lowercased, sorted and deduplicated.
func buildServerNames(st *statusBuilder, names []string) []string {
	var out []string
	for i, n := range names {
		n = strings.ToLower(n)
		if errs := validation.IsDNS1123Subdomain(strings.TrimPrefix(n, "*.")); len(errs) > 0 {
			st.reject(v1alpha1.ReasonInvalidServerName, fmt.Sprintf("secureServing.serverNames[%d] %q: %s", i, n, strings.Join(errs, "; ")))
			return nil
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func buildHealthCheck(st *statusBuilder, hc v1alpha1.HealthCheck) HealthCheckIR {
	out := HealthCheckIR{
		Path:               hc.Path,
		Interval:           DefaultHealthCheckInterval,
		Timeout:            DefaultHealthCheckTimeout,
		UnhealthyThreshold: DefaultUnhealthyThreshold,
		HealthyThreshold:   DefaultHealthyThreshold,
	}
	if out.Path == "" {
		out.Path = DefaultHealthCheckPath
	}
	if hc.Interval != nil {
		out.Interval = hc.Interval.Duration
	}
	if hc.Timeout != nil {
		out.Timeout = hc.Timeout.Duration
	}
	switch {
	case !strings.HasPrefix(out.Path, "/") || strings.ContainsAny(out.Path, " \t\r\n#"):
		st.reject(v1alpha1.ReasonInvalidHealthCheck, fmt.Sprintf("healthCheck.path %q must be an absolute path", out.Path))
	case out.Interval < time.Millisecond:
		st.reject(v1alpha1.ReasonInvalidHealthCheck, fmt.Sprintf("healthCheck.interval %s must be at least 1ms", out.Interval))
	case out.Timeout < time.Millisecond:
		st.reject(v1alpha1.ReasonInvalidHealthCheck, fmt.Sprintf("healthCheck.timeout %s must be at least 1ms", out.Timeout))
	case hc.UnhealthyThreshold < 0:
		st.reject(v1alpha1.ReasonInvalidHealthCheck, fmt.Sprintf("healthCheck.unhealthyThreshold %d must be positive", hc.UnhealthyThreshold))
	case hc.HealthyThreshold < 0:
		st.reject(v1alpha1.ReasonInvalidHealthCheck, fmt.Sprintf("healthCheck.healthyThreshold %d must be positive", hc.HealthyThreshold))
	}
	if hc.UnhealthyThreshold > 0 {
		out.UnhealthyThreshold = uint32(hc.UnhealthyThreshold)
	}
	if hc.HealthyThreshold > 0 {
		out.HealthyThreshold = uint32(hc.HealthyThreshold)
	}
	return out
}

func buildLoadBalancing(st *statusBuilder, lb v1alpha1.LoadBalancing) LoadBalancingIR {
	switch lb.Policy {
	case "", v1alpha1.RoundRobin:
		return LBRoundRobin
	case v1alpha1.Random:
		return LBRandom
	case v1alpha1.LeastRequest:
		return LBLeastRequest
	default:
		st.reject(v1alpha1.ReasonInvalidLoadBalancing, fmt.Sprintf("loadBalancing.policy %q is not one of RoundRobin, Random, LeastRequest", lb.Policy))
		return LBRoundRobin
	}
}

func buildTokenReview(st *statusBuilder, tr v1alpha1.TokenReviewAuthentication) TokenReviewIR {
	out := TokenReviewIR{
		Enabled:          tr.Enabled == nil || *tr.Enabled,
		CacheTTL:         DefaultTokenCacheTTL,
		NegativeCacheTTL: DefaultTokenNegativeCacheTTL,
	}
	if tr.CacheTTL != nil {
		out.CacheTTL = tr.CacheTTL.Duration
	}
	if tr.NegativeCacheTTL != nil {
		out.NegativeCacheTTL = tr.NegativeCacheTTL.Duration
	}
	switch {
	case out.CacheTTL < 0:
		st.reject(v1alpha1.ReasonInvalidAuthentication, fmt.Sprintf("authentication.tokenReview.cacheTTL %s must not be negative", out.CacheTTL))
	case out.NegativeCacheTTL < 0:
		st.reject(v1alpha1.ReasonInvalidAuthentication, fmt.Sprintf("authentication.tokenReview.negativeCacheTTL %s must not be negative", out.NegativeCacheTTL))
	}
	for i, a := range tr.Audiences {
		if a == "" {
			st.reject(v1alpha1.ReasonInvalidAuthentication, fmt.Sprintf("authentication.tokenReview.audiences[%d] is empty", i))
			continue
		}
		out.Audiences = append(out.Audiences, a)
	}
	slices.Sort(out.Audiences)
	out.Audiences = slices.Compact(out.Audiences)
	return out
}
