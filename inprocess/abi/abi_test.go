package abi

// End-to-end tests of the binding: internal/testmodule, built as a c-shared
// library, is loaded by the real bin/envoy (1.40.0) and driven over TLS. What
// the module observes comes back through the upstream's echo, so every ABI
// call is checked by its effect, not by its return value alone.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kubefrontdoor/frontdoor/internal/testhttp"
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "frontdoor-abi-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	scratchDir = dir
	code := m.Run()
	if shared != nil {
		shared.close()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// fixture is one Envoy with the test module on listener "filtered" and the
// same routes without it on "plain", shared by the tests that only send
// requests.
type fixture struct {
	pki           *pki
	first, second *upstream
	envoy         *envoyProc
	url, plainURL string
	minimalURL    string // the same module with a second config whose filter keeps no Go state
	nilFilterURL  string // a third config whose NewFilter returns nil
	accessLog     string
	client        *http.Client // HTTP/1.1 with a client certificate
	noCert        *http.Client // HTTP/1.1 without one
	h2            *http.Client // HTTP/2 with a client certificate
}

var (
	sharedOnce sync.Once
	shared     *fixture
	sharedErr  error
)

// sharedFixture starts the shared Envoy on first use; TestMain stops it.
func sharedFixture(t *testing.T) *fixture {
	t.Helper()
	envoyBin, module := envoyBinary(t), testModule(t)
	sharedOnce.Do(func() {
		dir := filepath.Join(scratchDir, "shared")
		if sharedErr = os.MkdirAll(dir, 0o755); sharedErr != nil {
			return
		}
		f := &fixture{first: newUpstream("first"), second: newUpstream("second"), accessLog: filepath.Join(dir, "access.log")}
		if f.pki, sharedErr = newPKI(dir); sharedErr != nil {
			return
		}
		shared = f // from here on TestMain cleans up
		o := bootOpts{module: module, filterName: "frontdoor-test", filterConfig: `{"tag":"shared"}`,
			pki: f.pki, first: f.first, second: f.second, accessLog: f.accessLog, plain: true}
		if f.envoy, sharedErr = startEnvoy(envoyBin, dir, o.bootstrap("")); sharedErr != nil {
			return
		}
		if sharedErr = f.envoy.waitReady(30 * time.Second); sharedErr != nil {
			return
		}
		for name, u := range map[string]*string{"filtered": &f.url, "plain": &f.plainURL, "minimal": &f.minimalURL, "nilfilter": &f.nilFilterURL} {
			port, err := f.envoy.listenerPort(name)
			if err != nil {
				sharedErr = err
				return
			}
			*u = "https://127.0.0.1:" + strconv.Itoa(port)
		}
		f.client, f.noCert, f.h2 = f.pki.httpClient(true, false), f.pki.httpClient(false, false), f.pki.httpClient(true, true)
	})
	if sharedErr != nil {
		t.Fatalf("shared Envoy: %v", sharedErr)
	}
	return shared
}

func (f *fixture) close() {
	if f.envoy != nil {
		f.envoy.stop(syscall.SIGTERM, 5*time.Second)
	}
	f.first.srv.Close()
	f.second.srv.Close()
}

// request sends a GET (or a POST when body is set) to the filtered listener.
func request(t *testing.T, c *http.Client, url string, hdr http.Header, body string) (*http.Response, []byte) {
	t.Helper()
	method := http.MethodGet
	var rd io.Reader
	if body != "" {
		method, rd = http.MethodPost, strings.NewReader(body)
	}
	return testhttp.Do(t, context.Background(), c, method, url, hdr, rd)
}

// echo sends a request that must reach an upstream and returns what it saw.
func echo(t *testing.T, c *http.Client, url string, hdr http.Header) echoReply {
	t.Helper()
	resp, body := request(t, c, url, hdr, "")
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, body)
	}
	var r echoReply
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	return r
}

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

// want compares the values of one echoed header (separate fields stay
// separate values in Go's http.Header).
func want(t *testing.T, r echoReply, name string, values ...string) {
	t.Helper()
	got := r.Headers[http.CanonicalHeaderKey(name)]
	if !slices.Equal(got, values) {
		t.Errorf("upstream saw %s = %q, want %q", name, got, values)
	}
}

// accessLogLine waits for the access log line of path.
func (f *fixture) accessLogLine(t *testing.T, path string) string {
	t.Helper()
	var line string
	waitFor(5*time.Second, func() bool {
		b, _ := os.ReadFile(f.accessLog)
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, path+" ") {
				line = l
				return true
			}
		}
		return false
	})
	if line == "" {
		t.Fatalf("no access log line for %s in %s", path, f.accessLog)
	}
	return line
}

func TestABIVersionMatched(t *testing.T) {
	f := sharedFixture(t)
	log := f.envoy.logText()
	for _, s := range []string{
		"[dynamic_modules]",
		"Dynamic module ABI version " + ABIVersion + " matched.",
		"frontdoor-test config loaded: tag=shared", // Log reaches Envoy's dynamic_modules logger
	} {
		if !strings.Contains(log, s) {
			t.Errorf("Envoy log lacks %q", s)
		}
	}
}

func TestHeaderCalls(t *testing.T) {
	f := sharedFixture(t)
	r := echo(t, f.client, f.url+"/headers", hdr(
		"x-test-in", "a", "x-test-in", "b",
		"x-drop-me", "1", "x-drop-me", "2",
		"x-test-overwrite", "client1", "x-test-overwrite", "client2"))
	if r.Upstream != "first" {
		t.Errorf("routed to %s", r.Upstream)
	}
	// RequestHeaders iterates every field in order, repeated names included.
	want(t, r, "x-test-in-seen", "a|b")
	want(t, r, "x-test-in", "a", "b")
	if n, _ := strconv.Atoi(r.Headers["X-Test-Fields"][0]); n < 8 {
		t.Errorf("RequestHeaders saw %d fields; want every field (pseudo-headers included)", n)
	}
	// AddRequestHeader appends one field per call.
	want(t, r, "x-test-group", "system:masters", "devs")
	// ... and Envoy refuses empty values.
	want(t, r, "x-test-add-empty", "false")
	want(t, r, "x-test-empty")
	// RemoveRequestHeader removes every field; SetRequestHeader leaves one.
	want(t, r, "x-drop-me")
	want(t, r, "x-test-overwrite", "module")
	// filter_config reached the factory as the raw StringValue.
	want(t, r, "x-test-config", "shared")
	// Dynamic metadata and filter state set by the module, read back by
	// Envoy's formatters (%FILTER_STATE(key:PLAIN)%): a second write of a
	// key replaces the first, an empty value stays empty, a key never set
	// formats as nothing.
	want(t, r, "x-test-md-num", "42.5")
	want(t, r, "x-test-tag", "shared")
	want(t, r, "x-test-fs-set", "true true true")
	want(t, r, "x-test-fs", "shared-fs,,")
}

// TestTwoConfigsOneModule: one module, two filter configs on two listeners,
// each with its own FilterConfig.
func TestTwoConfigsOneModule(t *testing.T) {
	f := sharedFixture(t)
	want(t, echo(t, f.client, f.minimalURL+"/minimal", nil), "x-test-config")
	want(t, echo(t, f.client, f.url+"/full", nil), "x-test-config", "shared")
	want(t, echo(t, f.client, f.plainURL+"/plain", nil), "x-test-config")
}

// TestHotPathDoesNotAllocate: header iteration, header setters, int/bool
// attributes and metadata do not allocate on the Go heap (pointer arguments
// stay on the stack thanks to #cgo noescape).
func TestHotPathDoesNotAllocate(t *testing.T) {
	f := sharedFixture(t)
	r := echo(t, f.client, f.url+"/allocs", hdr("x-test-measure-allocs", "1"))
	n, err := strconv.Atoi(strings.Join(r.Headers["X-Test-Allocs"], ""))
	if err != nil {
		t.Fatalf("x-test-allocs %q", r.Headers["X-Test-Allocs"])
	}
	// 800 calls; a per-call allocation would show as hundreds.
	if n > 20 {
		t.Errorf("%d heap allocations for 100 rounds of non-copying calls", n)
	}
	t.Logf("%d allocations for 800 calls", n)
}

// TestRoughOverhead prints p50/p90 latencies of sequential HTTP/1.1 requests
// (keep-alive, TLS) through the listener without the module, with a filter
// that only continues, and with the full test filter (~40 ABI calls).
func TestRoughOverhead(t *testing.T) {
	if os.Getenv("FRONTDOOR_ABI_OVERHEAD") == "" {
		t.Skip("set FRONTDOOR_ABI_OVERHEAD=1 to measure")
	}
	f := sharedFixture(t)
	const n = 2000
	measure := func(url string) (p50, p90 time.Duration) {
		c := f.pki.httpClient(true, false)
		lat := make([]time.Duration, n)
		for i := -200; i < n; i++ { // 200 warm-up requests
			start := time.Now()
			resp, err := c.Get(url + "/overhead")
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if i >= 0 {
				lat[i] = time.Since(start)
			}
		}
		slices.Sort(lat)
		return lat[n/2], lat[n*9/10]
	}
	for round := range 2 {
		for _, l := range []struct{ name, url string }{{"plain", f.plainURL}, {"minimal", f.minimalURL}, {"full", f.url}} {
			p50, p90 := measure(l.url)
			t.Logf("round %d %-8s p50 %v p90 %v", round, l.name, p50, p90)
		}
	}
}

func TestClearRouteCache(t *testing.T) {
	f := sharedFixture(t)
	// Envoy picks the route before the filter chain: setting the header
	// alone does not re-route...
	r := echo(t, f.client, f.url+"/route-noclear", hdr("x-test-route", "second", "x-test-noclear", "1"))
	want(t, r, "x-test-rule", "second")
	if r.Upstream != "first" {
		t.Fatalf("without ClearRouteCache the cached route should win, got upstream %s", r.Upstream)
	}
	// ... clearing the cache does.
	r = echo(t, f.client, f.url+"/route-clear", hdr("x-test-route", "second"))
	if r.Upstream != "second" {
		t.Errorf("after ClearRouteCache the request went to %s, want second", r.Upstream)
	}
}

func TestLocalReply(t *testing.T) {
	f := sharedFixture(t)
	resp, body := request(t, f.client, f.url+"/deny", hdr("x-test-deny", "1"), "")
	if resp.StatusCode != 403 {
		t.Errorf("status %d, want 403", resp.StatusCode)
	}
	if string(body) != `{"denied":true}` {
		t.Errorf("body %q", body)
	}
	if ct := resp.Header.Values("content-type"); !slices.Equal(ct, []string{"application/json"}) {
		t.Errorf("content-type %q, want exactly application/json", ct)
	}
	if v := resp.Header.Get("x-test-denied"); v != "yes" {
		t.Errorf("x-test-denied %q", v)
	}
	if n := f.first.saw("/deny") + f.second.saw("/deny"); n != 0 {
		t.Errorf("a denied request reached an upstream %d times", n)
	}
	if l := f.accessLogLine(t, "/deny"); l != "/deny 403 frontdoor_test_denied" {
		t.Errorf("access log %q: details must be the module's", l)
	}
}

func TestStreamCompleteSeesResponseCode(t *testing.T) {
	f := sharedFixture(t)
	request(t, f.client, f.url+"/complete-probe", hdr("x-test-deny", "1"), "")
	var got []string
	waitFor(5*time.Second, func() bool {
		got = echo(t, f.client, f.url+"/complete-query", hdr("x-test-query-complete", "/complete-probe")).Headers["X-Test-Complete-Code"]
		return len(got) > 0
	})
	if !slices.Equal(got, []string{"403"}) {
		t.Errorf("OnStreamComplete read response code %q, want 403", got)
	}
}

func TestAsyncResume(t *testing.T) {
	f := sharedFixture(t)
	// StopAllIterationAndBuffer makes Envoy hold the body; with StopIteration
	// the body reaches the filter while it is paused and this package holds
	// it back. Either way nothing goes upstream before OnScheduled resumes.
	for _, mode := range []string{"x-test-async", "x-test-async-stop"} {
		t.Run(mode, func(t *testing.T) {
			start := time.Now()
			resp, body := request(t, f.client, f.url+"/"+mode, hdr(mode, "1"), "hello body")
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			if d := time.Since(start); d < 50*time.Millisecond {
				t.Errorf("answered after %v: the request did not wait for the scheduled event", d)
			}
			var r echoReply
			if err := json.Unmarshal(body, &r); err != nil {
				t.Fatal(err)
			}
			// The header set in OnScheduled reached the upstream, so did the
			// body held while the request was paused.
			want(t, r, "x-test-resumed", "42")
			if r.Body != "hello body" {
				t.Errorf("upstream body %q", r.Body)
			}
		})
	}
}

// A filter without lifecycle hooks keeps Go state only while it waits:
// its scheduler still finds the stream, the body held during the pause
// follows, and a panic still fails closed.
func TestFilterWithoutGoState(t *testing.T) {
	f := sharedFixture(t)
	resp, body := request(t, f.h2, f.minimalURL+"/lean-async", hdr("x-test-async", "1"), "lean body")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	var r echoReply
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatal(err)
	}
	want(t, r, "x-test-resumed", "7")
	if r.Body != "lean body" {
		t.Errorf("upstream body %q", r.Body)
	}
	resp, body = request(t, f.client, f.minimalURL+"/lean-panic", hdr("x-test-panic", "1"), "must not leak")
	if resp.StatusCode != 503 || string(body) != statusBody {
		t.Errorf("panic: got %d %s, want 503 %s", resp.StatusCode, body, statusBody)
	}
	if n := f.first.saw("/lean-panic") + f.second.saw("/lean-panic"); n != 0 {
		t.Errorf("the panicking request reached an upstream %d times", n)
	}
}

// A config whose NewFilter returns nil answers every stream 503 and lets
// nothing through, body included.
func TestNilFilterFailsClosed(t *testing.T) {
	f := sharedFixture(t)
	for _, c := range []*http.Client{f.client, f.h2} {
		resp, body := request(t, c, f.nilFilterURL+"/nil-filter", nil, "a body that must not leak")
		if resp.StatusCode != 503 || string(body) != statusBody {
			t.Errorf("got %d %s, want 503 %s", resp.StatusCode, body, statusBody)
		}
	}
	if n := f.first.saw("/nil-filter") + f.second.saw("/nil-filter"); n != 0 {
		t.Errorf("the request reached an upstream %d times", n)
	}
	if l := f.accessLogLine(t, "/nil-filter"); l != "/nil-filter 503 frontdoor_no_filter" {
		t.Errorf("access log %q", l)
	}
}

func TestAsyncConcurrentHTTP2(t *testing.T) {
	f := sharedFixture(t)
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan string, n)
	for i := range n {
		wg.Go(func() {
			path := fmt.Sprintf("/concurrent-%d", i)
			req, _ := http.NewRequest(http.MethodGet, f.url+path, nil)
			req.Header.Set("x-test-async", "1")
			resp, err := f.h2.Do(req)
			if err != nil {
				errs <- err.Error()
				return
			}
			defer resp.Body.Close()
			var r echoReply
			if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || resp.StatusCode != 200 || resp.ProtoMajor != 2 {
				errs <- fmt.Sprintf("%s: status %d proto %s err %v", path, resp.StatusCode, resp.Proto, err)
				return
			}
			if r.Path != path || !slices.Equal(r.Headers["X-Test-Resumed"], []string{"42"}) ||
				!slices.Equal(r.Headers["X-Test-Attr-Protocol"], []string{"HTTP/2"}) {
				errs <- fmt.Sprintf("%s: upstream saw %s resumed=%q protocol=%q", path, r.Path, r.Headers["X-Test-Resumed"], r.Headers["X-Test-Attr-Protocol"])
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	// Every filter was destroyed (OnDestroy ran): only the probe is live.
	var live []string
	ok := waitFor(5*time.Second, func() bool {
		live = echo(t, f.client, f.url+"/live", nil).Headers["X-Test-Live"]
		return slices.Equal(live, []string{"1"})
	})
	if !ok {
		t.Errorf("live filters %q after all streams ended, want 1 (the probe)", live)
	}
}

const statusBody = `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"frontdoor: internal error in the request filter","reason":"ServiceUnavailable","code":503}`

func TestPanicFailsClosed(t *testing.T) {
	f := sharedFixture(t)
	for _, c := range []struct{ name, header string }{
		{"request-headers", "x-test-panic"},
		{"scheduled", "x-test-async-panic"},
		{"nil-dereference", "x-test-nil"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := "/panic-" + c.name
			resp, body := request(t, f.client, f.url+path, hdr(c.header, "1"), "a body that must not leak")
			if resp.StatusCode != 503 || string(body) != statusBody {
				t.Errorf("got %d %s, want 503 %s", resp.StatusCode, body, statusBody)
			}
			if ct := resp.Header.Values("content-type"); !slices.Equal(ct, []string{"application/json"}) {
				t.Errorf("content-type %q", ct)
			}
			if n := f.first.saw(path) + f.second.saw(path); n != 0 {
				t.Errorf("the request reached an upstream %d times", n)
			}
			if l := f.accessLogLine(t, path); l != path+" 503 frontdoor_filter_panic" {
				t.Errorf("access log %q", l)
			}
			// Envoy is still serving.
			echo(t, f.client, f.url+"/after-"+c.name, nil)
		})
	}
	if !strings.Contains(f.envoy.logText(), "frontdoor abi: panic in OnRequestHeaders: testmodule: request asked to panic") {
		t.Errorf("the panic was not logged through Envoy")
	}
}

func TestAttributes(t *testing.T) {
	f := sharedFixture(t)
	var local net.Addr
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { local = i.Conn.LocalAddr() }}
	get := func(c *http.Client, path string) echoReply {
		req, _ := http.NewRequest(http.MethodGet, f.url+path, nil)
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var r echoReply
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	attr := func(r echoReply, name string) string {
		return strings.Join(r.Headers[http.CanonicalHeaderKey("x-test-attr-"+name)], ",")
	}

	c := f.pki.httpClient(true, false) // a fresh connection
	r := get(c, "/attrs?x=1")
	localPort := strconv.Itoa(local.(*net.TCPAddr).Port)
	digest := sha256.Sum256(f.pki.clientDER)
	for name, v := range map[string]string{
		"digest":         hex.EncodeToString(digest[:]),
		"mtls":           "true",
		"dns-san":        f.pki.clientDNSSAN,
		"uri-san":        f.pki.clientURISAN,
		"tls-version":    "TLSv1.3",
		"path":           "/attrs?x=1",
		"method":         "GET",
		"protocol":       "HTTP/1.1",
		"source-address": "127.0.0.1:" + localPort,
		"source-port":    localPort,
	} {
		if got := attr(r, name); got != v {
			t.Errorf("attribute %s = %q, want %q", name, got, v)
		}
	}
	if s := attr(r, "subject"); !strings.Contains(s, "CN=frontdoor-test-client") || !strings.Contains(s, "O=frontdoor-testers") {
		t.Errorf("subject %q", s)
	}
	// The connection id is per connection: same on the kept-alive
	// connection, different on a new one.
	id := attr(r, "connection-id")
	if again := attr(get(c, "/attrs-again"), "connection-id"); again != id || id == "<absent>" {
		t.Errorf("connection id %q then %q on one connection", id, again)
	}
	if other := attr(get(f.pki.httpClient(true, false), "/attrs-other"), "connection-id"); other == id {
		t.Errorf("connection id %q on two connections", id)
	}

	// Without a client certificate: TLS but no mTLS. Envoy 1.40 answers the
	// digest and subject with an empty string, the SANs with no value.
	r = get(f.pki.httpClient(false, false), "/attrs-nocert")
	for name, v := range map[string]string{
		"mtls": "false", "tls-version": "TLSv1.3",
		"digest": "<empty>", "subject": "<empty>", "dns-san": "<absent>", "uri-san": "<absent>",
	} {
		if got := attr(r, name); got != v {
			t.Errorf("without a client cert: attribute %s = %q, want %q", name, got, v)
		}
	}
}
