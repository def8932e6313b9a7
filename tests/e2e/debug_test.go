package e2e

import (
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kubefrontdoor/frontdoor/tests/sandbox"
)

// frontdoor's /debug/config shows the config it serves (statuses, policy,
// xDS resources) without any key material.
func TestDebugConfigIsServedRedacted(t *testing.T) {
	ctx := setup(t, time.Minute)
	url := strings.TrimSuffix(sb.FrontdoorMetricsURL, "/metrics") + "/debug/config"
	body, err := sandbox.Get(ctx, http.DefaultClient, url)
	if err != nil {
		t.Fatal(err)
	}
	var dump struct {
		Version  string `json:"version"`
		Statuses []struct {
			Name string `json:"Name"`
		} `json:"statuses"`
		Policy    map[string]map[string]any    `json:"policy"`
		Resources map[string][]json.RawMessage `json:"resources"`
	}
	if err := json.Unmarshal([]byte(body), &dump); err != nil {
		t.Fatalf("decoding %s: %v\n%s", url, err, body)
	}
	var names []string
	for _, st := range dump.Statuses {
		names = append(names, st.Name)
	}
	if dump.Version == "" || !slices.Contains(names, sandbox.ClusterName) ||
		dump.Policy[sandbox.ClusterName] == nil || len(dump.Resources["Listener"]) != 1 {
		t.Errorf("dump lacks the sandbox's config: version %q, statuses %+v, policy %v, %d listeners",
			dump.Version, dump.Statuses, dump.Policy, len(dump.Resources["Listener"]))
	}
	for _, name := range []string{"gateway-serving.key", "gateway-client.key"} {
		b, err := os.ReadFile(filepath.Join(sb.Dir, "pki", name))
		if err != nil {
			t.Fatal(err)
		}
		block, _ := pem.Decode(b)
		for _, enc := range []string{
			strings.Split(string(b), "\n")[1][:40],               // a PEM line
			base64.StdEncoding.EncodeToString(b)[:40],            // inline bytes in JSON
			base64.StdEncoding.EncodeToString(block.Bytes)[8:48], // the DER
			"PRIVATE KEY-----",                                   // a PEM key (the block type alone may be named)
		} {
			if strings.Contains(body, enc) {
				t.Errorf("/debug/config contains (part of) %s", name)
			}
		}
	}
}
