package authz

import "google.golang.org/protobuf/types/known/structpb"

// RequestMetadata is the access-log fields of d (EachAccessLogField) as the
// struct the gRPC adapters answer in Envoy dynamic metadata
// (envoy.MetadataKeyRequest).
func RequestMetadata(d *Decision) *structpb.Value {
	f := make(map[string]*structpb.Value, 10)
	d.EachAccessLogField(
		func(k, v string) { f[k] = structpb.NewStringValue(v) },
		func(k string, v float64) { f[k] = structpb.NewNumberValue(v) },
	)
	return structpb.NewStructValue(&structpb.Struct{Fields: f})
}
