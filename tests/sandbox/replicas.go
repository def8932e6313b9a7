package sandbox

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strconv"

	"github.com/kubefrontdoor/frontdoor/internal/testenv"
)

// AddReplica starts one more kube-apiserver on the sandbox's etcd, waits
// until it is ready and returns its number (1-based) and URL. Nothing routes
// to it until an UpstreamCluster names it.
func (s *Sandbox) AddReplica(ctx context.Context) (int, string, error) {
	return s.AddReplicaBound(ctx, "127.0.0.1")
}

// AddReplicaBound is AddReplica with the replica listening on
// bindAddress, e.g. 0.0.0.0 so that it is also reachable on a non-loopback
// address (EndpointSlices may not hold loopback addresses). Its URL still
// names 127.0.0.1.
func (s *Sandbox) AddReplicaBound(ctx context.Context, bindAddress string) (int, string, error) {
	ports, err := testenv.FreePorts(1)
	if err != nil {
		return 0, "", err
	}
	i := len(s.apiservers) + 1
	name := fmt.Sprintf("apiserver-%d", i)
	url := fmt.Sprintf("https://127.0.0.1:%d", ports[0])
	args := s.apiserverArgs(i, ports[0])
	for j := range args[:len(args)-1] {
		if args[j] == "--bind-address" {
			args[j+1] = bindAddress
		}
	}
	p := newProcess(name, s.bin("kube-apiserver"), s.logPath(name), args...)
	s.progress("kube-apiserver replica %d on 127.0.0.1:%d (log: %s)", i, ports[0], p.logPath)
	if err := p.start(); err != nil {
		return 0, "", err
	}
	s.apiservers = append(s.apiservers, p)
	s.ReplicaURLs = append(s.ReplicaURLs, url)
	wctx, cancel := waitCtx(ctx, apiserverTimeout)
	defer cancel()
	if err := s.waitReplicaReady(wctx, i); err != nil {
		return 0, "", err
	}
	return i, url, nil
}

// SetReplicaArgs replaces replica i's (1-based) extra flags
// (Options.ReplicaArgs) for its next StartReplica; a running replica keeps
// its flags until then. Tests that change a replica put its old flags back
// and restart it when they end.
func (s *Sandbox) SetReplicaArgs(i int, extra []string) error {
	if i < 1 || i > len(s.apiservers) {
		return fmt.Errorf("no replica %d (have %d)", i, len(s.apiservers))
	}
	u, err := url.Parse(s.ReplicaURLs[i-1])
	if err != nil {
		return err
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil {
		return fmt.Errorf("replica %d URL %s: %w", i, s.ReplicaURLs[i-1], err)
	}
	if s.opts.ReplicaArgs == nil {
		s.opts.ReplicaArgs = map[int][]string{}
	}
	s.opts.ReplicaArgs[i] = slices.Clone(extra)
	p := s.apiservers[i-1]
	p.mu.Lock()
	defer p.mu.Unlock()
	p.args = s.apiserverArgs(i, port)
	return nil
}
