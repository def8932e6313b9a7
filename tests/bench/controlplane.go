package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubefrontdoor/frontdoor/tests/sandbox"
	"github.com/kubefrontdoor/frontdoor/translator"
)

// ApplyResult is config edit → Envoy applied.
type ApplyResult struct {
	Edits   int     `json:"edits"`
	P50Ms   float64 `json:"p50_ms"`
	P99Ms   float64 `json:"p99_ms"`
	MaxMs   float64 `json:"max_ms"`
	Failed  int     `json:"failed"`
	Comment string  `json:"comment"`
	// LatenciesMs are the applied edits' times, sorted.
	LatenciesMs []float64 `json:"latencies_ms"`
}

// TranslationResult is translator.Translate for N UpstreamClusters.
type TranslationResult struct {
	Clusters   int     `json:"clusters"`
	Servers    int     `json:"servers"`
	MedianMs   float64 `json:"median_ms"`
	AllocMiB   float64 `json:"alloc_mib_per_translation"`
	Resources  int     `json:"resources"`
	Iterations int     `json:"iterations"`
}

// measureApply edits the sandbox's UpstreamCluster file n times (setting
// outlier detection's consecutive5xx to 7, 8, 7, ..., which changes the
// Envoy cluster; the health check is frontdoor's own, not in the Envoy
// cluster) and times each edit until Envoy's active cluster config
// (admin /config_dump) carries the new value. File mode polls the directory
// every second (frontdoor's --config-poll-interval), so the figures include
// up to 1 s of polling. The file is restored after.
func measureApply(ctx context.Context, s *sandbox.Sandbox, n int) ApplyResult {
	res := ApplyResult{Edits: n, Comment: "file mode: edit UpstreamCluster YAML → new value in Envoy's active cluster (/config_dump); includes frontdoor's 1 s directory poll"}
	path := filepath.Join(s.Dir, "config", "upstreamcluster-"+sandbox.ClusterName+".yaml")
	orig, err := os.ReadFile(path)
	if err != nil {
		res.Failed = n
		res.Comment = err.Error()
		return res
	}
	defer func() { _ = os.WriteFile(path, orig, 0o644) }()
	active := func(threshold int) bool {
		text, err := s.EnvoyAdmin(ctx, "/config_dump?resource=dynamic_active_clusters")
		if err != nil {
			return false
		}
		compact := strings.Join(strings.Fields(text), "")
		return strings.Contains(compact, fmt.Sprintf(`"consecutive_5xx":%d`, threshold))
	}
	var lat []time.Duration
	for i := range n {
		threshold := 7 + i%2 // the default is 5: every edit is a change
		hc := "healthyThreshold: 1}\n"
		edited := strings.Replace(string(orig), hc, hc+fmt.Sprintf("  outlierDetection: {consecutive5xx: %d}\n", threshold), 1)
		start := time.Now()
		if err := os.WriteFile(path, []byte(edited), 0o644); err != nil {
			res.Failed++
			continue
		}
		applied := false
		for time.Since(start) < 20*time.Second && ctx.Err() == nil {
			if active(threshold) {
				applied = true
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if !applied {
			res.Failed++
			continue
		}
		lat = append(lat, time.Since(start))
		// Space the edits past one poll interval so each is seen alone.
		time.Sleep(1100 * time.Millisecond)
	}
	slices.Sort(lat)
	if len(lat) > 0 {
		res.P50Ms = ms(lat[(len(lat)-1)/2])
		res.P99Ms = ms(lat[int(0.99*float64(len(lat)-1))])
		res.MaxMs = ms(lat[len(lat)-1])
	}
	res.LatenciesMs = make([]float64, len(lat))
	for i, d := range lat {
		res.LatenciesMs[i] = ms(d)
	}
	return res
}

// measureTranslation times translator.Translate, in this process, for
// growing numbers of UpstreamClusters of 3 servers each, all referencing
// the sandbox's Secrets.
func measureTranslation(s *sandbox.Sandbox, sizes []int) ([]TranslationResult, error) {
	secrets, err := loadSecrets(filepath.Join(s.Dir, "config"))
	if err != nil {
		return nil, err
	}
	var out []TranslationResult
	for _, n := range sizes {
		in := translator.Inputs{
			Options: translator.Options{ListenerAddress: "127.0.0.1", ListenerPort: 6443},
			Secrets: secrets,
		}
		for i := range n {
			doc := fmt.Sprintf(`apiVersion: frontdoor.dev/v1alpha1
kind: UpstreamCluster
metadata: {name: c%05[1]d, generation: 1}
spec:
  servers:
  - endpoint: https://10.%[2]d.%[3]d.1:6443
  - endpoint: https://10.%[2]d.%[3]d.2:6443
  - endpoint: https://10.%[2]d.%[3]d.3:6443
  clientConfig: {secretRef: {namespace: %[4]s, name: upstream}}
  secureServing:
    serverNames: [c%05[1]d.example.com]
    secretRef: {namespace: %[4]s, name: serving}
    clientCASecretRef: {namespace: %[4]s, name: client-ca}
`, i, i/256, i%256, sandbox.SecretNamespace)
			one, err := translator.DecodeInputs([]byte(doc))
			if err != nil {
				return nil, err
			}
			in.UpstreamClusters = append(in.UpstreamClusters, one.UpstreamClusters...)
		}
		t := timeTranslation(in, max(1, min(20, 2000/n)))
		out = append(out, TranslationResult{
			Clusters: n, Servers: 3 * n, MedianMs: t.medianMs,
			AllocMiB:   t.allocMiB,
			Resources:  t.resources,
			Iterations: t.iters,
		})
	}
	return out, nil
}

// translationTiming is translator.Translate run iters times on one input.
type translationTiming struct {
	medianMs, allocMiB float64
	resources, iters   int
	out                *translator.Output
}

// timeTranslation translates in iters times and reports the median time,
// the bytes allocated per translation and the last output.
func timeTranslation(in translator.Inputs, iters int) translationTiming {
	res := translationTiming{iters: iters}
	var times []time.Duration
	var ms0, ms1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms0)
	for range iters {
		start := time.Now()
		res.out = translator.Translate(in)
		times = append(times, time.Since(start))
	}
	runtime.ReadMemStats(&ms1)
	slices.Sort(times)
	res.medianMs = ms(times[len(times)/2])
	res.allocMiB = float64(ms1.TotalAlloc-ms0.TotalAlloc) / float64(iters) / (1 << 20)
	for _, rs := range res.out.Resources {
		res.resources += len(rs)
	}
	return res
}

// loadSecrets reads the sandbox's secret-*.yaml files with the loader
// `frontdoor serve --config-dir` uses.
func loadSecrets(dir string) ([]*corev1.Secret, error) {
	files, err := filepath.Glob(filepath.Join(dir, "secret-*.yaml"))
	if err != nil {
		return nil, err
	}
	var out []*corev1.Secret
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		in, err := translator.DecodeInputs(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		out = append(out, in.Secrets...)
	}
	return out, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// measureControlPlane adds the control-plane figures to rep: config edit →
// Envoy applied, translation times, and (full runs) 10,000 dispatch rules
// loaded into the running gateway.
func measureControlPlane(ctx context.Context, sb *sandbox.Sandbox, opts Options, rep *Report, pids map[string]int, say func(string, ...any)) {
	say("control plane: config edit → Envoy applied")
	edits := 10
	if opts.Quick {
		edits = 2
	}
	apply := measureApply(ctx, sb, edits)
	rep.ControlPlane.Apply = apply
	sizes := []int{1, 10, 100, 1000}
	if opts.Quick {
		sizes = []int{1, 100}
	}
	if tr, err := measureTranslation(sb, sizes); err != nil {
		rep.ControlPlane.TranslationError = err.Error()
	} else {
		rep.ControlPlane.Translation = tr
	}
	ruleSizes := []int{1, 100, 1000, 10000}
	if opts.Quick {
		ruleSizes = []int{1, 1000}
	}
	if rr, err := measureRuleTranslation(sb, ruleSizes); err != nil {
		rep.ControlPlane.RulesError = err.Error()
	} else {
		rep.ControlPlane.Rules = rr
	}
	if !opts.Quick {
		say("loading %d dispatch rules into the running gateway", 10000)
		lr := measureRulesLoad(ctx, sb, 10000, pids["frontdoor"], pids["envoy"])
		rep.ControlPlane.RulesLoad = &lr
	}
}
