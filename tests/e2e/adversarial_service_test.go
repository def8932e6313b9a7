package e2e

import (
	"context"
	"net/http"
	"sync"
	"testing"
)

// Hostile requests against the request service itself (issue 14, item 4):
// a flood of random bearer tokens, each of which would cost a TokenReview.

func init() { registerAdversarial(serviceAdversarialCases) }

// tokenFlood is how many distinct random tokens the flood case sends, and
// over how many concurrent streams.
const (
	tokenFlood        = 400
	tokenFloodWorkers = 64
)

// serviceAdversarialCases: a random-token flood.
func serviceAdversarialCases(t *testing.T, ctx context.Context, env *advEnv) []advCase {
	return []advCase{{
		// Every random token is refused: 401 once reviewed, or 503 with
		// Retry-After when the cluster's reviews are all in flight (never
		// a 401 for a token nobody reviewed, never a crash); a valid token
		// during and after the flood still authenticates; the marked
		// request itself never reaches an apiserver.
		name: "random bearer token flood is refused, bounded, and locks nobody out",
		send: func(t *testing.T, ctx context.Context, marker string) []int {
			var (
				mu     sync.Mutex
				counts = map[int]int{}
				bad    []string
				wg     sync.WaitGroup
			)
			// No client certificate (x509 would authenticate first), HTTP/2:
			// many streams on few connections, as a flood would come.
			anon2 := httpClient(t, "", nil, nil)
			defer anon2.CloseIdleConnections()
			jobs := make(chan string)
			for range tokenFloodWorkers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for tok := range jobs {
						code, hdr, body := do(t, ctx, anon2, http.MethodGet, sb.GatewayURL+"/api/v1/namespaces?flood="+marker+"x", bearer(tok), nil)
						mu.Lock()
						counts[code]++
						switch {
						case code == http.StatusUnauthorized:
						case code == http.StatusServiceUnavailable && hdr.Get("Retry-After") != "":
						default:
							if len(bad) < 5 {
								bad = append(bad, string(body))
							}
						}
						mu.Unlock()
					}
				}()
			}
			// The legitimate client keeps working during the flood.
			legit := make(chan int, 1)
			go func() {
				code, _, _ := do(t, ctx, env.anon, http.MethodGet, sb.GatewayURL+"/api/v1/namespaces/default/configmaps?limit=1", bearer(env.saToken), nil)
				legit <- code
			}()
			for range tokenFlood {
				jobs <- "flood-" + uniq() + uniq()
			}
			close(jobs)
			wg.Wait()
			t.Logf("flood of %d random tokens: %v", tokenFlood, counts)
			if len(bad) > 0 || counts[http.StatusUnauthorized]+counts[http.StatusServiceUnavailable] != tokenFlood {
				t.Errorf("flood answers %v, want only 401 and 503 with Retry-After; bodies %q", counts, bad)
			}
			// The service account may not list configmaps: 403 from the
			// apiserver means it authenticated.
			if code := <-legit; code == http.StatusUnauthorized {
				t.Errorf("a valid token during the flood got %d, want it authenticated", code)
			}
			code, _, _ := do(t, ctx, env.anon, http.MethodGet, sb.GatewayURL+"/api/v1/namespaces/default/configmaps?limit=1", bearer(env.saToken), nil)
			if code == http.StatusUnauthorized || code >= 500 {
				t.Errorf("a valid token after the flood got %d, want it authenticated", code)
			}
			return env.get(env.anon, bearer("flood-"+uniq()))(t, ctx, marker)
		},
		want: []int{http.StatusUnauthorized},
	}}
}
