package extproc

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ruleNone labels requests the request service denied: they have no rule.
const ruleNone = "none"

// metrics are what only ext_proc can see: each request's response.
type metrics struct {
	responses *prometheus.CounterVec
	latency   *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		responses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "frontdoor_extproc_responses_total",
			Help: "Responses seen by the ext_proc request service, by cluster, rule (none when the request service denied) and code class (2xx..5xx).",
		}, []string{"cluster", "rule", "code_class"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "frontdoor_extproc_response_duration_seconds",
			Help: "Time from the request-headers decision to the response headers (the upstream's answer), by cluster and rule.",
			// 1ms .. ~65s: from cached GETs to slow LISTs and long polls.
			Buckets: prometheus.ExponentialBuckets(1e-3, 4, 9),
		}, []string{"cluster", "rule"}),
	}
	if reg != nil {
		if err := reg.Register(m.responses); err != nil {
			return nil, err
		}
		if err := reg.Register(m.latency); err != nil {
			reg.Unregister(m.responses)
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) observe(cluster, rule string, code int, d time.Duration) {
	m.responses.WithLabelValues(cluster, rule, codeClass(code)).Inc()
	if rule != ruleNone {
		m.latency.WithLabelValues(cluster, rule).Observe(d.Seconds())
	}
}

// codeClass is "2xx" for 200..299 and so on; "other" outside 100..599.
func codeClass(code int) string {
	if code < 100 || code > 599 {
		return "other"
	}
	return strconv.Itoa(code/100) + "xx"
}
