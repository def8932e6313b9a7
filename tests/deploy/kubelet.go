package deploy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// This file does what a kubelet would and podman does not: probe the
// containers as their probes say, and stop the Pod as the kubelet does.

// ContainerName is podman's name for container c of the played pod.
func ContainerName(pod, c string) string { return pod + "-" + c }

// Probe runs one probe of container c once, from the host (the Pod is on
// the host network, so the kubelet's view and the host's are the same): an
// HTTP GET must answer 200-399, a TCP socket must accept. Exec probes are
// not supported (nothing in the manifests uses one, and the images have no
// shell to run them).
func Probe(ctx context.Context, c *corev1.Container, p *corev1.Probe) error {
	switch {
	case p.HTTPGet != nil:
		port, err := probePort(c, p.HTTPGet.Port.String())
		if err != nil {
			return err
		}
		host := p.HTTPGet.Host
		if host == "" {
			host = "127.0.0.1"
		}
		scheme := strings.ToLower(string(p.HTTPGet.Scheme))
		if scheme == "" {
			scheme = "http"
		}
		url := fmt.Sprintf("%s://%s%s", scheme, net.JoinHostPort(host, strconv.Itoa(port)), p.HTTPGet.Path)
		ctx, cancel := context.WithTimeout(ctx, probeTimeout(p))
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := (&http.Client{Timeout: probeTimeout(p)}).Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode >= 400 {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return nil
	case p.TCPSocket != nil:
		port, err := probePort(c, p.TCPSocket.Port.String())
		if err != nil {
			return err
		}
		d := net.Dialer{Timeout: probeTimeout(p)}
		conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			return err
		}
		return conn.Close()
	}
	return fmt.Errorf("container %s: unsupported probe %+v", c.Name, p.ProbeHandler)
}

func probeTimeout(p *corev1.Probe) time.Duration {
	if p.TimeoutSeconds > 0 {
		return time.Duration(p.TimeoutSeconds) * time.Second
	}
	return time.Second // the kubelet's default
}

// probePort resolves a probe's port: a number, or the name of one of the
// container's ports (a name no port has is the "wrong probe" this test is
// for).
func probePort(c *corev1.Container, port string) (int, error) {
	if n, err := strconv.Atoi(port); err == nil {
		return n, nil
	}
	for _, p := range c.Ports {
		if p.Name == port {
			return int(p.ContainerPort), nil
		}
	}
	return 0, fmt.Errorf("container %s: probe port %q is no port of the container", c.Name, port)
}

// HookResult is how a container's preStop hook ended.
type HookResult struct {
	Container string
	Output    string
	Err       error
	Took      time.Duration
}

// StopPod stops the played pod the way the kubelet terminates a Pod: for
// every container at once, run its preStop exec hook inside it (podman
// exec), then send it SIGTERM; a container without a hook gets SIGTERM at
// once. Whatever still runs when the grace period ends is killed (podman
// pod stop). It returns the hooks' results once every container stopped.
func StopPod(ctx context.Context, p *Podman, pod *corev1.Pod) ([]HookResult, error) {
	grace := 30 * time.Second
	if s := pod.Spec.TerminationGracePeriodSeconds; s != nil {
		grace = time.Duration(*s) * time.Second
	}
	start := time.Now()
	var (
		mu      sync.Mutex
		results []HookResult
		errs    []error
		wg      sync.WaitGroup
	)
	for _, c := range pod.Spec.Containers {
		name := ContainerName(pod.Name, c.Name)
		wg.Go(func() {
			if c.Lifecycle != nil && c.Lifecycle.PreStop != nil {
				h := c.Lifecycle.PreStop
				if h.Exec == nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("container %s: only exec preStop hooks are supported", c.Name))
					mu.Unlock()
				} else {
					hctx, cancel := context.WithTimeout(ctx, grace)
					out, err := p.RunCombined(hctx, append([]string{"exec", name}, h.Exec.Command...)...)
					cancel()
					mu.Lock()
					results = append(results, HookResult{Container: c.Name, Output: out, Err: err, Took: time.Since(start)})
					mu.Unlock()
				}
			}
			if _, err := p.Run(ctx, "kill", "--signal", "TERM", name); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	left := max(grace-time.Since(start), 0)
	if _, err := p.Run(ctx, "pod", "stop", "--time", strconv.Itoa(int(left.Seconds())), pod.Name); err != nil {
		errs = append(errs, err)
	}
	return results, errors.Join(errs...)
}

// ExitCode is a stopped container's exit code (137: killed).
func ExitCode(ctx context.Context, p *Podman, container string) (int, error) {
	out, err := p.Run(ctx, "inspect", "--format", "{{.State.ExitCode}}", container)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(out))
}

func randSuffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
