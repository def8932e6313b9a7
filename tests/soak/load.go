package soak

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kubefrontdoor/frontdoor/tests/sandbox"
)

// load is the soak's traffic: every path the request service has (inline
// certificate and cached-token decisions, TokenReviews of new tokens and
// impersonation on the slow path, watches held open and renewed), at a
// steady rate well below saturation.
type load struct {
	counters
	gateway    string
	admin      *http.Client // x509, HTTP/2
	anon       *http.Client // no certificate (tokens)
	token      string
	tokenMaker *kubernetes.Clientset
}

func newLoad(sb *sandbox.Sandbox, token string) (*load, error) {
	admin, err := sb.HTTPClient(sb.AdminCertPEM, sb.AdminKeyPEM)
	if err != nil {
		return nil, err
	}
	anon, err := sb.HTTPClient(nil, nil)
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(sb.DirectConfig(1, sb.AdminCertPEM, sb.AdminKeyPEM))
	if err != nil {
		return nil, err
	}
	return &load{gateway: sb.GatewayURL, admin: admin, anon: anon, token: token, tokenMaker: cs}, nil
}

func (l *load) get(path string, header ...string) *http.Request {
	req, _ := http.NewRequest(http.MethodGet, l.gateway+path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return req
}

// start launches the workers; they stop when ctx ends.
func (l *load) start(ctx context.Context, wg *sync.WaitGroup) {
	every := func(d time.Duration, f func(i int)) {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				f(i)
				select {
				case <-ctx.Done():
				case <-time.After(d):
				}
			}
		})
	}
	cm := func(i int) string { return "/api/v1/namespaces/" + namespace + "/configmaps/cm-" + strconv.Itoa(i%20) }
	for range 4 { // certificates: decided inline
		every(10*time.Millisecond, func(i int) { l.expect(ctx, l.admin, l.get(cm(i)), http.StatusOK) })
	}
	for range 2 { // a cached token: decided inline after its first review
		every(10*time.Millisecond, func(i int) {
			l.expect(ctx, l.anon, l.get(cm(i), "Authorization", "Bearer "+l.token), http.StatusOK)
		})
	}
	every(50*time.Millisecond, func(int) { // lists
		l.expect(ctx, l.admin, l.get("/api/v1/namespaces/"+namespace+"/configmaps"), http.StatusOK)
	})
	every(100*time.Millisecond, func(i int) { // impersonation: SubjectAccessReviews, slow path
		l.expect(ctx, l.admin, l.get(cm(i), "Impersonate-User", "system:serviceaccount:"+namespace+":soak"), http.StatusOK)
	})
	every(5*time.Second, func(int) { l.newToken(ctx) }) // TokenReviews of new tokens
	for range 10 {                                      // watches held 30 s, then renewed
		every(100*time.Millisecond, func(int) {
			l.expect(ctx, l.admin, l.get("/api/v1/namespaces/"+namespace+"/configmaps?watch=1&timeoutSeconds=30"), http.StatusOK)
		})
	}
}

// newToken mints a token nobody has used and uses it ten times: the first
// request waits for a TokenReview, the others are cached.
func (l *load) newToken(ctx context.Context) {
	ttl := int64(600)
	tr, err := l.tokenMaker.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, "soak",
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &ttl}}, metav1.CreateOptions{})
	if err != nil {
		if ctx.Err() == nil {
			l.fail("TokenRequest: " + err.Error())
		}
		return
	}
	for i := range 10 {
		l.expect(ctx, l.anon, l.get("/api/v1/namespaces/"+namespace+"/configmaps/cm-"+strconv.Itoa(i),
			"Authorization", "Bearer "+tr.Status.Token), http.StatusOK)
	}
}

// sample reads the counters, Envoy's memory and CPU, and the module's Go
// runtime.
func (l *load) sample(ctx context.Context, sb *sandbox.Sandbox, envoyPID int, at time.Duration) Sample {
	s := Sample{At: at, Requests: l.requests.Load(), Failures: l.failures.Load()}
	s.EnvoyRSS, _ = statusKB(envoyPID, "VmRSS:")
	s.EnvoyCPU, _ = cpuTime(envoyPID)
	if text, err := sb.FrontdoorMetrics(ctx); err == nil {
		s.ModuleHeap, _ = sandbox.SumMetric(text, "frontdoor_module_go_memstats_heap_inuse_bytes", nil)
		s.ModuleGoroutine, _ = sandbox.SumMetric(text, "frontdoor_module_go_goroutines", nil)
		s.Replayed, _ = sandbox.SumMetric(text, "frontdoor_replayed_decisions_total", nil)
	}
	return s
}

// statusKB reads a kB field of /proc/<pid>/status, in bytes.
func statusKB(pid int, key string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, key); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", key, pid)
}

// cpuTime is the process's user+system CPU time (/proc/<pid>/stat, in
// clock ticks of 10 ms on Linux).
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the parenthesized command name; utime and stime are the
	// 14th and 15th fields overall.
	rest := string(b[strings.LastIndexByte(string(b), ')')+2:])
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond, nil
}
