package authz

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the pipeline's Prometheus collectors, registered in the
// registry the caller injects so tests (and several pipelines) stay apart.
type metrics struct {
	requests  *prometheus.CounterVec
	replayed  *prometheus.CounterVec
	duration  prometheus.Histogram
	cacheHit  prometheus.Counter
	cacheMiss prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "frontdoor_authz_requests_total",
		Help: "Requests decided by the request service, by cluster and decision (allowed, unauthenticated, forbidden, unavailable, invalid).",
	}, []string{"cluster", "decision"})
	replayed := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "frontdoor_replayed_decisions_total",
		Help: "Requests the in-process request service answered with a decision it replayed from the worker's memory (an identical certificate-authenticated request within its replay window), by cluster; also counted in frontdoor_authz_requests_total and frontdoor_requests_total, not in the check-duration or authenticator metrics.",
	}, []string{"cluster"})
	duration := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "frontdoor_authz_check_duration_seconds",
		Help: "Time the request service spends deciding one request.",
		// 10µs .. ~2.6s: cached decisions take microseconds; misses that
		// verify a certificate (or, later, call TokenReview) take longer.
		Buckets: prometheus.ExponentialBuckets(10e-6, 4, 10),
	})
	cache := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "frontdoor_authn_cache_total",
		Help: "Authentication cache lookups, by result (hit, miss).",
	}, []string{"result"})
	if reg != nil {
		collectors := []prometheus.Collector{requests, replayed, duration, cache}
		for i, c := range collectors {
			if err := reg.Register(c); err != nil {
				for _, done := range collectors[:i] {
					reg.Unregister(done)
				}
				return nil, err
			}
		}
	}
	return &metrics{
		requests:  requests,
		replayed:  replayed,
		duration:  duration,
		cacheHit:  cache.WithLabelValues("hit"),
		cacheMiss: cache.WithLabelValues("miss"),
	}, nil
}

func (m *metrics) observe(cluster string, o Outcome, d time.Duration) {
	m.requests.WithLabelValues(cluster, string(o)).Inc()
	m.duration.Observe(d.Seconds())
}
