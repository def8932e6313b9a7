package translator_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/kubefrontdoor/frontdoor/translator"
)

// TestDecodeInputs: the three kinds decode in one file, comment-only
// documents are skipped, and stringData folds into data (winning on a
// shared key) as the apiserver does.
func TestDecodeInputs(t *testing.T) {
	in, err := translator.DecodeInputs([]byte(`---
# a comment-only document and separators are fine
---
apiVersion: frontdoor.dev/v1alpha1
kind: UpstreamCluster
metadata: {name: a, generation: 2}
spec:
  servers: [{endpoint: "https://10.0.0.1:6443"}]
  clientConfig: {secretRef: {namespace: ns, name: upstream}}
  secureServing: {secretRef: {namespace: ns, name: serving}}
---
apiVersion: v1
kind: Secret
metadata: {namespace: ns, name: serving}
data: {tls.crt: b2xk, tls.key: a2V5}
stringData: {tls.crt: new}
---
{"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": {"namespace": "default", "name": "k"}, "addressType": "IPv4", "endpoints": []}
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(in.UpstreamClusters) != 1 || in.UpstreamClusters[0].Name != "a" || in.UpstreamClusters[0].Generation != 2 {
		t.Fatalf("UpstreamClusters = %+v", in.UpstreamClusters)
	}
	if len(in.Secrets) != 1 {
		t.Fatalf("Secrets = %+v", in.Secrets)
	}
	s := in.Secrets[0]
	if string(s.Data["tls.crt"]) != "new" || string(s.Data["tls.key"]) != "key" || s.StringData != nil {
		t.Fatalf("Secret data %q stringData %q: want tls.crt from stringData, tls.key from data, no stringData", s.Data, s.StringData)
	}
	if len(in.EndpointSlices) != 1 || in.EndpointSlices[0].Name != "k" {
		t.Fatalf("EndpointSlices = %+v", in.EndpointSlices)
	}
	if !reflect.DeepEqual(in.Options, translator.Options{}) {
		t.Fatalf("Options = %+v, want zero (they come from flags)", in.Options)
	}
}

// TestDecodeInputsIsStrict: whatever is wrong in one document fails the
// whole file, naming the document.
func TestDecodeInputsIsStrict(t *testing.T) {
	const cluster = "apiVersion: frontdoor.dev/v1alpha1\nkind: UpstreamCluster\nmetadata: {name: a}\nspec: {servers: []}\n"
	for _, tc := range []struct{ name, doc, want string }{
		{"truncated", "apiVersion: frontdoor.dev/v1alpha1\nkind: UpstreamCluster\nspec: {servers: [", "document 2: "},
		{"unknown field", strings.ReplaceAll(cluster, "servers:", "serverz:"), `document 2: UpstreamCluster: error unmarshaling JSON: while decoding JSON: json: unknown field "serverz"`},
		{"unknown kind", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
			`document 2: unsupported object "v1" "ConfigMap": want frontdoor.dev/v1alpha1 UpstreamCluster, v1 Secret or discovery.k8s.io/v1 EndpointSlice`},
		{"wrong version", strings.ReplaceAll(cluster, "v1alpha1", "v1"), `document 2: unsupported object "frontdoor.dev/v1" "UpstreamCluster"`},
		{"no kind", "metadata: {name: x}\n", `document 2: unsupported object "" ""`},
		{"bad secret", "apiVersion: v1\nkind: Secret\ndata: 1\n", "document 2: decoding a Secret: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in, err := translator.DecodeInputs([]byte(cluster + "---\n" + tc.doc))
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to start with %q", err, tc.want)
			}
			if len(in.UpstreamClusters) != 0 {
				t.Fatalf("a failed file still returned %d clusters", len(in.UpstreamClusters))
			}
		})
	}
}
