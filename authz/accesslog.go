package authz

import (
	"strings"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/kubefrontdoor/frontdoor/envoy"
)

// RequestMetadata is what Envoy's access log learns about a request from the
// request service (envoy.MetadataKeyRequest): the Kubernetes coordinates,
// the user name, the group count, the rule and the decision. Nothing in it
// is a credential: the user name is what kube-apiserver's own audit log
// records, and groups are only counted.
//
// Strings are made valid UTF-8 (a path may decode to any bytes, and protobuf
// strings must be UTF-8, or the whole answer would fail to marshal).
func RequestMetadata(d *Decision) *structpb.Value {
	str := func(s string) *structpb.Value { return structpb.NewStringValue(strings.ToValidUTF8(s, "\uFFFD")) }
	f := map[string]*structpb.Value{
		envoy.AccessLogDecision: str(string(d.Outcome)),
	}
	if d.Allowed() {
		f[envoy.AccessLogUser] = str(d.User)
		f[envoy.AccessLogGroups] = structpb.NewNumberValue(float64(d.Groups))
		f[envoy.AccessLogRule] = str(d.Rule)
	}
	if i := d.Info; i != nil {
		f[envoy.AccessLogVerb] = str(i.Verb)
		f[envoy.AccessLogAPIGroup] = str(i.APIGroup)
		f[envoy.AccessLogResource] = str(i.Resource)
		f[envoy.AccessLogSubresource] = str(i.Subresource)
		f[envoy.AccessLogNamespace] = str(i.Namespace)
		f[envoy.AccessLogName] = str(i.Name)
	}
	return structpb.NewStructValue(&structpb.Struct{Fields: f})
}
