package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// panicky is an ext_authz and ext_proc service that panics on request.
type panicky struct {
	authv3.UnimplementedAuthorizationServer
	extprocv3.UnimplementedExternalProcessorServer
}

func (panicky) Check(_ context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	if req.GetAttributes().GetRequest().GetHttp().GetPath() == "/panic" {
		panic("boom")
	}
	return &authv3.CheckResponse{}, nil
}

func (panicky) Process(s extprocv3.ExternalProcessor_ProcessServer) error {
	for {
		req, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if req.GetRequestHeaders() != nil {
			panic("boom in a stream")
		}
		if err := s.Send(&extprocv3.ProcessingResponse{}); err != nil {
			return err
		}
	}
}

func checkPath(path string) *authv3.CheckRequest {
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
		Http: &authv3.AttributeContext_HttpRequest{Path: path},
	}}}
}

// A panic in a Check or an ext_proc stream ends that call with
// Unavailable (Envoy fails the request closed: 503) and is counted; the
// server, and every other call, lives on.
func TestGRPCPanicRecovery(t *testing.T) {
	reg := prometheus.NewRegistry()
	rec, err := newPanicRecovery(reg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(rec.serverOptions()...)
	authv3.RegisterAuthorizationServer(gs, panicky{})
	extprocv3.RegisterExternalProcessorServer(gs, panicky{})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = gs.Serve(l) }()
	t.Cleanup(gs.Stop)
	conn, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ctx := context.Background()

	authz := authv3.NewAuthorizationClient(conn)
	if _, err := authz.Check(ctx, checkPath("/panic")); status.Code(err) != codes.Unavailable {
		t.Errorf("panicking Check: %v, want Unavailable", err)
	}
	if _, err := authz.Check(ctx, checkPath("/ok")); err != nil {
		t.Errorf("Check after a panic: %v, want the server alive", err)
	}

	stream, err := extprocv3.NewExternalProcessorClient(conn).Process(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); status.Code(err) != codes.Unavailable {
		t.Errorf("panicking ext_proc stream: %v, want Unavailable", err)
	}
	if _, err := authz.Check(ctx, checkPath("/ok")); err != nil {
		t.Errorf("Check after a stream's panic: %v, want the server alive", err)
	}

	for method, want := range map[string]float64{
		"/envoy.service.auth.v3.Authorization/Check":           1,
		"/envoy.service.ext_proc.v3.ExternalProcessor/Process": 1,
	} {
		if got := testutil.ToFloat64(rec.panics.WithLabelValues(method)); got != want {
			t.Errorf("frontdoor_grpc_panics_total{method=%q} = %v, want %v", method, got, want)
		}
	}
}
