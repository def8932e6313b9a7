package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/kubefrontdoor/frontdoor/envoy/admin"
)

// pacedDrain drains one Envoy over f.window:
//
//  1. POST /healthcheck/fail, as the plain drain does;
//  2. ask the control plane to remove drain bucket 0, 1, ... of this
//     Envoy's listener (its node ID from /server_info), one every
//     window/buckets: Envoy sends each removed bucket's connections GOAWAY
//     and closes them --drain-time-s later;
//  3. once every bucket but the last is gone, POST
//     /drain_listeners?graceful, wait Envoy's drain time, and (--quit)
//     stop Envoy, which closes the last bucket.
//
// Bucket k's connections thus end at k*step + drain time: evenly over the
// window. A control plane that does not split listeners into buckets is
// reported, and the plain drain runs instead.
func pacedDrain(ctx context.Context, log *slog.Logger, envoyAdmin *admin.Client, f *drainFlags) error {
	info, err := envoyAdmin.ServerInfo(ctx)
	if err != nil {
		return err
	}
	if err := envoyAdmin.Post(ctx, "/healthcheck/fail"); err != nil {
		return err
	}
	cp := &http.Client{Timeout: 5 * time.Second}
	t0 := time.Now()
	first, err := drainStep(ctx, cp, f.controlPlaneURL, info.NodeID, 1)
	if err != nil {
		log.Error("paced drain refused: closing the connections at the end instead", "error", err)
		f.window = 0
		return runPlainDrainAfterFail(ctx, log, envoyAdmin, f)
	}
	step := f.window / time.Duration(first.Buckets)
	log.Info("envoy draining, paced", "node", info.NodeID, "window", f.window, "buckets", first.Buckets,
		"step", step, "drainTime", info.DrainTime)
	// Steps on a fixed schedule from t0 (not sleeps after each step), so
	// a slow step does not push every later one.
	for n := 2; n < first.Buckets; n++ {
		if err := sleepCtx(ctx, time.Until(t0.Add(time.Duration(n-1)*step))); err != nil {
			return err
		}
		if _, err := drainStep(ctx, cp, f.controlPlaneURL, info.NodeID, n); err != nil {
			// A serve restarting mid-drain misses a step; the next
			// step carries the whole state again.
			log.Error("drain step failed", "step", n, "error", err)
		}
	}
	if err := sleepCtx(ctx, time.Until(t0.Add(time.Duration(first.Buckets-1)*step))); err != nil {
		return err
	}
	if err := envoyAdmin.Post(ctx, "/drain_listeners?graceful"); err != nil {
		return err
	}
	if err := sleepCtx(ctx, info.DrainTime); err != nil {
		return err
	}
	log.Info("paced drain over: stopping with the last bucket's connections", "quit", f.quit)
	if f.quit {
		return envoyAdmin.Post(ctx, "/quitquitquit")
	}
	return nil
}

// runPlainDrainAfterFail is the plain drain from step 2, for a paced drain
// the control plane refused.
func runPlainDrainAfterFail(ctx context.Context, log *slog.Logger, envoyAdmin *admin.Client, f *drainFlags) error {
	if err := envoyAdmin.Post(ctx, "/drain_listeners?graceful"); err != nil {
		return err
	}
	return waitDrained(ctx, log, envoyAdmin, f)
}

// drainStep asks the control plane to remove buckets [0, n) of node's
// listener.
func drainStep(ctx context.Context, c *http.Client, base, node string, n int) (drainStepResponse, error) {
	u := strings.TrimSuffix(base, "/") + drainStepPath + "?node=" + url.QueryEscape(node) + "&step=" + strconv.Itoa(n)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
	if err != nil {
		return drainStepResponse{}, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return drainStepResponse{}, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return drainStepResponse{}, fmt.Errorf("POST %s: %s: %s", u, resp.Status, strings.TrimSpace(string(body)))
	}
	var out drainStepResponse
	if err := json.Unmarshal(body, &out); err != nil || out.Buckets < 2 {
		return drainStepResponse{}, fmt.Errorf("POST %s: unexpected answer %q", u, body)
	}
	return out, nil
}

// sleepCtx sleeps d (nothing if d <= 0) unless ctx ends first.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
