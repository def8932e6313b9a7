package soak

import (
	"fmt"
	"io"
	"time"
)

// Markdown writes the report: the verdict, then every sample.
func (r *Report) Markdown(w io.Writer) {
	verdict := "PASS"
	if !r.Passed() {
		verdict = "FAIL"
	}
	fmt.Fprintf(w, "# Soak: requestService %s, %s\n\n", r.Mode, verdict)
	if n := len(r.Samples); n > 0 {
		last := r.Samples[n-1]
		fmt.Fprintf(w, "%d requests over %s (%.0f req/s), %d failed", last.Requests, last.At.Round(time.Second),
			float64(last.Requests)/max(last.At.Seconds(), 1), last.Failures)
		if r.Mode == "InProcess" {
			fmt.Fprintf(w, "; the module's workers replayed %.0f decisions", last.Replayed)
		}
		fmt.Fprintf(w, ".\n\n")
	}
	for _, v := range r.Verdict {
		fmt.Fprintf(w, "- **%s**\n", v)
	}
	for _, f := range r.Failures {
		fmt.Fprintf(w, "- failed: `%s`\n", f)
	}
	fmt.Fprintf(w, "\n| at | requests | failed | Envoy RSS MiB | Envoy CPU s | module heap MiB | module goroutines | replayed |\n|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range r.Samples {
		fmt.Fprintf(w, "| %s | %d | %d | %.1f | %.1f | %.1f | %.0f | %.0f |\n", s.At.Round(time.Second), s.Requests, s.Failures,
			float64(s.EnvoyRSS)/(1<<20), s.EnvoyCPU.Seconds(), s.ModuleHeap/(1<<20), s.ModuleGoroutine, s.Replayed)
	}
}
