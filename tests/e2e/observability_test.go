package e2e

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/kubefrontdoor/frontdoor/tests/sandbox"
)

// After a known workload, frontdoor's /metrics and Envoy's
// /stats/prometheus hold exactly its counts, per rule, verb, resource,
// decision and code: K allowed GETs of a missing ConfigMap (404 from the
// apiserver) and M unauthenticated LISTs of Secrets (401 from frontdoor).
func TestMetricsExactCountsAfterKnownWorkload(t *testing.T) {
	ctx := setup(t, time.Minute)
	const k, m = 7, 4
	type series struct {
		what   string
		scrape func(context.Context) (string, error)
		name   string
		labels map[string]string
		want   float64
	}
	envoyStats := func(ctx context.Context) (string, error) { return sb.EnvoyAdmin(ctx, "/stats/prometheus") }
	cluster := sandbox.ClusterName
	all := []series{
		{"frontdoor allowed", sb.FrontdoorMetrics, "frontdoor_requests_total",
			map[string]string{"cluster": cluster, "rule": "default", "verb": "get", "resource": "configmaps", "decision": "allowed"}, k},
		{"frontdoor unauthenticated", sb.FrontdoorMetrics, "frontdoor_requests_total",
			map[string]string{"cluster": cluster, "rule": "none", "verb": "list", "resource": "secrets", "decision": "unauthenticated"}, m},
		{"frontdoor authn failures", sb.FrontdoorMetrics, "frontdoor_authn_attempts_total",
			map[string]string{"method": "x509", "result": "no_credential"}, m},
		{"envoy upstream 404s", envoyStats, "envoy_cluster_upstream_rq",
			map[string]string{"envoy_cluster_name": gatewayCluster, "envoy_response_code": "404"}, k},
	}
	if sandbox.RequestServiceFromEnv() == "ExtProc" {
		all = append(all,
			series{"ext_proc responses", sb.FrontdoorMetrics, "frontdoor_extproc_responses_total",
				map[string]string{"cluster": cluster, "rule": "default", "code_class": "4xx"}, k},
			series{"ext_proc denials", sb.FrontdoorMetrics, "frontdoor_extproc_responses_total",
				map[string]string{"cluster": cluster, "rule": "none", "code_class": "4xx"}, m})
	}
	read := func(s series) float64 {
		text, err := s.scrape(ctx)
		if err != nil {
			t.Fatalf("scraping %s: %v", s.what, err)
		}
		v, err := sandbox.SumMetric(text, s.name, s.labels)
		if err != nil {
			t.Fatalf("%s: %v", s.what, err)
		}
		return v
	}
	before := make([]float64, len(all))
	for i, s := range all {
		before[i] = read(s)
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
		// Envoy and the response phase count just after the response.
		var delta float64
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_ = poll(pctx, 200*time.Millisecond, func() (bool, error) {
			delta = read(s) - before[i]
			return delta >= s.want, nil
		})
		cancel()
		if delta != s.want {
			t.Errorf("%s: %s%v grew by %v, want exactly %v", s.what, s.name, s.labels, delta, s.want)
		}
	}
}
