package bench

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Namespaces the workloads use: ListNamespace holds exactly ListSize
// ConfigMaps (so LIST always returns the same bytes); creates go elsewhere.
const (
	ListNamespace   = "bench"
	CreateNamespace = "bench-create"
	ListSize        = 500
)

// Workload is one kind of traffic.
type Workload string

const (
	WorkloadGet    Workload = "get"    // GET one ConfigMap, served from the watch cache (resourceVersion=0)
	WorkloadList   Workload = "list"   // LIST the 500 ConfigMaps of ListNamespace (watch cache)
	WorkloadCreate Workload = "create" // CREATE a small ConfigMap (etcd write)
	WorkloadMixed  Workload = "mixed"  // controller-like: 70% get, 5% list, 10% create, 15% patch
)

// Mode is how load is offered.
type Mode string

const (
	Closed Mode = "closed" // fixed concurrency, each worker sends as soon as its last answer came
	Open   Mode = "open"   // fixed arrival rate, latency measured from the intended send time
)

// Client is how a path is reached: a base URL and a credential.
type Client struct {
	URL     string
	CAPEM   []byte
	CertPEM []byte // client certificate, or nil
	KeyPEM  []byte
	Token   string // bearer token, or ""
	// ServerName is the TLS server name (SNI) to send, when it must differ
	// from the URL's host (to pick an UpstreamCluster by SNI).
	ServerName string
}

// transports returns n HTTP/2 clients, each with its own connection pool,
// so n long-lived connections carry the load as n controllers would.
func (c Client) transports(n int) ([]*http.Client, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName}
	if len(c.CAPEM) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(c.CAPEM) {
			return nil, fmt.Errorf("no certificate in the CA bundle")
		}
		cfg.RootCAs = pool
	}
	if c.CertPEM != nil {
		pair, err := tls.X509KeyPair(c.CertPEM, c.KeyPEM)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	out := make([]*http.Client, n)
	for i := range out {
		out[i] = &http.Client{
			Timeout: 30 * time.Second,
			Transport: &http.Transport{
				TLSClientConfig:     cfg.Clone(),
				ForceAttemptHTTP2:   true,
				MaxIdleConnsPerHost: 1,
			},
		}
	}
	return out, nil
}

func closeAll(clients []*http.Client) {
	for _, c := range clients {
		c.CloseIdleConnections()
	}
}

// requestMaker builds the next request of a workload. rng is the worker's
// own seeded generator, seq a counter unique within the run.
type requestMaker func(c Client, rng *rand.Rand, seq uint64) (*http.Request, error)

func makerFor(w Workload) requestMaker {
	get := func(c Client, rng *rand.Rand, _ uint64) (*http.Request, error) {
		return http.NewRequest(http.MethodGet, fmt.Sprintf("%s/api/v1/namespaces/%s/configmaps/cm-%d?resourceVersion=0", c.URL, ListNamespace, rng.IntN(ListSize)), nil)
	}
	list := func(c Client, _ *rand.Rand, _ uint64) (*http.Request, error) {
		return http.NewRequest(http.MethodGet, fmt.Sprintf("%s/api/v1/namespaces/%s/configmaps?resourceVersion=0", c.URL, ListNamespace), nil)
	}
	create := func(c Client, rng *rand.Rand, _ uint64) (*http.Request, error) {
		body := fmt.Sprintf(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"generateName":"c-"},"data":{"k":"%016x"}}`, rng.Uint64())
		r, err := http.NewRequest(http.MethodPost, fmt.Sprintf("%s/api/v1/namespaces/%s/configmaps", c.URL, CreateNamespace), bytes.NewBufferString(body))
		if err == nil {
			r.Header.Set("Content-Type", "application/json")
		}
		return r, err
	}
	patch := func(c Client, rng *rand.Rand, seq uint64) (*http.Request, error) {
		body := fmt.Sprintf(`{"metadata":{"annotations":{"bench/seq":"%d"}}}`, seq)
		r, err := http.NewRequest(http.MethodPatch, fmt.Sprintf("%s/api/v1/namespaces/%s/configmaps/cm-%d", c.URL, ListNamespace, rng.IntN(ListSize)), bytes.NewBufferString(body))
		if err == nil {
			r.Header.Set("Content-Type", "application/merge-patch+json")
		}
		return r, err
	}
	switch w {
	case WorkloadGet:
		return get
	case WorkloadList:
		return list
	case WorkloadCreate:
		return create
	default:
		return func(c Client, rng *rand.Rand, seq uint64) (*http.Request, error) {
			switch x := rng.IntN(100); {
			case x < 70:
				return get(c, rng, seq)
			case x < 75:
				return list(c, rng, seq)
			case x < 85:
				return create(c, rng, seq)
			default:
				return patch(c, rng, seq)
			}
		}
	}
}

// LoadSpec is one measured run of one workload against one path.
type LoadSpec struct {
	Workload    Workload
	Mode        Mode
	Concurrency int           // closed loop: workers
	QPS         float64       // open loop: arrivals per second
	Connections int           // long-lived HTTP/2 clients the workers share
	Duration    time.Duration // measured time
	Warmup      time.Duration // unmeasured time before it, same load
	Seed        uint64
}

// LoadResult is what one run observed.
type LoadResult struct {
	Requests  int
	Errors    int
	Elapsed   time.Duration
	Start     time.Time       // when the measured window began (after the warm-up)
	Latencies []time.Duration // successful requests only, sorted
	FirstErr  string
}

// QPS is successful requests per second.
func (r *LoadResult) QPS() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(len(r.Latencies)) / r.Elapsed.Seconds()
}

// Percentile returns the q-quantile (0..1) of the latencies.
func (r *LoadResult) Percentile(q float64) time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	i := int(q * float64(len(r.Latencies)-1))
	return r.Latencies[i]
}

// maxOpenInFlight bounds the open loop: arrivals beyond it are counted as
// errors (the path could not keep up) instead of piling up goroutines.
const maxOpenInFlight = 512

// Offer offers the load and measures it.
func Offer(ctx context.Context, c Client, spec LoadSpec) (*LoadResult, error) {
	if spec.Connections <= 0 {
		spec.Connections = 8
	}
	clients, err := c.transports(spec.Connections)
	if err != nil {
		return nil, err
	}
	defer closeAll(clients)
	maker := makerFor(spec.Workload)

	var (
		mu       sync.Mutex
		res      = &LoadResult{}
		seq      atomic.Uint64
		measured atomic.Bool
	)
	record := func(lat time.Duration, err error) {
		if !measured.Load() {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		res.Requests++
		if err != nil {
			res.Errors++
			if res.FirstErr == "" {
				res.FirstErr = err.Error()
			}
			return
		}
		res.Latencies = append(res.Latencies, lat)
	}
	do := func(hc *http.Client, rng *rand.Rand, intended time.Time) {
		req, err := maker(c, rng, seq.Add(1))
		if err != nil {
			record(0, err)
			return
		}
		if c.Token != "" {
			req.Header.Set("Authorization", "Bearer "+c.Token)
		}
		req.Header.Set("Accept", "application/json")
		resp, err := hc.Do(req.WithContext(ctx))
		if err != nil {
			record(0, err)
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		lat := time.Since(intended)
		if resp.StatusCode >= 300 {
			record(lat, fmt.Errorf("%s %s: %s", req.Method, req.URL.Path, resp.Status))
			return
		}
		record(lat, nil)
	}

	total := spec.Warmup + spec.Duration
	runCtx, cancel := context.WithTimeout(ctx, total)
	defer cancel()
	var start time.Time
	go func() {
		select {
		case <-time.After(spec.Warmup):
			mu.Lock()
			start = time.Now()
			mu.Unlock()
			measured.Store(true)
		case <-runCtx.Done():
		}
	}()

	var wg sync.WaitGroup
	switch spec.Mode {
	case Closed:
		for w := range max(spec.Concurrency, 1) {
			rng := rand.New(rand.NewPCG(spec.Seed, uint64(w)))
			hc := clients[w%len(clients)]
			wg.Go(func() {
				for runCtx.Err() == nil {
					do(hc, rng, time.Now())
				}
			})
		}
	case Open:
		if spec.QPS <= 0 {
			return nil, fmt.Errorf("open loop needs QPS > 0")
		}
		arrivals := rand.New(rand.NewPCG(spec.Seed, 1<<32))
		sem := make(chan struct{}, maxOpenInFlight)
		next := time.Now()
		for i := 0; ; i++ {
			// Poisson arrivals: exponential gaps with mean 1/QPS.
			next = next.Add(time.Duration(arrivals.ExpFloat64() / spec.QPS * float64(time.Second)))
			if d := time.Until(next); d > 0 {
				select {
				case <-time.After(d):
				case <-runCtx.Done():
				}
			}
			if runCtx.Err() != nil {
				break
			}
			select {
			case sem <- struct{}{}:
			default:
				record(0, fmt.Errorf("more than %d requests in flight", maxOpenInFlight))
				continue
			}
			rng := rand.New(rand.NewPCG(spec.Seed, uint64(i)+2))
			hc := clients[i%len(clients)]
			intended := next
			wg.Go(func() {
				defer func() { <-sem }()
				do(hc, rng, intended)
			})
		}
	default:
		return nil, fmt.Errorf("unknown mode %q", spec.Mode)
	}
	<-runCtx.Done()
	measured.Store(false)
	mu.Lock()
	res.Elapsed, res.Start = time.Since(start), start
	if start.IsZero() {
		res.Elapsed = 0
	}
	mu.Unlock()
	wg.Wait()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(res.Latencies)
	return res, nil
}
