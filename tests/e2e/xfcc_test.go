package e2e

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kubefrontdoor/frontdoor/tests/sandbox"
)

// A client cannot hand the gateway someone else's certificate in an
// x-forwarded-client-cert header (in ExtProc mode the request service reads
// the certificate from that header, which only Envoy may set): without a
// TLS client certificate it gets 401, with its own it stays itself.
func TestForwardedClientCertFromClientGainsNothing(t *testing.T) {
	ctx := setup(t, time.Minute)
	// The admin's certificate, as Envoy would encode it (%20, never '+').
	adminCert := strings.ReplaceAll(url.QueryEscape(string(sb.AdminCertPEM)), "+", "%20")
	spoof := http.Header{"X-Forwarded-Client-Cert": {`Hash=00;Cert="` + adminCert + `"`}}

	anonymous, err := sb.HTTPClient(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, sb.GatewayURL+"/api/v1/namespaces", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = spoof.Clone()
	resp, err := anonymous.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("no client certificate, spoofed x-forwarded-client-cert: %d, want 401", resp.StatusCode)
	}

	mallory := newUser("mallory-xfcc", "dev")
	want := whoami(t, ctx, sandbox.Clientset(t, mallory.direct()))
	got := whoami(t, ctx, sandbox.Clientset(t, withHeaders(mallory.gateway(), spoof)))
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("whoami with a spoofed x-forwarded-client-cert (-mallory +got):\n%s", diff)
	}
}
