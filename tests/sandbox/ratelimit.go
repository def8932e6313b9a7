package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Global token buckets need two more real components: Redis (bin/redis-server,
// from Debian's package) holds the counters, and envoyproxy/ratelimit
// (bin/ratelimit) answers Envoy's rate limit filter. The service takes its
// configuration over xDS from frontdoor serve's gRPC port (CONFIG_TYPE
// GRPC_XDS_SOTW, with its own node id), exactly as in production. Tests
// kill and restart both by the PIDs the sandbox started, to check the
// failure modes.

// RateLimitNodeID is the xDS node id the sandbox's ratelimit service uses.
const RateLimitNodeID = "sandbox-ratelimit"

const rateLimitTimeout = 30 * time.Second

// startRedis starts Redis on 127.0.0.1:port, with no persistence (a
// restarted Redis starts with empty counters, as after a failover).
func (s *Sandbox) startRedis(ctx context.Context, port int) error {
	if s.opts.GRPCUnixSocket || s.opts.GRPCMutualTLS {
		return errors.New("GlobalRateLimit needs frontdoor's gRPC on plain loopback TCP (the ratelimit service's xDS client): not with GRPCUnixSocket or GRPCMutualTLS")
	}
	dir := s.path("redis")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	s.RedisAddress = "127.0.0.1:" + strconv.Itoa(port)
	s.redis = newProcess("redis", s.bin("redis-server"), s.logPath("redis"),
		"--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--dir", dir,
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "yes")
	s.progress("redis: %s (log: %s)", s.RedisAddress, s.redis.logPath)
	return s.StartRedis(ctx)
}

// StartRedis starts Redis (again) and waits until it accepts connections.
func (s *Sandbox) StartRedis(ctx context.Context) error {
	if err := s.redis.start(); err != nil {
		return err
	}
	rctx, cancel := waitCtx(ctx, rateLimitTimeout)
	defer cancel()
	return s.redis.waitFor(rctx, "to answer PING on "+s.RedisAddress, 100*time.Millisecond, func(ctx context.Context) error {
		return redisPing(ctx, s.RedisAddress)
	})
}

// StopRedis kills Redis (SIGKILL to the process group the sandbox
// started), as a crash would.
func (s *Sandbox) StopRedis() { s.redis.stop(syscall.SIGKILL, stopGrace) }

// planRateLimit prepares the ratelimit service on loopback ports; it
// starts once frontdoor serves xDS (StartRateLimit).
func (s *Sandbox) planRateLimit(grpcPort, httpPort, debugPort int) {
	s.RateLimitAddress = "127.0.0.1:" + strconv.Itoa(grpcPort)
	s.rateLimitHealthURL = "http://127.0.0.1:" + strconv.Itoa(httpPort) + "/healthcheck"
	s.rateLimitConfigURL = "http://127.0.0.1:" + strconv.Itoa(debugPort) + "/rlconfig"
	s.ratelimit = newProcess("ratelimit", s.bin("ratelimit"), s.logPath("ratelimit"))
	s.ratelimit.env = []string{
		"HOST=127.0.0.1", "PORT=" + strconv.Itoa(httpPort),
		"GRPC_HOST=127.0.0.1", "GRPC_PORT=" + strconv.Itoa(grpcPort),
		"DEBUG_HOST=127.0.0.1", "DEBUG_PORT=" + strconv.Itoa(debugPort),
		// No statsd to send to, and its stand-in logs every sample.
		"USE_STATSD=false", "DISABLE_STATS=true", "LOG_LEVEL=info",
		"BACKEND_TYPE=redis", "REDIS_SOCKET_TYPE=tcp", "REDIS_TYPE=SINGLE", "REDIS_URL=" + s.RedisAddress,
		// A dead Redis must fail a check quickly, well inside Envoy's
		// timeout for the call, so the failure mode applies at once.
		"REDIS_TIMEOUT=100ms",
		"CONFIG_TYPE=GRPC_XDS_SOTW", "CONFIG_GRPC_XDS_NODE_ID=" + RateLimitNodeID,
		"CONFIG_GRPC_XDS_SERVER_CONNECT_RETRY_INTERVAL=500ms",
	}
}

// StartRateLimit starts the ratelimit service (again) and waits for its
// health check. It reads its config from frontdoor (GRPCAddress) over xDS.
func (s *Sandbox) StartRateLimit(ctx context.Context) error {
	const xdsURL = "CONFIG_GRPC_XDS_SERVER_URL="
	s.ratelimit.env = append(slices.DeleteFunc(s.ratelimit.env, func(e string) bool { return strings.HasPrefix(e, xdsURL) }), xdsURL+s.GRPCAddress)
	s.progress("ratelimit: gRPC %s, Redis %s, config over xDS from %s as node %s (log: %s)",
		s.RateLimitAddress, s.RedisAddress, s.GRPCAddress, RateLimitNodeID, s.ratelimit.logPath)
	if err := s.ratelimit.start(); err != nil {
		return err
	}
	rctx, cancel := waitCtx(ctx, rateLimitTimeout)
	defer cancel()
	return s.ratelimit.waitFor(rctx, "to pass "+s.rateLimitHealthURL, 200*time.Millisecond, func(ctx context.Context) error {
		return ExpectStatus(ctx, &http.Client{}, s.rateLimitHealthURL, http.StatusOK)
	})
}

// StopRateLimit kills the ratelimit service (SIGKILL to the process group
// the sandbox started), as a crash would.
func (s *Sandbox) StopRateLimit() { s.ratelimit.stop(syscall.SIGKILL, stopGrace) }

// RateLimitConfig is the ratelimit service's loaded config as its debug
// port's /rlconfig prints it: one line per limit,
// "<domain>.<key>_<value>[.<key>]: unit=SECOND requests_per_unit=N, ...".
func (s *Sandbox) RateLimitConfig(ctx context.Context) (string, error) {
	if s.rateLimitConfigURL == "" {
		return "", errors.New("the sandbox runs no ratelimit service (Options.GlobalRateLimit)")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.rateLimitConfigURL, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", s.rateLimitConfigURL, resp.Status)
	}
	return string(b), err
}

// redisPing sends one inline PING and expects +PONG.
func redisPing(ctx context.Context, addr string) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	buf := make([]byte, 7)
	n, err := conn.Read(buf)
	if err != nil {
		return err
	}
	if string(buf[:n]) != "+PONG\r\n" {
		return fmt.Errorf("redis answered %q to PING", buf[:n])
	}
	return nil
}
