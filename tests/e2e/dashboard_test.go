package e2e

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kubefrontdoor/frontdoor/tests/sandbox"
)

// Every frontdoor_ and envoy_ series the Grafana dashboard queries is one
// the running gateway exports, so no panel stays empty because of a typo
// or a renamed metric. (frontdoor_extproc_* exist only with ExtProc.)
func TestDashboardQueriesExistingMetrics(t *testing.T) {
	ctx := setup(t, time.Minute)
	root, err := sandbox.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dash, err := os.ReadFile(filepath.Join(root, "manifests", "dashboards", "frontdoor.json"))
	if err != nil {
		t.Fatal(err)
	}
	// Some traffic so that every labelled series has a child.
	if _, err := sandbox.Clientset(t, adminUser().gateway()).Discovery().ServerVersion(); err != nil {
		t.Fatal(err)
	}
	// Per-server health appears after frontdoor's first successful poll of
	// Envoy's admin API (every 2 s).
	var fd string
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := poll(wctx, 200*time.Millisecond, func() (bool, error) {
		fd, err = sb.FrontdoorMetrics(wctx)
		return err == nil && strings.Contains(fd, "# TYPE frontdoor_upstream_server_healthy "), nil
	}); err != nil {
		t.Logf("frontdoor_upstream_server_healthy not exported within 10 s: %v", err)
	}
	if fd == "" {
		t.Fatalf("frontdoor /metrics: %v", err)
	}
	envoyText, err := sb.EnvoyAdmin(ctx, "/stats/prometheus")
	if err != nil {
		t.Fatal(err)
	}
	exported := fd + envoyText
	// A metric name is followed by its selector or range (label names, in
	// "by (...)", are not).
	var names []string
	for _, m := range regexp.MustCompile(`\b((?:frontdoor|envoy)_[a-z0-9_]+)[{\[]`).FindAllStringSubmatch(string(dash), -1) {
		names = append(names, m[1])
	}
	slices.Sort(names)
	for _, name := range slices.Compact(names) {
		switch {
		case strings.HasPrefix(name, "frontdoor_extproc_") && sandbox.RequestServiceFromEnv() != "ExtProc":
			continue
		case name == "frontdoor_config_errors_total" || name == "frontdoor_xds_nacks_total":
			continue // exported once the first error happens
		}
		base := name
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			base = strings.TrimSuffix(base, suffix)
		}
		if !strings.Contains(exported, "# TYPE "+base+" ") {
			t.Errorf("dashboard queries %s, which neither frontdoor nor Envoy exports", name)
		}
	}
}
