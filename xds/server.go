package xds

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
)

// newCache returns the ADS snapshot cache, keyed by node ID: each Envoy
// gets its own specialization of the served config (nodes.go).
func newCache(logger *slog.Logger) cachev3.SnapshotCache {
	return cachev3.NewSnapshotCache(true, cachev3.IDHash{}, cacheLogger{logger})
}

// RegisterADS registers the aggregated discovery service for the
// controller's cache on s, with callbacks that count streams and NACKs.
func (c *Controller) RegisterADS(ctx context.Context, s *grpc.Server) {
	opened := func(id int64, typeURL string) error { //nolint:unparam // go-control-plane's StreamOpenFunc returns an error
		c.log.Info("xds stream opened", "stream", id, "type", typeURL)
		return nil
	}
	requested := func(id int64, typeURL string) {
		if n, ok := c.proxies.requested(id, typeURL); ok {
			c.metrics.connectedProxies.Set(float64(n))
		}
	}
	closed := func(id int64, node *corev3.Node) {
		c.nodeClosed(id)
		c.acks.closed(id)
		if n, ok := c.proxies.closed(id); ok {
			c.metrics.connectedProxies.Set(float64(n))
		}
		c.log.Info("xds stream closed", "stream", id, "node", node.GetId())
	}
	nack := func(id int64, node *corev3.Node, typeURL, nonce string, st *rpcstatus.Status) {
		if st == nil {
			return
		}
		c.metrics.nacks.WithLabelValues(typeURL).Inc()
		c.log.Error("envoy rejected config (NACK)", "stream", id, "node", node.GetId(),
			"type", typeURL, "nonce", nonce, "error", st.GetMessage())
	}
	// Envoy uses delta ADS (see envoy.Bootstrap); state-of-the-world
	// streams are served too, for other xDS clients and debugging tools.
	cb := serverv3.CallbackFuncs{
		StreamOpenFunc:        func(_ context.Context, id int64, t string) error { return opened(id, t) },
		DeltaStreamOpenFunc:   func(_ context.Context, id int64, t string) error { return opened(id, t) },
		StreamClosedFunc:      closed,
		DeltaStreamClosedFunc: closed,
		// The first request of a stream carries the node: its snapshot is
		// set before the server creates the request's watch.
		StreamRequestFunc: func(id int64, req *discoveryv3.DiscoveryRequest) error {
			if n := req.GetNode(); n != nil {
				c.nodeOpened(ctx, id, n)
			}
			requested(id, req.GetTypeUrl())
			nack(id, req.GetNode(), req.GetTypeUrl(), req.GetResponseNonce(), req.GetErrorDetail())
			return nil
		},
		StreamDeltaRequestFunc: func(id int64, req *discoveryv3.DeltaDiscoveryRequest) error {
			if n := req.GetNode(); n != nil {
				c.nodeOpened(ctx, id, n)
			}
			requested(id, req.GetTypeUrl())
			nack(id, req.GetNode(), req.GetTypeUrl(), req.GetResponseNonce(), req.GetErrorDetail())
			c.acks.answered(id, req.GetResponseNonce(), req.GetErrorDetail() != nil)
			return nil
		},
		StreamDeltaResponseFunc: func(id int64, _ *discoveryv3.DeltaDiscoveryRequest, resp *discoveryv3.DeltaDiscoveryResponse) {
			c.acks.sent(id, resp.GetNonce(), resp.GetSystemVersionInfo())
		},
	}
	srv := serverv3.NewServer(ctx, c.cache, cb)
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(s, srv)
}

// proxyStreams are the ADS streams of Envoys: streams that asked for a
// type other than the ratelimit service's RateLimitConfig. The ratelimit
// service holds a stream on the same server for as long as it runs; counted
// as a proxy, it would hold serve's drain (which waits for the Envoys to
// go) until --drain-timeout and show in frontdoor_xds_connected_proxies.
type proxyStreams struct {
	mu  sync.Mutex
	ids map[int64]struct{}
}

// requested records that stream id asked for typeURL; it returns the
// number of proxy streams and true when that made id one.
func (p *proxyStreams) requested(id int64, typeURL string) (int, bool) {
	if typeURL == "" || typeURL == resourcev3.RateLimitConfigType {
		return 0, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.ids[id]; ok {
		return 0, false
	}
	if p.ids == nil {
		p.ids = map[int64]struct{}{}
	}
	p.ids[id] = struct{}{}
	return len(p.ids), true
}

// closed forgets stream id; it returns the number of proxy streams left
// and true when id was one.
func (p *proxyStreams) closed(id int64) (int, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.ids[id]; !ok {
		return 0, false
	}
	delete(p.ids, id)
	return len(p.ids), true
}

func (p *proxyStreams) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.ids)
}

// cacheLogger adapts slog to go-control-plane's logger interface.
type cacheLogger struct{ l *slog.Logger }

func (c cacheLogger) Debugf(format string, args ...any) {
	c.l.Debug("xds cache", "msg", fmt.Sprintf(format, args...))
}
func (c cacheLogger) Infof(format string, args ...any) {
	c.l.Debug("xds cache", "msg", fmt.Sprintf(format, args...))
}
func (c cacheLogger) Warnf(format string, args ...any) {
	c.l.Warn("xds cache", "msg", fmt.Sprintf(format, args...))
}
func (c cacheLogger) Errorf(format string, args ...any) {
	c.l.Error("xds cache", "msg", fmt.Sprintf(format, args...))
}
