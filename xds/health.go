package xds

import (
	"context"
	"time"

	"github.com/kubefrontdoor/frontdoor/translator"
)

// HealthSource health-checks the servers of the translated clusters for
// Envoy, once per server (probe.Prober; translator/probes.go says why).
// Its verdicts are an input of the translation, so a verdict change is one
// more Update: only the EDS resources change, and acknowledgements
// (Programmed) and last-good substitution work as for any other.
type HealthSource interface {
	// SetTargets makes targets the probed set; the channel (nil when no
	// target is new) closes once every new target has a first verdict.
	SetTargets(targets []translator.ProbeTarget) <-chan struct{}
	// Verdicts are the verdicts so far.
	Verdicts() translator.ServerHealth
	// Changed fires (coalesced) when a verdict changes.
	Changed() <-chan struct{}
}

// firstProbeGrace is added to the longest probe timeout when waiting for
// new servers' first verdicts.
const firstProbeGrace = 250 * time.Millisecond

// translate runs translateLastGood on *in with the current verdicts.
// When the served output has servers never probed, it waits for their
// first probe (at most the longest probe timeout) and translates again,
// so a server is published with a verdict, as Envoy's own checker would
// only send to a new server once a check passed. At a restart of frontdoor
// serve this keeps an Envoy from sending to a server the previous process
// had found unhealthy; the wait delays that publish by one probe. It holds
// c.mu throughout.
func (c *Controller) translate(ctx context.Context, in *translator.Inputs) (*translator.Output, []translator.Status, map[string]int64) {
	if c.health == nil {
		return translateLastGood(*in, c.lastGood, c.lastGoodSecrets)
	}
	in.Health = c.health.Verdicts()
	out, verdicts, substituted := translateLastGood(*in, c.lastGood, c.lastGoodSecrets)
	first := c.health.SetTargets(out.Probes)
	if first == nil {
		return out, verdicts, substituted
	}
	var wait time.Duration
	for _, p := range out.Probes {
		wait = max(wait, p.Timeout)
	}
	t := time.NewTimer(wait + firstProbeGrace)
	defer t.Stop()
	select {
	case <-first:
	case <-t.C:
		c.log.Warn("publishing servers before their first health probe answered", "waited", wait+firstProbeGrace)
	case <-ctx.Done():
	}
	in.Health = c.health.Verdicts()
	return translateLastGood(*in, c.lastGood, c.lastGoodSecrets)
}

// FollowHealth publishes the health source's verdicts until ctx is done:
// each change translates the last inputs again. It returns at once without
// a health source.
func (c *Controller) FollowHealth(ctx context.Context) {
	if c.health == nil {
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.health.Changed():
		}
		c.mu.Lock()
		if c.lastIn != nil {
			if err := c.update(ctx, *c.lastIn, true); err != nil {
				c.log.Error("publishing health verdicts failed", "error", err)
			}
		}
		c.mu.Unlock()
	}
}
