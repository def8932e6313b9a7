package authz

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kubefrontdoor/frontdoor/envoy"
)

func TestXFCCCert(t *testing.T) {
	for in, want := range map[string]string{
		"":                                   "",
		`Hash=1;Cert="a%20b";Subject="CN=x"`: "a%20b",
		`Hash=1;cert=abc`:                    "abc",
		`Hash=1`:                             "",
		`Hash=1,Cert="abc"`:                  "",
		`Cert="%zz"`:                         "%zz", // decoded (and refused) by the x509 authenticator
	} {
		if got := XFCCCert(in); got != want {
			t.Errorf("XFCCCert(%q) = %q, want %q", in, got, want)
		}
	}
}

// Envoy lists header fields one by one, pseudo-headers and repeats
// included; the builder folds them into the pipeline's Request.
func TestRequestBuilder(t *testing.T) {
	b := NewRequestBuilder("a", 8)
	for _, h := range [][2]string{
		{":method", "GET"}, {":path", "/api/v1/pods?watch=1"}, {":authority", "x"},
		{"Impersonate-Group", "dev"}, {"impersonate-group", "qa"},
		{envoy.HeaderClientCert, `Hash=1;Cert="a%20b"`},
		{"Authorization", "Bearer t"},
	} {
		b.Add(h[0], h[1])
	}
	want := &Request{
		Cluster: "a", Method: "GET", Path: "/api/v1/pods?watch=1", PeerCertificate: "a%20b",
		Headers: map[string]string{
			":method": "GET", ":path": "/api/v1/pods?watch=1", ":authority": "x",
			"impersonate-group": "dev,qa", "authorization": "Bearer t",
		},
	}
	if diff := cmp.Diff(want, b.Request()); diff != "" {
		t.Errorf("request (-want +got):\n%s", diff)
	}
}

// recorder is a Mutator that records what it was told, in order.
type recorder []string

func (r *recorder) RemoveHeader(n string)    { *r = append(*r, "remove "+n) }
func (r *recorder) SetHeader(n, v string)    { *r = append(*r, "set "+n+"="+v) }
func (r *recorder) AppendHeader(n, v string) { *r = append(*r, "append "+n+"="+v) }

// Apply never removes a name it sets (a transport may run removals after
// additions), replaces the client's fields with the first value of each
// name, appends the others one field each, and always drops the forwarded
// client certificate.
func TestDecisionApply(t *testing.T) {
	d := &Decision{
		Outcome:       Allowed,
		RemoveHeaders: []string{"authorization", "impersonate-group", "sec-websocket-protocol"},
		SetHeaders: []Header{
			{"Impersonate-User", "jane"}, {"Impersonate-Group", "dev"}, {"Impersonate-Group", "qa"},
			{"x-frontdoor-rule", "default"},
		},
	}
	var r recorder
	d.Apply(&r)
	want := recorder{
		"remove authorization", "remove sec-websocket-protocol", "remove " + envoy.HeaderClientCert,
		"set Impersonate-User=jane", "set Impersonate-Group=dev", "append Impersonate-Group=qa",
		"set x-frontdoor-rule=default",
	}
	if diff := cmp.Diff(want, r); diff != "" {
		t.Errorf("operations (-want +got):\n%s", diff)
	}
}

func TestEachAccessLogField(t *testing.T) {
	d := &Decision{Outcome: Allowed, User: "jane\xff", Groups: 2, Rule: "default"}
	got := map[string]any{}
	d.EachAccessLogField(func(k, v string) { got[k] = v }, func(k string, v float64) { got[k] = v })
	want := map[string]any{
		envoy.AccessLogDecision: "allowed", envoy.AccessLogUser: "jane\uFFFD",
		envoy.AccessLogGroups: 2.0, envoy.AccessLogRule: "default",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("fields (-want +got):\n%s", diff)
	}
}
