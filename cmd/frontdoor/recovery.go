package main

import (
	"context"
	"log/slog"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// panicRecovery keeps one request's panic from killing frontdoor serve:
// the ext_authz, ext_proc and ADS services share its process, so a panic
// anywhere on a request's path (a Kubernetes library, a malformed input
// nobody foresaw) would otherwise take every Envoy's config and every
// request's authentication down with it. The panicking call ends with
// codes.Unavailable, which Envoy's request-service filters answer through
// their fail-closed path (503, the gateway's own Status body); ADS just
// reconnects. Each panic is logged with its stack and counted.
//
// It covers the handler's own goroutine only; a goroutine a handler starts
// must recover by itself (the token cache's shared review does).
type panicRecovery struct {
	log    *slog.Logger
	panics *prometheus.CounterVec
}

func newPanicRecovery(reg prometheus.Registerer, log *slog.Logger) (*panicRecovery, error) {
	r := &panicRecovery{
		log: log,
		panics: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "frontdoor_grpc_panics_total",
			Help: "Panics recovered in gRPC calls of frontdoor serve (ext_authz Check, ext_proc and ADS streams), by method; each ended its call with Unavailable (Envoy fails that request closed with 503).",
		}, []string{"method"}),
	}
	if err := reg.Register(r.panics); err != nil {
		return nil, err
	}
	return r, nil
}

// serverOptions install the recovery as the outermost interceptors.
func (r *panicRecovery) serverOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(r.unary),
		grpc.ChainStreamInterceptor(r.stream),
	}
}

func (r *panicRecovery) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	defer r.recover(info.FullMethod, &err)
	return handler(ctx, req)
}

func (r *panicRecovery) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	defer r.recover(info.FullMethod, &err)
	return handler(srv, ss)
}

// recover turns a panic of method into an Unavailable error in *err.
func (r *panicRecovery) recover(method string, err *error) {
	p := recover()
	if p == nil {
		return
	}
	r.panics.WithLabelValues(method).Inc()
	r.log.Error("recovered a panic in a gRPC call", "method", method, "panic", p, "stack", string(debug.Stack()))
	*err = status.Error(codes.Unavailable, "frontdoor: internal error while handling the request")
}
