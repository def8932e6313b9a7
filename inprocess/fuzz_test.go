package inprocess

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/kubefrontdoor/frontdoor/authz"
	"github.com/kubefrontdoor/frontdoor/envoy"
	"github.com/kubefrontdoor/frontdoor/inprocess/abi"
	"github.com/kubefrontdoor/frontdoor/internal/testpki"
	"github.com/kubefrontdoor/frontdoor/policy"
)

// x509Filter is the filter of cluster "c" over the real pipeline p, whose
// policy trusts a fresh CA named caName for x509 and allows anonymous
// requests if anonymous; xfcc is jane's (groups dev, ops) certificate from
// that CA, as Envoy forwards it in x-forwarded-client-cert.
func x509Filter(tb testing.TB, caName string, anonymous bool) (cfg *filterConfig, p *authz.Pipeline, xfcc string) {
	tb.Helper()
	ca, err := testpki.NewCA(caName)
	if err != nil {
		tb.Fatal(err)
	}
	certPEM, _, err := ca.ClientCert("jane", "dev", "ops")
	if err != nil {
		tb.Fatal(err)
	}
	xfcc = `Hash=0;Cert="` + strings.ReplaceAll(url.QueryEscape(string(certPEM)), "+", "%20") + `"`
	p, err = authz.NewPipeline(authz.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	p.SetPolicy(&policy.Table{Version: "1", Clusters: map[string]*policy.Cluster{
		"c": {Name: "c", X509: true, ClientCAPEM: ca.CertPEM, DefaultRule: "default", Anonymous: anonymous},
	}})
	return &filterConfig{cluster: "c", checker: p}, p, xfcc
}

// FuzzFilter drives the in-process filter with the real pipeline and any
// request headers a client could send (Envoy has already dropped client
// x-frontdoor-* headers and set x-forwarded-client-cert itself). Whatever
// arrives, the filter never crashes and never forwards a request with a
// credential or an identity it did not decide:
//   - forwarded (Continue): no Authorization, no forwarded certificate,
//     exactly the decided Impersonate-* fields, one rule header, route
//     cache cleared last unless the rule is the default one (whose route
//     Envoy already chose);
//   - denied (StopIteration): a Status body, headers untouched;
//   - paused (needs the apiserver): nothing touched yet.
func FuzzFilter(f *testing.F) {
	cfg, p, xfcc := x509Filter(f, "fuzz-ca", true)

	for _, seed := range []string{
		"",
		"authorization: Bearer abc",
		"impersonate-user: root\nimpersonate-group: system:masters",
		"impersonate-extra-scopes: a,b",
		"sec-websocket-protocol: base64url.bearer.authorization.k8s.io.dG9r\nconnection: Upgrade\nupgrade: websocket",
		"x-remote-user: root",
		"authorization: Basic Zm9vOmJhcg==\nimpersonate-uid: 1",
	} {
		for _, withCert := range []bool{false, true} {
			f.Add("GET", "/api/v1/namespaces/default/pods", seed, withCert)
		}
	}
	f.Add("POST", "/apis/apps/v1/namespaces/x/deployments?fieldManager=a", "content-type: application/json", true)
	f.Add("GET", "/api/%zz", "", true)

	f.Fuzz(func(t *testing.T, method, path, headers string, withCert bool) {
		h := []string{":method", method, ":path", path}
		for line := range strings.SplitSeq(headers, "\n") {
			name, value, ok := strings.Cut(line, ":")
			name = strings.ToLower(strings.TrimSpace(name))
			if !ok || name == "" || strings.HasPrefix(name, envoy.HeaderPrefix) || name == envoy.HeaderClientCert {
				continue // Envoy never hands the filter these from a client
			}
			h = append(h, name, strings.TrimSpace(value))
		}
		if withCert {
			h = append(h, envoy.HeaderClientCert, xfcc)
		}
		s := newFakeStream(h...)
		fl := cfg.NewFilter().(*filter)
		sched := make(recordingScheduler, 1)
		st := fl.onRequestHeaders(s, func() scheduler { return sched })

		switch st {
		case abi.Continue:
			d, ok := p.TryCheck(readRequest(newFakeStream(h...), "c"))
			if !ok || !d.Allowed() {
				t.Fatalf("forwarded, but the pipeline says %s (ok=%v)", d.Outcome, ok)
			}
			checkForwarded(t, s, &d)
		case abi.StopIteration:
			if s.reply == nil || !strings.Contains(s.reply.body, `"kind":"Status"`) || s.reply.code < 400 {
				t.Fatalf("denied without a Status reply: %+v", s.reply)
			}
			if len(s.ops) != 0 {
				t.Fatalf("a denied request's headers were changed: %v", s.ops)
			}
		case abi.StopAllIterationAndBuffer:
			if len(s.ops) != 0 || s.reply != nil {
				t.Fatalf("a paused request was changed: %v %+v", s.ops, s.reply)
			}
		default:
			t.Fatalf("status %v", st)
		}
	})
}

// checkForwarded asserts what reaches the apiserver: exactly the decided
// identity, no client credential.
func checkForwarded(t *testing.T, s *fakeStream, d *authz.Decision) {
	t.Helper()
	if v := s.header("authorization"); v != nil {
		t.Fatalf("Authorization forwarded: %q", v)
	}
	if v := s.header(envoy.HeaderClientCert); v != nil {
		t.Fatalf("client certificate forwarded: %q", v)
	}
	want := map[string][]string{}
	for _, sh := range d.SetHeaders {
		n := strings.ToLower(sh.Name)
		want[n] = append(want[n], sh.Value)
	}
	got := map[string][]string{}
	for _, kv := range s.headers {
		n := strings.ToLower(kv[0])
		if strings.HasPrefix(n, "impersonate-") || strings.HasPrefix(n, "x-remote-") || strings.HasPrefix(n, envoy.HeaderPrefix) {
			got[n] = append(got[n], kv[1])
		}
	}
	for n, vs := range got {
		if strings.Join(vs, "\x00") != strings.Join(want[n], "\x00") {
			t.Fatalf("%s forwarded as %q, decided %q", n, vs, want[n])
		}
	}
	if d.Rule == envoy.DefaultRule {
		// Routes chose the default rule's route without the header.
		if v := got[envoy.HeaderRule]; v != nil {
			t.Fatalf("default rule: %s written (%q)", envoy.HeaderRule, v)
		}
		delete(want, envoy.HeaderRule)
	}
	for n, vs := range want {
		if (strings.HasPrefix(n, "impersonate-") || n == envoy.HeaderRule) && strings.Join(got[n], "\x00") != strings.Join(vs, "\x00") {
			t.Fatalf("decided %s %q, forwarded %q", n, vs, got[n])
		}
	}
	if cleared := s.ops[len(s.ops)-1] == "clear route cache"; cleared != (d.Rule != envoy.DefaultRule) {
		t.Fatalf("rule %q: route cache cleared last = %v: %v", d.Rule, cleared, s.ops)
	}
}

// BenchmarkFilterCachedCertificate is the Go side of one in-process GET
// with a cached client certificate: reading the headers, the pipeline's
// inline decision and applying it (against a fake stream: the ABI calls
// themselves are not in it).
func BenchmarkFilterCachedCertificate(b *testing.B) {
	cfg, _, xfcc := x509Filter(b, "bench-ca", false)
	headers := []string{":method", "GET", ":path", "/api/v1/namespaces/default/configmaps/x", ":authority", "gw",
		":scheme", "https", "user-agent", "kubectl/v1.37.2", "accept", "application/json", "accept-encoding", "gzip",
		"x-request-id", "0f1e2d3c", "x-forwarded-proto", "https", envoy.HeaderClientCert, xfcc}
	s := &nopStream{}
	for i := 0; i+1 < len(headers); i += 2 {
		s.headers = append(s.headers, [2][]byte{[]byte(headers[i]), []byte(headers[i+1])})
	}
	b.ReportAllocs()
	for b.Loop() {
		if st := cfg.NewFilter().(*filter).onRequestHeaders(s, nil); st != abi.Continue {
			b.Fatalf("status %v", st)
		}
	}
}

// nopStream hands out fixed headers and ignores every change, so a
// benchmark measures the filter, not a fake.
type nopStream struct{ headers [][2][]byte }

func (s *nopStream) RequestHeaders(fn func(name, value []byte)) {
	for _, h := range s.headers {
		fn(h[0], h[1])
	}
}
func (*nopStream) SetRequestHeader(string, string) bool               { return true }
func (*nopStream) AddRequestHeader(string, string) bool               { return true }
func (*nopStream) RemoveRequestHeader(string) bool                    { return true }
func (*nopStream) ClearRouteCache()                                   {}
func (*nopStream) SendLocalResponse(int, [][2]string, []byte, string) {}
func (*nopStream) ContinueDecoding()                                  {}
func (*nopStream) SetLogFields(string)                                {}
func (*nopStream) SetLogElapsed(time.Time)                            {}
func (*nopStream) AttributeString(abi.Attribute) (string, bool)       { return "", false }
func (*nopStream) Replayable(time.Duration, uint32) bool              { return false }
