package abi

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// envoyLogFields are the fields of the Envoy-formatted access log line
// (translator/accesslog.go), which the module's own line must reproduce.
var envoyLogFields = map[string]string{
	"time":            "%START_TIME%",
	"method":          "%REQ(:METHOD)%",
	"path":            "%REQ(:PATH)%",
	"protocol":        "%PROTOCOL%",
	"userAgent":       "%REQ(USER-AGENT)%",
	"requestID":       "%REQ(X-REQUEST-ID)%",
	"client":          "%DOWNSTREAM_REMOTE_ADDRESS%",
	"code":            "%RESPONSE_CODE%",
	"flags":           "%RESPONSE_FLAGS%",
	"durationMs":      "%DURATION%",
	"durationUs":      "%COMMON_DURATION(DS_RX_BEG:DS_TX_END:us)%",
	"upstreamUs":      "%COMMON_DURATION(US_TX_BEG:US_RX_BEG:us)%",
	"bytesReceived":   "%BYTES_RECEIVED%",
	"bytesSent":       "%BYTES_SENT%",
	"upstream":        "%UPSTREAM_HOST%",
	"upstreamCluster": "%UPSTREAM_CLUSTER%",
}

// jsonFileLog is an Envoy file access log with envoyLogFields.
func jsonFileLog(path string, filter any) m {
	fields := m{}
	for k, v := range envoyLogFields {
		fields[k] = v
	}
	l := m{"name": "envoy.access_loggers.file", "typed_config": m{
		"@type":      "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
		"path":       path,
		"log_format": m{"json_format": fields},
	}}
	if filter != nil {
		l["filter"] = filter
	}
	return l
}

// The module's access log line (accesslog.c) must say what Envoy's own JSON
// line says about the same request: the same Envoy fields with the same
// values, for requests the filter let through, answered itself, that the
// apiserver side answered 404, whose upstream reset, whose client gave up,
// and that a later filter rate-limited; plus the config's and the filter's
// members. Envoy's logger behind the mark filter logs exactly the requests
// the module never saw (rejected by the codec).
func TestModuleAccessLogMatchesEnvoy(t *testing.T) {
	module := testModule(t)
	dir := t.TempDir()
	moduleLog, envoyAll, envoyUnmarked := filepath.Join(dir, "module.log"), filepath.Join(dir, "envoy-all.log"), filepath.Join(dir, "envoy-unmarked.log")

	up := &upstream{name: "first", seen: map[string]int{}}
	up.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		switch {
		case strings.HasPrefix(r.URL.Path, "/notfound"):
			http.Error(w, `{"kind":"Status","code":404}`, http.StatusNotFound)
		case strings.HasPrefix(r.URL.Path, "/reset"):
			panic(http.ErrAbortHandler) // the connection is cut before an answer
		case strings.HasPrefix(r.URL.Path, "/slow"):
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		default:
			w.Header().Set("content-type", "application/json")
			_, _ = w.Write([]byte(`{"ok":true,"padding":"` + strings.Repeat("x", 300) + `"}`))
		}
	}))
	defer up.srv.Close()
	second := newUpstream("second")
	defer second.srv.Close()

	p, err := newPKI(dir)
	if err != nil {
		t.Fatal(err)
	}
	unmarked := m{"metadata_filter": m{
		"matcher":                m{"filter": "frontdoor.test", "path": []any{m{"key": "logged"}}, "value": m{"present_match": false}},
		"match_if_key_not_found": true,
	}}
	o := bootOpts{module: module, filterName: "frontdoor-test",
		filterConfig: `{"tag":"logtest","accessLog":` + strconv.Quote(moduleLog) + `}`,
		pki:          p, first: up, second: second,
		accessLogs: []any{jsonFileLog(envoyAll, nil), jsonFileLog(envoyUnmarked, unmarked)},
		extraFilters: []any{m{"name": "envoy.filters.http.local_ratelimit", "typed_config": m{
			"@type":       "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
			"stat_prefix": "test_rl",
		}}},
		extraRoutes: []any{m{"match": m{"prefix": "/limited"}, "route": m{"cluster": "first"},
			"typed_per_filter_config": m{"envoy.filters.http.local_ratelimit": m{
				"@type":           "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
				"stat_prefix":     "test_rl",
				"token_bucket":    m{"max_tokens": 1, "tokens_per_fill": 1, "fill_interval": "3600s"},
				"filter_enabled":  m{"default_value": m{"numerator": 100, "denominator": "HUNDRED"}},
				"filter_enforced": m{"default_value": m{"numerator": 100, "denominator": "HUNDRED"}},
			}}}},
	}
	_, port := startFiltered(t, o)
	base := "https://127.0.0.1:" + strconv.Itoa(port)
	h1, h2 := p.httpClient(true, false), p.httpClient(true, true)

	send := func(c *http.Client, method, path string, h http.Header, body string, wantCode int) {
		t.Helper()
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, err := http.NewRequest(method, base+path, rd)
		if err != nil {
			t.Fatal(err)
		}
		if h != nil {
			req.Header = h
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != wantCode {
			t.Fatalf("%s %s: %d, want %d", method, path, resp.StatusCode, wantCode)
		}
	}
	paths := map[string]string{} // path -> the module's decision member
	send(h2, http.MethodGet, "/ok-h2?q=%22quoted%22", hdr("user-agent", "frontdoor-test \"agent\"\t1"), "", 200)
	paths["/ok-h2?q=%22quoted%22"] = "allowed"
	send(h1, http.MethodGet, "/ok-h1", hdr("x-request-id", "client-chosen-id"), "", 200)
	paths["/ok-h1"] = "allowed"
	send(h2, http.MethodPost, "/ok-post", hdr("content-type", "application/json"), `{"spec":"`+strings.Repeat("y", 1000)+`"}`, 200)
	paths["/ok-post"] = "allowed"
	long := "/ok-long?q=" + strings.Repeat("%E2%9C%93x", 700) // the line outgrows its first buffer
	send(h2, http.MethodGet, long, nil, "", 200)
	paths[long] = "allowed"
	send(h2, http.MethodGet, "/denied", hdr("x-test-deny", "1"), "", 403)
	paths["/denied"] = "denied"
	send(h2, http.MethodGet, "/notfound-1", nil, "", 404)
	paths["/notfound-1"] = "allowed"
	send(h1, http.MethodGet, "/reset-1", nil, "", 503)
	paths["/reset-1"] = "allowed"
	send(h2, http.MethodGet, "/limited-1", nil, "", 200)
	paths["/limited-1"] = "allowed"
	send(h2, http.MethodGet, "/limited-2", nil, "", 429)
	paths["/limited-2"] = "allowed"
	send(h2, http.MethodGet, "/panic", hdr("x-test-panic", "1"), "", 503)
	paths["/panic"] = "" // failed closed before the filter set its members
	// A client that gives up: it resets the stream while the upstream works.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/slow-1", nil)
	if resp, err := h2.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("GET /slow-1 answered %d, want the client to give up", resp.StatusCode)
	}
	cancel()
	paths["/slow-1"] = "allowed"
	// A request the codec rejects: no filter ever sees it.
	rejectedByCodec(t, port)
	// The same request again and again: Go decides the first, the worker
	// (each worker remembers its own) replays a later one (replay.c),
	// members and time included.
	sentReplayed, replayedOnce := 0, false
	for ; sentReplayed < 10 && !replayedOnce; sentReplayed++ {
		r := echo(t, h2, base+"/replayed", hdr("x-test-replay", "60000", "x-test-route", "1")) // to the echoing upstream
		replayedOnce = sentReplayed > 0 && len(r.Headers["X-Test-Replay-Kept"]) == 0
	}
	if !replayedOnce {
		t.Fatalf("%d identical requests, none replayed", sentReplayed)
	}

	// The module flushes its lines every second.
	var modLines, allLines map[string]map[string]any
	deadline := time.Now().Add(15 * time.Second)
	for {
		modLines, allLines = linesByPath(t, moduleLog), linesByPath(t, envoyAll)
		complete := strings.Count(readFile(moduleLog), "\n") >= len(paths)+sentReplayed
		if complete && hasAll(modLines, paths) && hasAll(allLines, paths) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for path, decision := range paths {
		got, want := modLines[path], allLines[path]
		if got == nil || want == nil {
			t.Errorf("%s: module line %v, Envoy line %v", path, got, want)
			continue
		}
		for k := range envoyLogFields {
			if fmt.Sprint(got[k]) != fmt.Sprint(want[k]) {
				t.Errorf("%s: %s = %#v in the module's line, %#v in Envoy's", path, k, got[k], want[k])
			}
		}
		if got["cluster"] != "logtest" {
			t.Errorf("%s: cluster = %#v, want the config's member \"logtest\"", path, got["cluster"])
		}
		var wantDecision any
		if decision != "" {
			wantDecision = decision
		}
		if got["decision"] != wantDecision {
			t.Errorf("%s: decision = %#v, want %#v", path, got["decision"], wantDecision)
		}
		rs, _ := got["requestServiceUs"].(string)
		if _, err := strconv.ParseUint(rs, 10, 64); decision != "" && err != nil {
			t.Errorf("%s: requestServiceUs = %#v, want a string of digits", path, got["requestServiceUs"])
		}
	}
	// The cases are what they claim: Envoy's own view of each.
	for path, want := range map[string]string{"/limited-2": "RL", "/slow-1": "DR", "/reset-1": "UC", "/ok-h1": "-"} {
		if l := allLines[path]; l != nil && l["flags"] != want {
			t.Errorf("%s: Envoy's flags = %v, want %s", path, l["flags"], want)
		}
	}

	// Envoy's logger behind the mark filter logged only the codec's
	// rejection; the module logged every request the filter saw once.
	var replayed int
	for _, line := range strings.Split(strings.TrimSpace(readFile(moduleLog)), "\n") {
		var l map[string]any
		if json.Unmarshal([]byte(line), &l) != nil || l["path"] != "/replayed" {
			continue
		}
		replayed++
		rs, _ := l["requestServiceUs"].(string)
		if _, err := strconv.ParseUint(rs, 10, 64); l["decision"] != "replayed" || err != nil || l["code"] != 200.0 {
			t.Errorf("a replayed request's line: %s; want decision replayed, requestServiceUs digits, code 200", line)
		}
	}
	if replayed != sentReplayed {
		t.Errorf("%d lines for /replayed, want %d", replayed, sentReplayed)
	}
	if n := strings.Count(readFile(moduleLog), "\n"); n != len(paths)+sentReplayed {
		t.Errorf("module log has %d lines, want %d (one per request the filter saw):\n%s", n, len(paths)+sentReplayed, readFile(moduleLog))
	}
	// Log rotation: the file is renamed away; the module's next lines go to
	// a new file at the path.
	if err := os.Rename(moduleLog, moduleLog+".1"); err != nil {
		t.Fatal(err)
	}
	send(h2, http.MethodGet, "/after-rotation", nil, "", 200)
	deadline = time.Now().Add(5 * time.Second)
	for linesByPath(t, moduleLog)["/after-rotation"] == nil && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if linesByPath(t, moduleLog)["/after-rotation"] == nil {
		t.Errorf("no line for /after-rotation in a new %s (rotated: %q)", moduleLog, tailText(readFile(moduleLog+".1"), 300))
	}

	deadline = time.Now().Add(5 * time.Second)
	var unmarkedText string
	for time.Now().Before(deadline) {
		if unmarkedText = readFile(envoyUnmarked); strings.Contains(unmarkedText, `"code":400`) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	lines := strings.Split(strings.TrimSpace(unmarkedText), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], `"code":400`) || !strings.Contains(lines[0], `DPE`) {
		t.Errorf("Envoy's unmarked log = %q, want one line: the codec's 400 (DPE)", unmarkedText)
	}
}

// startFiltered starts an Envoy on o and returns it and the port of its
// filtered listener.
func startFiltered(t *testing.T, o bootOpts) (*envoyProc, int) {
	t.Helper()
	e := newEnvoy(t, o, "")
	if err := e.waitReady(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	port, err := e.listenerPort("filtered")
	if err != nil {
		t.Fatal(err)
	}
	return e, port
}

// rejectedByCodec sends a request line Envoy's HTTP/1 codec refuses (400).
func rejectedByCodec(t *testing.T, port int) {
	t.Helper()
	conn, err := tls.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte("GET /codec-rejects HTTP/1.1\r\nHost: x\r\nbad header\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	status, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	if !strings.Contains(status, " 400 ") {
		t.Fatalf("malformed request: %q, want a 400", status)
	}
}

func tailText(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// linesByPath parses a JSON-lines log, keyed by path.
func linesByPath(t *testing.T, path string) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	b, _ := os.ReadFile(path)
	for _, line := range bytes.Split(b, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var l map[string]any
		if err := json.Unmarshal(line, &l); err != nil {
			t.Fatalf("%s: a line that is not JSON: %v\n%s", path, err, line)
		}
		p, _ := l["path"].(string)
		out[p] = l
	}
	return out
}

func hasAll(lines map[string]map[string]any, paths map[string]string) bool {
	for p := range paths {
		if lines[p] == nil {
			return false
		}
	}
	return true
}

// The module buffers its lines; the ones still buffered when Envoy stops are
// written at exit. With failures only, a successful request gets no line.
func TestModuleAccessLogFailuresOnlyAndFlushedAtExit(t *testing.T) {
	module := testModule(t)
	dir := t.TempDir()
	moduleLog := filepath.Join(dir, "module.log")
	first, second := newUpstream("first"), newUpstream("second")
	defer first.srv.Close()
	defer second.srv.Close()
	p, err := newPKI(dir)
	if err != nil {
		t.Fatal(err)
	}
	o := bootOpts{module: module, filterName: "frontdoor-test",
		filterConfig: `{"tag":"exit","accessLog":` + strconv.Quote(moduleLog) + `,"failuresOnly":true,"logFlushEvery":"1h"}`,
		pki:          p, first: first, second: second}
	e, port := startFiltered(t, o)
	base := "https://127.0.0.1:" + strconv.Itoa(port)
	c := p.httpClient(true, true)
	for path, h := range map[string]http.Header{"/ok-1": nil, "/denied-1": hdr("x-test-deny", "1")} {
		resp, _ := request(t, c, base+path, h, "")
		if resp.StatusCode/100 != 2 && path == "/ok-1" {
			t.Fatalf("GET %s: %d", path, resp.StatusCode)
		}
	}
	time.Sleep(300 * time.Millisecond)
	if text := readFile(moduleLog); text != "" {
		t.Fatalf("the module wrote %q before its flush interval (1h) or exit", text)
	}
	e.stop(syscall.SIGTERM, 10*time.Second)
	lines := linesByPath(t, moduleLog)
	if len(lines) != 1 || lines["/denied-1"] == nil || lines["/denied-1"]["code"] != 403.0 {
		t.Errorf("module log after exit = %q, want the denied request's line only", readFile(moduleLog))
	}
}
