package main

import (
	"strings"
	"testing"
)

// TestRateLimitAddressFlag: --ratelimit-address reaches the translator, and
// a malformed one stops serve at start.
func TestRateLimitAddressFlag(t *testing.T) {
	f, err := parseServeFlags([]string{"--config-dir", "x", "--ratelimit-address", "ratelimit.frontdoor-system.svc:8081"})
	if err != nil {
		t.Fatal(err)
	}
	if got := translatorOptions(f).RateLimitAddress; got != "ratelimit.frontdoor-system.svc:8081" {
		t.Errorf("RateLimitAddress = %q", got)
	}
	for _, bad := range []string{"8081", "ratelimit", ":8081", "host:0", "host:70000", "host:grpc"} {
		if _, err := parseServeFlags([]string{"--config-dir", "x", "--ratelimit-address", bad}); err == nil {
			t.Errorf("--ratelimit-address %q: no error", bad)
		}
	}
}

const checkGlobalCluster = `apiVersion: frontdoor.dev/v1alpha1
kind: UpstreamCluster
metadata: {name: global, generation: 1}
spec:
  servers: [{endpoint: "https://10.0.0.1:6443"}]
  clientConfig: {secretRef: {namespace: fd, name: upstream}}
  secureServing: {secretRef: {namespace: fd, name: serving}}
  flowControl:
    flowControlSchemas:
    - {name: shared, tokenBucket: {qps: 20, scope: Global, failureMode: Closed}}
  dispatchPolicies:
  - {name: all, rules: [{verbs: ["*"], nonResourceURLs: ["*"]}], flowControlSchemaName: shared}
`

// TestCheckGlobalRateLimit: frontdoor check judges a Global token bucket as
// the serve it is given would: rejected without --ratelimit-address,
// accepted with it.
func TestCheckGlobalRateLimit(t *testing.T) {
	dir := writeCheckDir(t, map[string]string{"global.yaml": checkGlobalCluster})
	var out strings.Builder
	if err := runCheck([]string{"--config-dir", dir}, &out); err == nil || !strings.Contains(out.String(), "InvalidFlowControl") ||
		!strings.Contains(out.String(), "--ratelimit-address") {
		t.Errorf("without --ratelimit-address: err %v, output:\n%s", err, out.String())
	}
	out.Reset()
	if err := runCheck([]string{"--config-dir", dir, "--ratelimit-address", "127.0.0.1:8081"}, &out); err != nil {
		t.Errorf("with --ratelimit-address: %v, output:\n%s", err, out.String())
	}
}
