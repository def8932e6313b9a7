package translator

import (
	"strings"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	streamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/kubefrontdoor/frontdoor/envoy"
)

// Envoy writes one JSON line per request (the HCM access log, after the
// response), with the Kubernetes coordinates the request service put in
// ext_authz (or ext_proc) dynamic metadata (envoy.MetadataKeyRequest) beside Envoy's own
// view: code, duration, bytes and the replica that served it.
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
	if a.Path == "" {
		return []*accesslogv3.AccessLog{{Name: stdoutAccessLogName, ConfigType: &accesslogv3.AccessLog_TypedConfig{
			TypedConfig: mustAny(&streamv3.StdoutAccessLog{AccessLogFormat: &streamv3.StdoutAccessLog_LogFormat{LogFormat: format}}),
		}}}
	}
	return []*accesslogv3.AccessLog{{Name: fileAccessLogName, ConfigType: &accesslogv3.AccessLog_TypedConfig{
		TypedConfig: mustAny(&filev3.FileAccessLog{Path: a.Path, AccessLogFormat: &filev3.FileAccessLog_LogFormat{LogFormat: format}}),
	}}}
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
	ns, path := rs.requestMetadata()
	prefix := "%DYNAMIC_METADATA(" + strings.Join(append([]string{ns}, path...), ":") + ":"
	for _, k := range envoy.AccessLogFields {
		f[k] = structpb.NewStringValue(prefix + k + ")%")
	}
	return &structpb.Struct{Fields: f}
}
