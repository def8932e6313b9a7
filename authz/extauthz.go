package authz

import (
	"context"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"

	"github.com/kubefrontdoor/frontdoor/envoy"
)

// extAuthzServer adapts the Pipeline to Envoy's ext_authz gRPC protocol. It
// only converts: every decision is the pipeline's.
type extAuthzServer struct {
	authv3.UnimplementedAuthorizationServer
	p *Pipeline
}

// NewExtAuthzServer returns Envoy's envoy.service.auth.v3.Authorization
// service backed by p. Envoy must send the peer certificate
// (include_peer_certificate) and name the cluster in the
// envoy.ContextKeyCluster context extension.
func NewExtAuthzServer(p *Pipeline) authv3.AuthorizationServer {
	return &extAuthzServer{p: p}
}

// Check answers one ext_authz request. It never returns a gRPC error for a
// decision: a denial is a CheckResponse, so Envoy sends our Status body
// rather than its own failure response.
func (s *extAuthzServer) Check(ctx context.Context, in *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	req := checkRequestToRequest(in)
	d := s.p.Check(ctx, &req)
	return decisionToCheckResponse(&d), nil
}

func checkRequestToRequest(in *authv3.CheckRequest) Request {
	attrs := in.GetAttributes()
	h := attrs.GetRequest().GetHttp()
	headers := h.GetHeaders()
	if len(headers) == 0 && len(h.GetHeaderMap().GetHeaders()) > 0 {
		// encode_raw_headers: fold into the map form the pipeline takes.
		headers = make(map[string]string, len(h.GetHeaderMap().GetHeaders()))
		for _, hv := range h.GetHeaderMap().GetHeaders() {
			k := strings.ToLower(hv.GetKey())
			v := string(hv.GetRawValue())
			if v == "" {
				v = hv.GetValue()
			}
			if old, ok := headers[k]; ok {
				v = old + "," + v
			}
			headers[k] = v
		}
	}
	return Request{
		Cluster:         attrs.GetContextExtensions()[envoy.ContextKeyCluster],
		Method:          h.GetMethod(),
		Path:            h.GetPath(),
		Headers:         headers,
		PeerCertificate: attrs.GetSource().GetCertificate(),
	}
}

func decisionToCheckResponse(d *Decision) *authv3.CheckResponse {
	if d.Allowed() {
		return &authv3.CheckResponse{
			Status: &rpcstatus.Status{Code: int32(codes.OK)},
			HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
				Headers:         headerOptions(d.SetHeaders),
				HeadersToRemove: d.RemoveHeaders,
			}},
		}
	}
	code := codes.PermissionDenied
	if d.Outcome == Unauthenticated {
		code = codes.Unauthenticated
	}
	return &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(code)},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(d.Code)}, //nolint:gosec // HTTP status codes fit in int32.
			Headers: headerOptions(d.ResponseHeaders),
			Body:    string(d.Body),
		}},
	}
}

// headerOptions converts a header plan. Replacing uses
// OVERWRITE_IF_EXISTS_OR_ADD, which in Envoy removes every same-named
// header before adding ours; appending uses APPEND_IF_EXISTS_OR_ADD, which
// adds a separate header field (never comma-joins), so each group stays
// its own Impersonate-Group field as the apiserver expects.
func headerOptions(hs []Header) []*corev3.HeaderValueOption {
	if len(hs) == 0 {
		return nil
	}
	out := make([]*corev3.HeaderValueOption, len(hs))
	opts := make([]corev3.HeaderValueOption, len(hs))
	vals := make([]corev3.HeaderValue, len(hs))
	for i, h := range hs {
		vals[i] = corev3.HeaderValue{Key: h.Name, Value: h.Value}
		opts[i].Header = &vals[i]
		opts[i].AppendAction = corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
		if h.Append {
			opts[i].AppendAction = corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD
		}
		out[i] = &opts[i]
	}
	return out
}
