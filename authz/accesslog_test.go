package authz

import (
	"testing"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"k8s.io/apiserver/pkg/endpoints/request"
)

// A namespace decoded from %ff%fe is not UTF-8; the metadata must still
// marshal (or Envoy would get a gRPC error and answer 503).
func TestRequestMetadataIsValidUTF8(t *testing.T) {
	d := &Decision{Outcome: Unauthenticated, Info: &request.RequestInfo{IsResourceRequest: true, Verb: "list", Resource: "secrets", Namespace: "\xff\xfe"}}
	v := RequestMetadata(d)
	if _, err := proto.Marshal(v); err != nil {
		t.Fatalf("marshal: %v", err)
	}
	if ns := v.GetStructValue().GetFields()["namespace"].GetStringValue(); !utf8.ValidString(ns) {
		t.Errorf("namespace %q is not UTF-8", ns)
	}
}
