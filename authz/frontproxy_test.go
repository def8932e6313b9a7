package authz

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kubefrontdoor/frontdoor/envoy"
	"github.com/kubefrontdoor/frontdoor/policy"
)

// A front proxy (certificate from the front-proxy CA, allowed CN) names the
// user in X-Remote-*: that user (uid, groups split from Envoy's comma-joined
// fields, extras with their keys unescaped, plus system:authenticated as
// kube-apiserver adds it) is the request's identity, forwarded in the
// cluster's mode. Anyone else's X-Remote-* headers are ignored and
// stripped: a client of the client CA is itself, a proxy with a CN not
// allowed or a certificate of another CA is not a proxy, and without any
// certificate the headers are no credential at all.
func TestFrontProxyClients(t *testing.T) {
	clientCA := newTestCA(t, "client-ca")
	proxyCA := newTestCA(t, "front-proxy-ca")
	_, proxyCert := proxyCA.issue(t, clientCert{cn: "outer-proxy"})
	_, otherProxyCert := proxyCA.issue(t, clientCert{cn: "someone-else"})
	_, clientCAProxyName := clientCA.issue(t, clientCert{cn: "outer-proxy"})
	_, janeCert := clientCA.issue(t, clientCert{cn: "jane"})
	asserted := map[string]string{
		"x-remote-user":                     "alice",
		"x-remote-uid":                      "u-1",
		"x-remote-group":                    "dev, ops",
		"x-remote-extra-scopes":             "read,write",
		"x-remote-extra-example.org%2fteam": "blue",
	}
	fp := &policy.FrontProxy{ClientCAPEM: proxyCA.CertPEM, AllowedNames: []string{"outer-proxy"}}

	for _, mode := range []string{"", policy.ForwardingRequestHeader} {
		names := forwardingNames[forwardImpersonation]
		if mode != "" {
			names = forwardingNames[forwardRequestHeader]
		}
		tp := newTestPipeline(t, nil)
		tp.SetPolicy(forwardingTable(clientCA.CertPEM, mode, fp))
		check := func(cert string) Decision {
			h := map[string]string{}
			for k, v := range asserted {
				h[k] = v
			}
			return tp.Check(context.Background(), &Request{Cluster: "a", Method: "GET", Path: "/api/v1/pods", PeerCertificate: cert, Headers: h})
		}

		d := check(proxyCert)
		if !d.Allowed() {
			t.Fatalf("mode %q: front proxy refused: %s", mode, d.Outcome)
		}
		want := []Header{
			{Name: names.user, Value: "alice"},
			{Name: names.uid, Value: "u-1"},
			{Name: names.group, Value: "dev"},
			{Name: names.group, Value: "ops"},
			{Name: names.extraPrefix + "example.org%2fteam", Value: "blue"},
			{Name: names.extraPrefix + "scopes", Value: "read"},
			{Name: names.extraPrefix + "scopes", Value: "write"},
			{Name: envoy.HeaderRule, Value: "default"},
		}
		if diff := cmp.Diff(want, d.SetHeaders); diff != "" {
			t.Errorf("mode %q: front proxy's user (-want +got):\n%s", mode, diff)
		}
		if d.User != "alice" || d.Requestor != "alice" {
			t.Errorf("mode %q: user %q requestor %q", mode, d.User, d.Requestor)
		}
		wantRemoved := []string{"authorization", "x-remote-extra-example.org%2fteam", "x-remote-extra-scopes", "x-remote-group", "x-remote-uid", "x-remote-user"}
		if diff := cmp.Diff(wantRemoved, d.RemoveHeaders); diff != "" {
			t.Errorf("mode %q: the proxy's own headers must go (-want +got):\n%s", mode, diff)
		}

		for _, tc := range []struct {
			name, cert string
			wantUser   string // "" = refused 401
		}{
			{"CN not allowed", otherProxyCert, ""},
			{"allowed CN from the client CA", clientCAProxyName, "outer-proxy"},
			{"ordinary client", janeCert, "jane"},
			{"no certificate", "", ""},
		} {
			d := check(tc.cert)
			if tc.wantUser == "" {
				if d.Allowed() || d.Code != 401 {
					t.Errorf("mode %q, %s: %s %d, want 401", mode, tc.name, d.Outcome, d.Code)
				}
				continue
			}
			if !d.Allowed() || d.User != tc.wantUser {
				t.Errorf("mode %q, %s: %s as %q, want allowed as %q", mode, tc.name, d.Outcome, d.User, tc.wantUser)
				continue
			}
			if diff := cmp.Diff(wantRemoved, d.RemoveHeaders); diff != "" {
				t.Errorf("mode %q, %s: X-Remote-* must be stripped (-want +got):\n%s", mode, tc.name, diff)
			}
			for _, h := range d.SetHeaders {
				if h.Value == "alice" || h.Value == "u-1" || h.Value == "ops" {
					t.Errorf("mode %q, %s: asserted identity forwarded: %v", mode, tc.name, h)
				}
			}
		}
	}
}

// Without front-proxy settings a proxy's certificate is just a client
// certificate: the headers it sends are stripped, not believed.
func TestNoFrontProxyIgnoresRemoteHeaders(t *testing.T) {
	clientCA := newTestCA(t, "client-ca")
	_, proxy := clientCA.issue(t, clientCert{cn: "outer-proxy"})
	tp := newTestPipeline(t, clientCA)
	d := tp.Check(context.Background(), &Request{
		Cluster: "a", Method: "GET", Path: "/api/v1/pods", PeerCertificate: proxy,
		Headers: map[string]string{"x-remote-user": "alice"},
	})
	if !d.Allowed() || d.User != "outer-proxy" {
		t.Fatalf("decision %s as %q, want allowed as outer-proxy", d.Outcome, d.User)
	}
}

// A front proxy's outcome is cached per certificate and X-Remote-* fields:
// the second identical request verifies nothing, another asserted user is
// another entry, and nothing outlives the proxy's certificate, which also
// bounds how long the in-process module may replay its decisions.
func TestFrontProxyCachedUntilCertificateExpires(t *testing.T) {
	clientCA := newTestCA(t, "client-ca")
	proxyCA := newTestCA(t, "front-proxy-ca")
	_, proxyCert := proxyCA.issue(t, clientCert{cn: "outer-proxy", notAfter: testNow.Add(time.Minute)})
	tp := newTestPipeline(t, nil)
	tp.SetPolicy(forwardingTable(clientCA.CertPEM, "", &policy.FrontProxy{ClientCAPEM: proxyCA.CertPEM, AllowedNames: []string{"outer-proxy"}}))
	req := func(user string) *Request {
		return &Request{Cluster: "a", Method: "GET", Path: "/api/v1/namespaces/default/pods/x", PeerCertificate: proxyCert,
			Headers: map[string]string{"x-remote-user": user, "x-remote-group": "dev"}}
	}
	for _, user := range []string{"alice", "alice", "bob"} {
		d, inline := tp.TryCheck(viaExtAuthz(req(user)))
		if !inline || !d.Allowed() || d.User != user {
			t.Fatalf("%s: %s (inline %v) as %q", user, d.Outcome, inline, d.User)
		}
		if !d.ReplayUntil.Equal(testNow.Add(time.Minute)) {
			t.Errorf("%s: replay until %v, want the proxy certificate's NotAfter %v", user, d.ReplayUntil, testNow.Add(time.Minute))
		}
	}
	if hits, misses := tp.cacheCount("hit"), tp.cacheCount("miss"); hits != 1 || misses != 2 {
		t.Errorf("authn cache: %v hits, %v misses; want 1 (alice again) and 2 (alice, bob)", hits, misses)
	}
	tp.clock.Step(time.Minute + time.Second)
	if d := tryCheck(t, tp, req("alice")); d.Allowed() {
		t.Errorf("after the proxy certificate expired: %s as %q, want refused", d.Outcome, d.User)
	}
}

// A policy edit that leaves the front proxy's CA and names alone keeps its
// verified requests (as x509 keeps its certificates); a new CA bundle or
// name list verifies them again.
func TestFrontProxyKeptAcrossPolicyEdits(t *testing.T) {
	clientCA := newTestCA(t, "client-ca")
	proxyCA := newTestCA(t, "front-proxy-ca")
	_, proxyCert := proxyCA.issue(t, clientCert{cn: "outer-proxy"})
	tp := newTestPipeline(t, nil)
	fp := func(names ...string) *policy.FrontProxy {
		return &policy.FrontProxy{ClientCAPEM: proxyCA.CertPEM, AllowedNames: names}
	}
	req := &Request{Cluster: "a", Method: "GET", Path: "/api/v1/namespaces/default/pods/x", PeerCertificate: proxyCert,
		Headers: map[string]string{"x-remote-user": "alice", "x-remote-group": "dev"}}
	for _, step := range []struct {
		name  string
		table *policy.Table
		hit   bool
	}{
		{"first request", forwardingTable(clientCA.CertPEM, "", fp("outer-proxy")), false},
		{"forwarding mode edited", forwardingTable(clientCA.CertPEM, policy.ForwardingRequestHeader, fp("outer-proxy")), true},
		{"allowed names edited", forwardingTable(clientCA.CertPEM, policy.ForwardingRequestHeader, fp("outer-proxy", "other-proxy")), false},
		{"the same again", forwardingTable(clientCA.CertPEM, policy.ForwardingRequestHeader, fp("outer-proxy", "other-proxy")), true},
	} {
		tp.SetPolicy(step.table)
		hits, misses := tp.cacheCount("hit"), tp.cacheCount("miss")
		if d := tryCheck(t, tp, viaExtAuthz(req)); !d.Allowed() || d.User != "alice" {
			t.Fatalf("%s: %s as %q", step.name, d.Outcome, d.User)
		}
		if gotHit := tp.cacheCount("hit") == hits+1 && tp.cacheCount("miss") == misses; gotHit != step.hit {
			t.Errorf("%s: answered from the cache %v, want %v", step.name, gotHit, step.hit)
		}
	}
}

// BenchmarkPipelineFrontProxyCached measures a front proxy's repeated
// request: its certificate verified once, then answered from the cache.
func BenchmarkPipelineFrontProxyCached(b *testing.B) {
	clientCA := newTestCA(b, "client-ca")
	proxyCA := newTestCA(b, "front-proxy-ca")
	_, proxyCert := proxyCA.issue(b, clientCert{cn: "outer-proxy"})
	tp := newTestPipeline(b, nil)
	tp.SetPolicy(forwardingTable(clientCA.CertPEM, "", &policy.FrontProxy{ClientCAPEM: proxyCA.CertPEM, AllowedNames: []string{"outer-proxy"}}))
	path := "/api/v1/namespaces/default/pods/web-0"
	benchAllowed(b, tp.Pipeline, &Request{Cluster: "a", Method: "GET", Path: path, PeerCertificate: proxyCert,
		Headers: map[string]string{":method": "GET", ":path": path, "x-remote-user": "alice", "x-remote-group": "dev"}})
}
