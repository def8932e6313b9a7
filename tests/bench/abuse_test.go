package bench

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestValidLoadCountsHeldRequestsAsFailures: a request the server holds
// past the timeout is a failure (and a timeout), not a sample dropped at
// the end of the window; non-2xx answers fail too; the rest are latencies.
func TestValidLoadCountsHeldRequestsAsFailures(t *testing.T) {
	caPEM, srvCfg := localTLS(t)
	var n atomic.Int64
	srv := &http.Server{TLSConfig: srvCfg, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch n.Add(1) % 10 {
		case 3: // held: the client gives up first
			<-r.Context().Done()
		case 7:
			w.WriteHeader(http.StatusTooManyRequests)
		default:
			_, _ = w.Write([]byte("{}"))
		}
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	defer srv.Close()

	// Generous timings: the race detector and a busy 2-core machine slow
	// TLS handshakes and scheduling, and a late success is still a success.
	v := validLoad{name: "x509", client: Client{URL: "https://" + ln.Addr().String(), CAPEM: caPEM, ServerName: "localhost"},
		rate: 100, conns: 2, timeout: time.Second, seed: 1}
	start := time.Now()
	res, err := v.run(context.Background(), 200*time.Millisecond, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 1200*time.Millisecond || took > 5*time.Second {
		t.Errorf("run took %s; want the window plus at most the timeout", took)
	}
	if res.Requests < 40 {
		t.Fatalf("only %d requests at 100/s over 1s", res.Requests)
	}
	if res.Timeouts == 0 || res.Failures <= res.Timeouts || len(res.Latencies) != res.Requests-res.Failures {
		t.Errorf("requests %d failures %d timeouts %d latencies %d", res.Requests, res.Failures, res.Timeouts, len(res.Latencies))
	}
	if p := res.successPct(); p < 50 || p > 95 {
		t.Errorf("success %.1f%%; want about 80%%", p)
	}
}

func TestValidResultMerge(t *testing.T) {
	a := validResult{Name: "x509", Requests: 10, Failures: 1, Latencies: []time.Duration{1, 5, 9}}
	b := validResult{Name: "token", Requests: 10, Failures: 0, FirstErr: "GET: 503", Latencies: []time.Duration{2, 3}}
	m := a.merge(b)
	if m.Requests != 20 || m.Failures != 1 || m.FirstErr != "GET: 503" || m.successPct() != 95 {
		t.Errorf("merged: %+v", m)
	}
	for i := 1; i < len(m.Latencies); i++ {
		if m.Latencies[i] < m.Latencies[i-1] {
			t.Fatalf("latencies not sorted: %v", m.Latencies)
		}
	}
}

// TestAbuseReportMarkdown: one table per mode, the goal judged per attack
// (success and p99 ratio), the quiet-after phase judged as recovery, each
// attack's volume and first failure listed, and JSON beside it.
func TestAbuseReportMarkdown(t *testing.T) {
	rep := &AbuseReport{Started: "2026-11-30T04:00:00Z", CPUs: 2, LoadAvg: "1 1 1",
		Settings: AbuseSettings{Modes: []string{"ExtAuthz", "InProcess"}, WindowS: 15, RatePerKind: 40, SlowLorisConns: 512, HungRequests: 512},
		Rows: []AbuseRow{
			{Mode: "ExtAuthz", Attack: attackQuiet, SuccessPct: 100, P50Ms: 5, P99Ms: 20, P99Ratio: 1, RSSMiB: map[string]float64{"envoy": 100}, FDs: map[string]int{"envoy": 80}},
			{Mode: "ExtAuthz", Attack: AttackSlowLoris, SuccessPct: 99.95, P99Ms: 30, P99Ratio: 1.5, Volume: AttackVolume{Summary: "512/512 TLS conns held"}},
			{Mode: "ExtAuthz", Attack: AttackFlood, SuccessPct: 97.5, Requests: 1200, Failures: 30, Timeouts: 2, FirstErr: "GET: 503 Service Unavailable",
				P99Ms: 90, P99Ratio: 4.5, Volume: AttackVolume{Summary: "800 random tokens/s"}},
			{Mode: "ExtAuthz", Attack: AttackHung, SuccessPct: 100, P99Ms: 41, P99Ratio: 2.05},
			{Mode: "ExtAuthz", Attack: quietAfter, SuccessPct: 100, P99Ms: 21, P99Ratio: 1.05,
				CPUCores: map[string]float64{"envoy": 0.41, "frontdoor": 0.12, "apiservers": 0.8, "bench": 0.35}},
			{Mode: "InProcess", Attack: quietAfter, SuccessPct: 100, P99Ms: 31, P99Ratio: 3.1},
			{Mode: "InProcess", Attack: attackQuiet, SuccessPct: 100, P99Ms: 10, P99Ratio: 1},
			{Mode: "InProcess", Attack: AttackHalfOpen, SuccessPct: 100, P99Ms: 12, P99Ratio: 1.2, Down: "envoy (pid 1) exited during the attack"},
		}}
	md := rep.Markdown()
	for _, want := range []string{
		"## ExtAuthz", "## InProcess",
		"| quiet | 100 | 5.0 | 20.0 | 1.00x |", "(baseline)",
		"| slowloris | 99.95 |", "| 1.50x |",
		"| token-flood | 97.50 |", "**no** (success, p99)",
		"| hung-requests | 100 |", "| 2.05x |",
		"| (recovered) | n/a | n/a | 0.41 / 0.12 / 0.80 / 0.35 |",
		"| 3.10x | 0.00 / 0.0 | 0.00 / 0.0 | (drift or residue) |",
		"**no** (gateway down)",
		"| 100 / 80 |",
		"- **slowloris**: 512/512 TLS conns held",
		"- **token-flood**: 800 random tokens/s; 30 of 1200 valid requests failed (2 timed out), first: `GET: 503 Service Unavailable`",
		"Goal: success >= 99.9% and p99 <= 2x",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	if strings.Count(md, "| slowloris | 99.95 |") != 1 || !strings.Contains(md, "| slowloris | 99.95 | 0.0 | 30.0 | 1.50x | 0.00 / 0.0 | 0.00 / 0.0 | yes | n/a | n/a | n/a |") {
		t.Errorf("slowloris row wrong:\n%s", md)
	}
	if strings.Contains(md, "- **quiet**") {
		t.Errorf("quiet phases without failures are not attacks to describe:\n%s", md)
	}
	if rep.Rows[3].MeetsGoal() || !rep.Rows[1].MeetsGoal() || rep.Rows[7].MeetsGoal() {
		t.Error("MeetsGoal: p99 2.05x must miss, 99.95% at 1.5x must meet, a dead gateway must miss")
	}

	dir := t.TempDir()
	if err := rep.write(dir); err != nil {
		t.Fatal(err)
	}
	back, err := LoadAbuseReport(filepath.Join(dir, "abuse.json"))
	if err != nil || len(back.Rows) != len(rep.Rows) || back.Rows[2].FirstErr != rep.Rows[2].FirstErr || back.Markdown() != md {
		t.Errorf("abuse.json round trip: %v %+v", err, back)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "abuse.md")); string(got) != md {
		t.Error("abuse.md is not the Markdown")
	}
}

func TestNewAttackRejectsUnknownNames(t *testing.T) {
	var o AbuseOptions
	o.defaults()
	c := Client{URL: "https://127.0.0.1:1"}
	for _, name := range append([]string{attackQuiet, quietAfter}, AllAttacks...) {
		if _, err := newAttack(name, o, c, c); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := newAttack("teardrop", o, c, c); err == nil {
		t.Error("an unknown attack was accepted")
	}
}
