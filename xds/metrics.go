package xds

import "github.com/prometheus/client_golang/prometheus"

// metrics are the control plane's Prometheus series. They are registered on
// an injected registry so tests can read them.
type metrics struct {
	connectedProxies   prometheus.Gauge
	pushes             prometheus.Counter
	nacks              *prometheus.CounterVec
	snapshotInfo       *prometheus.GaugeVec
	translation        prometheus.Histogram
	configErrors       *prometheus.CounterVec
	clustersAccepted   prometheus.Gauge
	clustersRejected   prometheus.Gauge
	lastSnapshotUnixTS prometheus.Gauge
	nodeErrors         prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		connectedProxies: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "frontdoor_xds_connected_proxies",
			Help: "Envoy ADS streams currently open.",
		}),
		pushes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "frontdoor_xds_snapshot_pushes_total",
			Help: "Snapshots set in the xDS cache.",
		}),
		nacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "frontdoor_xds_nacks_total",
			Help: "Discovery requests in which Envoy rejected a config, by type URL.",
		}, []string{"type_url"}),
		snapshotInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "frontdoor_xds_snapshot_info",
			Help: "Always 1; the version label is the snapshot version being served.",
		}, []string{"version"}),
		translation: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "frontdoor_config_translation_duration_seconds",
			Help:    "Time to translate the inputs into xDS resources and policy.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}),
		configErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "frontdoor_config_errors_total",
			Help: "Config errors by kind and object (files that do not parse, objects rejected by the translator).",
		}, []string{"kind", "name"}),
		clustersAccepted: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "frontdoor_config_upstreamclusters_accepted",
			Help: "UpstreamClusters in the served config.",
		}),
		clustersRejected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "frontdoor_config_upstreamclusters_rejected",
			Help: "UpstreamClusters skipped because of a False Accepted or ResolvedRefs condition.",
		}),
		lastSnapshotUnixTS: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "frontdoor_xds_last_snapshot_timestamp_seconds",
			Help: "Unix time of the last snapshot set in the cache.",
		}),
		nodeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "frontdoor_xds_node_snapshot_errors_total",
			Help: "Per-node snapshots that could not be made (e.g. node metadata asking for a listener port that is not a TCP port); that node keeps its previous config or gets none.",
		}),
	}
	reg.MustRegister(m.connectedProxies, m.pushes, m.nacks, m.snapshotInfo, m.translation,
		m.configErrors, m.clustersAccepted, m.clustersRejected, m.lastSnapshotUnixTS, m.nodeErrors)
	return m
}
