// Package extproc adapts the authz.Pipeline to Envoy's ext_proc protocol
// (envoy.service.ext_proc.v3.ExternalProcessor), the alternative to
// ext_authz an UpstreamCluster selects with spec.requestService: ExtProc.
//
// The request-headers message gets exactly the pipeline's decision: the
// same header plan (as an ext_proc header mutation, each Impersonate-Group
// its own field) with the route cache cleared so x-frontdoor-rule picks the
// route, or the same Kubernetes Status as an immediate response. The
// response-headers message, which ext_authz never sees, records each
// request's status code and latency per rule; long-running requests
// (watches, exec, attach, port-forward, proxy, logs) are not observed: the
// service ends their stream with the request-headers answer, so no stream
// stays open while their upstream takes its time (or never answers).
//
// It must not import the translator or xds (it reads policy.Table through
// the pipeline only).
package extproc

import (
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/kubefrontdoor/frontdoor/authz"
	"github.com/kubefrontdoor/frontdoor/envoy"
)

// Server is the ext_proc service over one pipeline.
type Server struct {
	extprocv3.UnimplementedExternalProcessorServer
	p       *authz.Pipeline
	metrics *metrics
	now     func() time.Time
}

// NewServer returns the ext_proc service backed by p; its metrics go to reg
// (nil registers nowhere). It fails only if the metrics cannot be
// registered.
func NewServer(p *authz.Pipeline, reg prometheus.Registerer) (*Server, error) {
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	return &Server{p: p, metrics: m, now: time.Now}, nil
}

// Process serves one HTTP request's stream: its request headers, then (if
// it was forwarded) its response headers.
func (s *Server) Process(stream extprocv3.ExternalProcessor_ProcessServer) error {
	ctx := stream.Context()
	cluster := clusterFromMetadata(ctx)
	var (
		rule    string
		started time.Time
	)
	for {
		in, err := stream.Recv()
		if errors.Is(err, io.EOF) || status.Code(err) == codes.Canceled {
			return nil
		}
		if err != nil {
			return err
		}
		var out *extprocv3.ProcessingResponse
		switch m := in.GetRequest().(type) {
		case *extprocv3.ProcessingRequest_RequestHeaders:
			started = s.now()
			req := toRequest(cluster, m.RequestHeaders.GetHeaders())
			req.ClientAddress = sourceAddress(in)
			d := s.p.Check(ctx, &req)
			rule = d.Rule
			out = decisionToResponse(&d)
			if !d.Allowed() {
				s.metrics.observe(cluster, ruleNone, d.Code, 0)
			}
			if d.Allowed() && d.LongRunning() {
				// Answer and end the stream cleanly: Envoy then forwards
				// the request without asking about its response, and the
				// stream (one request of Envoy's circuit breaker on the
				// request service's cluster) is not held for the life of a
				// watch, an exec session or a proxied call that never
				// answers.
				return stream.Send(out)
			}
		case *extprocv3.ProcessingRequest_ResponseHeaders:
			code, _ := strconv.Atoi(header(m.ResponseHeaders.GetHeaders(), ":status"))
			s.metrics.observe(cluster, rule, code, s.now().Sub(started))
			out = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseHeaders{
				ResponseHeaders: &extprocv3.HeadersResponse{},
			}}
		default:
			// The filter sends only headers (processing_mode); anything
			// else is a misconfiguration: end the stream, Envoy fails closed.
			return status.Errorf(codes.FailedPrecondition, "frontdoor ext_proc: unexpected %T", m)
		}
		if err := stream.Send(out); err != nil {
			return err
		}
	}
}

// clusterFromMetadata reads the UpstreamCluster the virtual host named in
// the stream's gRPC initial metadata (envoy.GRPCMetadataCluster).
func clusterFromMetadata(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get(envoy.GRPCMetadataCluster); len(v) > 0 {
		return v[0]
	}
	return ""
}

// toRequest builds the pipeline's Request from the request headers
// (authz.RequestBuilder: the client certificate comes from
// x-forwarded-client-cert, which Envoy's HCM set itself).
func toRequest(cluster string, hm *corev3.HeaderMap) authz.Request {
	b := authz.NewRequestBuilder(cluster, len(hm.GetHeaders()))
	for _, h := range hm.GetHeaders() {
		b.Add(h.GetKey(), headerValue(h))
	}
	return *b.Request()
}

// sourceAddress is the client's "ip:port" from the attributes Envoy sends
// with the request headers (request_attributes: source.address), keyed
// by the filter's name; "" without it.
func sourceAddress(in *extprocv3.ProcessingRequest) string {
	for _, attrs := range in.GetAttributes() {
		if v, ok := attrs.GetFields()[envoy.AttributeSourceAddress]; ok {
			return v.GetStringValue()
		}
	}
	return ""
}

func headerValue(h *corev3.HeaderValue) string {
	if raw := h.GetRawValue(); len(raw) > 0 {
		return string(raw)
	}
	return h.GetValue()
}

func header(hm *corev3.HeaderMap, name string) string {
	for _, h := range hm.GetHeaders() {
		if strings.EqualFold(h.GetKey(), name) {
			return headerValue(h)
		}
	}
	return ""
}

// decisionToResponse maps a Decision onto ext_proc: a denial becomes an
// immediate response with its Status; an allowed request a header mutation
// (authz.Decision.Apply: ext_proc, unlike Envoy 1.40's ext_authz, honors
// per-field append, so every identity value is its own header field) with
// the route cache cleared so x-frontdoor-rule picks the route.
func decisionToResponse(d *authz.Decision) *extprocv3.ProcessingResponse {
	md := &structpb.Struct{Fields: map[string]*structpb.Value{
		envoy.MetadataNamespaceExtProc: structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{
			envoy.MetadataKeyRequest: authz.RequestMetadata(d),
		}}),
	}}
	if !d.Allowed() {
		return &extprocv3.ProcessingResponse{
			Response: &extprocv3.ProcessingResponse_ImmediateResponse{ImmediateResponse: &extprocv3.ImmediateResponse{
				Status:  &typev3.HttpStatus{Code: typev3.StatusCode(d.Code)}, //nolint:gosec // HTTP status codes fit in int32.
				Headers: &extprocv3.HeaderMutation{SetHeaders: overwrite(d.ResponseHeaders)},
				Body:    d.Body,
				Details: "frontdoor_" + string(d.Outcome),
			}},
			DynamicMetadata: md,
		}
	}
	var m mutation
	d.Apply(&m)
	return &extprocv3.ProcessingResponse{
		Response: &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{
			Response: &extprocv3.CommonResponse{
				HeaderMutation:  &extprocv3.HeaderMutation{SetHeaders: m.set, RemoveHeaders: m.remove},
				ClearRouteCache: true,
			},
		}},
		DynamicMetadata: md,
	}
}

// mutation collects a Decision's header plan as an ext_proc HeaderMutation.
type mutation struct {
	set    []*corev3.HeaderValueOption
	remove []string
}

func (m *mutation) RemoveHeader(name string) { m.remove = append(m.remove, name) }

func (m *mutation) SetHeader(name, value string) { m.add(name, value, false) }

func (m *mutation) AppendHeader(name, value string) { m.add(name, value, true) }

func (m *mutation) add(name, value string, appendField bool) {
	m.set = append(m.set, &corev3.HeaderValueOption{
		Header: &corev3.HeaderValue{Key: name, RawValue: []byte(value)},
		Append: wrapperspb.Bool(appendField), //nolint:staticcheck // Envoy 1.40 ext_proc honours only the deprecated append flag (see README)
	})
}

// overwrite: the headers of an immediate response, one field per name.
func overwrite(hs []authz.Header) []*corev3.HeaderValueOption {
	var m mutation
	for _, h := range hs {
		m.SetHeader(h.Name, h.Value)
	}
	return m.set
}
