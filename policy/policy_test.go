package policy

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// full is a table with every field set, so each can be changed alone.
func full() *Table {
	return &Table{Version: "v1", Clusters: map[string]*Cluster{"a": {
		Name: "a", X509: true, ClientCAPEM: []byte("ca"), DefaultRule: "default",
		Dispatch: []Dispatch{{
			Name: "p", LongRunningRule: "p.long-running",
			Rules: []Rule{{
				Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"pods"},
				ResourceNames: []string{"x"}, Namespaces: []string{"ns"}, NonResourceURLs: []string{"/healthz"},
				Users: []string{"u"}, UserGroups: []string{"g"}, ServiceAccounts: []string{"system:serviceaccount:ns:sa"},
			}},
			Reject: &Reject{Code: 429, RetryAfterSeconds: 5, Message: "m"},
		}},
		TokenReview: TokenReview{Enabled: true, CacheTTL: Duration(time.Minute), NegativeCacheTTL: Duration(time.Second), Audiences: []string{"aud"}},
		JWT:         []json.RawMessage{json.RawMessage(`{"issuer":{"url":"https://issuer.example"}}`)},
		Anonymous:   true,
		Revocation:  &Revocation{CRLs: [][]byte{[]byte("crl")}, DeniedFingerprints: []string{"ab"}},
		Upstream: Upstream{
			ServerURLs: []string{"https://10.0.0.1:6443"}, ServerName: "api",
			ClientCertPEM: []byte("cert"), ClientKeyPEM: []byte("key"), CAPEM: []byte("upstream-ca"),
		},
		Forwarding: ForwardingRequestHeader,
		FrontProxy: &FrontProxy{ClientCAPEM: []byte("proxy-ca"), AllowedNames: []string{"proxy"}},
	}}}
}

// TestEveryFieldChangesTheEncoding changes each leaf field of the table in
// turn and requires the encoding (which the config version hashes and the
// in-process module receives) to change: a field the encoding leaves out
// (json:"-", unexported) fails here, not silently in production.
func TestEveryFieldChangesTheEncoding(t *testing.T) {
	base, err := full().Encode()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	forEachLeaf(t, reflect.ValueOf(full()).Elem(), "Table", func(path string, mutate func(*Table)) {
		n++
		tb := full()
		mutate(tb)
		got, err := tb.Encode()
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if bytes.Equal(got, base) {
			t.Errorf("changing %s does not change the encoding: the config version would not change", path)
		}
	})
	if n < 25 {
		t.Fatalf("walked only %d fields; the walk is broken", n)
	}
}

// forEachLeaf calls fn with a mutation of every leaf field reachable from v
// (structs, pointers, slices' first element, map values), addressed by the
// same walk on a fresh table.
func forEachLeaf(t *testing.T, v reflect.Value, path string, fn func(string, func(*Table))) {
	t.Helper()
	var walk func(get func(*Table) reflect.Value, typ reflect.Type, path string)
	walk = func(get func(*Table) reflect.Value, typ reflect.Type, path string) {
		switch typ.Kind() {
		case reflect.Struct:
			for i := range typ.NumField() {
				f := typ.Field(i)
				walk(func(tb *Table) reflect.Value { return get(tb).Field(i) }, f.Type, path+"."+f.Name)
			}
		case reflect.Pointer:
			walk(func(tb *Table) reflect.Value { return get(tb).Elem() }, typ.Elem(), path)
		case reflect.Map:
			walk(func(tb *Table) reflect.Value {
				m := get(tb)
				k := m.MapKeys()[0]
				// Map values are not addressable: mutate a copy and store it.
				return m.MapIndex(k)
			}, typ.Elem(), path+"[k]")
		case reflect.Slice:
			if typ.Elem().Kind() == reflect.Uint8 || typ.Elem().Kind() == reflect.String {
				fn(path, func(tb *Table) { mutateLeaf(get(tb)) })
				return
			}
			walk(func(tb *Table) reflect.Value { return get(tb).Index(0) }, typ.Elem(), path+"[0]")
		default:
			fn(path, func(tb *Table) { mutateLeaf(get(tb)) })
		}
	}
	walk(func(tb *Table) reflect.Value { return reflect.ValueOf(tb).Elem() }, v.Type(), path)
}

// mutateLeaf changes a leaf value to another valid value of its type.
func mutateLeaf(v reflect.Value) {
	switch v.Kind() {
	case reflect.Bool:
		v.SetBool(!v.Bool())
	case reflect.String:
		v.SetString(v.String() + "-changed")
	case reflect.Int, reflect.Int64:
		v.SetInt(v.Int() + 1)
	case reflect.Slice:
		if v.Type() == reflect.TypeFor[json.RawMessage]() {
			// Still valid JSON (an encoding error would prove nothing).
			v.SetBytes(append(append([]byte("["), v.Bytes()...), ']'))
		} else if v.Type().Elem().Kind() == reflect.Uint8 {
			v.SetBytes(append(append([]byte{}, v.Bytes()...), 'x'))
		} else {
			v.Set(reflect.Append(v, reflect.ValueOf("changed")))
		}
	default:
		panic("policy test: no mutation for " + v.Kind().String())
	}
}

func TestDecodeInvertsEncode(t *testing.T) {
	want := full()
	b, err := want.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Decode(Encode(t)) = %+v, want %+v", got, want)
	}
}

func TestViewReplacesPEMFields(t *testing.T) {
	v, err := full().View(func(field string, b []byte) any { return field + ":" + string(b) })
	if err != nil {
		t.Fatal(err)
	}
	c := v["clusters"].(map[string]any)["a"].(map[string]any)
	up := c["upstream"].(map[string]any)
	for k, want := range map[string]any{
		"clientCAPEM": "clientCAPEM:ca", "upstream.clientKeyPEM": "clientKeyPEM:key",
		"upstream.clientCertPEM": "clientCertPEM:cert", "upstream.caPEM": "caPEM:upstream-ca",
	} {
		got := c[k]
		if after, ok := cutPrefix(k, "upstream."); ok {
			got = up[after]
		}
		if got != want {
			t.Errorf("view %s = %v, want %v", k, got, want)
		}
	}
}

func cutPrefix(s, p string) (string, bool) {
	if len(s) >= len(p) && s[:len(p)] == p {
		return s[len(p):], true
	}
	return s, false
}
