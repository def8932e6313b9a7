// Package probe health-checks the upstream servers for Envoy, once per
// server whatever the number of Envoy clusters and Envoys that send to it:
// the translator lists the servers (translator.ProbeTarget, the request
// Envoy's own checker would send), the Prober probes each on its interval
// with Envoy's thresholds, and its verdicts go back into the translation
// as EDS health status (translator/probes.go says why).
//
// It imports no xds or gRPC: xds drives it through SetTargets, Verdicts
// and Changed.
package probe

import (
	"context"
	"log/slog"
	"reflect"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kubefrontdoor/frontdoor/translator"
)

// Prober probes a set of targets, one goroutine each.
type Prober struct {
	log     *slog.Logger
	probes  *prometheus.CounterVec
	verdict *prometheus.GaugeVec
	// probe sends one probe; a test may replace it before SetTargets.
	probe func(ctx context.Context, c *client) result

	ctx context.Context // targets stop with it

	mu      sync.Mutex
	targets map[key]*target
	changed chan struct{}
}

type key struct{ cluster, address string }

type target struct {
	spec   translator.ProbeTarget
	cancel context.CancelFunc
	state  state
	first  chan struct{} // closed at the first verdict
	once   sync.Once
}

func (t *target) closeFirst() { t.once.Do(func() { close(t.first) }) }

// New returns a Prober whose probes stop when ctx is done, with its
// metrics registered with reg (nil: none).
func New(ctx context.Context, reg prometheus.Registerer, log *slog.Logger) *Prober {
	if log == nil {
		log = slog.Default()
	}
	p := &Prober{
		log: log,
		probes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "frontdoor_upstream_health_probes_total",
			Help: "Health probes frontdoor sent to each upstream server (once per server and interval, for every Envoy cluster and Envoy), by result: success (200), refused (another status: unhealthy at once) or unreachable (no answer in time: counts towards the unhealthy threshold).",
		}, []string{"cluster", "server", "result"}),
		verdict: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "frontdoor_upstream_health_verdict",
			Help: "1 when frontdoor's health probes find the upstream server healthy, 0 when not; published to Envoy as the EDS health status of the server in every cluster. No series before the first probe.",
		}, []string{"cluster", "server"}),
		probe:   send,
		ctx:     ctx,
		targets: map[key]*target{},
		changed: make(chan struct{}, 1),
	}
	if reg != nil {
		reg.MustRegister(p.probes, p.verdict)
	}
	return p
}

// Changed fires (coalesced) when a verdict changes.
func (p *Prober) Changed() <-chan struct{} { return p.changed }

// Verdicts returns the verdict of every target probed at least once.
func (p *Prober) Verdicts() translator.ServerHealth {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := translator.ServerHealth{}
	for k, t := range p.targets {
		if !t.state.known {
			continue
		}
		if out[k.cluster] == nil {
			out[k.cluster] = map[string]bool{}
		}
		out[k.cluster][k.address] = t.state.healthy
	}
	return out
}

// SetTargets makes targets the probed set: new ones start probing at once,
// removed ones stop and lose their verdict, and a changed one (a new path,
// interval or certificate) restarts with its verdict kept. It returns a
// channel closed once every new target has its first verdict, nil when
// there is no new target.
func (p *Prober) SetTargets(targets []translator.ProbeTarget) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	want := make(map[key]translator.ProbeTarget, len(targets))
	for _, t := range targets {
		want[key{t.Cluster, t.Address}] = t
	}
	for k, t := range p.targets {
		if spec, ok := want[k]; !ok || !reflect.DeepEqual(spec, t.spec) {
			t.cancel() // its goroutine returns on its own
			if !ok {
				delete(p.targets, k)
				p.verdict.DeleteLabelValues(k.cluster, k.address)
				p.probes.DeletePartialMatch(prometheus.Labels{"cluster": k.cluster, "server": k.address})
			}
		}
	}
	var firsts []chan struct{}
	for k, spec := range want {
		old := p.targets[k]
		if old != nil && reflect.DeepEqual(old.spec, spec) {
			continue
		}
		t := &target{spec: spec, first: make(chan struct{})}
		if old != nil && old.state.known {
			t.state = old.state
			t.closeFirst()
		} else {
			firsts = append(firsts, t.first)
		}
		ctx, cancel := context.WithCancel(p.ctx)
		t.cancel = cancel
		p.targets[k] = t
		go p.loop(ctx, k, t)
	}
	if len(firsts) == 0 {
		return nil
	}
	all := make(chan struct{})
	go func() {
		for _, f := range firsts {
			<-f
		}
		close(all)
	}()
	return all
}

// loop probes t until ctx is done: at once, then interval after each
// probe ends (as Envoy schedules its checks).
func (p *Prober) loop(ctx context.Context, k key, t *target) {
	c, err := newClient(t.spec)
	if err != nil {
		// The translator checked the PEMs; this is a bug, not bad input.
		p.log.Error("health probe not started", "cluster", k.cluster, "server", k.address, "error", err)
		t.closeFirst() // no verdict: Envoy treats the server as healthy
		return
	}
	defer c.close()
	for {
		r := p.probe(ctx, c)
		if ctx.Err() != nil {
			return
		}
		if r != passed {
			c.reset() // a hung connection must not carry the next probe
		}
		p.record(k, t, r)
		t.closeFirst()
		select {
		case <-ctx.Done():
			return
		case <-time.After(t.spec.Interval):
		}
	}
}

// record applies r to t's state and announces a changed verdict.
func (p *Prober) record(k key, t *target, r result) {
	p.mu.Lock()
	if p.targets[k] != t { // replaced or removed meanwhile
		p.mu.Unlock()
		return
	}
	p.probes.WithLabelValues(k.cluster, k.address, r.String()).Inc()
	wasKnown, wasHealthy := t.state.known, t.state.healthy
	moved := t.state.observe(r, t.spec.UnhealthyThreshold, t.spec.HealthyThreshold)
	healthy := t.state.healthy
	if moved {
		v := 0.0
		if healthy {
			v = 1
		}
		p.verdict.WithLabelValues(k.cluster, k.address).Set(v)
	}
	p.mu.Unlock()
	if !moved {
		return
	}
	if wasKnown && wasHealthy != healthy {
		p.log.Info("upstream server health changed", "upstreamCluster", k.cluster, "server", k.address, "healthy", healthy, "probe", r.String())
	}
	select {
	case p.changed <- struct{}{}:
	default:
	}
}
