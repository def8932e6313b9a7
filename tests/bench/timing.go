package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/kubefrontdoor/frontdoor/envoy"
)

// The where-the-time-goes table: GET at the open-loop rate through each
// path, each request's time split by Envoy's access log into the apiserver
// (upstreamUs: first byte sent to the replica to the first byte of its
// answer), the request service (requestServiceUs, plus ExtProc's
// response-headers exchange) and Envoy's own work (the rest of durationUs),
// as medians per request. Direct has no Envoy; the static Envoys log on a
// second, timed listener so their measured one stays the cost floor.

// requestServiceModes are the Frontdoor request-service modes the table
// splits, each by the path that measures it, in table order. A new mode is
// one more entry (and its path): its access log writes the same timing
// fields (translator/accesslog.go).
var requestServiceModes = []struct{ Mode, Path string }{
	{"ExtAuthz", PathFrontdoorX509},
	{"ExtProc", PathFrontdoorExtP},
	{"InProcess", PathFrontdoorInProc},
}

// splitBaselines are the rows beside the modes, in table order.
var splitBaselines = []string{PathDirect, PathEnvoyPlain, PathEnvoyAsClient, PathEnvoyImpersonating}

// TimeSplit is one row of the where-the-time-goes table: medians per
// request (ms) over every logged request of the path's windows.
type TimeSplit struct {
	Path string `json:"path"`
	// Mode is the request-service mode ("" for the baselines).
	Mode string `json:"mode,omitempty"`
	NA   string `json:"na,omitempty"`
	// ClientP50Ms is the clients' p50 over the same windows (median of the
	// rounds' p50s), Envoy's timed listener for the static Envoys.
	ClientP50Ms float64 `json:"client_p50_ms"`
	// Logged is how many requests the access log split.
	Logged int `json:"logged_requests"`
	// EnvoyTotalMs is durationUs: first byte in to last byte out of Envoy.
	EnvoyTotalMs float64 `json:"envoy_total_ms"`
	// EnvoyOwnMs is what is left of durationUs once the apiserver and the
	// request service are taken out.
	EnvoyOwnMs float64 `json:"envoy_own_ms"`
	// RequestServiceMs is how long Envoy waited on the request service
	// (both exchanges for ExtProc).
	RequestServiceMs float64 `json:"request_service_ms"`
	// APIServerMs is upstreamUs.
	APIServerMs float64 `json:"apiserver_ms"`
}

// timedSource is where a path's per-request timing comes from.
type timedSource struct {
	client Client // may differ from the path's (a static Envoy's timed listener)
	log    string // access log file
}

// requestTiming is one access-log line's timing, in microseconds.
type requestTiming struct {
	total, upstream, service float64
	hasService               bool
}

// measureSplit offers GET at the open-loop rate for opts.Duration (after
// the warm-up) through each path, rounds interleaved, and splits the time.
func measureSplit(ctx context.Context, paths []*path, opts Options, say func(string, ...any)) []TimeSplit {
	rows := map[string]*TimeSplit{}
	timings := map[string][]requestTiming{}
	p50s := map[string][]float64{}
	var order []*path
	for _, p := range paths {
		if p.na == "" && (p.timed != nil || p.name == PathDirect) {
			order = append(order, p)
		}
	}
	for r := range opts.Rounds {
		for k := range order {
			p := order[(k+r)%len(order)]
			c := p.c
			if p.timed != nil {
				c = p.timed.client
			}
			var offset int64
			if p.timed != nil {
				offset = fileSize(p.timed.log)
			}
			spec := LoadSpec{Workload: WorkloadGet, Mode: Open, QPS: opts.QPS[WorkloadGet], Connections: opts.Connections,
				Duration: opts.Duration, Warmup: opts.Warmup, Seed: opts.Seed + uint64(r)}
			res, err := Offer(ctx, c, spec)
			row := rows[p.name]
			if row == nil {
				row = &TimeSplit{Path: p.name, Mode: p.mode}
				rows[p.name] = row
			}
			if err != nil {
				row.NA = "n/a: " + err.Error()
				continue
			}
			p50s[p.name] = append(p50s[p.name], ms(res.Percentile(.5)))
			if p.timed != nil {
				// Envoy flushes its access log every 200 ms.
				time.Sleep(500 * time.Millisecond)
				ts, err := readTimings(p.timed.log, offset, res.Start, res.Start.Add(res.Elapsed))
				if err != nil {
					row.NA = "n/a: " + err.Error()
					continue
				}
				timings[p.name] = append(timings[p.name], ts...)
			}
			say("time split round %d/%d %-22s p50 %5.2fms, %d requests logged", r+1, opts.Rounds, p.name, ms(res.Percentile(.5)), len(timings[p.name]))
		}
	}
	var out []TimeSplit
	add := func(name string) {
		row := rows[name]
		if row == nil {
			return
		}
		row.ClientP50Ms = median(p50s[name])
		ts := timings[name]
		row.Logged = len(ts)
		if len(ts) > 0 {
			var total, own, svc, up []float64
			for _, t := range ts {
				total = append(total, t.total/1000)
				up = append(up, t.upstream/1000)
				svc = append(svc, t.service/1000)
				own = append(own, (t.total-t.upstream-t.service)/1000)
			}
			row.EnvoyTotalMs, row.EnvoyOwnMs, row.APIServerMs = median(total), median(own), median(up)
			if row.Mode != "" {
				row.RequestServiceMs = median(svc)
			}
		}
		out = append(out, *row)
		delete(rows, name)
	}
	for _, name := range splitBaselines {
		add(name)
	}
	for _, m := range requestServiceModes {
		add(m.Path)
	}
	for _, p := range order { // variants and any other timed path
		add(p.name)
	}
	return out
}

// readTimings parses the JSON access-log lines of log from offset whose
// start time is in [from, to), keeping 2xx requests with both an Envoy and
// an upstream duration.
func readTimings(log string, offset int64, from, to time.Time) ([]requestTiming, error) {
	f, err := os.Open(log)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return nil, err
	}
	var out []requestTiming
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var line map[string]any
		if json.Unmarshal(sc.Bytes(), &line) != nil {
			continue
		}
		start, err := time.Parse(time.RFC3339Nano, str(line["time"]))
		if err != nil || start.Before(from.Add(-time.Millisecond)) || !start.Before(to) {
			continue
		}
		if code, _ := num(line["code"]); code < 200 || code >= 300 {
			continue
		}
		t := requestTiming{}
		var ok1, ok2 bool
		t.total, ok1 = num(line["durationUs"])
		t.upstream, ok2 = num(line["upstreamUs"])
		if !ok1 || !ok2 {
			continue
		}
		for _, k := range []string{envoy.AccessLogRequestServiceUs, envoy.AccessLogRequestServiceResponseUs} {
			if v, ok := num(line[k]); ok {
				t.service += v
				t.hasService = true
			}
		}
		out = append(out, t)
	}
	return out, sc.Err()
}

// num reads a JSON number, or a number Envoy wrote as a string.
func num(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case string:
		f, err := strconv.ParseFloat(x, 64)
		return f, err == nil
	}
	return 0, false
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func fileSize(name string) int64 {
	st, err := os.Stat(name)
	if err != nil {
		return 0
	}
	return st.Size()
}
