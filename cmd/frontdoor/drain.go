package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/kubefrontdoor/frontdoor/envoy/admin"
)

type drainFlags struct {
	adminAddr       string
	timeout         time.Duration
	quit            bool
	controlPlaneURL string
	window          time.Duration
}

// runDrain drains one Envoy through its admin API. It is the Envoy
// container's preStop hook in a Deployment (the kubelet sends SIGTERM only
// after the hook returns, and Envoy stops at once on SIGTERM):
//
//  1. POST /healthcheck/fail: Envoy's own health (and an LB health check
//     pointed at it) fails, so no new traffic is sent to this instance;
//  2. POST /drain_listeners?graceful: every connection is asked to go away
//     (HTTP/2 GOAWAY, HTTP/1.1 "Connection: close" on the next response)
//     while in-flight requests finish, then the listeners close after
//     Envoy's --drain-time-s;
//  3. wait until no request is active or --timeout passes: unary requests
//     finish in this time; watches and other streams never end by
//     themselves, so they are what the timeout ends;
//  4. with --quit, POST /quitquitquit: Envoy exits and closes whatever is
//     left (watches), and clients re-establish those on another instance,
//     resuming from their last resourceVersion.
//
// With --window and --control-plane-url (a serve with --drain-buckets),
// steps 2 and 3 are paced instead (pacedDrain): the connections, watches
// included, are closed one bucket at a time over the window, so their
// clients do not all come back in the same second.
func runDrain(args []string) error {
	f := &drainFlags{}
	fs := flag.NewFlagSet("drain", flag.ContinueOnError)
	fs.StringVar(&f.adminAddr, "admin-address", "127.0.0.1:19000", "host:port of Envoy's admin interface")
	fs.DurationVar(&f.timeout, "timeout", 25*time.Second, "how long in-flight requests may take to finish; keep it below the pod's terminationGracePeriodSeconds")
	fs.BoolVar(&f.quit, "quit", false, "stop Envoy (POST /quitquitquit) once the drain is over")
	fs.StringVar(&f.controlPlaneURL, "control-plane-url", "", "frontdoor serve's --http-address as a URL (e.g. http://127.0.0.1:18080), for --window")
	fs.DurationVar(&f.window, "window", 0, "paced drain: close this Envoy's connections (watches too) a bucket at a time over this window, through the control plane (serve --drain-buckets; needs --control-plane-url); they all end within window plus Envoy's --drain-time-s. 0: Envoy's own drain, then --timeout")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	ctx, cancel := context.WithTimeout(context.Background(), f.timeout+10*time.Second)
	defer cancel()
	envoyAdmin := admin.New("http://" + f.adminAddr)
	if f.window > 0 {
		if f.controlPlaneURL == "" {
			return fmt.Errorf("--window needs --control-plane-url (frontdoor serve's --http-address)")
		}
		ctx, cancel := context.WithTimeout(context.Background(), f.window+f.timeout+10*time.Second)
		defer cancel()
		return pacedDrain(ctx, log, envoyAdmin, f)
	}
	for _, path := range []string{"/healthcheck/fail", "/drain_listeners?graceful"} {
		if err := envoyAdmin.Post(ctx, path); err != nil {
			return err
		}
	}
	log.Info("envoy draining", "admin", f.adminAddr, "timeout", f.timeout)
	return waitDrained(ctx, log, envoyAdmin, f)
}

// waitDrained waits until no request is in flight or f.timeout passes,
// then (f.quit) stops Envoy.
func waitDrained(ctx context.Context, log *slog.Logger, envoyAdmin *admin.Client, f *drainFlags) error {
	deadline := time.Now().Add(f.timeout)
	for {
		active, err := activeRequests(ctx, envoyAdmin)
		if err != nil {
			return err
		}
		if active == 0 {
			log.Info("envoy drained: no request in flight")
			break
		}
		if time.Now().After(deadline) {
			log.Info("drain timeout: closing the remaining streams", "active", active)
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if f.quit {
		return envoyAdmin.Post(ctx, "/quitquitquit")
	}
	return nil
}

// activeRequests sums http.*.downstream_rq_active over every HTTP
// connection manager (one per UpstreamCluster), leaving out the admin's
// own (this very request).
func activeRequests(ctx context.Context, a *admin.Client) (int64, error) {
	stats, err := a.Stats(ctx, `^http\..*\.downstream_rq_active$`)
	if err != nil {
		return 0, err
	}
	var total int64
	for name, n := range stats {
		if !strings.HasPrefix(name, "http.admin.") {
			total += n
		}
	}
	return total, nil
}
