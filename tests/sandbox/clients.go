package sandbox

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// HTTPClient returns an HTTP client that trusts the sandbox CA and presents
// the given client cert (none if certPEM is nil). It speaks HTTP/2 like
// kubectl does.
func (s *Sandbox) HTTPClient(certPEM, keyPEM []byte) (*http.Client, error) {
	pool := x509.NewCertPool()
	pool.AddCert(s.CA.Cert)
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if certPEM != nil {
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true},
	}, nil
}

// RESTConfig returns a client-go config for server with the given client
// cert. Client-side rate limiting is off so tests measure the gateway, not
// client-go's default 5 QPS.
func (s *Sandbox) RESTConfig(server string, certPEM, keyPEM []byte) *rest.Config {
	return &rest.Config{
		Host: server,
		TLSClientConfig: rest.TLSClientConfig{
			CAData:   s.CA.CertPEM,
			CertData: certPEM,
			KeyData:  keyPEM,
		},
		QPS:     -1,
		Timeout: 30 * time.Second,
	}
}

// GatewayConfig is RESTConfig through the gateway.
func (s *Sandbox) GatewayConfig(certPEM, keyPEM []byte) *rest.Config {
	return s.RESTConfig(s.GatewayURL, certPEM, keyPEM)
}

// DirectConfig is RESTConfig straight to replica i (1-based), bypassing the
// gateway: the reference every "transparent" assertion compares against.
func (s *Sandbox) DirectConfig(i int, certPEM, keyPEM []byte) *rest.Config {
	return s.RESTConfig(s.ReplicaURLs[i-1], certPEM, keyPEM)
}

// WriteKubeconfig writes a kubeconfig for server with an embedded client
// cert and the sandbox CA.
func (s *Sandbox) WriteKubeconfig(path, server string, certPEM, keyPEM []byte) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["sandbox"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: s.CA.CertPEM}
	cfg.AuthInfos["user"] = &clientcmdapi.AuthInfo{ClientCertificateData: certPEM, ClientKeyData: keyPEM}
	cfg.Contexts["sandbox"] = &clientcmdapi.Context{Cluster: "sandbox", AuthInfo: "user"}
	cfg.CurrentContext = "sandbox"
	return clientcmd.WriteToFile(*cfg, path)
}

// writeClientFiles writes the admin kubeconfigs and endpoints.env.
func (s *Sandbox) writeClientFiles() error {
	s.AdminKubeconfig = s.path("admin.kubeconfig")
	s.DirectKubeconfig = s.path("direct.kubeconfig")
	s.EndpointsEnv = s.path("endpoints.env")
	if err := s.WriteKubeconfig(s.AdminKubeconfig, s.GatewayURL, s.AdminCertPEM, s.AdminKeyPEM); err != nil {
		return err
	}
	if err := s.WriteKubeconfig(s.DirectKubeconfig, s.ReplicaURLs[0], s.AdminCertPEM, s.AdminKeyPEM); err != nil {
		return err
	}
	return os.WriteFile(s.EndpointsEnv, []byte(s.Endpoints()), 0o644)
}

// Endpoints renders every URL as shell variable assignments (the content of
// DIR/endpoints.env).
func (s *Sandbox) Endpoints() string {
	var b strings.Builder
	kv := func(k, v string) { fmt.Fprintf(&b, "%s='%s'\n", k, v) }
	kv("SANDBOX_DIR", s.Dir)
	kv("GATEWAY_URL", s.GatewayURL)
	for i, u := range s.ReplicaURLs {
		kv(fmt.Sprintf("REPLICA_%d_URL", i+1), u)
	}
	kv("ENVOY_ADMIN_URL", s.EnvoyAdminURL)
	if len(s.Gateways) > 1 {
		for i, g := range s.Gateways {
			kv(fmt.Sprintf("GATEWAY_%d_URL", i+1), g.URL)
			kv(fmt.Sprintf("GATEWAY_%d_ADMIN_URL", i+1), g.AdminURL)
			kv(fmt.Sprintf("GATEWAY_%d_ACCESS_LOG", i+1), g.AccessLogPath)
		}
	}
	kv("FRONTDOOR_METRICS_URL", s.FrontdoorMetricsURL)
	kv("ETCD_URL", s.ETCDURL)
	if s.RateLimitAddress != "" {
		kv("RATELIMIT_ADDRESS", s.RateLimitAddress)
		kv("REDIS_ADDRESS", s.RedisAddress)
	}
	kv("ADMIN_KUBECONFIG", s.AdminKubeconfig)
	kv("DIRECT_KUBECONFIG", s.DirectKubeconfig)
	return b.String()
}

// ReplicaRequestCounts scrapes each replica's own /metrics (directly, as
// admin) and sums apiserver_request_total over the samples whose labels
// match filter, e.g. {"resource": "configmaps", "verb": "GET"}. Index 0 is
// replica 1. The difference of two calls shows where the gateway sent
// requests.
func (s *Sandbox) ReplicaRequestCounts(ctx context.Context, filter map[string]string) ([]float64, error) {
	client, err := s.HTTPClient(s.AdminCertPEM, s.AdminKeyPEM)
	if err != nil {
		return nil, err
	}
	counts := make([]float64, len(s.ReplicaURLs))
	for i, u := range s.ReplicaURLs {
		text, err := Get(ctx, client, u+"/metrics")
		if err != nil {
			return nil, fmt.Errorf("replica %d: %w", i+1, err)
		}
		if counts[i], err = SumMetric(text, "apiserver_request_total", filter); err != nil {
			return nil, fmt.Errorf("replica %d: %w", i+1, err)
		}
	}
	return counts, nil
}

// EnvoyAdmin fetches a path of Envoy's admin interface (e.g. "/clusters",
// "/stats/prometheus").
func (s *Sandbox) EnvoyAdmin(ctx context.Context, path string) (string, error) {
	if s.EnvoyAdminURL == "" {
		return "", errors.New("the sandbox runs no Envoy")
	}
	return Get(ctx, &http.Client{Timeout: 10 * time.Second}, s.EnvoyAdminURL+path)
}

// FrontdoorMetrics fetches frontdoor's Prometheus text: frontdoor serve's
// and, when the sandbox's cluster runs InProcess, the request pipeline's
// inside Envoy, merged as Prometheus would aggregate the two scrapes: a
// family both expose (serve's idle pipeline and the module's) lists the
// series of both, so sums count each request once.
func (s *Sandbox) FrontdoorMetrics(ctx context.Context) (string, error) {
	if s.FrontdoorMetricsURL == "" {
		return "", errors.New("the sandbox runs no frontdoor")
	}
	c := &http.Client{Timeout: 10 * time.Second}
	text, err := Get(ctx, c, s.FrontdoorMetricsURL)
	if err != nil || s.opts.RequestService != "InProcess" {
		return text, err
	}
	module, err := Get(ctx, c, s.ModuleMetricsURL)
	if err != nil {
		return "", fmt.Errorf("in-process module metrics: %w", err)
	}
	return mergeMetrics(text, module)
}

// mergeMetrics merges two Prometheus text expositions family by family.
func mergeMetrics(texts ...string) (string, error) {
	merged := map[string]*dto.MetricFamily{}
	for _, text := range texts {
		parser := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := parser.TextToMetricFamilies(strings.NewReader(text))
		if err != nil {
			return "", fmt.Errorf("parsing metrics: %w", err)
		}
		for name, f := range fams {
			if m, ok := merged[name]; ok {
				m.Metric = append(m.Metric, f.Metric...)
			} else {
				merged[name] = f
			}
		}
	}
	names := make([]string, 0, len(merged))
	for n := range merged {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		if _, err := expfmt.MetricFamilyToText(&b, merged[n]); err != nil {
			return "", err
		}
	}
	return b.String(), nil
}

// SumMetric parses Prometheus text and sums the samples of the counter,
// gauge or untyped metric name whose labels include every pair of filter.
// A metric that is absent sums to 0 (a counter nobody has incremented yet).
func SumMetric(text, name string, filter map[string]string) (float64, error) {
	sum, _, err := sumSeries(text, name, filter)
	return sum, err
}

// HasSeries reports whether the Prometheus text holds at least one series
// of name whose labels include every pair of filter, for a gauge where 0
// and "not exported" mean different things.
func HasSeries(text, name string, filter map[string]string) (bool, error) {
	_, n, err := sumSeries(text, name, filter)
	return n > 0, err
}

// sumSeries sums the matching series of name and counts them.
func sumSeries(text, name string, filter map[string]string) (sum float64, n int, err error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		return 0, 0, fmt.Errorf("parsing metrics: %w", err)
	}
	for _, m := range families[name].GetMetric() {
		if !labelsMatch(m, filter) {
			continue
		}
		n++
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Untyped != nil:
			sum += m.Untyped.GetValue()
		}
	}
	return sum, n, nil
}

// MetricLabels lists the distinct label sets of a metric, for failure
// messages that show what was there instead.
func MetricLabels(text, name string) []string {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		return []string{err.Error()}
	}
	var out []string
	for _, m := range families[name].GetMetric() {
		var pairs []string
		for _, l := range m.GetLabel() {
			pairs = append(pairs, l.GetName()+"="+l.GetValue())
		}
		out = append(out, "{"+strings.Join(pairs, ",")+"}")
	}
	sort.Strings(out)
	return out
}

func labelsMatch(m *dto.Metric, filter map[string]string) bool {
	for k, v := range filter {
		found := false
		for _, l := range m.GetLabel() {
			if l.GetName() == k && l.GetValue() == v {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// Get GETs url with client and returns the body; any status but 200 OK is
// an error that carries the start of the body.
func Get(ctx context.Context, client *http.Client, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s: %.300s", url, resp.Status, body)
	}
	return string(body), nil
}

// ExpectStatus GETs url with client and fails unless the status is want;
// the error carries the start of the body.
func ExpectStatus(ctx context.Context, client *http.Client, url string, want int) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
	if resp.StatusCode != want {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, body)
	}
	return nil
}
