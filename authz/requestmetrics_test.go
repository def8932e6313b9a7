package authz

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestRequestMetrics(t *testing.T) {
	ca := newTestCA(t, "client-ca")
	foreign := newTestCA(t, "foreign")
	tp := newTestPipeline(t, ca)
	_, cert := ca.issue(t, clientCert{cn: "jane", orgs: []string{"dev"}})
	_, bad := foreign.issue(t, clientCert{cn: "mallory"})
	check := func(method, path, cert string) {
		tp.Check(context.Background(), &Request{Cluster: "a", Method: method, Path: path, PeerCertificate: cert})
	}
	for range 3 {
		check("GET", "/api/v1/namespaces/default/pods", cert) // list pods
	}
	check("GET", "/apis/example.com/v1/widgets", cert)             // a CRD: other
	check("GET", "/healthz", cert)                                 // nonresource
	check("BREW", "/api/v1/namespaces/default/configmaps/x", cert) // unknown verb: other
	check("GET", "/api/v1/namespaces/default/secrets", "")         // no credential
	check("GET", "/api/v1/namespaces/default/secrets", bad)        // foreign CA

	want := `
# HELP frontdoor_requests_total Requests decided by the request service, by cluster, rule (the dispatch policy, <policy>.long-running or default; the shedding policy when rejected; none when denied), verb, resource (well-known resources; other beyond; nonresource for non-resource URLs) and decision.
# TYPE frontdoor_requests_total counter
frontdoor_requests_total{cluster="a",decision="allowed",resource="configmaps",rule="default",verb="other"} 1
frontdoor_requests_total{cluster="a",decision="allowed",resource="nonresource",rule="default",verb="get"} 1
frontdoor_requests_total{cluster="a",decision="allowed",resource="other",rule="default",verb="list"} 1
frontdoor_requests_total{cluster="a",decision="allowed",resource="pods",rule="default",verb="list"} 3
frontdoor_requests_total{cluster="a",decision="unauthenticated",resource="secrets",rule="none",verb="list"} 2
# HELP frontdoor_authn_attempts_total Authenticator runs, by method (x509, token, websocket_token, jwt, websocket_jwt; anonymous when a request without credentials is forwarded as system:anonymous) and result (success, no_credential, failure).
# TYPE frontdoor_authn_attempts_total counter
frontdoor_authn_attempts_total{method="x509",result="failure"} 1
frontdoor_authn_attempts_total{method="x509",result="no_credential"} 1
frontdoor_authn_attempts_total{method="x509",result="success"} 6
`
	if err := testutil.GatherAndCompare(tp.reg, strings.NewReader(want), "frontdoor_requests_total", "frontdoor_authn_attempts_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(tp.reqMetrics.authnLatency); n != 1 {
		t.Errorf("authn latency series = %d, want 1 (x509)", n)
	}
}
