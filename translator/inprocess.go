package translator

import (
	"encoding/json"
	"fmt"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	dynmodv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/dynamic_modules/v3"
	dynmodfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/dynamic_modules/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/kubefrontdoor/frontdoor/envoy"
)

// In process (spec.requestService: InProcess), Envoy runs the request
// pipeline itself: frontdoor's dynamic module (a Go c-shared library) is an
// HTTP filter that authenticates, picks the rule and rewrites the identity
// headers on Envoy's worker thread, with no gRPC round trip and no Lua.
// Requests that need the apiserver (a token not yet reviewed, client
// impersonation) are decided on a goroutine and resumed.
//
// The module is loaded from a local file only: a missing or broken file
// makes Envoy reject the listener (nothing is served unfiltered), while a
// remote module source would, on a failed fetch, install no filter and pass
// requests through, so it is never used.

// inProcess runs the request service inside Envoy.
type inProcess struct{}

var _ requestService = inProcess{}

// validate: the cluster can only be served in process if the gateway was
// given the module and the address of frontdoor serve.
func (inProcess) validate(c *ClusterIR) error {
	if c.Module.Path == "" || c.Module.PolicyAddress == "" {
		return fmt.Errorf("needs the dynamic module: start frontdoor serve with --inprocess-module (and --inprocess-policy-address if Envoy reaches it elsewhere than --grpc-address)")
	}
	return nil
}

func (inProcess) httpFilters(c *ClusterIR) []*hcmv3.HttpFilter {
	cfg, err := json.Marshal(envoy.InProcessConfig{
		Cluster:        c.Name,
		PolicyAddress:  c.Module.PolicyAddress,
		MetricsAddress: c.Module.MetricsAddress,
		AccessLog:      moduleAccessLog(c.AccessLog),
	})
	if err != nil {
		panic(fmt.Sprintf("encoding the in-process filter config: %v", err)) // plain strings always encode
	}
	filter := &dynmodfilterv3.DynamicModuleFilter{
		DynamicModuleConfig: &dynmodv3.DynamicModuleConfig{
			Module: &corev3.AsyncDataSource{Specifier: &corev3.AsyncDataSource_Local{Local: &corev3.DataSource{
				Specifier: &corev3.DataSource_Filename{Filename: c.Module.Path},
			}}},
			// A Go c-shared library cannot be unloaded (golang/go#11100).
			DoNotClose: true,
		},
		FilterName:   envoy.InProcessModuleFilter,
		FilterConfig: mustAny(wrapperspb.String(string(cfg))),
	}
	return []*hcmv3.HttpFilter{{Name: envoy.InProcessFilterName, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(filter)}}}
}

// perRoute: the filter config already names the cluster (each cluster has
// its own filter chain).
func (inProcess) perRoute(*ClusterIR) (string, proto.Message) { return "", nil }

// accessLogFields: the module writes the access log line of every request
// its filter sees (accessLogSkip); Envoy's logger writes the others, which
// never met the filter, so the module's fields read nothing (null) there.
func (inProcess) accessLogFields() map[string]string {
	return metadataFields(envoy.MetadataNamespaceInProcess)
}

// accessLogTiming: as accessLogFields, null in Envoy's lines.
func (inProcess) accessLogTiming() map[string]string {
	return map[string]string{
		envoy.AccessLogRequestServiceUs: "%DYNAMIC_METADATA(" + envoy.MetadataNamespaceInProcess + ":" + envoy.AccessLogRequestServiceUs + ")%",
	}
}

// accessLogSkip: Envoy's logger passes only the requests the module did not
// mark as logged (envoy.InProcessLoggedKey): a JSON line formatted by Envoy
// cost ~6% of the gateway's CPU per GET in the bench, the module's own a
// fraction of that (inprocess/abi/accesslog.c).
func (inProcess) accessLogSkip() *accesslogv3.AccessLogFilter {
	return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_MetadataFilter{
		MetadataFilter: &accesslogv3.MetadataFilter{
			Matcher: &matcherv3.MetadataMatcher{
				Filter: envoy.MetadataNamespaceInProcess,
				Path:   []*matcherv3.MetadataMatcher_PathSegment{{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: envoy.InProcessLoggedKey}}},
				// present_match false matches no value: a marked stream fails
				// the filter, an unmarked one passes (match_if_key_not_found).
				Value: &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_PresentMatch{PresentMatch: false}},
			},
			MatchIfKeyNotFound: wrapperspb.Bool(true),
		},
	}}
}

// moduleAccessLog is the access log the module writes: the gateway's
// settings a (nil when the log is off).
func moduleAccessLog(a AccessLogIR) *envoy.InProcessAccessLog {
	if a.Disabled {
		return nil
	}
	return &envoy.InProcessAccessLog{Path: a.Path, FailuresOnly: a.FailuresOnly, SlowerThanMs: a.SlowerThan.Milliseconds()}
}

// forwardClientCert hands the module the verified client certificate in
// x-forwarded-client-cert, as for ext_proc; the module removes it before
// the request goes upstream.
func (inProcess) forwardClientCert() (hcmv3.HttpConnectionManager_ForwardClientCertDetails, *hcmv3.HttpConnectionManager_SetCurrentClientCertDetails) {
	return forwardClientCertToFilters()
}

// localReplyMappers: the module answers its own failures with Status
// bodies.
func (inProcess) localReplyMappers() []*hcmv3.ResponseMapper { return nil }
