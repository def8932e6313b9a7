package authz

import (
	"context"
	"net"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/kubefrontdoor/frontdoor/envoy"
	"github.com/kubefrontdoor/frontdoor/internal/testgrpc"
)

// startExtAuthz serves NewExtAuthzServer(p) on 127.0.0.1:0 and returns a
// client connected to it, as Envoy would be.
func startExtAuthz(t *testing.T, p *Pipeline) authv3.AuthorizationClient {
	t.Helper()
	conn := testgrpc.Loopback(t, func(srv *grpc.Server) { authv3.RegisterAuthorizationServer(srv, NewExtAuthzServer(p)) })
	return authv3.NewAuthorizationClient(conn)
}

// checkRequest is what Envoy's ext_authz filter sends for one request.
func checkRequest(cluster, method, path, cert string, headers map[string]string) *authv3.CheckRequest {
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Certificate: cert},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: method, Path: path, Headers: headers, Host: "cluster-a.example.com", Protocol: "HTTP/2",
		}},
		ContextExtensions: map[string]string{envoy.ContextKeyCluster: cluster},
	}}
}

func identityMetadata(kv ...string) *structpb.Struct {
	vals := make([]*structpb.Value, len(kv))
	for i, s := range kv {
		vals[i] = structpb.NewStringValue(s)
	}
	return &structpb.Struct{Fields: map[string]*structpb.Value{
		envoy.MetadataKeyIdentityHeaders: structpb.NewListValue(&structpb.ListValue{Values: vals}),
	}}
}

// withRequest adds the access-log request metadata (envoy.MetadataKeyRequest).
func withRequest(md *structpb.Struct, fields map[string]any) *structpb.Struct {
	st, err := structpb.NewStruct(fields)
	if err != nil {
		panic(err)
	}
	md.Fields[envoy.MetadataKeyRequest] = structpb.NewStructValue(st)
	return md
}

func hvo(key, value string, action corev3.HeaderValueOption_HeaderAppendAction) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: key, Value: value}, AppendAction: action}
}

func TestExtAuthzCheck(t *testing.T) {
	ca := newTestCA(t, "client-ca")
	tp := newTestPipeline(t, ca)
	der, cert := ca.issue(t, clientCert{cn: "jane", orgs: []string{"dev", "ops"}})
	client := startExtAuthz(t, tp.Pipeline)

	const (
		overwrite = corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
		appendAdd = corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD
	)
	denied := func(grpcCode codes.Code, httpCode typev3.StatusCode, body []byte, request map[string]any) *authv3.CheckResponse {
		return &authv3.CheckResponse{
			DynamicMetadata: withRequest(&structpb.Struct{Fields: map[string]*structpb.Value{}}, request),
			Status:          &rpcstatus.Status{Code: int32(grpcCode)},
			HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
				Status: &typev3.HttpStatus{Code: httpCode},
				Headers: []*corev3.HeaderValueOption{
					hvo("content-type", "application/json", overwrite),
					hvo("cache-control", "no-cache, private", overwrite),
				},
				Body: string(body),
			}},
		}
	}
	tests := []struct {
		name string
		req  *authv3.CheckRequest
		want *authv3.CheckResponse
	}{
		{
			name: "allow x509",
			req: checkRequest("a", "GET", "/api/v1/namespaces/default/pods?watch=true", cert, map[string]string{
				":path": "/api/v1/namespaces/default/pods?watch=true", "x-remote-user": "admin", "x-remote-extra-foo": "bar",
			}),
			want: &authv3.CheckResponse{
				Status: &rpcstatus.Status{Code: int32(codes.OK)},
				HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
					Headers:         []*corev3.HeaderValueOption{hvo("x-frontdoor-rule", "default", overwrite)},
					HeadersToRemove: []string{"authorization", "x-remote-extra-foo", "x-remote-user"},
				}},
				// Identity fields travel as metadata for the identity Lua
				// filter: one header field per value.
				DynamicMetadata: withRequest(identityMetadata(
					"Impersonate-User", "jane",
					"Impersonate-Group", "dev",
					"Impersonate-Group", "ops",
					"Impersonate-Extra-authentication.kubernetes.io%2fcredential-id", credentialID(der)),
					// What the access log prints: never the certificate.
					map[string]any{
						"user": "jane", "requestor": "jane", "groups": 3, "verb": "watch", "apiGroup": "", "resource": "pods", "subresource": "",
						"namespace": "default", "name": "", "rule": "default", "decision": "allowed",
					}),
			},
		},
		{
			name: "deny unauthenticated",
			req:  checkRequest("a", "GET", "/api/v1/pods", "", map[string]string{"authorization": "Bearer abc"}),
			want: denied(codes.Unauthenticated, typev3.StatusCode_Unauthorized,
				[]byte(`{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}`+"\n"),
				// No user; never the token.
				map[string]any{
					"verb": "list", "apiGroup": "", "resource": "pods", "subresource": "",
					"namespace": "", "name": "", "decision": "unauthenticated",
				}),
		},
		{
			name: "deny unknown cluster",
			req:  checkRequest("nope", "GET", "/api/v1/pods", cert, nil),
			want: denied(codes.PermissionDenied, typev3.StatusCode_ServiceUnavailable, notReadyBody, map[string]any{"decision": "unavailable"}),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := client.Check(context.Background(), tt.req)
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			if diff := cmp.Diff(tt.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("CheckResponse (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCheckRequestRawHeaders(t *testing.T) {
	// encode_raw_headers: headers arrive as a list, repeated keys unjoined.
	in := checkRequest("a", "GET", "/api", "", nil)
	in.Attributes.Request.Http.HeaderMap = &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
		{Key: "impersonate-group", RawValue: []byte("a")},
		{Key: "Impersonate-Group", RawValue: []byte("b")},
		{Key: "authorization", RawValue: []byte("Bearer x")},
	}}
	in.Attributes.Source.Address = &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: "192.0.2.8", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 50123},
	}}}
	got := checkRequestToRequest(in)
	want := Request{
		Cluster: "a", Method: "GET", Path: "/api", ClientAddress: "192.0.2.8",
		Headers: map[string]string{"impersonate-group": "a,b", "authorization": "Bearer x"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("request (-want +got):\n%s", diff)
	}
}

// benchCheckHeaders are the headers Envoy put in a CheckRequest for one of
// make bench's GETs before allowed_headers: the client's (Go's HTTP/2
// client) and Envoy's own (x-forwarded-proto, x-request-id).
var benchCheckHeaders = map[string]string{
	":authority": "127.0.0.1:6443", ":method": "GET", ":scheme": "https",
	":path":             "/api/v1/namespaces/bench/configmaps/cm-42?resourceVersion=0",
	"accept":            "application/json",
	"accept-encoding":   "gzip",
	"user-agent":        "Go-http-client/2.0",
	"x-forwarded-proto": "https",
	"x-request-id":      "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
}

// onlyRequestServiceHeaders is what allowed_headers lets through.
func onlyRequestServiceHeaders(h map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range h {
		if envoy.RequestServiceReads(k) {
			out[k] = v
		}
	}
	return out
}

// benchPipeline is a pipeline with the test table and the client
// certificate of the benchmarks' cached x509 client.
func benchPipeline(b *testing.B) (*Pipeline, string) {
	b.Helper()
	ca := newTestCA(b, "client-ca")
	_, cert := ca.issue(b, clientCert{cn: "bench-user", orgs: []string{"bench-group"}})
	p, err := NewPipeline(Options{Registry: prometheus.NewRegistry(), Now: (&fakeClock{now: testNow}).Now})
	if err != nil {
		b.Fatal(err)
	}
	p.SetPolicy(testTable(ca.CertPEM))
	return p, cert
}

// BenchmarkExtAuthzServerWork is the request service's share of one Check
// of a cached x509 client, without the transport: decode the CheckRequest,
// decide, encode the CheckResponse. "all-headers" is what Envoy sent
// without allowed_headers, "request-service-headers" with it.
func BenchmarkExtAuthzServerWork(b *testing.B) {
	p, cert := benchPipeline(b)
	srv := NewExtAuthzServer(p)
	path := benchCheckHeaders[":path"]
	for _, bc := range []struct {
		name    string
		headers map[string]string
	}{
		{"all-headers", benchCheckHeaders},
		{"request-service-headers", onlyRequestServiceHeaders(benchCheckHeaders)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			wire, err := proto.Marshal(checkRequest("a", "GET", path, cert, bc.headers))
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			b.ReportAllocs()
			cpu := processCPU(b)
			for b.Loop() {
				in := &authv3.CheckRequest{}
				if err := proto.Unmarshal(wire, in); err != nil {
					b.Fatal(err)
				}
				out, err := srv.Check(ctx, in)
				if err != nil || out.GetStatus().GetCode() != 0 {
					b.Fatalf("Check: %v %v", out.GetStatus(), err)
				}
				if _, err := proto.Marshal(out); err != nil {
					b.Fatal(err)
				}
			}
			cpu.report(b)
			b.ReportMetric(float64(len(wire)), "request-bytes")
		})
	}
}

// BenchmarkExtAuthzTransport is one Check over gRPC, client and server in
// this process, on loopback TCP and on a Unix socket (frontdoor serve
// --grpc-address unix://): the transport's share, both ends; and on TCP
// with the server's grpc.NumStreamWorkers (a pool of stream goroutines
// instead of one per stream).
func BenchmarkExtAuthzTransport(b *testing.B) {
	p, cert := benchPipeline(b)
	req := checkRequest("a", "GET", benchCheckHeaders[":path"], cert, onlyRequestServiceHeaders(benchCheckHeaders))
	for _, bc := range []struct {
		name, network string
		opts          []grpc.ServerOption
	}{
		{"tcp", "tcp", nil},
		{"unix", "unix", nil},
		{"tcp-stream-workers", "tcp", []grpc.ServerOption{grpc.NumStreamWorkers(uint32(runtime.GOMAXPROCS(0)))}},
	} {
		network := bc.network
		b.Run(bc.name, func(b *testing.B) {
			addr := "127.0.0.1:0"
			if network == "unix" {
				addr = filepath.Join(b.TempDir(), "g.sock")
			}
			lis, err := net.Listen(network, addr)
			if err != nil {
				b.Fatal(err)
			}
			srv := grpc.NewServer(bc.opts...)
			authv3.RegisterAuthorizationServer(srv, NewExtAuthzServer(p))
			go func() { _ = srv.Serve(lis) }()
			defer srv.Stop()
			target := lis.Addr().String()
			if network == "unix" {
				target = "unix://" + addr
			}
			conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			client := authv3.NewAuthorizationClient(conn)
			ctx := context.Background()
			b.ReportAllocs()
			b.SetParallelism(4)
			cpu := processCPU(b)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if out, err := client.Check(ctx, req); err != nil || out.GetStatus().GetCode() != 0 {
						b.Errorf("Check: %v %v", out.GetStatus(), err)
						return
					}
				}
			})
			cpu.report(b)
		})
	}
}

// cpuMeter is the process's CPU time (user+system, every thread: GC and
// the gRPC transport's goroutines included) since it was started. On a
// shared machine it varies less than ns/op, which is wall time.
type cpuMeter struct{ start time.Duration }

func processCPU(b *testing.B) cpuMeter {
	b.Helper()
	return cpuMeter{start: rusageCPU(b)}
}

// report adds cpu-ns/op to the benchmark's metrics.
func (m cpuMeter) report(b *testing.B) {
	b.Helper()
	if b.N > 0 {
		b.ReportMetric(float64(rusageCPU(b)-m.start)/float64(b.N), "cpu-ns/op")
	}
}

func rusageCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
