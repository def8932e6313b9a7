package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/kubefrontdoor/frontdoor/tests/sandbox"
)

// Profile is a Go CPU profile of the request service under load, with the
// CPU split between Envoy and frontdoor over the same window.
type Profile struct {
	Seconds        float64 `json:"seconds"`
	Requests       int     `json:"requests"`
	EnvoyCPU1k     float64 `json:"envoy_cpu_s_per_1k"`
	FrontdoorCPU1k float64 `json:"frontdoor_cpu_s_per_1k"`
	File           string  `json:"file"`
	Top            string  `json:"top"`
	Error          string  `json:"error,omitempty"`
}

// measureBalance offers get load over opts.Connections long-lived HTTP/2
// connections, each sending at the same rate (open loop, arrivals dealt
// round robin over the connections, as 8 equally busy controllers would),
// and counts, on each replica's own apiserver_request_total, where the
// requests landed. A closed loop would hide per-connection skew: a replica
// holding fewer connections answers faster and its clients send more.
func measureBalance(ctx context.Context, sb *sandbox.Sandbox, p *path, opts Options) BalanceResult {
	if p.name == PathDirect {
		return BalanceResult{Path: p.name, NA: "n/a: one replica by design"}
	}
	filter := map[string]string{"resource": "configmaps", "verb": "GET"}
	before, err := sb.ReplicaRequestCounts(ctx, filter)
	if err != nil {
		return BalanceResult{Path: p.name, NA: "n/a: " + err.Error()}
	}
	d := 5 * time.Second
	if opts.Quick {
		d = 2 * time.Second
	}
	_, err = Offer(ctx, p.c, LoadSpec{Workload: WorkloadGet, Mode: Open, QPS: 200,
		Connections: opts.Connections, Duration: d, Seed: opts.Seed})
	if err != nil {
		return BalanceResult{Path: p.name, NA: "n/a: " + err.Error()}
	}
	after, err := sb.ReplicaRequestCounts(ctx, filter)
	if err != nil {
		return BalanceResult{Path: p.name, NA: "n/a: " + err.Error()}
	}
	for i := range after {
		after[i] -= before[i]
	}
	return balanceOf(p.name, after)
}

// profileFrontdoor takes a CPU profile of frontdoor (served by its --pprof
// flag) while get/closed load runs through the gateway, and renders its top
// functions with `go tool pprof`.
func profileFrontdoor(ctx context.Context, sb *sandbox.Sandbox, p *path, opts Options) *Profile {
	secs := 10
	if opts.Quick {
		secs = 3
	}
	out := &Profile{Seconds: float64(secs), File: filepath.Join(opts.OutDir, "frontdoor-cpu.pprof")}
	base := strings.TrimSuffix(sb.FrontdoorMetricsURL, "/metrics")
	type got struct {
		data []byte
		err  error
	}
	ch := make(chan got, 1)
	go func() {
		resp, err := (&http.Client{Timeout: time.Duration(secs+30) * time.Second}).Get(fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", base, secs))
		if err != nil {
			ch <- got{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("%s: %.200s", resp.Status, b)
		}
		ch <- got{b, err}
	}()
	before := snapshotCPU(p.procs)
	res, err := Offer(ctx, p.c, LoadSpec{Workload: WorkloadGet, Mode: Closed, Concurrency: opts.Concurrency,
		Connections: opts.Connections, Duration: time.Duration(secs) * time.Second, Seed: opts.Seed})
	cpu := snapshotCPU(p.procs).since(before)
	g := <-ch
	if err != nil {
		out.Error = "load: " + err.Error()
		return out
	}
	if g.err != nil {
		out.Error = "profile: " + g.err.Error() + " (is frontdoor built with --pprof?)"
		return out
	}
	out.Requests = res.Requests
	if res.Requests > 0 {
		out.EnvoyCPU1k = cpu["envoy"].Seconds() * 1000 / float64(res.Requests)
		out.FrontdoorCPU1k = cpu["frontdoor"].Seconds() * 1000 / float64(res.Requests)
	}
	if err := os.WriteFile(out.File, g.data, 0o644); err != nil {
		out.Error = err.Error()
		return out
	}
	top, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-nodecount=25", out.File).CombinedOutput()
	if err != nil {
		out.Top = "(go tool pprof failed: " + err.Error() + ")\n"
	} else {
		out.Top = string(top)
	}
	// A second view: cumulative, which names the pipeline stages.
	if cum, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-cum", "-nodecount=40", out.File).CombinedOutput(); err == nil {
		_ = os.WriteFile(filepath.Join(opts.OutDir, "frontdoor-cpu-cum.txt"), cum, 0o644)
	}
	_ = os.WriteFile(filepath.Join(opts.OutDir, "frontdoor-cpu-top.txt"), []byte(out.Top), 0o644)
	return out
}
