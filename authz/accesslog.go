package authz

import (
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/kubefrontdoor/frontdoor/envoy"
)

// RequestMetadata is what Envoy's access log learns about a request from the
// request service (envoy.MetadataKeyRequest): the Kubernetes coordinates,
// the user name, the group count, the rule and the decision. Nothing in it
// is a credential: the user name is what kube-apiserver's own audit log
// records, and groups are only counted.
func RequestMetadata(d *Decision) *structpb.Value {
	f := map[string]*structpb.Value{
		envoy.AccessLogDecision: structpb.NewStringValue(string(d.Outcome)),
	}
	if d.Allowed() {
		f[envoy.AccessLogUser] = structpb.NewStringValue(d.User)
		f[envoy.AccessLogGroups] = structpb.NewNumberValue(float64(d.Groups))
		f[envoy.AccessLogRule] = structpb.NewStringValue(d.Rule)
	}
	if i := d.Info; i != nil {
		f[envoy.AccessLogVerb] = structpb.NewStringValue(i.Verb)
		f[envoy.AccessLogAPIGroup] = structpb.NewStringValue(i.APIGroup)
		f[envoy.AccessLogResource] = structpb.NewStringValue(i.Resource)
		f[envoy.AccessLogSubresource] = structpb.NewStringValue(i.Subresource)
		f[envoy.AccessLogNamespace] = structpb.NewStringValue(i.Namespace)
		f[envoy.AccessLogName] = structpb.NewStringValue(i.Name)
	}
	return structpb.NewStructValue(&structpb.Struct{Fields: f})
}
