package extproc

import (
	"context"
	"errors"
	"io"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/kubefrontdoor/frontdoor/authz"
	"github.com/kubefrontdoor/frontdoor/envoy"
	"github.com/kubefrontdoor/frontdoor/internal/testgrpc"
	"github.com/kubefrontdoor/frontdoor/internal/testpki"
	"github.com/kubefrontdoor/frontdoor/policy"
)

type fixture struct {
	client   extprocv3.ExternalProcessorClient
	reg      *prometheus.Registry
	certPEM  []byte
	certXFCC string
}

// start serves the ext_proc adapter over a pipeline whose cluster "a"
// trusts a fresh CA, and mints jane (groups dev, ops) from it.
func start(t *testing.T) *fixture {
	t.Helper()
	ca, err := testpki.NewCA("extproc-test-ca")
	if err != nil {
		t.Fatal(err)
	}
	cert, _, err := ca.ClientCert("jane", "dev", "ops")
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	p, err := authz.NewPipeline(authz.Options{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	p.SetPolicy(&policy.Table{Version: "v1", Clusters: map[string]*policy.Cluster{
		"a": {Name: "a", X509: true, ClientCAPEM: ca.CertPEM, DefaultRule: envoy.DefaultRule},
	}})
	srv, err := NewServer(p, reg)
	if err != nil {
		t.Fatal(err)
	}
	conn := testgrpc.Loopback(t, func(gs *grpc.Server) { extprocv3.RegisterExternalProcessorServer(gs, srv) })
	return &fixture{
		client:  extprocv3.NewExternalProcessorClient(conn),
		reg:     reg,
		certPEM: cert,
		// What Envoy's HCM sets with SANITIZE_SET and cert: true.
		certXFCC: `Hash=abc;Cert="` + envoyEscape(cert) + `"`,
	}
}

// stream opens one ext_proc stream for cluster, as a virtual host's
// grpc_initial_metadata names it.
func (f *fixture) stream(t *testing.T, cluster string) extprocv3.ExternalProcessor_ProcessClient {
	t.Helper()
	ctx := context.Background()
	if cluster != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, envoy.GRPCMetadataCluster, cluster)
	}
	s, err := f.client.Process(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.CloseSend() })
	return s
}

func headerMap(kv ...string) *corev3.HeaderMap {
	hm := &corev3.HeaderMap{}
	for i := 0; i < len(kv); i += 2 {
		hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: kv[i], RawValue: []byte(kv[i+1])})
	}
	return hm
}

func roundTrip(t *testing.T, s extprocv3.ExternalProcessor_ProcessClient, req *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
	t.Helper()
	if err := s.Send(req); err != nil {
		t.Fatal(err)
	}
	resp, err := s.Recv()
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func requestHeaders(hm *corev3.HeaderMap) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{
		RequestHeaders: &extprocv3.HttpHeaders{Headers: hm},
	}}
}

type setField struct {
	Name, Value string
	Append      bool
}

func TestAllowMutatesHeadersAndRecordsResponse(t *testing.T) {
	f := start(t)
	s := f.stream(t, "a")
	resp := roundTrip(t, s, requestHeaders(headerMap(
		":method", "GET", ":path", "/api/v1/namespaces/default/pods",
		"authorization", "Bearer secret",
		envoy.HeaderClientCert, f.certXFCC,
	)))
	common := resp.GetRequestHeaders().GetResponse()
	if common == nil {
		t.Fatalf("response = %v, want a request-headers response", resp)
	}
	if !common.GetClearRouteCache() {
		t.Error("clear_route_cache not set: x-frontdoor-rule would not pick the route")
	}
	var set []setField
	for _, h := range common.GetHeaderMutation().GetSetHeaders() {
		set = append(set, setField{h.GetHeader().GetKey(), string(h.GetHeader().GetRawValue()), h.GetAppend().GetValue()}) //nolint:staticcheck // what Envoy honours
		if h.GetAppendAction() != corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD {
			t.Errorf("%s: append_action %v set; Envoy 1.40 ext_proc reads the append flag", h.GetHeader().GetKey(), h.GetAppendAction())
		}
	}
	wantSet := []setField{
		{"Impersonate-User", "jane", false},
		{"Impersonate-Group", "dev", false}, // replaces any earlier field
		{"Impersonate-Group", "ops", true},  // then its own field
	}
	if diff := cmp.Diff(wantSet, set[:3]); diff != "" {
		t.Errorf("set headers (-want +got):\n%s", diff)
	}
	if !slices.Contains(set[3:], setField{envoy.HeaderRule, envoy.DefaultRule, false}) {
		t.Errorf("set headers %+v: no %s: %s", set, envoy.HeaderRule, envoy.DefaultRule)
	}
	// The credential and the forwarded certificate never go upstream.
	wantRemove := []string{"authorization", envoy.HeaderClientCert}
	if diff := cmp.Diff(wantRemove, common.GetHeaderMutation().GetRemoveHeaders()); diff != "" {
		t.Errorf("removed headers (-want +got):\n%s", diff)
	}
	md := resp.GetDynamicMetadata().GetFields()[envoy.MetadataNamespaceExtProc].GetStructValue().
		GetFields()[envoy.MetadataKeyRequest].GetStructValue().GetFields()
	if md["user"].GetStringValue() != "jane" || md["resource"].GetStringValue() != "pods" || md["groups"].GetNumberValue() != 3 { // dev, ops, system:authenticated
		t.Errorf("access-log metadata = %v", md)
	}

	resp = roundTrip(t, s, &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{
		ResponseHeaders: &extprocv3.HttpHeaders{Headers: headerMap(":status", "200")},
	}})
	if resp.GetResponseHeaders() == nil {
		t.Fatalf("response = %v, want a response-headers response", resp)
	}
	if got := testutil.ToFloat64(mustCounter(t, f.reg, "a", "default", "2xx")); got != 1 {
		t.Errorf("frontdoor_extproc_responses_total{a,default,2xx} = %v, want 1", got)
	}
	if n := testutil.CollectAndCount(f.reg, "frontdoor_extproc_response_duration_seconds"); n != 1 {
		t.Errorf("latency series = %d, want 1", n)
	}
}

func TestDenyIsImmediateStatus(t *testing.T) {
	f := start(t)
	tests := []struct {
		name    string
		cluster string
		headers *corev3.HeaderMap
		code    int32
		reason  string
	}{
		{"no certificate", "a", headerMap(":method", "GET", ":path", "/api/v1/pods", "authorization", "Bearer x"), 401, `"reason":"Unauthorized"`},
		// A client cannot hand in its own certificate header: Envoy's
		// SANITIZE_SET keeps one element; a second is never read.
		{"second XFCC element", "a", headerMap(":method", "GET", ":path", "/api/v1/pods",
			envoy.HeaderClientCert, `Hash=abc,Cert="`+envoyEscape(f.certPEM)+`"`), 401, `"reason":"Unauthorized"`},
		{"no cluster", "", headerMap(":method", "GET", ":path", "/api/v1/pods", envoy.HeaderClientCert, f.certXFCC), 503, `"code":503`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := roundTrip(t, f.stream(t, tt.cluster), requestHeaders(tt.headers))
			ir := resp.GetImmediateResponse()
			if ir == nil {
				t.Fatalf("response = %v, want an immediate response", resp)
			}
			if int32(ir.GetStatus().GetCode()) != tt.code || !strings.Contains(string(ir.GetBody()), tt.reason) {
				t.Errorf("immediate response %d %s, want %d with %s", ir.GetStatus().GetCode(), ir.GetBody(), tt.code, tt.reason)
			}
			var ct string
			for _, h := range ir.GetHeaders().GetSetHeaders() {
				if h.GetHeader().GetKey() == "content-type" {
					ct = string(h.GetHeader().GetRawValue())
				}
			}
			if ct != "application/json" {
				t.Errorf("content-type = %q", ct)
			}
		})
	}
	if got := testutil.ToFloat64(mustCounter(t, f.reg, "a", ruleNone, "4xx")); got != 2 {
		t.Errorf("denials counted = %v, want 2", got)
	}
}

func TestResponseOrderIsStable(t *testing.T) {
	d := &authz.Decision{Outcome: authz.Allowed, SetHeaders: []authz.Header{{Name: "A", Value: "1"}, {Name: "a", Value: "2"}}, RemoveHeaders: []string{"a", "b"}}
	got := decisionToResponse(d).GetRequestHeaders().GetResponse().GetHeaderMutation()
	want := &extprocv3.HeaderMutation{
		SetHeaders: []*corev3.HeaderValueOption{
			{Header: &corev3.HeaderValue{Key: "A", RawValue: []byte("1")}, Append: wrapBool(false)},
			{Header: &corev3.HeaderValue{Key: "a", RawValue: []byte("2")}, Append: wrapBool(true)},
		},
		RemoveHeaders: []string{"b", envoy.HeaderClientCert},
	}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("mutation (-want +got):\n%s", diff)
	}
}

// mustCounter returns a counter holding the value of
// frontdoor_extproc_responses_total{cluster, rule, code_class} (labels in that order).
func mustCounter(t *testing.T, reg *prometheus.Registry, labels ...string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "x"})
	for _, mf := range mfs {
		if mf.GetName() != "frontdoor_extproc_responses_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			if got["cluster"] == labels[0] && got["rule"] == labels[1] && got["code_class"] == labels[2] {
				c.Add(m.GetCounter().GetValue())
			}
		}
	}
	return c
}

func wrapBool(b bool) *wrapperspb.BoolValue { return wrapperspb.Bool(b) }

// envoyEscape percent-encodes a PEM as Envoy does in XFCC Cert= (a space is
// %20, never '+').
func envoyEscape(pem []byte) string {
	return strings.ReplaceAll(url.QueryEscape(string(pem)), "+", "%20")
}

// TestLongRunningEndsStream: a long-running request's stream ends with its
// request-headers answer (io.EOF after it, i.e. a clean close), so Envoy
// holds no ext_proc stream while the upstream takes its time; other
// requests keep theirs open for the response headers.
func TestLongRunningEndsStream(t *testing.T) {
	f := start(t)
	for _, path := range []string{
		"/api/v1/namespaces/default/pods/p/proxy/hang",
		"/api/v1/namespaces/default/pods?watch=true",
		"/api/v1/namespaces/default/pods/p/exec?command=sh",
		"/api/v1/namespaces/default/pods/p/log?follow=true",
	} {
		s := f.stream(t, "a")
		resp := roundTrip(t, s, requestHeaders(headerMap(":method", "GET", ":path", path, envoy.HeaderClientCert, f.certXFCC)))
		if resp.GetRequestHeaders() == nil {
			t.Fatalf("%s: response = %v, want a request-headers response", path, resp)
		}
		ended := make(chan error, 1)
		go func() { _, err := s.Recv(); ended <- err }()
		select {
		case err := <-ended:
			if !errors.Is(err, io.EOF) {
				t.Errorf("%s: after the answer Recv = %v, want io.EOF (the service ends the stream)", path, err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("%s: the stream is still open 5 s after the answer", path)
		}
	}
	if n := testutil.CollectAndCount(f.reg, "frontdoor_extproc_responses_total"); n != 0 {
		t.Errorf("%d response series for long-running requests, want 0 (never observed)", n)
	}

	// A short request's stream stays open for its response headers.
	s := f.stream(t, "a")
	roundTrip(t, s, requestHeaders(headerMap(":method", "GET", ":path", "/api/v1/namespaces/default/pods/p", envoy.HeaderClientCert, f.certXFCC)))
	resp := roundTrip(t, s, &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{
		ResponseHeaders: &extprocv3.HttpHeaders{Headers: headerMap(":status", "200")},
	}})
	if resp.GetResponseHeaders() == nil {
		t.Fatalf("response = %v, want a response-headers response", resp)
	}
}
