package inprocess

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kubefrontdoor/frontdoor/authz"
	"github.com/kubefrontdoor/frontdoor/envoy"
	"github.com/kubefrontdoor/frontdoor/inprocess/abi"
	"github.com/kubefrontdoor/frontdoor/inprocess/policyfeed"
	"github.com/kubefrontdoor/frontdoor/policy"
)

// Register installs the request filter (envoy.InProcessModuleFilter) in
// the module, and turns on replayed decisions (replay.go) keyed by what the
// pipeline reads. The module's main package calls it from init.
func Register() {
	abi.ConfigureReplay(abi.ReplayFields{
		Key:    headerNames(authz.ReplayKeyHeaders()),
		Hashed: headerNames(authz.ReplayHashedHeaders),
		Bypass: headerNames(authz.ReplayBypassHeaders),
	})
	abi.RegisterFilter(envoy.InProcessModuleFilter, func(config []byte) (abi.FilterConfig, error) {
		return theModule.newConfig(config)
	})
}

// theModule is the module's one pipeline: every cluster's filter config
// shares it (and its caches), as every cluster shares frontdoor serve's.
var theModule = &module{}

// module is the process-wide state behind every filter config: the
// pipeline, its policy subscription and its metrics endpoint, each started
// by the first config that needs it and kept for the life of Envoy (a Go
// module is never unloaded).
type module struct {
	mu       sync.Mutex
	pipeline *authz.Pipeline
	replays  replayCounter
	// feed is the policy address subscribed to; one per process.
	feed string
	// metrics is the address the metrics are served on, if any.
	metrics string
}

// newConfig runs on Envoy's main thread for each cluster's filter config.
func (m *module) newConfig(raw []byte) (abi.FilterConfig, error) {
	var cfg envoy.InProcessConfig
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return nil, fmt.Errorf("frontdoor in-process filter config: %w", err)
	}
	if cfg.Cluster == "" || cfg.PolicyAddress == "" {
		return nil, errors.New("frontdoor in-process filter config: cluster and policyAddress are required")
	}
	if abi.InValidationMode() {
		// envoy --mode validate: the config is valid; start nothing.
		return &filterConfig{cluster: cfg.Cluster}, nil
	}
	p, err := m.start(cfg)
	if err != nil {
		return nil, err
	}
	return &filterConfig{cluster: cfg.Cluster, accessLog: cfg.AccessLog, checker: p, pipeline: p, replays: &m.replays}, nil
}

// start returns the pipeline, creating it, subscribing to the policy feed
// and serving metrics on first use.
func (m *module) start(cfg envoy.InProcessConfig) (*authz.Pipeline, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.pipeline == nil {
		reg := prometheus.NewRegistry()
		// The Go runtime inside Envoy (and Envoy's process) under their own
		// prefix, so they never collide with frontdoor serve's go_* series.
		prometheus.WrapRegistererWithPrefix("frontdoor_module_", reg).MustRegister(
			collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		log := slog.New(slog.NewTextHandler(envoyLog{}, &slog.HandlerOptions{Level: slog.LevelInfo}))
		p, err := authz.NewPipeline(authz.Options{Registry: reg, Logger: log})
		if err != nil {
			return nil, err
		}
		registerAccessLogMetrics(reg)
		if cfg.MetricsAddress != "" {
			go serveMetrics(cfg.MetricsAddress, reg, m.replays.flush, log)
			m.metrics = cfg.MetricsAddress
		}
		go m.replays.flushEvery(flushInterval)
		go policyfeed.Subscribe(context.Background(), cfg.PolicyAddress, func(t *policy.Table) {
			p.SetPolicy(t)
			abi.ForgetReplays() // after: a decision replayed from now on was made under t
		}, log)
		m.pipeline, m.feed = p, cfg.PolicyAddress
		log.Info("frontdoor in-process request service started", "policyAddress", cfg.PolicyAddress, "metricsAddress", cfg.MetricsAddress)
	}
	// One pipeline holds one table: two feeds would overwrite each other.
	if cfg.PolicyAddress != m.feed {
		return nil, fmt.Errorf("frontdoor in-process filter config: policyAddress %q differs from %q, which this Envoy already follows", cfg.PolicyAddress, m.feed)
	}
	if cfg.MetricsAddress != m.metrics {
		return nil, fmt.Errorf("frontdoor in-process filter config: metricsAddress %q differs from %q, already served", cfg.MetricsAddress, m.metrics)
	}
	return m.pipeline, nil
}

// serveMetrics serves the pipeline's metrics on addr for the life of the
// process. A taken address is retried every second, never fatal: during an
// Envoy hot restart (or two Envoys sharing a port) the old process holds it
// until it exits, and requests must not wait for metrics.
func serveMetrics(addr string, reg *prometheus.Registry, flush func(), log *slog.Logger) {
	mux := http.NewServeMux()
	metrics := promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
	mux.Handle("/metrics", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		flush() // replayed decisions, counted so far
		metrics.ServeHTTP(w, r)
	}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	for warned := false; ; {
		lis, err := net.Listen("tcp", addr)
		if err == nil {
			log.Info("in-process metrics served", "address", addr)
			err = srv.Serve(lis)
			log.Error("in-process metrics server stopped", "address", addr, "error", err)
			return
		}
		if !warned {
			log.Warn("in-process metrics address taken; retrying every second", "address", addr, "error", err)
			warned = true
		}
		time.Sleep(time.Second)
	}
}

// envoyLog writes the pipeline's log lines into Envoy's log.
type envoyLog struct{}

func (envoyLog) Write(b []byte) (int, error) {
	abi.Log(abi.LogInfo, strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

func headerNames(ms []envoy.RequestHeaderMatch) []abi.HeaderName {
	out := make([]abi.HeaderName, len(ms))
	for i, m := range ms {
		out[i] = abi.HeaderName{Name: m.Name, Prefix: m.Prefix}
	}
	return out
}
