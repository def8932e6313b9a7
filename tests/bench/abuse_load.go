package bench

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"time"
)

// validLoad is the valid users' traffic of the abuse benchmark: GETs of
// seeded ConfigMaps at a fixed rate (open loop) over long-lived HTTP/2
// connections, by one client kind (x509 or bearer token). Unlike Offer, a
// request sent in the window always counts, however it ends: one the gateway
// holds past timeout is a failure, not a sample quietly dropped at the end
// of the window, because a held request is exactly what an attack causes.
type validLoad struct {
	name    string // "x509", "token"
	client  Client
	rate    float64 // requests per second
	conns   int
	timeout time.Duration // per request
	seed    uint64
}

// validResult is what one client kind observed in one window.
type validResult struct {
	Name      string
	Requests  int
	Failures  int
	Timeouts  int
	FirstErr  string
	Latencies []time.Duration // successful requests, sorted
}

// successPct is the share of requests answered 2xx within the timeout.
func (r validResult) successPct() float64 {
	if r.Requests == 0 {
		return 0
	}
	return 100 * float64(r.Requests-r.Failures) / float64(r.Requests)
}

func (r validResult) percentile(q float64) time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	return r.Latencies[int(q*float64(len(r.Latencies)-1))]
}

// merge adds other's requests to r (latencies re-sorted).
func (r validResult) merge(other validResult) validResult {
	out := validResult{Name: r.Name + "+" + other.Name, Requests: r.Requests + other.Requests,
		Failures: r.Failures + other.Failures, Timeouts: r.Timeouts + other.Timeouts, FirstErr: cmpOr(r.FirstErr, other.FirstErr)}
	out.Latencies = append(append(out.Latencies, r.Latencies...), other.Latencies...)
	slices.Sort(out.Latencies)
	return out
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// run sends for warmup (unmeasured) and then window, and returns once every
// request sent in the window has ended (at most timeout after it).
func (v validLoad) run(ctx context.Context, warmup, window time.Duration) (validResult, error) {
	if v.rate <= 0 {
		return validResult{}, fmt.Errorf("valid load %s: rate must be > 0", v.name)
	}
	clients, err := v.client.transports(max(v.conns, 1))
	if err != nil {
		return validResult{}, err
	}
	defer closeAll(clients)
	for _, hc := range clients {
		hc.Timeout = v.timeout
	}
	get := makerFor(WorkloadGet)
	var (
		mu  sync.Mutex
		res = validResult{Name: v.name}
		wg  sync.WaitGroup
	)
	record := func(lat time.Duration, err error, timedOut bool) {
		mu.Lock()
		defer mu.Unlock()
		res.Requests++
		if err == nil {
			res.Latencies = append(res.Latencies, lat)
			return
		}
		res.Failures++
		if timedOut {
			res.Timeouts++
		}
		if res.FirstErr == "" {
			res.FirstErr = err.Error()
		}
	}
	arrivals := rand.New(rand.NewPCG(v.seed, 1<<32))
	begin := time.Now()
	measureFrom, end := begin.Add(warmup), begin.Add(warmup+window)
	next := begin
	for i := 0; ; i++ {
		next = next.Add(time.Duration(arrivals.ExpFloat64() / v.rate * float64(time.Second)))
		if !next.Before(end) {
			break
		}
		if !sleepCtx(ctx, time.Until(next)) {
			break
		}
		measured := !next.Before(measureFrom)
		rng := rand.New(rand.NewPCG(v.seed, uint64(i)+2))
		hc := clients[i%len(clients)]
		intended := next
		wg.Go(func() {
			req, err := get(v.client, rng, 0)
			if err != nil {
				if measured {
					record(0, err, false)
				}
				return
			}
			req = req.WithContext(ctx)
			if v.client.Token != "" {
				req.Header.Set("Authorization", "Bearer "+v.client.Token)
			}
			req.Header.Set("Accept", "application/json")
			resp, err := hc.Do(req)
			if err != nil {
				if measured {
					record(0, err, time.Since(intended) >= v.timeout)
				}
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			lat := time.Since(intended)
			if !measured {
				return
			}
			if resp.StatusCode >= 300 {
				record(lat, fmt.Errorf("GET: %s", resp.Status), false)
				return
			}
			record(lat, nil, false)
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return validResult{}, ctx.Err()
	}
	slices.Sort(res.Latencies)
	return res, nil
}

// runValid runs every load at once and returns their results in order.
func runValid(ctx context.Context, loads []validLoad, warmup, window time.Duration) ([]validResult, error) {
	out := make([]validResult, len(loads))
	errs := make([]error, len(loads))
	var wg sync.WaitGroup
	for i, l := range loads {
		wg.Go(func() { out[i], errs[i] = l.run(ctx, warmup, window) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// probeStatus GETs path on c with a new connection and returns the status.
func probeStatus(ctx context.Context, c Client, path string) (int, error) {
	clients, err := c.transports(1)
	if err != nil {
		return 0, err
	}
	defer closeAll(clients)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL+path, nil)
	if err != nil {
		return 0, err
	}
	resp, err := clients[0].Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}
