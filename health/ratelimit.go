package health

import (
	"context"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/kubefrontdoor/frontdoor/envoy/admin"
)

// RateLimitWatcher logs when Envoy's rate limit filter could not reach the
// ratelimit service for a Global token bucket: fail-open policies then
// admit requests unchecked and fail-closed ones refuse them, and an
// operator should learn it from the control plane's log, not only from a
// metric. It polls the filter's per-policy counters
// (cluster.<uc>/<policy>.ratelimit.{error,failure_mode_allowed}) on Envoy's
// admin API and logs one warning per policy and poll in which they rose.
type RateLimitWatcher struct {
	Admin *admin.Client
	Log   *slog.Logger
	// Interval between polls; DefaultInterval if zero.
	Interval time.Duration

	last map[string]int64
}

// rateLimitStats selects the two counters; other policies' stats and the
// local limiter's are left out.
const rateLimitStats = `^cluster\..+\.ratelimit\.(error|failure_mode_allowed)$`

// Run polls until ctx is done. Counters seen for the first time are a
// baseline, not news: a restarted frontdoor does not repeat old failures.
func (w *RateLimitWatcher) Run(ctx context.Context) {
	interval := w.Interval
	if interval <= 0 {
		interval = DefaultInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if stats, err := w.Admin.Stats(ctx, rateLimitStats); err == nil {
			w.observe(stats)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// observe logs the rises since the previous poll.
func (w *RateLimitWatcher) observe(stats map[string]int64) {
	type rise struct{ errors, allowed int64 }
	rises := map[string]*rise{}
	for name, v := range stats {
		rest, ok := strings.CutPrefix(name, "cluster.")
		if !ok {
			continue
		}
		policy, counter, ok := cutLast(rest, ".ratelimit.")
		if !ok {
			continue
		}
		prev, seen := w.last[name]
		if !seen || v <= prev {
			continue
		}
		r := rises[policy]
		if r == nil {
			r = &rise{}
			rises[policy] = r
		}
		if counter == "failure_mode_allowed" {
			r.allowed += v - prev
		} else {
			r.errors += v - prev
		}
	}
	w.last = stats
	policies := make([]string, 0, len(rises))
	for p := range rises {
		policies = append(policies, p)
	}
	sort.Strings(policies)
	for _, p := range policies {
		r := rises[p]
		if r.allowed > 0 {
			w.Log.Warn("global rate limit failing open: the ratelimit service did not answer, requests admitted unchecked",
				"policy", p, "admitted", r.allowed)
		}
		if refused := r.errors - r.allowed; refused > 0 {
			w.Log.Warn("global rate limit failing closed: the ratelimit service did not answer, requests refused with 503",
				"policy", p, "refused", refused)
		}
	}
}

// cutLast cuts s around the last sep.
func cutLast(s, sep string) (before, after string, ok bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}
