package main

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/kubefrontdoor/frontdoor/envoy/admin"
)

type drainFlags struct {
	adminAddr string
	timeout   time.Duration
	quit      bool
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
func runDrain(args []string) error {
	f := &drainFlags{}
	fs := flag.NewFlagSet("drain", flag.ContinueOnError)
	fs.StringVar(&f.adminAddr, "admin-address", "127.0.0.1:19000", "host:port of Envoy's admin interface")
	fs.DurationVar(&f.timeout, "timeout", 25*time.Second, "how long in-flight requests may take to finish; keep it below the pod's terminationGracePeriodSeconds")
	fs.BoolVar(&f.quit, "quit", false, "stop Envoy (POST /quitquitquit) once the drain is over")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	ctx, cancel := context.WithTimeout(context.Background(), f.timeout+10*time.Second)
	defer cancel()
	envoyAdmin := admin.New("http://" + f.adminAddr)
	for _, path := range []string{"/healthcheck/fail", "/drain_listeners?graceful"} {
		if err := envoyAdmin.Post(ctx, path); err != nil {
			return err
		}
	}
	log.Info("envoy draining", "admin", f.adminAddr, "timeout", f.timeout)
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
		if err := envoyAdmin.Post(ctx, "/quitquitquit"); err != nil {
			return err
		}
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
