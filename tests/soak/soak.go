// Package soak runs the gateway under a steady mixed load for a long time
// and checks that it stays up and flat: the same Envoy process throughout,
// no failed request, resident memory and the in-process module's goroutines
// and Go heap not growing once warm. `make soak` runs it for 30 minutes
// (SOAK_DURATION) on the request-service mode it is asked for (InProcess by
// default); TestSoakSmoke runs a short one so the harness itself stays
// working. The verdict decides whether a mode may be the default.
package soak

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kubefrontdoor/frontdoor/tests/sandbox"
)

// Options configure a soak.
type Options struct {
	// Duration is how long the load runs (after Warmup).
	Duration time.Duration
	// Warmup is load before the first sample that counts: caches fill and
	// the Go heap finds its size.
	Warmup time.Duration
	// Interval is the time between samples.
	Interval time.Duration
	// Progress receives one line per sample.
	Progress io.Writer
}

// Sample is the gateway's state at one moment.
type Sample struct {
	At              time.Duration
	Requests        int64
	Failures        int64
	EnvoyRSS        int64 // bytes
	EnvoyCPU        time.Duration
	ModuleHeap      float64 // bytes in use, the module's Go heap (InProcess)
	ModuleGoroutine float64
	// Replayed is how many requests the module's workers answered by
	// replaying a decision (InProcess): the soak covers that path's memory
	// (each worker's table of remembered answers) only if it is used.
	Replayed float64
}

// Report is a soak's outcome.
type Report struct {
	Mode     string
	Samples  []Sample
	Failures []string // first failed requests
	// EnvoyRestarted is set when Envoy's process changed or died.
	EnvoyRestarted bool
	// Verdict lists every check that failed; empty means the soak passed.
	Verdict []string
}

// Passed reports whether every check held.
func (r *Report) Passed() bool { return len(r.Verdict) == 0 }

const namespace = "soak"

// Run soaks the sandbox's gateway.
func Run(ctx context.Context, sb *sandbox.Sandbox, mode string, o Options) (*Report, error) {
	if o.Interval <= 0 {
		o.Interval = 30 * time.Second
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	token, err := seed(ctx, sb)
	if err != nil {
		return nil, fmt.Errorf("seeding the soak namespace: %w", err)
	}
	envoyPID := sb.PIDs()["envoy"]
	if envoyPID == 0 {
		return nil, fmt.Errorf("the sandbox runs no Envoy")
	}
	l, err := newLoad(sb, token)
	if err != nil {
		return nil, err
	}
	lctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	l.start(lctx, &wg)

	r := &Report{Mode: mode}
	fmt.Fprintf(o.Progress, ">> soak (%s): warming up for %s, then %s with a sample every %s\n", mode, o.Warmup, o.Duration, o.Interval)
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(o.Warmup):
	}
	start := time.Now()
	for {
		s := l.sample(ctx, sb, envoyPID, time.Since(start))
		r.Samples = append(r.Samples, s)
		fmt.Fprintf(o.Progress, ">> %6s  requests %8d  failed %d  envoy RSS %4d MiB  module heap %4.0f MiB  goroutines %4.0f\n",
			s.At.Round(time.Second), s.Requests, s.Failures, s.EnvoyRSS>>20, s.ModuleHeap/(1<<20), s.ModuleGoroutine)
		if pid := sb.PIDs()["envoy"]; pid != envoyPID {
			r.EnvoyRestarted = true
			break
		}
		if time.Since(start) >= o.Duration {
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(o.Interval):
		}
	}
	stop()
	wg.Wait()
	r.Failures = l.firstFailures()
	r.judge()
	return r, nil
}

// judge fills the verdict: the same Envoy throughout, no failed request,
// and no growth once warm (the last third of the samples against the
// middle third: RSS within 10% + 16 MiB, the module's heap within 25% +
// 8 MiB, its goroutines within 50).
func (r *Report) judge() {
	if r.EnvoyRestarted {
		r.Verdict = append(r.Verdict, "Envoy's process died or changed during the soak")
	}
	if n := len(r.Samples); n > 0 && r.Samples[n-1].Failures > 0 {
		r.Verdict = append(r.Verdict, fmt.Sprintf("%d requests failed", r.Samples[n-1].Failures))
	}
	if len(r.Samples) < 6 {
		r.Verdict = append(r.Verdict, fmt.Sprintf("only %d samples: too short to judge memory", len(r.Samples)))
		return
	}
	third := len(r.Samples) / 3
	mid, last := r.Samples[third:2*third], r.Samples[2*third:]
	check := func(what string, get func(Sample) float64, ratio, slack float64) {
		base := median(mid, get)
		if peak := maximum(last, get); peak > base*ratio+slack {
			r.Verdict = append(r.Verdict, fmt.Sprintf("%s grew: %.0f in the last third against a median of %.0f before", what, peak, base))
		}
	}
	check("Envoy RSS (bytes)", func(s Sample) float64 { return float64(s.EnvoyRSS) }, 1.10, 16<<20)
	if r.Mode == "InProcess" {
		check("the module's Go heap (bytes)", func(s Sample) float64 { return s.ModuleHeap }, 1.25, 8<<20)
		check("the module's goroutines", func(s Sample) float64 { return s.ModuleGoroutine }, 1, 50)
	}
}

func median(ss []Sample, get func(Sample) float64) float64 {
	v := make([]float64, len(ss))
	for i, s := range ss {
		v[i] = get(s)
	}
	slices.Sort(v)
	return v[len(v)/2]
}

func maximum(ss []Sample, get func(Sample) float64) float64 {
	m := 0.0
	for _, s := range ss {
		m = max(m, get(s))
	}
	return m
}

// seed creates the soak namespace, a ServiceAccount that may read it, and
// returns a token of that ServiceAccount.
func seed(ctx context.Context, sb *sandbox.Sandbox) (string, error) {
	cs, err := kubernetes.NewForConfig(sb.DirectConfig(1, sb.AdminCertPEM, sb.AdminKeyPEM))
	if err != nil {
		return "", err
	}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, metav1.CreateOptions{}); err != nil {
		return "", err
	}
	for i := range 20 {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "cm-" + strconv.Itoa(i)}, Data: map[string]string{"k": "v"}}
		if _, err := cs.CoreV1().ConfigMaps(namespace).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			return "", err
		}
	}
	if _, err := cs.CoreV1().ServiceAccounts(namespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "soak"}}, metav1.CreateOptions{}); err != nil {
		return "", err
	}
	// A Role of its own: the aggregated "view" ClusterRole is empty without
	// kube-controller-manager, which the sandbox does not run.
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "soak"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "list", "watch"}}},
	}
	if _, err := cs.RbacV1().Roles(namespace).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		return "", err
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "soak"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "soak"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: namespace, Name: "soak"}},
	}
	if _, err := cs.RbacV1().RoleBindings(namespace).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		return "", err
	}
	ttl := int64(7200)
	tr, err := cs.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, "soak",
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &ttl}}, metav1.CreateOptions{})
	if err != nil {
		return "", err
	}
	return tr.Status.Token, nil
}

// counters are the load's totals.
type counters struct {
	requests, failures atomic.Int64
	mu                 sync.Mutex
	first              []string
}

func (c *counters) fail(what string) {
	c.failures.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.first) < 10 {
		c.first = append(c.first, time.Now().Format(time.TimeOnly)+" "+what)
	}
}

func (c *counters) firstFailures() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.first)
}

// expect does one request and counts a failure unless it answers want.
func (c *counters) expect(ctx context.Context, hc *http.Client, req *http.Request, want int) {
	resp, err := hc.Do(req.WithContext(ctx))
	if ctx.Err() != nil {
		return // the soak is over; not a failure
	}
	c.requests.Add(1)
	if err != nil {
		c.fail(req.Method + " " + req.URL.Path + ": " + err.Error())
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != want {
		c.fail(fmt.Sprintf("%s %s: %d, want %d", req.Method, req.URL.Path, resp.StatusCode, want))
	}
}
