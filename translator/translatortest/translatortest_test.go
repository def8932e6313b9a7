package translatortest

import (
	"reflect"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/kubefrontdoor/frontdoor/translator"
)

// TestDecode: the Options document becomes Options, file: values are read
// from the inputs directory, and errors count documents as the file has
// them (the Options document included).
func TestDecode(t *testing.T) {
	fsys := fstest.MapFS{"pki/ca.crt": {Data: []byte("PEM")}}
	in, err := Decode([]byte(`# comment
kind: Options
listenerAddress: "::"
listenerPort: 443
disableAccessLog: true
---
apiVersion: v1
kind: Secret
metadata: {namespace: ns, name: ca}
stringData: {ca.crt: "file:pki/ca.crt", other: plain}
`), fsys)
	if err != nil {
		t.Fatal(err)
	}
	want := translator.Options{ListenerAddress: "::", ListenerPort: 443, DisableAccessLog: true}
	if !reflect.DeepEqual(in.Options, want) {
		t.Errorf("Options = %+v, want %+v", in.Options, want)
	}
	if d := in.Secrets[0].Data; string(d["ca.crt"]) != "PEM" || string(d["other"]) != "plain" {
		t.Errorf("Secret data = %q", d)
	}

	for _, tc := range []struct{ doc, want string }{
		{"kind: Options\nlistenerPort: 1\n---\nkind: Options\n", "document 2: a second Options document"},
		{"kind: Options\nlistenerPorts: 1\n", "document 1: Options: "},
		{"kind: Options\n---\napiVersion: v1\nkind: ConfigMap\n", `document 2: unsupported object "v1" "ConfigMap"`},
		{"apiVersion: v1\nkind: Secret\nstringData: {a: file:missing}\n", `reading the file of Secret / key "a": open missing`},
	} {
		if _, err := Decode([]byte(tc.doc), fsys); err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("Decode(%q) error %v, want it to start with %q", tc.doc, err, tc.want)
		}
	}
}
