package translator

import (
	"math"
	"strings"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	streamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/kubefrontdoor/frontdoor/envoy"
)

// Envoy writes one JSON line per request (the HCM access log, after the
// response), with the Kubernetes coordinates the request service put in
// ext_authz (or ext_proc) dynamic metadata (envoy.MetadataKeyRequest),
// beside Envoy's own view: code, duration, bytes and the replica that
// served it. In process, the module writes the same line itself for every
// request its filter sees (inprocess/abi/accesslog.c) and Envoy only for
// the rest (requestService.accessLogSkip).
//
// Timing fields (microseconds, as Envoy measured them) split each request's
// time: durationUs is the whole exchange (first byte from the client to the
// last byte back to it), upstreamUs the apiserver's part (first byte sent to
// the replica to the first byte of its answer), and requestServiceUs the
// time Envoy waited on the request service (see requestService.accessLogTiming; the
// gRPC round trip included). The rest is Envoy's own work: TLS, filters,
// routing, the connection pool and moving the response body.
//
// No field can carry a credential: there is no request header other than
// the method, path, user agent and request id, no peer certificate field,
// and the request service's metadata holds names and counts only.

const (
	fileAccessLogName   = "envoy.access_loggers.file"
	stdoutAccessLogName = "envoy.access_loggers.stdout"
)

// accessLogs returns the HCM access log of cluster uc.
func accessLogs(a AccessLogIR, uc string, rs requestService) []*accesslogv3.AccessLog {
	if a.Disabled {
		return nil
	}
	format := &corev3.SubstitutionFormatString{
		Format: &corev3.SubstitutionFormatString_JsonFormat{JsonFormat: accessLogFormat(uc, rs)},
	}
	var log *accesslogv3.AccessLog
	if a.Path == "" {
		log = &accesslogv3.AccessLog{Name: stdoutAccessLogName, ConfigType: &accesslogv3.AccessLog_TypedConfig{
			TypedConfig: mustAny(&streamv3.StdoutAccessLog{AccessLogFormat: &streamv3.StdoutAccessLog_LogFormat{LogFormat: format}}),
		}}
	} else {
		log = &accesslogv3.AccessLog{Name: fileAccessLogName, ConfigType: &accesslogv3.AccessLog_TypedConfig{
			TypedConfig: mustAny(&filev3.FileAccessLog{Path: a.Path, AccessLogFormat: &filev3.FileAccessLog_LogFormat{LogFormat: format}}),
		}}
	}
	var filters []*accesslogv3.AccessLogFilter
	if skip := rs.accessLogSkip(); skip != nil {
		filters = append(filters, skip)
	}
	if a.FailuresOnly {
		filters = append(filters, accessLogFailureFilter(a.SlowerThan))
	}
	switch len(filters) {
	case 1:
		log.Filter = filters[0]
	case 2:
		log.Filter = &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_AndFilter{
			AndFilter: &accesslogv3.AndFilter{Filters: filters},
		}}
	}
	return []*accesslogv3.AccessLog{log}
}

// accessLogFailureFilter passes the requests that did not succeed: an
// answer of 400 or more (the gateway's own denials, throttling and
// failures, and the apiserver's), no answer at all (status 0: the client
// or the upstream reset the stream), or any response flag (Envoy's reason
// for cutting a request short, e.g. UF, UT, DC, UAEX); and, when slow is
// set, every request that took at least slow (a watch or a log stream
// does, for its whole life). A filtered-out request is never formatted
// nor written, which is most of the log's cost per request (see README,
// Performance).
func accessLogFailureFilter(slow time.Duration) *accesslogv3.AccessLogFilter {
	status := func(op accesslogv3.ComparisonFilter_Op, code uint32, key string) *accesslogv3.AccessLogFilter {
		return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_StatusCodeFilter{
			StatusCodeFilter: &accesslogv3.StatusCodeFilter{Comparison: &accesslogv3.ComparisonFilter{
				Op: op, Value: &corev3.RuntimeUInt32{DefaultValue: code, RuntimeKey: key},
			}},
		}}
	}
	filters := []*accesslogv3.AccessLogFilter{
		status(accesslogv3.ComparisonFilter_GE, 400, "frontdoor.access_log.failure_min_status"),
		status(accesslogv3.ComparisonFilter_EQ, 0, "frontdoor.access_log.no_status"),
		{FilterSpecifier: &accesslogv3.AccessLogFilter_ResponseFlagFilter{ResponseFlagFilter: &accesslogv3.ResponseFlagFilter{}}},
	}
	if ms := slow.Milliseconds(); ms > 0 {
		filters = append(filters, &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_DurationFilter{
			DurationFilter: &accesslogv3.DurationFilter{Comparison: &accesslogv3.ComparisonFilter{
				Op:    accesslogv3.ComparisonFilter_GE,
				Value: &corev3.RuntimeUInt32{DefaultValue: uint32(min(ms, math.MaxUint32)), RuntimeKey: "frontdoor.access_log.slow_ms"},
			}},
		}})
	}
	return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_OrFilter{
		OrFilter: &accesslogv3.OrFilter{Filters: filters},
	}}
}

// accessLogFormat is the JSON object of one line. Fields the request
// service did not decide (a denied request has no user or rule) are null.
func accessLogFormat(uc string, rs requestService) *structpb.Struct {
	f := map[string]*structpb.Value{
		"time":            structpb.NewStringValue("%START_TIME%"),
		"cluster":         structpb.NewStringValue(uc),
		"method":          structpb.NewStringValue("%REQ(:METHOD)%"),
		"path":            structpb.NewStringValue("%REQ(:PATH)%"),
		"protocol":        structpb.NewStringValue("%PROTOCOL%"),
		"userAgent":       structpb.NewStringValue("%REQ(USER-AGENT)%"),
		"requestID":       structpb.NewStringValue("%REQ(X-REQUEST-ID)%"),
		"client":          structpb.NewStringValue("%DOWNSTREAM_REMOTE_ADDRESS%"),
		"code":            structpb.NewStringValue("%RESPONSE_CODE%"),
		"flags":           structpb.NewStringValue("%RESPONSE_FLAGS%"),
		"durationMs":      structpb.NewStringValue("%DURATION%"),
		"durationUs":      structpb.NewStringValue("%COMMON_DURATION(DS_RX_BEG:DS_TX_END:us)%"),
		"upstreamUs":      structpb.NewStringValue("%COMMON_DURATION(US_TX_BEG:US_RX_BEG:us)%"),
		"bytesReceived":   structpb.NewStringValue("%BYTES_RECEIVED%"),
		"bytesSent":       structpb.NewStringValue("%BYTES_SENT%"),
		"upstream":        structpb.NewStringValue("%UPSTREAM_HOST%"),
		"upstreamCluster": structpb.NewStringValue("%UPSTREAM_CLUSTER%"),
	}
	for k, op := range rs.accessLogTiming() {
		f[k] = structpb.NewStringValue(op)
	}
	for k, op := range rs.accessLogFields() {
		f[k] = structpb.NewStringValue(op)
	}
	return &structpb.Struct{Fields: f}
}

// metadataFields reads every access-log field (envoy.AccessLogFields) from
// the dynamic metadata struct at path in namespace ns.
func metadataFields(ns string, path ...string) map[string]string {
	prefix := "%DYNAMIC_METADATA(" + strings.Join(append([]string{ns}, path...), ":") + ":"
	f := make(map[string]string, len(envoy.AccessLogFields))
	for _, k := range envoy.AccessLogFields {
		f[k] = prefix + k + ")%"
	}
	return f
}
