// Package policyfeed carries the request-service policy table from
// frontdoor serve to the in-process module inside Envoy: a server-streaming
// gRPC method on serve's gRPC port (beside ADS, ext_authz and ext_proc)
// that sends the current table, then every new one.
//
// Why not xDS: the table is not an Envoy resource, and putting it in the
// module filter's config (or in ECDS) would carry the upstream client key
// into Envoy's config dump and rebuild the filter on every policy edit. The
// module's filter config only names the cluster and this feed's address,
// so it never changes with a policy edit and no connection is drained.
//
// The messages are the table's canonical encoding (policy.Table.Encode) in
// a google.protobuf.BytesValue: no generated code, and the same bytes the
// config version hashes. It imports no cgo and nothing of the module, so
// frontdoor serve links it without Envoy's ABI.
package policyfeed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/kubefrontdoor/frontdoor/policy"
)

// The gRPC method, hand-declared (see the package doc).
const (
	serviceName = "frontdoor.policy.v1alpha1.PolicyFeed"
	methodName  = "Watch"
	// FullMethod is the method's gRPC path.
	FullMethod = "/" + serviceName + "/" + methodName
)

// maxMessage bounds one table on the wire; a table with thousands of
// dispatch rules and CA bundles is a few MB.
const maxMessage = 64 << 20

// Server publishes the latest table to every subscriber. It is an
// xds.PolicySink: the controller hands it each table it publishes.
type Server struct {
	mu      sync.Mutex
	cur     []byte
	version string
	changed chan struct{} // closed and replaced on every new table
	log     *slog.Logger
}

// NewServer returns a Server with no table yet; subscribers wait for the
// first.
func NewServer(log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{changed: make(chan struct{}), log: log}
}

// SetPolicy publishes t to every subscriber.
func (s *Server) SetPolicy(t *policy.Table) {
	b, err := t.Encode()
	if err != nil {
		s.log.Error("policy table not published to in-process modules", "error", err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cur, s.version = b, t.Version
	close(s.changed)
	s.changed = make(chan struct{})
}

// latest returns the current encoding (nil before the first table) and the
// channel closed when it is replaced.
func (s *Server) latest() ([]byte, chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur, s.changed
}

// Register adds the feed to a gRPC server.
func (s *Server) Register(gs *grpc.Server) {
	gs.RegisterService(&grpc.ServiceDesc{
		ServiceName: serviceName,
		HandlerType: (*any)(nil),
		Streams: []grpc.StreamDesc{{
			StreamName:    methodName,
			ServerStreams: true,
			Handler: func(_ any, stream grpc.ServerStream) error {
				if err := stream.RecvMsg(&wrapperspb.StringValue{}); err != nil {
					return err
				}
				return s.watch(stream)
			},
		}},
	}, s)
}

// watch sends the current table, then each new one, until the subscriber
// goes away. A subscriber that falls behind gets only the latest table.
func (s *Server) watch(stream grpc.ServerStream) error {
	var sent []byte
	for {
		cur, changed := s.latest()
		if cur != nil && !sameBytes(cur, sent) {
			if err := stream.SendMsg(wrapperspb.Bytes(cur)); err != nil {
				return err
			}
			sent = cur
		}
		select {
		case <-changed:
		case <-stream.Context().Done():
			return nil
		}
	}
}

// sameBytes compares by identity: each published table is a new slice.
func sameBytes(a, b []byte) bool { return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0]) }

// Subscribe receives tables from the feed at address (host:port or
// unix:///path) and hands each to apply, until ctx ends. A lost connection
// is retried with backoff; apply keeps whatever it was last given, so the
// module keeps deciding with the last table while serve restarts.
func Subscribe(ctx context.Context, address string, apply func(*policy.Table), log *slog.Logger) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		got, err := subscribeOnce(ctx, address, apply)
		if ctx.Err() != nil {
			return
		}
		if got {
			backoff = 100 * time.Millisecond
		}
		log.Warn("policy feed lost; retrying", "address", address, "error", err, "in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// subscribeOnce runs one subscription; got reports whether any table
// arrived.
func subscribeOnce(ctx context.Context, address string, apply func(*policy.Table)) (got bool, err error) {
	conn, err := grpc.NewClient(address,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMessage)))
	if err != nil {
		return false, err
	}
	defer func() { _ = conn.Close() }()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := conn.NewStream(ctx, &grpc.StreamDesc{StreamName: methodName, ServerStreams: true}, FullMethod)
	if err != nil {
		return false, err
	}
	if err := stream.SendMsg(&wrapperspb.StringValue{}); err != nil {
		return false, err
	}
	if err := stream.CloseSend(); err != nil {
		return false, err
	}
	for {
		var msg wrapperspb.BytesValue
		if err := stream.RecvMsg(&msg); err != nil {
			if errors.Is(err, context.Canceled) {
				return got, nil
			}
			return got, err
		}
		t, err := policy.Decode(msg.GetValue())
		if err != nil {
			// A table this module cannot read (a newer serve?) is never
			// half-applied: keep the last one and say why.
			return got, fmt.Errorf("decoding the policy table: %w", err)
		}
		apply(t)
		got = true
	}
}
