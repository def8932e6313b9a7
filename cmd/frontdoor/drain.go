package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
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
	admin := "http://" + f.adminAddr
	for _, path := range []string{"/healthcheck/fail", "/drain_listeners?graceful"} {
		if err := post(ctx, admin+path); err != nil {
			return err
		}
	}
	log.Info("envoy draining", "admin", f.adminAddr, "timeout", f.timeout)
	deadline := time.Now().Add(f.timeout)
	for {
		active, err := activeRequests(ctx, admin)
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
		if err := post(ctx, admin+"/quitquitquit"); err != nil {
			return err
		}
	}
	return nil
}

func post(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// activeRequests sums http.*.downstream_rq_active over every HTTP
// connection manager (one per UpstreamCluster).
func activeRequests(ctx context.Context, admin string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, admin+"/stats?filter=^http\\..*\\.downstream_rq_active$", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET /stats: %s", resp.Status)
	}
	total := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "http.admin.") {
			continue // this very request
		}
		_, v, ok := strings.Cut(sc.Text(), ": ")
		if !ok {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return 0, fmt.Errorf("stat line %q: %w", sc.Text(), err)
		}
		total += n
	}
	if err := sc.Err(); err != nil && !errors.Is(err, io.EOF) {
		return 0, err
	}
	return total, nil
}
