package xds

import (
	"context"
	"fmt"
	"log/slog"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
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
	open := &c.openStreams
	opened := func(id int64, typeURL string) error { //nolint:unparam // go-control-plane's StreamOpenFunc returns an error
		c.metrics.connectedProxies.Set(float64(open.Add(1)))
		c.log.Info("xds stream opened", "stream", id, "type", typeURL)
		return nil
	}
	closed := func(id int64, node *corev3.Node) {
		c.nodeClosed(id)
		c.acks.closed(id)
		c.metrics.connectedProxies.Set(float64(open.Add(-1)))
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
			nack(id, req.GetNode(), req.GetTypeUrl(), req.GetResponseNonce(), req.GetErrorDetail())
			return nil
		},
		StreamDeltaRequestFunc: func(id int64, req *discoveryv3.DeltaDiscoveryRequest) error {
			if n := req.GetNode(); n != nil {
				c.nodeOpened(ctx, id, n)
			}
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
