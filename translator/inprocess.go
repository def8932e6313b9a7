package translator

import (
	"encoding/json"
	"fmt"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	dynmodv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/dynamic_modules/v3"
	dynmodfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/dynamic_modules/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
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

// accessLogFields: the module writes each string field as filter state of
// its own (formatted as it is, where each dynamic metadata field costs a
// lookup and a protobuf conversion per line: in the bench's ablation those
// conversions were the JSON access log's whole cost per request), and the
// group count as a metadata number (a number in the JSON line).
func (inProcess) accessLogFields() map[string]string {
	f := make(map[string]string, len(envoy.AccessLogFields))
	for _, k := range envoy.AccessLogFields {
		f[k] = "%FILTER_STATE(" + envoy.InProcessFilterStateKey(k) + ":PLAIN)%"
	}
	f[envoy.AccessLogGroups] = "%DYNAMIC_METADATA(" + envoy.MetadataNamespaceInProcess + ":" + envoy.AccessLogGroups + ")%"
	return f
}

// accessLogTiming: the module records the pipeline's time (inline, or
// until a paused request's decision was applied) as metadata.
func (inProcess) accessLogTiming() map[string]string {
	return map[string]string{
		envoy.AccessLogRequestServiceUs: "%FILTER_STATE(" + envoy.InProcessFilterStateKey(envoy.AccessLogRequestServiceUs) + ":PLAIN)%",
	}
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
