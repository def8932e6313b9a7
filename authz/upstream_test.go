package authz

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	certutil "k8s.io/client-go/util/cert"

	"github.com/kubefrontdoor/frontdoor/internal/testenv"
	"github.com/kubefrontdoor/frontdoor/policy"
)

// fakeUpstream is a stand-in kube-apiserver for the request service's own
// reviews: TokenReviews answered from a token table, SubjectAccessReviews
// from a predicate. It counts both.
type fakeUpstream struct {
	srv          *httptest.Server
	tokens       map[string]authenticationv1.UserInfo
	allow        func(authorizationv1.SubjectAccessReviewSpec) bool
	tokenReviews atomic.Int32
	sars         atomic.Int32
	// reviewDelay slows TokenReviews down (single-flight test).
	reviewDelay atomic.Int64 // a time.Duration; handlers read it while tests change it
	// hold, when set, keeps every TokenReview waiting until it is closed.
	hold atomic.Pointer[chan struct{}]
	// inflight and maxInflight: TokenReviews being answered now, and the
	// most at once.
	inflight, maxInflight atomic.Int32
	// lastAudiences is the audiences of the last TokenReview.
	mu            sync.Mutex
	lastAudiences []string
}

func newFakeUpstream(t testing.TB) *fakeUpstream {
	f := &fakeUpstream{
		tokens: map[string]authenticationv1.UserInfo{},
		allow:  func(authorizationv1.SubjectAccessReviewSpec) bool { return false },
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /apis/authentication.k8s.io/v1/tokenreviews", func(w http.ResponseWriter, r *http.Request) {
		f.tokenReviews.Add(1)
		n := f.inflight.Add(1)
		defer f.inflight.Add(-1)
		for m := f.maxInflight.Load(); n > m && !f.maxInflight.CompareAndSwap(m, n); m = f.maxInflight.Load() {
		}
		time.Sleep(time.Duration(f.reviewDelay.Load()))
		if h := f.hold.Load(); h != nil {
			<-*h
		}
		var tr authenticationv1.TokenReview
		if err := json.NewDecoder(r.Body).Decode(&tr); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		f.lastAudiences = tr.Spec.Audiences
		f.mu.Unlock()
		if u, ok := f.tokens[tr.Spec.Token]; ok {
			tr.Status = authenticationv1.TokenReviewStatus{Authenticated: true, User: u, Audiences: tr.Spec.Audiences}
		} else {
			tr.Status = authenticationv1.TokenReviewStatus{Error: "invalid token"}
		}
		tr.APIVersion, tr.Kind = "authentication.k8s.io/v1", "TokenReview"
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(tr)
	})
	mux.HandleFunc("POST /apis/authorization.k8s.io/v1/subjectaccessreviews", func(w http.ResponseWriter, r *http.Request) {
		f.sars.Add(1)
		var sar authorizationv1.SubjectAccessReview
		if err := json.NewDecoder(r.Body).Decode(&sar); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		sar.Status = authorizationv1.SubjectAccessReviewStatus{Allowed: f.allow(sar.Spec)}
		sar.APIVersion, sar.Kind = "authorization.k8s.io/v1", "SubjectAccessReview"
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(sar)
	})
	f.srv = httptest.NewTLSServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

// upstream is the policy that reaches f, after the given extra servers
// (e.g. a dead one, to exercise failover).
func (f *fakeUpstream) upstream(t testing.TB, before ...string) policy.Upstream {
	certPEM, keyPEM, err := certutil.GenerateSelfSignedCertKey("frontdoor-gateway", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return policy.Upstream{
		ServerURLs:    append(before, f.srv.URL),
		ClientCertPEM: certPEM,
		ClientKeyPEM:  keyPEM,
		CAPEM:         pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.srv.Certificate().Raw}),
	}
}

// deadURL is an https URL nothing listens on: a port reserved for this
// process (below the ephemeral range, so no other socket takes it either).
func deadURL(t testing.TB) string {
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return "https://127.0.0.1:" + strconv.Itoa(port)
}

func tokenTable(up policy.Upstream, mutate func(*policy.Cluster)) *policy.Table {
	c := &policy.Cluster{
		Name: "a", DefaultRule: "default",
		TokenReview: policy.TokenReview{Enabled: true, CacheTTL: policy.Duration(time.Minute), NegativeCacheTTL: policy.Duration(time.Minute)},
		Upstream:    up,
	}
	if mutate != nil {
		mutate(c)
	}
	return &policy.Table{Version: "1", Clusters: map[string]*policy.Cluster{"a": c}}
}

func identityHeaders(d Decision) []Header {
	var out []Header
	for _, h := range d.SetHeaders {
		if strings.HasPrefix(strings.ToLower(h.Name), impersonatePrefix) {
			out = append(out, h)
		}
	}
	return out
}

var saUser = authenticationv1.UserInfo{
	Username: "system:serviceaccount:default:builder",
	UID:      "5a1c",
	Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated"},
	Extra: map[string]authenticationv1.ExtraValue{
		"authentication.kubernetes.io/pod-name":      {"web-0"},
		"authentication.kubernetes.io/credential-id": {"JTI=abc"},
	},
}

// A TokenReview-authenticated user is forwarded with uid, every group and
// every extra; the token is removed; the second use is answered from the
// cache and a bad token is refused with 401 (and remembered).
func TestTokenReviewForwardsUserAndCaches(t *testing.T) {
	f := newFakeUpstream(t)
	f.tokens["good"] = saUser
	tp := newTestPipeline(t, nil)
	tp.SetPolicy(tokenTable(f.upstream(t, deadURL(t)), nil))
	ctx := context.Background()

	check := func(auth string) Decision {
		return tp.Check(ctx, &Request{Cluster: "a", Method: "GET", Path: "/api/v1/pods",
			Headers: map[string]string{"authorization": auth}})
	}
	for range 3 {
		d := check("Bearer good")
		if !d.Allowed() {
			t.Fatalf("decision = %s, want allowed", d.Outcome)
		}
		want := []Header{
			{"Impersonate-User", saUser.Username},
			{"Impersonate-Uid", "5a1c"},
			{"Impersonate-Group", "system:serviceaccounts"},
			{"Impersonate-Group", "system:serviceaccounts:default"},
			{"Impersonate-Extra-authentication.kubernetes.io%2fcredential-id", "JTI=abc"},
			{"Impersonate-Extra-authentication.kubernetes.io%2fpod-name", "web-0"},
		}
		if diff := cmp.Diff(want, identityHeaders(d)); diff != "" {
			t.Fatalf("identity headers (-want +got):\n%s", diff)
		}
		if d.RemoveHeaders[0] != "authorization" {
			t.Errorf("remove = %v, want authorization first", d.RemoveHeaders)
		}
	}
	if n := f.tokenReviews.Load(); n != 1 {
		t.Errorf("TokenReviews = %d, want 1 (cached)", n)
	}
	for _, auth := range []string{"Bearer bad", "bearer bad", "BEARER bad"} {
		if d := check(auth); d.Outcome != Unauthenticated || d.Code != 401 {
			t.Errorf("%q: decision = %s %d, want unauthenticated 401", auth, d.Outcome, d.Code)
		}
	}
	if n := f.tokenReviews.Load(); n != 2 {
		t.Errorf("TokenReviews = %d, want 2 (failure cached)", n)
	}
	// Not a bearer credential at all: no review, 401.
	for _, auth := range []string{"Basic Zm9vOmJhcg==", "Bearer", "Bearer  good"} {
		if d := check(auth); d.Outcome != Unauthenticated {
			t.Errorf("%q: decision = %s, want unauthenticated", auth, d.Outcome)
		}
	}
	if n := f.tokenReviews.Load(); n != 2 {
		t.Errorf("TokenReviews = %d, want 2", n)
	}
	// Six token lookups (three good, three bad), two reviews sent.
	m := tp.reqMetrics
	for _, c := range []struct {
		name string
		got  float64
		want float64
	}{
		{"lookups", testutil.ToFloat64(m.reviewLookups.WithLabelValues(reviewToken)), 6},
		{"sent authenticated", testutil.ToFloat64(m.reviewsSent.WithLabelValues(reviewToken, "authenticated")), 1},
		{"sent unauthenticated", testutil.ToFloat64(m.reviewsSent.WithLabelValues(reviewToken, "unauthenticated")), 1},
	} {
		if c.got != c.want {
			t.Errorf("tokenreview %s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

// A burst of requests with one new token sends one TokenReview.
// A TokenReview nobody answers leaves the token neither valid nor invalid:
// 503 with Retry-After (client-go retries it), never 401, never cached; once
// a server answers again, the same token is accepted.
func TestTokenReviewUnavailableIs503(t *testing.T) {
	f := newFakeUpstream(t)
	f.tokens["good"] = saUser
	tp := newTestPipeline(t, nil)
	up := f.upstream(t)
	live := up.ServerURLs
	up.ServerURLs = []string{deadURL(t), deadURL(t)}
	tp.SetPolicy(tokenTable(up, nil))
	req := &Request{Cluster: "a", Method: "GET", Path: "/api/v1/pods", Headers: map[string]string{"authorization": "Bearer good"}}
	for range 2 {
		d := tp.Check(context.Background(), req)
		if d.Outcome != Unavailable || d.Code != 503 {
			t.Fatalf("decision = %s %d, want unavailable 503", d.Outcome, d.Code)
		}
		if !slices.Contains(d.ResponseHeaders, Header{Name: "retry-after", Value: "1"}) {
			t.Errorf("response headers %v: no retry-after: 1", d.ResponseHeaders)
		}
		for _, want := range []string{`"reason":"ServiceUnavailable"`, `"retryAfterSeconds":1`, `"code":503`} {
			if !strings.Contains(string(d.Body), want) {
				t.Errorf("body %s lacks %s", d.Body, want)
			}
		}
	}
	up.ServerURLs = live
	tp.SetPolicy(tokenTable(up, nil))
	if d := tp.Check(context.Background(), req); !d.Allowed() {
		t.Errorf("with the server back: %s %d, want allowed", d.Outcome, d.Code)
	}
}

func TestTokenReviewSingleFlight(t *testing.T) {
	f := newFakeUpstream(t)
	f.tokens["burst"] = saUser
	f.reviewDelay.Store(int64(200 * time.Millisecond))
	tp := newTestPipeline(t, nil)
	tp.SetPolicy(tokenTable(f.upstream(t), nil))
	var wg sync.WaitGroup
	var allowed atomic.Int32
	for range 20 {
		wg.Go(func() {
			d := tp.Check(context.Background(), &Request{Cluster: "a", Method: "GET", Path: "/api",
				Headers: map[string]string{"authorization": "Bearer burst"}})
			if d.Allowed() {
				allowed.Add(1)
			}
		})
	}
	wg.Wait()
	if allowed.Load() != 20 || f.tokenReviews.Load() != 1 {
		t.Errorf("allowed %d of 20 with %d TokenReviews, want 20 with 1", allowed.Load(), f.tokenReviews.Load())
	}
}

// Configured audiences are sent in the TokenReview.
func TestTokenReviewAudiences(t *testing.T) {
	f := newFakeUpstream(t)
	f.tokens["aud"] = saUser
	tp := newTestPipeline(t, nil)
	tp.SetPolicy(tokenTable(f.upstream(t), func(c *policy.Cluster) { c.TokenReview.Audiences = []string{"https://gw.example"} }))
	d := tp.Check(context.Background(), &Request{Cluster: "a", Method: "GET", Path: "/api",
		Headers: map[string]string{"authorization": "Bearer aud"}})
	if !d.Allowed() {
		t.Fatalf("decision = %s", d.Outcome)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if diff := cmp.Diff([]string{"https://gw.example"}, f.lastAudiences); diff != "" {
		t.Errorf("audiences (-want +got):\n%s", diff)
	}
}

// The WebSocket subprotocol token authenticates like kube-apiserver's
// protocol authenticator, and never leaves: the other subprotocols do.
func TestWebSocketProtocolToken(t *testing.T) {
	f := newFakeUpstream(t)
	f.tokens["ws"] = saUser
	tp := newTestPipeline(t, nil)
	tp.SetPolicy(tokenTable(f.upstream(t), nil))
	enc := func(tok string) string {
		return bearerProtocolPrefix + base64.RawURLEncoding.EncodeToString([]byte(tok))
	}
	check := func(protocols string) Decision {
		return tp.Check(context.Background(), &Request{Cluster: "a", Method: "GET", Path: "/api/v1/namespaces/d/pods/p/exec",
			Headers: map[string]string{"connection": "Upgrade", "upgrade": "websocket", headerWSProtocol: protocols}})
	}
	d := check(enc("ws") + ", v5.channel.k8s.io,v4.channel.k8s.io")
	if !d.Allowed() {
		t.Fatalf("decision = %s", d.Outcome)
	}
	var got string
	for _, h := range d.SetHeaders {
		if h.Name == headerWSProtocol {
			got = h.Value
		}
	}
	if got != "v5.channel.k8s.io,v4.channel.k8s.io" {
		t.Errorf("forwarded subprotocols = %q", got)
	}
	for name, protocols := range map[string]string{
		"token is the only subprotocol": enc("ws"),
		"two tokens":                    enc("ws") + "," + enc("ws") + ",v5.channel.k8s.io",
		"bad base64":                    bearerProtocolPrefix + "!!!,v5.channel.k8s.io",
		"unknown token":                 enc("nope") + ",v5.channel.k8s.io",
	} {
		if d := check(protocols); d.Outcome != Unauthenticated {
			t.Errorf("%s: decision = %s, want unauthenticated", name, d.Outcome)
		}
	}
}

// x509 comes first, as in kube-apiserver: with a valid certificate and a
// token, the certificate's user wins and no TokenReview is made; with a
// certificate from a foreign CA, the token decides.
func TestCertificateBeforeToken(t *testing.T) {
	f := newFakeUpstream(t)
	f.tokens["good"] = saUser
	ca := newTestCA(t, "client-ca")
	foreign := newTestCA(t, "foreign")
	tp := newTestPipeline(t, nil)
	tp.SetPolicy(tokenTable(f.upstream(t), func(c *policy.Cluster) { c.X509, c.ClientCAPEM = true, ca.CertPEM }))
	_, cert := ca.issue(t, clientCert{cn: "jane"})
	_, foreignCert := foreign.issue(t, clientCert{cn: "mallory"})
	h := map[string]string{"authorization": "Bearer good"}
	d := tp.Check(context.Background(), &Request{Cluster: "a", Method: "GET", Path: "/api", PeerCertificate: cert, Headers: h})
	if d.User != "jane" || f.tokenReviews.Load() != 0 {
		t.Errorf("cert+token: user %q after %d TokenReviews, want jane after 0", d.User, f.tokenReviews.Load())
	}
	d = tp.Check(context.Background(), &Request{Cluster: "a", Method: "GET", Path: "/api", PeerCertificate: foreignCert, Headers: h})
	if d.User != saUser.Username {
		t.Errorf("foreign cert+token: user %q (%s), want the token's", d.User, d.Outcome)
	}
}

// Anonymous, when enabled, is who a request without credentials is; a
// failed credential is never anonymous.
func TestAnonymous(t *testing.T) {
	f := newFakeUpstream(t)
	tp := newTestPipeline(t, nil)
	tp.SetPolicy(tokenTable(f.upstream(t), func(c *policy.Cluster) { c.Anonymous = true }))
	d := tp.Check(context.Background(), &Request{Cluster: "a", Method: "GET", Path: "/version"})
	want := []Header{{"Impersonate-User", "system:anonymous"}, {"Impersonate-Group", "system:unauthenticated"}}
	if diff := cmp.Diff(want, identityHeaders(d)); diff != "" {
		t.Errorf("anonymous identity (-want +got):\n%s", diff)
	}
	d = tp.Check(context.Background(), &Request{Cluster: "a", Method: "GET", Path: "/version",
		Headers: map[string]string{"authorization": "Bearer wrong"}})
	if d.Outcome != Unauthenticated {
		t.Errorf("bad token with anonymous on: %s, want unauthenticated", d.Outcome)
	}
	tp.SetPolicy(tokenTable(f.upstream(t), nil))
	if d := tp.Check(context.Background(), &Request{Cluster: "a", Method: "GET", Path: "/version"}); d.Outcome != Unauthenticated {
		t.Errorf("anonymous off: %s, want unauthenticated", d.Outcome)
	}
}

// Client impersonation is authorized with SubjectAccessReviews for the
// authenticated user and forwards the requested identity as kube-apiserver
// builds it; a refusal is kube-apiserver's 403 Status.
func TestImpersonation(t *testing.T) {
	f := newFakeUpstream(t)
	f.tokens["good"] = saUser
	f.tokens["ops"] = authenticationv1.UserInfo{Username: "ops", Groups: []string{"system:authenticated"}}
	f.allow = func(s authorizationv1.SubjectAccessReviewSpec) bool {
		ra := s.ResourceAttributes
		return s.User == "ops" && ra != nil && ra.Verb == "impersonate" && ra.Name != "system:masters"
	}
	tp := newTestPipeline(t, nil)
	tp.SetPolicy(tokenTable(f.upstream(t), nil))
	check := func(token string, h map[string]string) Decision {
		h["authorization"] = "Bearer " + token
		return tp.Check(context.Background(), &Request{Cluster: "a", Method: "GET", Path: "/api/v1/namespaces/default/pods", Headers: h})
	}

	d := check("ops", map[string]string{
		"impersonate-user": "bob", "impersonate-group": "dev,qa", "impersonate-uid": "42",
		"impersonate-extra-scopes": "view", "impersonate-extra-example.com%2fteam": "blue",
	})
	if !d.Allowed() {
		t.Fatalf("decision = %s %d %s", d.Outcome, d.Code, d.Body)
	}
	want := []Header{
		{"Impersonate-User", "bob"},
		{"Impersonate-Uid", "42"},
		{"Impersonate-Group", "dev"},
		{"Impersonate-Group", "qa"},
		{"Impersonate-Extra-example.com%2fteam", "blue"},
		{"Impersonate-Extra-scopes", "view"},
	}
	if diff := cmp.Diff(want, identityHeaders(d)); diff != "" {
		t.Errorf("impersonated identity (-want +got):\n%s", diff)
	}

	// A service account: its groups follow from its name.
	d = check("ops", map[string]string{"impersonate-user": "system:serviceaccount:kube-system:default"})
	want = []Header{
		{"Impersonate-User", "system:serviceaccount:kube-system:default"},
		{"Impersonate-Group", "system:serviceaccounts"},
		{"Impersonate-Group", "system:serviceaccounts:kube-system"},
	}
	if diff := cmp.Diff(want, identityHeaders(d)); diff != "" {
		t.Errorf("impersonated service account (-want +got):\n%s", diff)
	}

	// Refusals, with kube-apiserver's Status bodies.
	d = check("good", map[string]string{"impersonate-user": "bob"})
	if d.Outcome != Forbidden || d.Code != 403 {
		t.Fatalf("without permission: %s %d, want forbidden 403", d.Outcome, d.Code)
	}
	// The exact message is kube-apiserver's (its filter formats it); the
	// end-to-end suite compares it with a replica's own answer.
	if !strings.Contains(string(d.Body), `"reason":"Forbidden"`) ||
		!strings.Contains(string(d.Body), `User \"system:serviceaccount:default:builder\" cannot impersonate`) {
		t.Errorf("403 body = %s", d.Body)
	}
	d = check("ops", map[string]string{"impersonate-user": "bob", "impersonate-group": "system:masters"})
	if d.Outcome != Forbidden || !strings.Contains(string(d.Body), `groups \"system:masters\" is forbidden`) {
		t.Errorf("system:masters: %s %s", d.Outcome, d.Body)
	}
	d = check("ops", map[string]string{"impersonate-uid": "42"})
	if d.Code != 400 || !strings.Contains(string(d.Body), "without impersonating a user") {
		t.Errorf("uid without user: %d %s", d.Code, d.Body)
	}
	// Cached: repeating an allowed impersonation sends no new review.
	n := f.sars.Load()
	check("ops", map[string]string{"impersonate-user": "bob", "impersonate-group": "dev,qa", "impersonate-uid": "42",
		"impersonate-extra-scopes": "view", "impersonate-extra-example.com%2fteam": "blue"})
	if f.sars.Load() != n {
		t.Errorf("SubjectAccessReviews %d → %d, want cached", n, f.sars.Load())
	}
	// Every SAR the fake answered was counted as sent (a miss); the
	// cached repeat only as lookups.
	m := tp.reqMetrics
	sent := testutil.ToFloat64(m.reviewsSent.WithLabelValues(reviewSAR, "200"))
	lookups := testutil.ToFloat64(m.reviewLookups.WithLabelValues(reviewSAR))
	if sent != float64(f.sars.Load()) || lookups <= sent {
		t.Errorf("subjectaccessreview sent %v (fake saw %d), lookups %v: want sent = fake's count < lookups", sent, f.sars.Load(), lookups)
	}
}
