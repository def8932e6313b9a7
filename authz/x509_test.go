package authz

import (
	"context"
	"crypto/x509"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	x509request "k8s.io/apiserver/pkg/authentication/request/x509"

	"github.com/kubefrontdoor/frontdoor/envoy"
	"github.com/kubefrontdoor/frontdoor/policy"
)

// fakeClock is a settable clock shared by the pipeline and a test.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Step(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type testPipeline struct {
	*Pipeline
	reg   *prometheus.Registry
	clock *fakeClock
}

// Check runs the pipeline on req as ext_authz hands it over: with only the
// headers Envoy sends the request service (allowed_headers,
// envoy.RequestServiceHeaders). Every pipeline test goes through it (or
// through viaExtAuthz), so a test of anything that reads another header
// fails until the header is added to that list.
func (tp *testPipeline) Check(ctx context.Context, req *Request) Decision {
	return tp.Pipeline.Check(ctx, viaExtAuthz(req))
}

// viaExtAuthz returns req with only the headers ext_authz sends: those whose
// lowercase name envoy.RequestServiceReads (Envoy lowercases names; the
// original case is kept, the pipeline must tolerate it).
func viaExtAuthz(req *Request) *Request {
	r := *req
	if req.Headers != nil {
		r.Headers = make(map[string]string, len(req.Headers))
		for k, v := range req.Headers {
			if envoy.RequestServiceReads(strings.ToLower(k)) {
				r.Headers[k] = v
			}
		}
	}
	return &r
}

func newTestPipeline(tb testing.TB, ca *testCA) *testPipeline {
	tb.Helper()
	reg := prometheus.NewRegistry()
	clock := &fakeClock{now: testNow}
	p, err := NewPipeline(Options{Registry: reg, Now: clock.Now})
	if err != nil {
		tb.Fatal(err)
	}
	if ca != nil {
		p.SetPolicy(testTable(ca.CertPEM))
	}
	return &testPipeline{Pipeline: p, reg: reg, clock: clock}
}

func testTable(caPEM []byte) *policy.Table {
	return &policy.Table{Version: "1", Clusters: map[string]*policy.Cluster{
		"a": {Name: "a", X509: true, ClientCAPEM: caPEM, DefaultRule: "default"},
	}}
}

// cacheCount reads frontdoor_authn_cache_total{result}.
func (tp *testPipeline) cacheCount(result string) float64 {
	if result == "hit" {
		return testutil.ToFloat64(tp.metrics.cacheHit)
	}
	return testutil.ToFloat64(tp.metrics.cacheMiss)
}

func checkCert(tp *testPipeline, cert string) Decision {
	return tp.Check(context.Background(), &Request{
		Cluster: "a", Method: "GET", Path: "/api/v1/namespaces/default/pods/web-0", PeerCertificate: cert,
	})
}

func TestX509ValidIdentity(t *testing.T) {
	ca := newTestCA(t, "client-ca")
	tp := newTestPipeline(t, ca)
	der, cert := ca.issue(t, clientCert{cn: "jane", orgs: []string{"system:masters", "dev", "team a"}})

	// What kube-apiserver's x509 authenticator derives from this certificate
	// (Go encodes O as a DER SET, so the groups come back in DER order);
	// its authenticated-group adder then appends system:authenticated.
	parsed, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	resp, ok, err := x509request.CommonNameUserConversion.User([]*x509.Certificate{parsed})
	if err != nil || !ok {
		t.Fatalf("apiserver conversion: %v %v", ok, err)
	}
	u := resp.User
	if diff := cmp.Diff([]string{"dev", "team a", "system:masters"}, u.GetGroups()); diff != "" {
		t.Fatalf("apiserver groups (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string][]string{"authentication.kubernetes.io/credential-id": {credentialID(der)}}, u.GetExtra()); diff != "" {
		t.Fatalf("apiserver extra (-want +got):\n%s", diff)
	}

	d := checkCert(tp, cert)
	want := Decision{
		Outcome: Allowed,
		SetHeaders: []Header{
			{Name: "Impersonate-User", Value: u.GetName()},
			{Name: "Impersonate-Group", Value: "dev"},
			{Name: "Impersonate-Group", Value: "team a"},
			{Name: "Impersonate-Group", Value: "system:masters"},
			{Name: "Impersonate-Extra-authentication.kubernetes.io%2fcredential-id", Value: credentialID(der)},
			{Name: "x-frontdoor-rule", Value: "default"},
		},
		RemoveHeaders: []string{"authorization"},
		Rule:          "default",
		User:          "jane",
		Requestor:     "jane",
		Groups:        4,
	}
	if diff := cmp.Diff(want, d, cmp.FilterPath(func(p cmp.Path) bool { return p.String() == "Info" }, cmp.Ignore())); diff != "" {
		t.Errorf("decision (-want +got):\n%s", diff)
	}
	if d.Info == nil || d.Info.Resource != "pods" || d.Info.Name != "web-0" {
		t.Errorf("Info = %+v, want pods/web-0", d.Info)
	}
}

func TestX509Rejections(t *testing.T) {
	ca := newTestCA(t, "client-ca")
	foreign := newTestCA(t, "other-ca")
	_, valid := ca.issue(t, clientCert{cn: "jane"})
	_, foreignCert := foreign.issue(t, clientCert{cn: "jane"})
	_, expired := ca.issue(t, clientCert{cn: "jane", notBefore: testNow.Add(-48 * time.Hour), notAfter: testNow.Add(-time.Hour)})
	_, notYet := ca.issue(t, clientCert{cn: "jane", notBefore: testNow.Add(time.Hour), notAfter: testNow.Add(48 * time.Hour)})
	_, noCN := ca.issue(t, clientCert{orgs: []string{"system:masters"}})
	_, serverOnly := ca.issue(t, clientCert{cn: "jane", usage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	_, badHeader := ca.issue(t, clientCert{cn: "jane ", orgs: []string{"dev"}})
	_, ctlGroup := ca.issue(t, clientCert{cn: "jane", orgs: []string{"dev\r\nImpersonate-Group: system:masters"}})

	tests := map[string]string{
		"no certificate":          "",
		"foreign CA":              foreignCert,
		"expired":                 expired,
		"not yet valid":           notYet,
		"no common name":          noCN,
		"server auth only":        serverOnly,
		"trailing space in CN":    badHeader,
		"control chars in group":  ctlGroup,
		"garbage":                 "garbage",
		"bad escape":              "%zz" + valid,
		"truncated escape":        valid[:len(valid)-1] + "%2",
		"truncated PEM":           valid[:len(valid)/2],
		"not URL-encoded PEM":     strings.ReplaceAll(valid, "%0A", "\n")[:40],
		"private key block":       envoyURLEncode("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
		"corrupt DER":             envoyURLEncode("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
		"oversized":               strings.Repeat("A", maxCertificateLen+1),
		"valid then private key":  valid + envoyURLEncode("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n"),
		"bearer only (no x509)":   "",
		"percent-encoded garbage": "%00%01%02",
	}
	tp := newTestPipeline(t, ca)
	for name, cert := range tests {
		t.Run(name, func(t *testing.T) {
			d := tp.Check(context.Background(), &Request{
				Cluster: "a", Method: "GET", Path: "/api/v1/pods",
				Headers:         map[string]string{"authorization": "Bearer abc"},
				PeerCertificate: cert,
			})
			if d.Outcome != Unauthenticated || d.Code != 401 || string(d.Body) != string(unauthorizedBody) {
				t.Errorf("decision = %s %d %q, want unauthenticated 401", d.Outcome, d.Code, d.Body)
			}
		})
	}
	if got := checkCert(tp, valid); !got.Allowed() {
		t.Errorf("valid certificate after rejections: %s", got.Outcome)
	}
}

func TestX509Cache(t *testing.T) {
	ca := newTestCA(t, "client-ca")
	tp := newTestPipeline(t, ca)
	_, cert := ca.issue(t, clientCert{cn: "jane", orgs: []string{"dev"}})

	for i := range 3 {
		if d := checkCert(tp, cert); !d.Allowed() {
			t.Fatalf("check %d: %s", i, d.Outcome)
		}
	}
	if hit, miss := tp.cacheCount("hit"), tp.cacheCount("miss"); hit != 2 || miss != 1 {
		t.Errorf("after 3 checks: hit=%v miss=%v, want 2 and 1", hit, miss)
	}

	// A new config version with the same CA keeps the cached identity.
	tp.SetPolicy(testTable(ca.CertPEM))
	checkCert(tp, cert)
	if hit := tp.cacheCount("hit"); hit != 3 {
		t.Errorf("same CA: hit=%v, want 3", hit)
	}

	// A new CA invalidates: the certificate is verified again, and fails.
	other := newTestCA(t, "rotated-ca")
	tp.SetPolicy(testTable(other.CertPEM))
	if d := checkCert(tp, cert); d.Outcome != Unauthenticated {
		t.Errorf("after CA rotation: %s, want unauthenticated", d.Outcome)
	}
	if miss := tp.cacheCount("miss"); miss != 2 {
		t.Errorf("after CA rotation: miss=%v, want 2", miss)
	}
	// The failure is cached briefly...
	checkCert(tp, cert)
	if hit := tp.cacheCount("hit"); hit != 4 {
		t.Errorf("negative cache: hit=%v, want 4", hit)
	}
	// ...and expires.
	tp.clock.Step(11 * time.Second)
	checkCert(tp, cert)
	if miss := tp.cacheCount("miss"); miss != 3 {
		t.Errorf("negative cache expiry: miss=%v, want 3", miss)
	}
}

func TestX509CacheExpiresWithCertificate(t *testing.T) {
	ca := newTestCA(t, "client-ca")
	tp := newTestPipeline(t, ca)
	_, cert := ca.issue(t, clientCert{cn: "jane", notAfter: testNow.Add(time.Minute)})
	if d := checkCert(tp, cert); !d.Allowed() {
		t.Fatalf("fresh certificate: %s", d.Outcome)
	}
	tp.clock.Step(59 * time.Second)
	if d := checkCert(tp, cert); !d.Allowed() || tp.cacheCount("hit") != 1 {
		t.Fatalf("before NotAfter: %s, hits %v", d.Outcome, tp.cacheCount("hit"))
	}
	// Past NotAfter the cached identity is gone: re-verification rejects it.
	tp.clock.Step(2 * time.Second)
	if d := checkCert(tp, cert); d.Outcome != Unauthenticated {
		t.Errorf("after NotAfter: %s, want unauthenticated", d.Outcome)
	}
}

func TestX509CacheMaxTTL(t *testing.T) {
	ca := newTestCA(t, "client-ca")
	tp := newTestPipeline(t, ca)
	_, cert := ca.issue(t, clientCert{cn: "jane"})
	checkCert(tp, cert)
	tp.clock.Step(5*time.Minute + time.Second)
	checkCert(tp, cert)
	if miss := tp.cacheCount("miss"); miss != 2 {
		t.Errorf("after max TTL: miss=%v, want 2 (re-verified)", miss)
	}
}

func TestX509DisabledOrBadCA(t *testing.T) {
	ca := newTestCA(t, "client-ca")
	_, cert := ca.issue(t, clientCert{cn: "jane"})
	for name, c := range map[string]*policy.Cluster{
		"x509 disabled": {X509: false, ClientCAPEM: ca.CertPEM, DefaultRule: "default"},
		"no CA":         {X509: true, DefaultRule: "default"},
		"garbage CA":    {X509: true, ClientCAPEM: []byte("not a pem"), DefaultRule: "default"},
	} {
		t.Run(name, func(t *testing.T) {
			tp := newTestPipeline(t, nil)
			tp.SetPolicy(&policy.Table{Clusters: map[string]*policy.Cluster{"a": c}})
			if d := checkCert(tp, cert); d.Outcome != Unauthenticated {
				t.Errorf("decision = %s, want unauthenticated", d.Outcome)
			}
		})
	}
}

func TestParseCertificateChainIntermediates(t *testing.T) {
	ca := newTestCA(t, "client-ca")
	_, leaf := ca.issue(t, clientCert{cn: "jane"})
	chain, err := parseCertificateChain(leaf + envoyURLEncode(string(ca.CertPEM)))
	if err != nil {
		t.Fatal(err)
	}
	if len(chain) != 2 || chain[0].Subject.CommonName != "jane" || chain[1].Subject.CommonName != "client-ca" {
		t.Errorf("chain = %d certificates, want leaf then CA", len(chain))
	}
}

// A certificate user is in system:authenticated, as kube-apiserver's
// authenticated-group adder makes every authenticated user: a dispatch
// rule on that group matches them, and the group is forwarded explicitly,
// so a certificate named like a service account is forwarded with its own
// groups only (kube-apiserver adds service-account groups to an
// impersonated service account only when no group is given).
func TestX509UserIsAuthenticatedGroupMember(t *testing.T) {
	ca := newTestCA(t, "client-ca")
	tp := newTestPipeline(t, ca)
	table := testTable(ca.CertPEM)
	table.Clusters["a"].Dispatch = []policy.Dispatch{{Name: "everyone", Rules: []policy.Rule{{
		Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}, UserGroups: []string{"system:authenticated"},
	}}}}
	tp.SetPolicy(table)
	for _, cn := range []string{"jane", "system:serviceaccount:default:robot"} {
		_, cert := ca.issue(t, clientCert{cn: cn})
		d := checkCert(tp, cert)
		if !d.Allowed() || d.Rule != "everyone" {
			t.Errorf("%s: %s rule %q, want the system:authenticated rule", cn, d.Outcome, d.Rule)
		}
		var groups []string
		for _, h := range d.SetHeaders {
			if h.Name == "Impersonate-Group" {
				groups = append(groups, h.Value)
			}
		}
		if !slices.Equal(groups, []string{"system:authenticated"}) {
			t.Errorf("%s: forwarded groups %q, want exactly system:authenticated", cn, groups)
		}
	}
}
