package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubefrontdoor/frontdoor/tests/sandbox"
)

// fanoutCluster is an UpstreamCluster over the three replicas with 50
// dispatch policies and a health-check path of its own (a query marks it),
// so its probes can be told apart in the apiservers' audit logs from every
// other cluster's.
const (
	fanoutCluster  = "hcfanout"
	fanoutPolicies = 50
	fanoutPath     = "/readyz?probe=" + fanoutCluster
	// fanoutInterval is the spec's default interval, so the numbers read
	// as what a cluster left at its defaults costs.
	fanoutInterval = 5 * time.Second
)

var fanoutOnce struct {
	sync.Once
	err error
}

func ensureFanoutCluster(t *testing.T, ctx context.Context) {
	t.Helper()
	extra := fmt.Sprintf("  healthCheck: {path: %q, interval: %s}\n  dispatchPolicies:\n", fanoutPath, fanoutInterval)
	for i := range fanoutPolicies {
		extra += fmt.Sprintf("  - name: p%02d\n    rules: [{verbs: [\"*\"], apiGroups: [\"*\"], resources: [\"*\"], users: [hcfanout-%02d]}]\n", i, i)
	}
	admin := adminUser()
	ensureCluster(t, ctx, &fanoutOnce.Once, &fanoutOnce.err, fanoutCluster, sandbox.ServersYAML(sb.ReplicaURLs)+extra, &admin, http.StatusOK)
}

// The /readyz probes each apiserver replica receives do not grow with the
// number of dispatch policies: a cluster with 50 policies is probed about
// once per interval per replica (one prober in frontdoor serve), not once
// per policy cluster per Envoy. Counted from the apiservers' side, in
// their audit logs (the sandbox's policy records every request, non-resource
// URLs included). The test logs the rate per replica per minute.
func TestHealthProbesDoNotMultiply(t *testing.T) {
	ctx := setup(t, 3*time.Minute)
	ensureFanoutCluster(t, ctx)
	// Let every health checker settle into its interval.
	time.Sleep(fanoutInterval + time.Second)
	const window = 30 * time.Second
	from := time.Now()
	time.Sleep(window)
	to := time.Now()
	time.Sleep(time.Second) // the audit backend writes asynchronously

	// At most one probe per interval (and one more at the window's edges),
	// at least one per interval missed (probes are not skipped).
	maxProbes := int(window/fanoutInterval) + 1
	minProbes := int(window/fanoutInterval) - 1
	for i := range sb.ReplicaURLs {
		n, err := countAuditedRequests(i+1, fanoutPath, from, to)
		if err != nil {
			t.Fatal(err)
		}
		perMinute := float64(n) * float64(time.Minute) / float64(window)
		t.Logf("replica %d: %d probes of %s in %s with %d dispatch policies: %.0f per minute",
			i+1, n, fanoutPath, window, fanoutPolicies, math.Round(perMinute))
		if n > maxProbes || n < minProbes {
			t.Errorf("replica %d: %d probes in %s at a %s interval, want %d to %d (one prober, whatever the number of policies)",
				i+1, n, window, fanoutInterval, minProbes, maxProbes)
		}
	}
}

// countAuditedRequests counts the requests for exactly requestURI that
// replica i (1-based) audited as received in [from, to).
func countAuditedRequests(i int, requestURI string, from, to time.Time) (int, error) {
	data, err := os.ReadFile(filepath.Join(sb.Dir, "logs", fmt.Sprintf("audit-%d.log", i)))
	if err != nil {
		return 0, err
	}
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.Contains(line, []byte(strings.TrimPrefix(requestURI, "/readyz"))) {
			continue
		}
		var e struct {
			Stage      string    `json:"stage"`
			RequestURI string    `json:"requestURI"`
			Received   time.Time `json:"requestReceivedTimestamp"`
		}
		if json.Unmarshal(line, &e) != nil || e.RequestURI != requestURI || e.Stage != "ResponseComplete" {
			continue
		}
		if !e.Received.Before(from) && e.Received.Before(to) {
			n++
		}
	}
	return n, sc.Err()
}
