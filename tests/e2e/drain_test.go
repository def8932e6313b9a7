package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/kubefrontdoor/frontdoor/tests/sandbox"
)

// requestCounter counts a client's ConfigMap calls, to tell a resumed watch
// from a relist. A full (re)list is a list, or a watch with
// sendInitialEvents=true (client-go's streaming list); a resumed watch
// starts from a resourceVersion and asks for no initial events.
type requestCounter struct{ lists, watches atomic.Int32 }

func (c *requestCounter) wrap(cfg *rest.Config) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return roundTripperFunc(func(req *http.Request) (*http.Response, error) {
			if strings.Contains(req.URL.Path, "/configmaps") {
				if q := req.URL.Query(); q.Get("watch") == "true" && q.Get("sendInitialEvents") != "true" {
					c.watches.Add(1)
				} else {
					c.lists.Add(1)
				}
			}
			return rt.RoundTrip(req)
		})
	}
	return cfg
}

// A rolling restart of the gateway (new frontdoor + Envoy up, old ones
// drained: SIGTERM to frontdoor, `frontdoor drain` then SIGTERM to Envoy)
// under steady unary load fails no request, reads and writes, over HTTP/2
// and HTTP/1.1; the old frontdoor reports not-ready while it
// drains; an informer's watch is closed and resumes from its
// resourceVersion on the new instance without a relist.
func TestRollingRestartUnderLoadFailsNoRequest(t *testing.T) {
	ctx := setup(t, 3*time.Minute)
	ns := createNamespace(t, ctx, "e2e-roll")
	direct := sandbox.Clientset(t, adminUser().direct()).CoreV1().ConfigMaps(ns)
	if _, err := direct.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "target"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// The informer: counts its lists and watches, records its events.
	counter := &requestCounter{}
	log := &eventLog{}
	f := informers.NewSharedInformerFactoryWithOptions(sandbox.Clientset(t, counter.wrap(watchConfig(adminUser().gateway()))), 0, informers.WithNamespace(ns))
	inf := f.Core().V1().ConfigMaps().Informer()
	if _, err := inf.AddEventHandler(log.handler()); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	f.Start(stop)
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		t.Fatal("informer did not sync")
	}

	// Steady unary load: 4 workers per kind, back to back.
	http1 := adminUser().gateway()
	http1.NextProtos = []string{"http/1.1"}
	h2 := sandbox.Clientset(t, adminUser().gateway()).CoreV1().ConfigMaps(ns)
	h1 := sandbox.Clientset(t, http1).CoreV1().ConfigMaps(ns)
	loads := map[string]func(ctx context.Context, i int) error{
		"HTTP/2 GET": func(ctx context.Context, _ int) error {
			_, err := h2.Get(ctx, "target", metav1.GetOptions{})
			return err
		},
		"HTTP/2 POST": func(ctx context.Context, i int) error {
			_, err := h2.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{GenerateName: "load-"}}, metav1.CreateOptions{})
			return err
		},
		"HTTP/1.1 GET": func(ctx context.Context, _ int) error {
			_, err := h1.Get(ctx, "target", metav1.GetOptions{})
			return err
		},
		"HTTP/1.1 POST": func(ctx context.Context, _ int) error {
			_, err := h1.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{GenerateName: "load-"}}, metav1.CreateOptions{})
			return err
		},
	}
	var (
		mu       sync.Mutex
		ok       = map[string]int{}
		failures []string
		wg       sync.WaitGroup
	)
	loadCtx, stopLoad := context.WithCancel(ctx)
	for kind, call := range loads {
		for w := range 4 {
			wg.Go(func() {
				for i := 0; loadCtx.Err() == nil; i++ {
					err := call(ctx, w*1_000_000+i)
					mu.Lock()
					if err != nil {
						failures = append(failures, fmt.Sprintf("%s at %s: %v", kind, time.Now().Format("15:04:05.000"), err))
					} else {
						ok[kind]++
					}
					mu.Unlock()
				}
			})
		}
	}
	time.Sleep(time.Second) // load established on the old instance

	var readyDuringDrain int
	rollStarted := time.Now()
	err := sb.RollGateway(ctx, sandbox.RollOptions{
		DrainTimeout: 5 * time.Second,
		OnDraining: func(readyURL string) {
			// The drain lasts seconds; the signal lands within them.
			_ = poll(ctx, 50*time.Millisecond, func() (bool, error) {
				resp, err := http.Get(readyURL)
				if err != nil {
					return false, nil
				}
				resp.Body.Close()
				readyDuringDrain = resp.StatusCode
				return readyDuringDrain == http.StatusServiceUnavailable || time.Since(rollStarted) > 30*time.Second, nil
			})
		},
	})
	if err != nil {
		t.Fatalf("rolling the gateway: %v", err)
	}
	rollTook := time.Since(rollStarted)
	time.Sleep(2 * time.Second) // load on the new instance
	stopLoad()
	wg.Wait()

	t.Logf("roll took %v; successful requests: %v", rollTook.Round(time.Millisecond), ok)
	if len(failures) > 0 {
		t.Errorf("%d requests failed during the rolling restart, first ones:\n%s", len(failures), strings.Join(failures[:min(10, len(failures))], "\n"))
	}
	for kind := range loads {
		if ok[kind] < 20 {
			t.Errorf("%s: only %d requests succeeded; the load was not steady", kind, ok[kind])
		}
	}
	if readyDuringDrain != http.StatusServiceUnavailable {
		t.Errorf("old frontdoor /readyz during its drain: %d, want 503", readyDuringDrain)
	}

	// The informer: its watch was closed with the old Envoy and resumed on
	// the new one, without a relist, and it sees a change made now.
	lists, resumed := counter.lists.Load(), counter.watches.Load()
	if _, err := direct.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "after-roll"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	err = poll(ctx, 100*time.Millisecond, func() (bool, error) {
		for _, e := range log.snapshot() {
			if strings.HasPrefix(e, "ADDED after-roll ") {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("the informer never saw a ConfigMap created after the roll")
	}
	if lists != 1 {
		t.Errorf("the informer listed %d times, want 1 (the watch must resume from its resourceVersion, not relist)", lists)
	}
	if resumed < 1 {
		t.Errorf("the informer resumed its watch %d times, want at least once (the old Envoy closed the first)", resumed)
	}
}
