package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/utils/ptr"

	"github.com/kubefrontdoor/frontdoor/tests/sandbox"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// createNamespace creates a fresh namespace (and its default service
// account, which no controller-manager creates here) and returns its name.
func createNamespace(t *testing.T, ctx context.Context, prefix string) string {
	t.Helper()
	cs := sandbox.Clientset(t, adminUser().direct())
	ns, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Without a namespace controller, the contents must go first.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = cs.CoreV1().ConfigMaps(ns.Name).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
		_ = cs.CoreV1().Namespaces().Delete(ctx, ns.Name, metav1.DeleteOptions{})
	})
	return ns.Name
}

// eventLog records what an informer's handlers see, in order.
type eventLog struct {
	mu     sync.Mutex
	events []string
}

func (l *eventLog) add(kind string, obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
		kind += "(final state unknown)"
	}
	cm := obj.(*corev1.ConfigMap)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, fmt.Sprintf("%s %s %s", kind, cm.Name, cm.ResourceVersion))
}

func (l *eventLog) snapshot() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events)
}

func (l *eventLog) handler() cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { l.add("ADDED", obj) },
		UpdateFunc: func(_, obj any) { l.add("MODIFIED", obj) },
		DeleteFunc: func(obj any) { l.add("DELETED", obj) },
	}
}

// An informer through the gateway and one straight to a replica see the
// same event sequence for 1,000 changes: nothing lost, reordered, merged or
// duplicated, and no relist.
func TestInformerSeesEveryEventThroughGateway(t *testing.T) {
	t.Parallel()
	ctx := setup(t, 5*time.Minute)
	ns := createNamespace(t, ctx, "e2e-informer")

	start := func(cfg *rest.Config) *eventLog {
		log := &eventLog{}
		f := informers.NewSharedInformerFactoryWithOptions(sandbox.Clientset(t, cfg), 0, informers.WithNamespace(ns))
		inf := f.Core().V1().ConfigMaps().Informer()
		if _, err := inf.AddEventHandler(log.handler()); err != nil {
			t.Fatal(err)
		}
		stop := make(chan struct{})
		t.Cleanup(func() { close(stop) })
		f.Start(stop)
		if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
			t.Fatal("informer did not sync")
		}
		return log
	}
	viaGateway, direct := start(watchConfig(adminUser().gateway())), start(watchConfig(adminUser().direct()))

	// 1,000 changes: 400 creates, 400 updates, 200 deletes, 8 at a time.
	cms := sandbox.Clientset(t, adminUser().direct()).CoreV1().ConfigMaps(ns)
	const objects = 400
	var wg sync.WaitGroup
	errs := make(chan error, objects)
	sem := make(chan struct{}, 8)
	for i := range objects {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			name := fmt.Sprintf("cm-%03d", i)
			cm, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string]string{"v": "1"}}, metav1.CreateOptions{})
			if err == nil {
				cm.Data["v"] = "2"
				_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
			}
			if err == nil && i%2 == 0 {
				err = cms.Delete(ctx, name, metav1.DeleteOptions{})
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	const want = 1000
	err := poll(ctx, 200*time.Millisecond, func() (bool, error) {
		return len(viaGateway.snapshot()) >= want && len(direct.snapshot()) >= want, nil
	})
	gw, d := viaGateway.snapshot(), direct.snapshot()
	if err != nil {
		t.Fatalf("after %d changes the gateway informer saw %d events and the direct one %d", want, len(gw), len(d))
	}
	time.Sleep(time.Second) // anything extra (a duplicate, a relist) would show up now
	gw, d = viaGateway.snapshot(), direct.snapshot()
	if len(gw) != want || len(d) != want || !slices.Equal(gw, d) {
		for i := 0; i < max(len(gw), len(d)); i++ {
			var a, b string
			if i < len(gw) {
				a = gw[i]
			}
			if i < len(d) {
				b = d[i]
			}
			if a != b {
				t.Fatalf("event sequences differ first at %d: gateway %q, direct %q (gateway %d events, direct %d, want %d)", i, a, b, len(gw), len(d), want)
			}
		}
		t.Fatalf("gateway saw %d events, direct %d, want %d each", len(gw), len(d), want)
	}
}

// soakDuration is how long TestIdleWatchWithBookmarksStaysOpen keeps a
// watch quiet: 70s in CI (longer than the apiserver's one-minute bookmark
// period, so a bookmark must cross the gateway), 5m30s with
// FRONTDOOR_E2E_LONG_SOAK=1 (longer than Envoy's default 5-minute stream
// idle timeout, which the gateway disables).
func soakDuration() time.Duration {
	if os.Getenv("FRONTDOOR_E2E_LONG_SOAK") == "1" {
		return 5*time.Minute + 30*time.Second
	}
	return 70 * time.Second
}

// A watch with nothing to report stays open through the gateway, over
// HTTP/2 and HTTP/1.1, with the real configuration: bookmarks arrive, and a
// change after the quiet spell is delivered on the same watch. A direct
// watch runs alongside as the control.
func TestIdleWatchWithBookmarksStaysOpen(t *testing.T) {
	t.Parallel()
	soak := soakDuration()
	ctx := setup(t, soak+2*time.Minute)
	ns := createNamespace(t, ctx, "e2e-idle-watch")
	cms := sandbox.Clientset(t, adminUser().direct()).CoreV1().ConfigMaps(ns)
	seed, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "seed"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	http2, http1, direct := watchConfig(adminUser().gateway()), watchConfig(adminUser().gateway()), watchConfig(adminUser().direct())
	http1.NextProtos = []string{"http/1.1"}
	type result struct {
		proto     string
		bookmarks int
		events    []string
		err       error
	}
	results := make(chan result, 3)
	wakeUp := make(chan struct{})
	for proto, cfg := range map[string]*rest.Config{"HTTP/2": http2, "HTTP/1.1": http1, "direct (control)": direct} {
		w, err := sandbox.Clientset(t, cfg).CoreV1().ConfigMaps(ns).Watch(ctx, metav1.ListOptions{
			ResourceVersion:     seed.ResourceVersion,
			AllowWatchBookmarks: true,
			// Longer than the soak: the apiserver must not end it either.
			TimeoutSeconds: ptr.To[int64](int64((soak + 5*time.Minute).Seconds())),
		})
		if err != nil {
			t.Fatalf("%s watch: %v", proto, err)
		}
		started := time.Now()
		go func() {
			defer w.Stop()
			r := result{proto: proto}
			for {
				select {
				case ev, ok := <-w.ResultChan():
					if !ok {
						r.err = fmt.Errorf("watch closed after %d bookmarks, %v after it started", r.bookmarks, time.Since(started).Round(time.Second))
						results <- r
						return
					}
					switch ev.Type {
					case watch.Bookmark:
						r.bookmarks++
					case watch.Error:
						r.err = apierrors.FromObject(ev.Object)
						results <- r
						return
					default:
						r.events = append(r.events, fmt.Sprintf("%s %s", ev.Type, ev.Object.(*corev1.ConfigMap).Name))
						results <- r
						return
					}
				case <-ctx.Done():
					r.err = ctx.Err()
					results <- r
					return
				}
			}
		}()
	}
	go func() {
		time.Sleep(soak)
		close(wakeUp)
	}()
	<-wakeUp
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "after-the-quiet"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		r := <-results
		if r.err != nil || len(r.events) != 1 || r.events[0] != "ADDED after-the-quiet" {
			t.Errorf("%s watch after %v idle: events %q, err %v; want ADDED after-the-quiet on the same watch", r.proto, soak, r.events, r.err)
		}
		if r.bookmarks == 0 {
			t.Errorf("%s watch: no bookmark in %v", r.proto, soak)
		}
		t.Logf("%s watch: %d bookmarks in %v, then the event", r.proto, r.bookmarks, soak)
	}
}

// 100 watches on one HTTP/2 connection to the gateway each get their event.
func TestHundredWatchesOnOneConnection(t *testing.T) {
	t.Parallel()
	ctx := setup(t, 2*time.Minute)
	ns := createNamespace(t, ctx, "e2e-watches")
	const n = 100
	var dials atomic.Int32
	cfg := adminUser().gateway()
	cfg.QPS, cfg.Burst = -1, 0 // no client-side throttling of 100 watch calls
	d := &net.Dialer{}
	cfg.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		return d.DialContext(ctx, network, addr)
	}
	cs := sandbox.Clientset(t, cfg)
	direct := sandbox.Clientset(t, adminUser().direct()).CoreV1().ConfigMaps(ns)

	// The first request opens the one connection; the watches then share it.
	if _, err := cs.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	watches := make([]watch.Interface, n)
	for i := range n {
		w, err := cs.CoreV1().ConfigMaps(ns).Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", fmt.Sprintf("w-%03d", i)).String()})
		if err != nil {
			t.Fatalf("watch %d: %v", i, err)
		}
		defer w.Stop()
		watches[i] = w
	}
	if got := dials.Load(); got != 1 {
		t.Fatalf("%d connections for one list and %d watches, want 1 (HTTP/2 multiplexing)", got, n)
	}
	if err := createConcurrently(ctx, n, 16, func(ctx context.Context, i int) error {
		_, err := direct.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("w-%03d", i)}}, metav1.CreateOptions{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for i, w := range watches {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok || ev.Type != watch.Added || ev.Object.(*corev1.ConfigMap).Name != fmt.Sprintf("w-%03d", i) {
				t.Fatalf("watch %d: got %v %v (open %v)", i, ev.Type, ev.Object, ok)
			}
		case <-ctx.Done():
			t.Fatalf("watch %d got no event", i)
		}
	}
	if got := dials.Load(); got != 1 {
		t.Errorf("%d connections in the end, want 1", got)
	}
}

// createConcurrently calls create(i) for i in [0, n) with at most workers
// calls in flight, returning the first error.
func createConcurrently(ctx context.Context, n, workers int, create func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		once     sync.Once
		firstErr error
		next     atomic.Int64
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := create(ctx, i); err != nil {
					once.Do(func() { firstErr = err; cancel() })
					return
				}
			}
		}()
	}
	wg.Wait()
	return firstErr
}

// watchConfig drops the sandbox configs' 30s client timeout, which would
// end every watch after 30s, as informers and controllers run without one.
func watchConfig(cfg *rest.Config) *rest.Config {
	cfg.Timeout = 0
	return cfg
}
