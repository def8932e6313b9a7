package e2e

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// Hostile requests against the request service itself (issue 14, item 4):
// a flood of random bearer tokens, each of which would cost a TokenReview.

func init() { registerAdversarial(serviceAdversarialCases) }

// tokenFlood is how many distinct random tokens the flood case sends, and
// over how many concurrent streams; floodAddress is the loopback address it
// comes from (Linux routes all of 127/8 to lo), so the gate that throttles
// it is seen to leave 127.0.0.1, every other test's address, alone.
const (
	tokenFlood        = 400
	tokenFloodWorkers = 64
	floodAddress      = "127.0.0.23"
	// refusalBurst is the product's default refused reviews per address
	// (authz defaultRefusalBurst).
	refusalBurst = 32
)

// serviceAdversarialCases: a random-token flood.
func serviceAdversarialCases(t *testing.T, ctx context.Context, env *advEnv) []advCase {
	return []advCase{{
		// Every random token is refused: 401 once reviewed; once the
		// address caused more refusals than its budget, 429 with
		// Retry-After and a TooManyRequests Status without a review
		// (503 with Retry-After if the cluster's reviews are all in
		// flight); never a 401 for a token nobody reviewed, never a crash.
		// A valid token from the flooding address still works, and a bad
		// token from another address is still reviewed (the marked
		// request: 401, never reaching an apiserver).
		name: "random bearer token flood is refused, throttled per address, and locks nobody out",
		send: func(t *testing.T, ctx context.Context, marker string) []int {
			var (
				mu     sync.Mutex
				counts = map[int]int{}
				bad    []string
				wg     sync.WaitGroup
			)
			// No client certificate (x509 would authenticate first), HTTP/2:
			// many streams on few connections, as a flood would come.
			flooder := fromAddress(t, httpClient(t, "", nil, nil), floodAddress)
			defer flooder.CloseIdleConnections()
			checkValid := func(when string) {
				// The service account may not list configmaps: 403 from
				// the apiserver means it authenticated.
				code, _, _ := do(t, ctx, flooder, http.MethodGet, sb.GatewayURL+"/api/v1/namespaces/default/configmaps?limit=1", bearer(env.saToken), nil)
				if code == http.StatusUnauthorized || code == http.StatusTooManyRequests || code >= 500 {
					t.Errorf("a valid token from the flooding address %s got %d, want it authenticated", when, code)
				}
			}
			checkValid("before the flood")
			jobs := make(chan string)
			for range tokenFloodWorkers {
				wg.Go(func() {
					for tok := range jobs {
						code, hdr, body := do(t, ctx, flooder, http.MethodGet, sb.GatewayURL+"/api/v1/namespaces?flood="+marker+"x", bearer(tok), nil)
						mu.Lock()
						counts[code]++
						switch {
						case code == http.StatusUnauthorized:
						case code == http.StatusTooManyRequests && hdr.Get("Retry-After") != "" &&
							strings.Contains(string(body), `"reason":"TooManyRequests"`):
						case code == http.StatusServiceUnavailable && hdr.Get("Retry-After") != "":
						default:
							if len(bad) < 5 {
								bad = append(bad, string(body))
							}
						}
						mu.Unlock()
					}
				})
			}
			// The legitimate client keeps working during the flood.
			legit := make(chan struct{})
			go func() { defer close(legit); checkValid("during the flood") }()
			for range tokenFlood {
				jobs <- "flood-" + uniq() + uniq()
			}
			close(jobs)
			wg.Wait()
			<-legit
			t.Logf("flood of %d random tokens from %s: %v", tokenFlood, floodAddress, counts)
			if len(bad) > 0 || counts[http.StatusUnauthorized]+counts[http.StatusTooManyRequests]+counts[http.StatusServiceUnavailable] != tokenFlood {
				t.Errorf("flood answers %v, want only 401, 429 with Retry-After and Status, 503 with Retry-After; bodies %q", counts, bad)
			}
			// Reviewed (401) at most the budget plus what was in flight
			// when it ran out.
			if reviewed := counts[http.StatusUnauthorized]; reviewed > refusalBurst+tokenFloodWorkers {
				t.Errorf("%d random tokens from one address were reviewed (401), want at most %d: the address was never throttled", reviewed, refusalBurst+tokenFloodWorkers)
			}
			checkValid("after the flood")
			return env.get(env.anon, bearer("flood-"+uniq()))(t, ctx, marker)
		},
		want: []int{http.StatusUnauthorized},
	}}
}

// fromAddress makes c's connections come from the local address ip.
func fromAddress(t *testing.T, c *http.Client, ip string) *http.Client {
	t.Helper()
	tr := c.Transport.(*http.Transport).Clone()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	tr.DialContext = d.DialContext
	c.Transport = tr
	return c
}
