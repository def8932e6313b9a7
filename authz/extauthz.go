package authz

import (
	"context"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/structpb"

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
	req := Request{
		Cluster:         attrs.GetContextExtensions()[envoy.ContextKeyCluster],
		Method:          h.GetMethod(),
		Path:            h.GetPath(),
		Headers:         h.GetHeaders(),
		PeerCertificate: attrs.GetSource().GetCertificate(),
		ClientAddress:   attrs.GetSource().GetAddress().GetSocketAddress().GetAddress(),
	}
	if raw := h.GetHeaderMap().GetHeaders(); len(req.Headers) == 0 && len(raw) > 0 {
		// encode_raw_headers: fold into the map form the pipeline takes.
		b := NewRequestBuilder(req.Cluster, len(raw))
		for _, hv := range raw {
			v := string(hv.GetRawValue())
			if v == "" {
				v = hv.GetValue()
			}
			b.Add(hv.GetKey(), v)
		}
		req.Headers = b.Request().Headers
	}
	return req
}

func decisionToCheckResponse(d *Decision) *authv3.CheckResponse {
	if d.Allowed() {
		headers, identity := splitIdentityHeaders(d.SetHeaders)
		identity.Fields[envoy.MetadataKeyRequest] = RequestMetadata(d)
		return &authv3.CheckResponse{
			Status: &rpcstatus.Status{Code: int32(codes.OK)},
			HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
				Headers:         headers,
				HeadersToRemove: d.RemoveHeaders,
			}},
			DynamicMetadata: identity,
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
			Headers: overwriteHeaders(d.ResponseHeaders),
			Body:    string(d.Body),
		}},
		DynamicMetadata: &structpb.Struct{Fields: map[string]*structpb.Value{envoy.MetadataKeyRequest: RequestMetadata(d)}},
	}
}

// splitIdentityHeaders maps a header plan onto what Envoy 1.40's ext_authz
// can do. Single-valued routing headers (x-frontdoor-rule) become ext_authz
// header mutations, which replace and clear the route cache. Identity
// fields (Impersonate-* or X-Remote-*, by the cluster's forwarding mode) go to dynamic metadata as a flat name/value list
// for the identity Lua filter to add one field each: ext_authz can only
// replace or comma-join, and it applies headers_to_remove after its own
// mutations, so it could not both strip the client's Impersonate-* headers
// and add ours (see envoy.MetadataKeyIdentityHeaders).
func splitIdentityHeaders(hs []Header) ([]*corev3.HeaderValueOption, *structpb.Struct) {
	var routing []Header
	fields := make([]*structpb.Value, 0, 2*len(hs))
	for _, h := range hs {
		if isIdentityHeader(h.Name) {
			fields = append(fields, structpb.NewStringValue(h.Name), structpb.NewStringValue(h.Value))
			continue
		}
		routing = append(routing, h)
	}
	md := &structpb.Struct{Fields: map[string]*structpb.Value{
		envoy.MetadataKeyIdentityHeaders: structpb.NewListValue(&structpb.ListValue{Values: fields}),
	}}
	return overwriteHeaders(routing), md
}

// overwriteHeaders converts headers to OVERWRITE_IF_EXISTS_OR_ADD options
// (one field per name).
func overwriteHeaders(hs []Header) []*corev3.HeaderValueOption {
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
		out[i] = &opts[i]
	}
	return out
}
