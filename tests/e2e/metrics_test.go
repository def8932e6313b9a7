package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubefrontdoor/frontdoor/tests/sandbox"
)

// The gateway's metrics, as operators read them: frontdoor's /metrics and
// Envoy's /stats/prometheus count what the gateway did (at least, and
// exactly, for a known workload), and every series the Grafana dashboard
// queries is one of them.

// series is a Prometheus series the gateway exports, summed over the
// samples whose labels match labels; scrape reads the exposition that
// holds it (sb.FrontdoorMetrics or envoyStats), what names it in failures.
type series struct {
	what   string
	scrape func(context.Context) (string, error)
	name   string
	labels map[string]string
}

// envoyStats is Envoy's /stats/prometheus.
func envoyStats(ctx context.Context) (string, error) { return sb.EnvoyAdmin(ctx, "/stats/prometheus") }

// read scrapes s and returns its sum and the exposition it read; a failed
// scrape or parse fails t.
func (s series) read(t *testing.T, ctx context.Context) (float64, string) {
	t.Helper()
	text, err := s.scrape(ctx)
	if err != nil {
		t.Fatalf("scraping %s: %v", s.what, err)
	}
	v, err := sandbox.SumMetric(text, s.name, s.labels)
	if err != nil {
		t.Fatalf("%s: %v", s.what, err)
	}
	return v, text
}

// growth polls s for up to 5 s until it has grown by want since before
// (Envoy, and frontdoor's response phase, count just after the response is
// sent) and returns how much it grew and the exposition last read.
func (s series) growth(t *testing.T, ctx context.Context, before, want float64) (float64, string) {
	t.Helper()
	var delta float64
	var text string
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_ = poll(pctx, 200*time.Millisecond, func() (bool, error) {
		var v float64
		v, text = s.read(t, ctx)
		delta = v - before
		return delta >= want, nil
	})
	return delta, text
}

// Operators watch both halves of the gateway: frontdoor's /metrics counts
// every authorization decision by cluster, and Envoy's /stats/prometheus
// counts upstream requests per cluster. After K known requests both counters
// have grown by at least K.
func TestMetricsCountRequests(t *testing.T) {
	ctx := setup(t, time.Minute)
	const k = 20
	counters := []series{
		{"frontdoor", sb.FrontdoorMetrics, "frontdoor_authz_requests_total", map[string]string{"cluster": sandbox.ClusterName, "decision": "allowed"}},
		{"envoy", envoyStats, "envoy_cluster_upstream_rq_total", map[string]string{"envoy_cluster_name": gatewayCluster}},
	}
	before := make([]float64, len(counters))
	for i, c := range counters {
		before[i], _ = c.read(t, ctx)
	}

	cs := sandbox.Clientset(t, adminUser().gateway())
	for i := range k {
		if _, err := cs.CoreV1().Namespaces().Get(ctx, metav1.NamespaceDefault, metav1.GetOptions{}); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}

	for i, c := range counters {
		delta, text := c.growth(t, ctx, before[i], k)
		if delta < k {
			t.Errorf("%s: %s%s grew by %v after %d requests, want >= %d; series present: %v",
				c.what, c.name, fmt.Sprint(c.labels), delta, k, k, sandbox.MetricLabels(text, c.name))
		}
	}
}

// After a known workload, frontdoor's /metrics and Envoy's
// /stats/prometheus hold exactly its counts, per rule, verb, resource,
// decision and code: K allowed GETs of a missing ConfigMap (404 from the
// apiserver) and M unauthenticated LISTs of Secrets (401 from frontdoor).
func TestMetricsExactCountsAfterKnownWorkload(t *testing.T) {
	ctx := setup(t, time.Minute)
	const k, m = 7, 4
	type counted struct {
		series
		want float64
	}
	cluster := sandbox.ClusterName
	all := []counted{
		{series{"frontdoor allowed", sb.FrontdoorMetrics, "frontdoor_requests_total",
			map[string]string{"cluster": cluster, "rule": "default", "verb": "get", "resource": "configmaps", "decision": "allowed"}}, k},
		{series{"frontdoor unauthenticated", sb.FrontdoorMetrics, "frontdoor_requests_total",
			map[string]string{"cluster": cluster, "rule": "none", "verb": "list", "resource": "secrets", "decision": "unauthenticated"}}, m},
		{series{"frontdoor authn failures", sb.FrontdoorMetrics, "frontdoor_authn_attempts_total",
			map[string]string{"method": "x509", "result": "no_credential"}}, m},
		{series{"envoy upstream 404s", envoyStats, "envoy_cluster_upstream_rq",
			map[string]string{"envoy_cluster_name": gatewayCluster, "envoy_response_code": "404"}}, k},
	}
	if sandbox.RequestServiceFromEnv() == "ExtProc" {
		all = append(all,
			counted{series{"ext_proc responses", sb.FrontdoorMetrics, "frontdoor_extproc_responses_total",
				map[string]string{"cluster": cluster, "rule": "default", "code_class": "4xx"}}, k},
			counted{series{"ext_proc denials", sb.FrontdoorMetrics, "frontdoor_extproc_responses_total",
				map[string]string{"cluster": cluster, "rule": "none", "code_class": "4xx"}}, m})
	}
	before := make([]float64, len(all))
	for i, s := range all {
		before[i], _ = s.read(t, ctx)
	}

	u := newUser("metrics-user", "system:masters")
	certified, err := sb.HTTPClient(u.certPEM, u.keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	anonymous, err := sb.HTTPClient(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range k {
		if code := doGet(t, ctx, certified, fmt.Sprintf("/api/v1/namespaces/default/configmaps/metrics-probe-%d", i), ""); code != http.StatusNotFound {
			t.Fatalf("GET missing configmap: %d, want 404", code)
		}
	}
	for range m {
		if code := doGet(t, ctx, anonymous, "/api/v1/namespaces/default/secrets", ""); code != http.StatusUnauthorized {
			t.Fatalf("anonymous LIST secrets: %d, want 401", code)
		}
	}

	for i, s := range all {
		delta, _ := s.growth(t, ctx, before[i], s.want)
		if delta != s.want {
			t.Errorf("%s: %s%v grew by %v, want exactly %v", s.what, s.name, s.labels, delta, s.want)
		}
	}
}

// Every frontdoor_ and envoy_ series the Grafana dashboard queries is one
// the running gateway exports, so no panel stays empty because of a typo
// or a renamed metric. (frontdoor_extproc_* exist only with ExtProc.)
func TestDashboardQueriesExistingMetrics(t *testing.T) {
	ctx := setup(t, time.Minute)
	root, err := sandbox.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dash, err := os.ReadFile(filepath.Join(root, "manifests", "dashboards", "frontdoor.json"))
	if err != nil {
		t.Fatal(err)
	}
	// Some traffic so that every labelled series has a child.
	if _, err := sandbox.Clientset(t, adminUser().gateway()).Discovery().ServerVersion(); err != nil {
		t.Fatal(err)
	}
	// Per-server health appears after frontdoor's first successful poll of
	// Envoy's admin API (every 2 s).
	var fd string
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := poll(wctx, 200*time.Millisecond, func() (bool, error) {
		fd, err = sb.FrontdoorMetrics(wctx)
		return err == nil && strings.Contains(fd, "# TYPE frontdoor_upstream_server_healthy "), nil
	}); err != nil {
		t.Logf("frontdoor_upstream_server_healthy not exported within 10 s: %v", err)
	}
	if fd == "" {
		t.Fatalf("frontdoor /metrics: %v", err)
	}
	envoyText, err := sb.EnvoyAdmin(ctx, "/stats/prometheus")
	if err != nil {
		t.Fatal(err)
	}
	exported := fd + envoyText
	// A metric name is followed by its selector or range (label names, in
	// "by (...)", are not).
	var names []string
	for _, m := range regexp.MustCompile(`\b((?:frontdoor|envoy)_[a-z0-9_]+)[{\[]`).FindAllStringSubmatch(string(dash), -1) {
		names = append(names, m[1])
	}
	slices.Sort(names)
	for _, name := range slices.Compact(names) {
		switch {
		case strings.HasPrefix(name, "frontdoor_extproc_") && sandbox.RequestServiceFromEnv() != "ExtProc":
			continue
		case name == "frontdoor_config_errors_total" || name == "frontdoor_xds_nacks_total":
			continue // exported once the first error happens
		case strings.HasPrefix(name, "envoy_cluster_ratelimit_"):
			continue // exported once a Global token bucket took traffic; TestGlobalLimitHolds checks them
		}
		base := name
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			base = strings.TrimSuffix(base, suffix)
		}
		if !strings.Contains(exported, "# TYPE "+base+" ") {
			t.Errorf("dashboard queries %s, which neither frontdoor nor Envoy exports", name)
		}
	}
}
