package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubefrontdoor/frontdoor/tests/sandbox"
)

// Operators watch both halves of the gateway: frontdoor's /metrics counts
// every authorization decision by cluster, and Envoy's /stats/prometheus
// counts upstream requests per cluster. After K known requests both counters
// have grown by at least K.
func TestMetricsCountRequests(t *testing.T) {
	ctx := setup(t, time.Minute)
	const k = 20
	type counter struct {
		what   string
		name   string
		labels map[string]string
		scrape func(context.Context) (string, error)
	}
	envoyStats := func(ctx context.Context) (string, error) { return sb.EnvoyAdmin(ctx, "/stats/prometheus") }
	counters := []counter{
		{"frontdoor", "frontdoor_authz_requests_total", map[string]string{"cluster": sandbox.ClusterName, "decision": "allowed"}, sb.FrontdoorMetrics},
		{"envoy", "envoy_cluster_upstream_rq_total", map[string]string{"envoy_cluster_name": gatewayCluster}, envoyStats},
	}
	read := func(c counter) (float64, string) {
		text, err := c.scrape(ctx)
		if err != nil {
			t.Fatalf("scraping %s: %v", c.what, err)
		}
		v, err := sandbox.SumMetric(text, c.name, c.labels)
		if err != nil {
			t.Fatalf("%s: %v", c.what, err)
		}
		return v, text
	}
	before := make([]float64, len(counters))
	for i, c := range counters {
		before[i], _ = read(c)
	}

	cs := sandbox.Clientset(t, adminUser().gateway())
	for i := range k {
		if _, err := cs.CoreV1().Namespaces().Get(ctx, metav1.NamespaceDefault, metav1.GetOptions{}); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}

	for i, c := range counters {
		// Counters may be bumped just after the response is sent.
		var delta float64
		var text string
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_ = poll(pctx, 200*time.Millisecond, func() (bool, error) {
			var v float64
			v, text = read(c)
			delta = v - before[i]
			return delta >= k, nil
		})
		cancel()
		if delta < k {
			t.Errorf("%s: %s%s grew by %v after %d requests, want >= %d; series present: %v",
				c.what, c.name, fmt.Sprint(c.labels), delta, k, k, sandbox.MetricLabels(text, c.name))
		}
	}
}
