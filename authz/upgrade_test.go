package authz

import (
	"context"
	"strings"
	"testing"
)

// An Upgrade header takes Envoy's upgrade route, past every dispatch-policy
// limit: the pipeline lets it through only where kube-apiserver upgrades,
// and refuses the rest with a 400 Status naming why.
func TestUpgradeOnlyWhereTheApiserverUpgrades(t *testing.T) {
	ca := newTestCA(t, "client-ca")
	tp := newTestPipeline(t, ca)
	tp.SetPolicy(testTable(ca.CertPEM))
	_, cert := ca.issue(t, clientCert{cn: "jane"})
	for _, tt := range []struct {
		method, path, upgrade string
		allowed               bool
	}{
		{"GET", "/api/v1/namespaces/default/configmaps", "", true},
		{"GET", "/api/v1/namespaces/default/configmaps", "SPDY/3.1", false},
		{"GET", "/api/v1/namespaces/default/configmaps", "websocket", false},
		{"GET", "/api/v1/pods", "SPDY/3.1", false},
		{"GET", "/api/v1/namespaces/default/pods/web-0", "websocket", false},
		{"GET", "/api/v1/namespaces/default/pods/web-0/log", "SPDY/3.1", false},
		{"GET", "/api/v1/namespaces/default/pods/web-0/status", "websocket", false},
		{"POST", "/api/v1/namespaces/default/configmaps", "SPDY/3.1", false},
		{"GET", "/healthz", "websocket", false},
		// A watch upgrades to a WebSocket only; with SPDY it would be a
		// plain watch (sendInitialEvents: a list) past its limits.
		{"GET", "/api/v1/namespaces/default/configmaps?watch=true", "websocket", true},
		{"GET", "/api/v1/namespaces/default/configmaps?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan", "SPDY/3.1", false},
		{"POST", "/api/v1/namespaces/default/pods/web-0/exec?command=ls&stdout=true", "SPDY/3.1", true},
		{"GET", "/api/v1/namespaces/default/pods/web-0/exec?command=ls&stdout=true", "websocket", true},
		{"POST", "/api/v1/namespaces/default/pods/web-0/attach?stdout=true", "SPDY/3.1", true},
		{"POST", "/api/v1/namespaces/default/pods/web-0/portforward", "SPDY/3.1", true},
		{"GET", "/api/v1/namespaces/default/pods/web-0/proxy/ws", "websocket", true},
		{"GET", "/api/v1/namespaces/default/services/web:80/proxy/ws", "websocket", true},
		{"GET", "/api/v1/nodes/n1/proxy/ws", "websocket", true},
		{"GET", "/api/v1/namespaces/default/configmaps/x/proxy", "websocket", false},
		// Aggregated APIs define their own connect subresources.
		{"GET", "/apis/subresources.kubevirt.io/v1/namespaces/default/virtualmachineinstances/vm/console", "websocket", true},
		{"PUT", "/apis/apps/v1/namespaces/default/deployments/web/scale", "SPDY/3.1", false},
		{"GET", "/apis/apps/v1/namespaces/default/deployments/web", "websocket", false},
	} {
		headers := map[string]string{}
		if tt.upgrade != "" {
			headers["upgrade"] = tt.upgrade
			headers["connection"] = "Upgrade"
		}
		d := tp.Check(context.Background(), &Request{Cluster: "a", Method: tt.method, Path: tt.path, PeerCertificate: cert, Headers: headers})
		if d.Allowed() != tt.allowed {
			t.Errorf("%s %s Upgrade %q: %s %d, want allowed=%v", tt.method, tt.path, tt.upgrade, d.Outcome, d.Code, tt.allowed)
			continue
		}
		if !tt.allowed && (d.Code != 400 || d.Outcome != Invalid || !strings.Contains(string(d.Body), `"reason":"BadRequest"`) ||
			!strings.Contains(string(d.Body), "cannot be upgraded")) {
			t.Errorf("%s %s Upgrade %q: refused with %d %s %s", tt.method, tt.path, tt.upgrade, d.Code, d.Outcome, d.Body)
		}
	}
}
