package inprocess

import (
	"sync"
	"time"

	"github.com/kubefrontdoor/frontdoor/authz"
	"github.com/kubefrontdoor/frontdoor/inprocess/abi"
)

// Replayed decisions (abi.Replayable): an allowed decision the pipeline says
// may be replayed (authz.Decision.ReplayUntil: authenticated by a
// certificate or a cached bearer token, no WebSocket token or impersonation
// among the headers) is remembered by the worker that made it, and an
// identical request on that worker (the bearer token compared by its keyed
// hash, authz.ReplayHashedHeaders) is answered in C, with the same
// header and access-log writes, without entering Go. A new policy retires
// every one (module.setPolicy).
//
// Replays never reach the pipeline, so their metrics are counted here:
// each replayable decision gets a class, one per metric series it counts
// in (authz.Pipeline.ReplaySeries), and the classes' hit counters are
// folded into the pipeline's counters every flushInterval and before every
// scrape of the module's metrics.

// flushInterval bounds how late replays show in the pipeline's counters
// between scrapes (a scrape flushes first).
const flushInterval = time.Second

// replayCounter assigns classes and counts their replays.
type replayCounter struct {
	mu      sync.Mutex
	ids     map[string]uint32
	classes []replayClass
}

// replayClass is one metric series' representative decision.
type replayClass struct {
	pipeline *authz.Pipeline
	cluster  string
	decision authz.Decision
	counted  uint64 // replays already added to the pipeline's counters
}

// class returns d's class, allocating one for a new series; false when
// every class is taken (the decision is then not replayed).
func (r *replayCounter) class(p *authz.Pipeline, cluster string, d *authz.Decision) (uint32, bool) {
	series := p.ReplaySeries(cluster, d)
	r.mu.Lock()
	defer r.mu.Unlock()
	if id, ok := r.ids[series]; ok && r.classes[id].pipeline == p {
		return id, true
	}
	if len(r.classes) >= abi.ReplayClasses {
		return 0, false
	}
	if r.ids == nil {
		r.ids = map[string]uint32{}
	}
	id := uint32(len(r.classes)) //nolint:gosec // below abi.ReplayClasses (checked above)
	// Only what CountReplays reads: the counters' labels.
	r.classes = append(r.classes, replayClass{pipeline: p, cluster: cluster, decision: authz.Decision{
		Outcome: d.Outcome, Rule: d.Rule, User: d.User, Info: d.Info,
	}, counted: abi.ReplayHits(id)})
	r.ids[series] = id
	return id, true
}

// flush adds every class's replays since the last flush to its pipeline's
// counters.
func (r *replayCounter) flush() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range r.classes {
		c := &r.classes[i]
		hits := abi.ReplayHits(uint32(i))
		if hits > c.counted {
			c.pipeline.CountReplays(c.cluster, &c.decision, hits-c.counted)
			c.counted = hits
		}
	}
}

// flushEvery flushes every interval, for the life of the process.
func (r *replayCounter) flushEvery(interval time.Duration) {
	for range time.Tick(interval) {
		r.flush()
	}
}
