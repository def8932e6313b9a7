package kubegateway

import (
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"net/url"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubefrontdoor/frontdoor/api/v1alpha1"
)

// Options shape the output.
type Options struct {
	// Namespace of the Secrets the inline PEM data becomes (Kubernetes mode
	// reads Secrets only in the gateway's namespace). Default
	// DefaultNamespace.
	Namespace string
	// RequestService, when set, is written into every UpstreamCluster
	// (KubeGateway had no such choice; empty keeps Frontdoor's default).
	RequestService v1alpha1.RequestService
}

// DefaultNamespace is where the Secrets go unless Options say otherwise:
// the namespace manifests/deploy runs Frontdoor in.
const DefaultNamespace = "frontdoor-system"

// Result is what a conversion yields: Secrets first (UpstreamClusters refer
// to them), then UpstreamClusters, each in input order, and the report.
type Result struct {
	Secrets  []corev1.Secret
	Clusters []v1alpha1.UpstreamCluster
	Findings []Finding
}

// Convert reads a YAML stream of KubeGateway UpstreamClusters and converts
// each. It fails only when the input is not YAML.
func Convert(data []byte, opts Options) (*Result, error) {
	if opts.Namespace == "" {
		opts.Namespace = DefaultNamespace
	}
	docs, skipped, err := decode(data)
	if err != nil {
		return nil, err
	}
	res := &Result{Findings: skipped}
	seen := map[string]bool{}
	for _, d := range docs {
		if seen[d.uc.Metadata.Name] {
			res.Findings = append(res.Findings, Finding{Object: d.uc.Metadata.Name, Field: "metadata.name", Kind: NotCarried,
				Detail: "a second UpstreamCluster with this name; skipped (the first is converted)"})
			continue
		}
		seen[d.uc.Metadata.Name] = true
		c := &converter{reporter: reporter{object: d.uc.Metadata.Name, findings: d.findings}, in: &d.uc, opts: opts}
		secrets, uc := c.convert()
		res.Secrets = append(res.Secrets, secrets...)
		res.Clusters = append(res.Clusters, uc)
		res.Findings = append(res.Findings, c.findings...)
	}
	return res, nil
}

// converter converts one UpstreamCluster.
type converter struct {
	reporter
	in   *kgUpstreamCluster
	opts Options
	// servers maps each carried KubeGateway endpoint string (as policies'
	// subsets name it) to the Frontdoor endpoint.
	servers map[string]string
	// schemas are the carried flow-control schema names.
	schemas map[string]bool
}

func (c *converter) convert() ([]corev1.Secret, v1alpha1.UpstreamCluster) {
	in := c.in
	out := v1alpha1.UpstreamCluster{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "UpstreamCluster"},
		ObjectMeta: metav1.ObjectMeta{Name: in.Metadata.Name, Labels: in.Metadata.Labels},
	}
	c.annotations()
	if in.Status != nil {
		c.add("status", NotCarried, "status is observed, not configuration")
	}
	out.Spec.Servers = c.convertServers()
	secrets := c.convertTLS(&out.Spec)
	out.Spec.FlowControl = c.convertFlowControl()
	out.Spec.DispatchPolicies = c.convertPolicies()
	if m := in.Spec.Logging.Mode; m != "" {
		c.add("spec.logging.mode", NotCarried, "%q: Frontdoor's access log is Envoy's, configured per gateway (see README \"Access log\"), not per cluster", m)
	}
	out.Spec.RequestService = c.opts.RequestService
	return secrets, out
}

// annotations: KubeGateway keeps per-cluster feature gates in an
// annotation; DenyAllRequests is handled by convertPolicies, the others
// have no Frontdoor equivalent. Other annotations are KubeGateway's or
// kubectl's (last-applied-configuration would copy the inline keys), so
// none is copied.
func (c *converter) annotations() {
	keys := make([]string, 0, len(c.in.Metadata.Annotations))
	for k := range c.in.Metadata.Annotations {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		field := "metadata.annotations[" + k + "]"
		switch k {
		case featureGatesAnnotation:
			for _, g := range c.featureGates() {
				switch g {
				case "DenyAllRequests":
					// reported by convertPolicies
				case "CloseConnectionWhenIdle":
					c.add(field, NotCarried, "CloseConnectionWhenIdle: Envoy closes idle client connections by its own idle timeout (README \"The edge\")")
				case "GlobalRateLimiter":
					c.add(field, NotCarried, "GlobalRateLimiter: Frontdoor has no global (cross-replica) limits yet; every limit is per Envoy replica")
				default:
					c.add(field, NotCarried, "feature gate %s is unknown", g)
				}
			}
		case "kubectl.kubernetes.io/last-applied-configuration":
			c.add(field, NotCarried, "kubectl's record of the KubeGateway object (it holds the inline keys)")
		default:
			c.add(field, NotCarried, "annotations are not copied")
		}
	}
}

// featureGatesAnnotation holds KubeGateway's per-cluster feature gates,
// "Name=true,Other=false".
const featureGatesAnnotation = "proxy.kubegateway.io/feature-gates"

// featureGates are the gates the annotation turns on.
func (c *converter) featureGates() []string {
	var on []string
	for _, kv := range strings.Split(c.in.Metadata.Annotations[featureGatesAnnotation], ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		if k != "" && strings.EqualFold(strings.TrimSpace(v), "true") {
			on = append(on, strings.TrimSpace(k))
		}
	}
	return on
}

// convertServers keeps https endpoints; a trailing "/" is dropped (Frontdoor
// wants https://host:port) and remembered so subsets still find it.
func (c *converter) convertServers() []v1alpha1.Server {
	c.servers = map[string]string{}
	var out []v1alpha1.Server
	for i, s := range c.in.Spec.Servers {
		field := fmt.Sprintf("spec.servers[%d].endpoint", i)
		ep := strings.TrimRight(s.Endpoint, "/")
		u, err := url.Parse(ep)
		switch {
		case err != nil || u.Host == "" || (u.Path != "" || u.RawQuery != ""):
			c.add(field, NotCarried, "%q is not scheme://host:port", s.Endpoint)
			continue
		case u.Scheme != "https":
			c.add(field, NotCarried, "%q: Frontdoor reaches apiservers over TLS only (https)", s.Endpoint)
			continue
		}
		if _, dup := c.servers[s.Endpoint]; dup || containsServer(out, ep) {
			c.add(field, Converted, "%q is listed twice; kept once", s.Endpoint)
			c.servers[s.Endpoint] = ep
			continue
		}
		if ep != s.Endpoint {
			c.add(field, Converted, "%q written without its trailing /", s.Endpoint)
		}
		c.servers[s.Endpoint] = ep
		out = append(out, v1alpha1.Server{Endpoint: ep, Disabled: s.Disabled != nil && *s.Disabled})
	}
	if len(out) == 0 {
		c.add("spec.servers", NotCarried, "no https server is left: the UpstreamCluster needs at least one (add servers or endpointsFrom)")
	}
	return out
}

func containsServer(ss []v1alpha1.Server, ep string) bool {
	for _, s := range ss {
		if s.Endpoint == ep {
			return true
		}
	}
	return false
}

// convertTLS turns the inline PEM data into Secrets and refers to them:
// <name>-upstream (clientConfig), <name>-serving and <name>-client-ca
// (secureServing).
func (c *converter) convertTLS(spec *v1alpha1.UpstreamClusterSpec) []corev1.Secret {
	name, cc, ss := c.in.Metadata.Name, c.in.Spec.ClientConfig, c.in.Spec.SecureServing
	var secrets []corev1.Secret

	// Upstream identity and trust.
	up := map[string][]byte{}
	c.pemField("spec.clientConfig.certData", cc.CertData, "tls.crt", up)
	c.pemField("spec.clientConfig.keyData", cc.KeyData, "tls.key", up)
	c.pemField("spec.clientConfig.caData", cc.CAData, "ca.crt", up)
	spec.ClientConfig.SecretRef = v1alpha1.SecretReference{Namespace: c.opts.Namespace, Name: name + "-upstream"}
	if len(up) > 0 {
		secrets = append(secrets, c.secret(name+"-upstream", up))
	}
	if (up["tls.crt"] == nil) != (up["tls.key"] == nil) {
		c.add("spec.clientConfig", NotCarried, "certData and keyData come as a pair: the gateway's client certificate needs both")
	}
	if cc.BearerToken != "" {
		c.add("spec.clientConfig.bearerToken", NotCarried, "Frontdoor authenticates itself upstream with a client certificate only (tls.crt/tls.key in Secret %s/%s-upstream); issue one for the gateway's user", c.opts.Namespace, name)
	} else if up["tls.crt"] == nil {
		c.add("spec.clientConfig", NotCarried, "no client certificate: create Secret %s/%s-upstream with tls.crt and tls.key for the gateway's user", c.opts.Namespace, name)
	}
	if cc.Insecure {
		if up["ca.crt"] != nil {
			c.add("spec.clientConfig.insecure", NotCarried, "caData is given too: Frontdoor verifies the servers with it (insecureSkipTLSVerify with a CA is refused as a contradiction)")
		} else {
			spec.ClientConfig.InsecureSkipTLSVerify = true
			c.add("spec.clientConfig.insecure", Converted, "clientConfig.insecureSkipTLSVerify: true (test clusters only)")
		}
	} else if up["ca.crt"] == nil {
		c.add("spec.clientConfig.caData", NotCarried, "no CA for the servers' certificates: add ca.crt to Secret %s/%s-upstream", c.opts.Namespace, name)
	}
	if cc.QPS != 0 || cc.Burst != 0 || cc.QPSDivisor != 0 {
		c.add("spec.clientConfig.qps", NotCarried, "a client-side limit on the gateway's own upstream client: Frontdoor limits per dispatch policy (flowControl), not its upstream connection")
	}
	if cc.ServerName != "" {
		c.add("spec.clientConfig.serverName", NotCarried, "%q: Frontdoor verifies each server's certificate against the host of its endpoint; the certificate must name that host (IP or DNS SAN)", cc.ServerName)
	}

	// Serving: KubeGateway selects the cluster by its name as host (SNI);
	// later releases add secureServing.serverNames.
	spec.SecureServing.ServerNames = appendUnique([]string{name}, ss.ServerNames...)
	serving := map[string][]byte{}
	c.pemField("spec.secureServing.certData", ss.CertData, "tls.crt", serving)
	c.pemField("spec.secureServing.keyData", ss.KeyData, "tls.key", serving)
	spec.SecureServing.SecretRef = v1alpha1.SecretReference{Namespace: c.opts.Namespace, Name: name + "-serving"}
	if serving["tls.crt"] != nil && serving["tls.key"] != nil {
		secrets = append(secrets, c.secret(name+"-serving", serving))
	} else {
		c.add("spec.secureServing.certData", NotCarried, "no serving certificate and key pair: KubeGateway served this cluster with its own --tls-cert-file; create Secret %s/%s-serving (tls.crt, tls.key) with a certificate for %s", c.opts.Namespace, name, strings.Join(spec.SecureServing.ServerNames, ", "))
	}
	clientCA := map[string][]byte{}
	c.pemField("spec.secureServing.clientCAData", ss.ClientCAData, "ca.crt", clientCA)
	if clientCA["ca.crt"] != nil {
		spec.SecureServing.ClientCASecretRef = &v1alpha1.SecretReference{Namespace: c.opts.Namespace, Name: name + "-client-ca"}
		secrets = append(secrets, c.secret(name+"-client-ca", clientCA))
	} else {
		c.add("spec.secureServing.clientCAData", NotCarried, "no client CA: KubeGateway fell back to its own --client-ca-file; without secureServing.clientCASecretRef Frontdoor accepts no x509 users for this cluster")
	}
	return secrets
}

// pemField base64-decodes one inline PEM field into data[key]; bad base64
// (a placeholder left in) or data that is not PEM is reported.
func (c *converter) pemField(field, b64, key string, data map[string][]byte) {
	if b64 == "" {
		return
	}
	raw, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(b64), ""))
	if err != nil {
		c.add(field, NotCarried, "not base64 (%v): fill in the base64 of the PEM file", err)
		return
	}
	if block, _ := pem.Decode(raw); block == nil {
		c.add(field, NotCarried, "does not hold PEM data")
		return
	}
	data[key] = raw
}

func (c *converter) secret(name string, data map[string][]byte) corev1.Secret {
	typ := corev1.SecretTypeOpaque
	if data["tls.crt"] != nil && data["tls.key"] != nil {
		typ = corev1.SecretTypeTLS
	}
	return corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Namespace: c.opts.Namespace, Name: name},
		Type:       typ,
		Data:       data,
	}
}

func appendUnique(list []string, more ...string) []string {
	for _, m := range more {
		if m != "" && !contains(list, m) {
			list = append(list, m)
		}
	}
	return list
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
