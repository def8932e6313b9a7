package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kubefrontdoor/frontdoor/internal/testenv"
)

// RollOptions configure RollGateway.
type RollOptions struct {
	// DrainTimeout bounds the old instance's drain (`frontdoor drain
	// --timeout` and `frontdoor serve --drain-timeout`).
	DrainTimeout time.Duration
	// OnDraining, if set, is called as the old instance is told to drain
	// (the signal may still be on its way), with the old frontdoor's
	// readiness URL.
	OnDraining func(oldReadyURL string)
}

// RollGateway replaces the running gateway (frontdoor + Envoy, what one pod
// of a Deployment runs) the way a rolling update does, on the same client
// port: a new frontdoor and a new Envoy start beside the old ones (the two
// Envoys share the listener port with SO_REUSEPORT, Envoy's default on
// Linux, as the old and new pods share a Service); once the new Envoy serves,
// the old pod is terminated as the kubelet would: frontdoor gets SIGTERM
// while Envoy's preStop hook, `frontdoor drain`, drains Envoy, which then
// gets SIGTERM. The sandbox then points at the new instance.
func (s *Sandbox) RollGateway(ctx context.Context, opts RollOptions) error {
	if s.envoy == nil || s.frontdoor == nil {
		return fmt.Errorf("no gateway to roll")
	}
	ports, err := testenv.FreePorts(4)
	if err != nil {
		return err
	}
	epoch := strconv.FormatInt(time.Now().UnixNano(), 36)
	grpcAddr := s.grpcAddress("127.0.0.1:"+strconv.Itoa(ports[0]), "grpc-"+epoch+".sock")
	httpAddr := "127.0.0.1:" + strconv.Itoa(ports[1])
	adminAddr := "127.0.0.1:" + strconv.Itoa(ports[2])
	// The new pod's module serves its metrics on its own port (the old
	// Envoy's module holds the old one until it exits).
	moduleMetricsAddr := "127.0.0.1:" + strconv.Itoa(ports[3])
	listenPort := strings.TrimPrefix(s.GatewayURL, "https://127.0.0.1:")
	drain := opts.DrainTimeout.String()

	args := s.serveArgs([]string{"--config-dir", s.path("config"), "--envoy-admin-url", "http://" + adminAddr},
		grpcAddr, httpAddr, listenPort, moduleMetricsAddr)
	args = append(args, "--drain-timeout", drain)
	fd := newProcess("frontdoor", s.bin("frontdoor"), s.logPath("frontdoor-"+epoch), args...)
	s.progress("rolling the gateway: new frontdoor on %s (log: %s)", grpcAddr, fd.logPath)
	if err := fd.start(); err != nil {
		return err
	}
	plain := &http.Client{}
	fctx, cancel := waitCtx(ctx, frontdoorTimeout)
	defer cancel()
	if err := fd.waitFor(fctx, "to become ready", 200*time.Millisecond, func(ctx context.Context) error {
		return ExpectStatus(ctx, plain, "http://"+httpAddr+"/readyz", http.StatusOK)
	}); err != nil {
		fd.stop(syscall.SIGKILL, 0)
		return err
	}

	bootstrap := s.path("envoy-" + epoch + ".yaml")
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, s.bin("frontdoor"), "bootstrap",
		"--xds-address", grpcAddr, "--admin-address", adminAddr, "--node-id", "sandbox-envoy-"+epoch)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		fd.stop(syscall.SIGKILL, 0)
		return fmt.Errorf("frontdoor bootstrap: %w: %s", err, stderr.String())
	}
	if err := os.WriteFile(bootstrap, stdout.Bytes(), 0o644); err != nil {
		fd.stop(syscall.SIGKILL, 0)
		return err
	}
	ev := newProcess("envoy", s.bin("envoy"), s.logPath("envoy-"+epoch), EnvoyArgs(bootstrap)...)
	if err := ev.start(); err != nil {
		fd.stop(syscall.SIGKILL, 0)
		return err
	}
	// The new Envoy serves once its listener is up (admin /listeners names
	// it) and its upstream has a healthy host.
	gctx, gcancel := waitCtx(ctx, gatewayTimeout)
	defer gcancel()
	if err := ev.waitFor(gctx, "to serve the listener", 200*time.Millisecond, func(ctx context.Context) error {
		if err := ExpectStatus(ctx, plain, "http://"+adminAddr+"/ready", http.StatusOK); err != nil {
			return err
		}
		text, err := Get(ctx, plain, "http://"+adminAddr+"/clusters")
		if err != nil {
			return err
		}
		if !strings.Contains(text, "::health_flags::healthy") {
			return fmt.Errorf("no healthy upstream yet")
		}
		return nil
	}); err != nil {
		ev.stop(syscall.SIGKILL, 0)
		fd.stop(syscall.SIGKILL, 0)
		return err
	}

	// Terminate the old pod: both containers at once, Envoy's preStop first.
	oldFD, oldEnvoy := s.frontdoor, s.envoy
	oldReady := strings.TrimSuffix(s.FrontdoorHealthURL, "/healthz") + "/readyz"
	oldAdmin := strings.TrimPrefix(s.EnvoyAdminURL, "http://")
	s.progress("rolling the gateway: draining the old Envoy (admin %s) and frontdoor", oldAdmin)
	var wg sync.WaitGroup
	var drainErr error
	wg.Go(func() { oldFD.stop(syscall.SIGTERM, opts.DrainTimeout+stopGrace) })
	wg.Go(func() {
		var out bytes.Buffer
		c := exec.CommandContext(ctx, s.bin("frontdoor"), "drain", "--admin-address", oldAdmin, "--timeout", drain)
		c.Stdout, c.Stderr = &out, &out
		if err := c.Run(); err != nil {
			drainErr = fmt.Errorf("frontdoor drain: %w: %s", err, out.String())
		}
		oldEnvoy.stop(syscall.SIGTERM, stopGrace)
	})
	if opts.OnDraining != nil {
		opts.OnDraining(oldReady)
	}
	wg.Wait()

	s.frontdoor, s.envoy = fd, ev
	s.GRPCAddress = grpcAddr
	s.EnvoyAdminURL = "http://" + adminAddr
	if len(s.Gateways) > 0 {
		s.Gateways[0].envoy, s.Gateways[0].AdminURL, s.Gateways[0].BootstrapPath = ev, s.EnvoyAdminURL, bootstrap
	}
	s.FrontdoorMetricsURL = "http://" + httpAddr + "/metrics"
	s.FrontdoorHealthURL = "http://" + httpAddr + "/healthz"
	s.ModuleMetricsURL = "http://" + moduleMetricsAddr + "/metrics"
	// The ratelimit service took its config from the old frontdoor's xDS
	// port, which is gone: start it again on the new one.
	if s.ratelimit != nil {
		s.ratelimit.stop(syscall.SIGTERM, stopGrace)
		if err := s.StartRateLimit(ctx); err != nil {
			return errors.Join(drainErr, fmt.Errorf("the ratelimit service on the new frontdoor: %w", err))
		}
	}
	return drainErr
}
