package authz

import (
	"context"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/google/go-cmp/cmp"
	"k8s.io/apiserver/pkg/authentication/user"

	"github.com/kubefrontdoor/frontdoor/envoy"
	"github.com/kubefrontdoor/frontdoor/policy"
)

// forwardingTable is testTable with the given forwarding mode and
// front-proxy settings.
func forwardingTable(caPEM []byte, mode string, fp *policy.FrontProxy) *policy.Table {
	t := testTable(caPEM)
	t.Clusters["a"].Forwarding = mode
	t.Clusters["a"].FrontProxy = fp
	return t
}

// In RequestHeader mode the identity goes upstream as kube-apiserver's
// front-proxy headers, with the same fields, order and extra-key escaping
// as impersonation, and no Impersonate-* at all; the client's own copies
// of either are removed.
func TestRequestHeaderForwarding(t *testing.T) {
	ca := newTestCA(t, "client-ca")
	tp := newTestPipeline(t, ca)
	tp.SetPolicy(forwardingTable(ca.CertPEM, policy.ForwardingRequestHeader, nil))
	der, cert := ca.issue(t, clientCert{cn: "jane", orgs: []string{"dev", "ops"}})
	d := tp.Check(context.Background(), &Request{
		Cluster: "a", Method: "GET", Path: "/api/v1/pods", PeerCertificate: cert,
		Headers: map[string]string{"x-remote-user": "admin", "x-remote-uid": "0"},
	})
	if !d.Allowed() {
		t.Fatalf("decision = %s", d.Outcome)
	}
	want := []Header{
		{Name: "X-Remote-User", Value: "jane"},
		{Name: "X-Remote-Group", Value: "dev"},
		{Name: "X-Remote-Group", Value: "ops"},
		{Name: "X-Remote-Extra-authentication.kubernetes.io%2fcredential-id", Value: credentialID(der)},
		{Name: envoy.HeaderRule, Value: "default"},
	}
	if diff := cmp.Diff(want, d.SetHeaders); diff != "" {
		t.Errorf("set (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"authorization", "x-remote-uid", "x-remote-user"}, d.RemoveHeaders); diff != "" {
		t.Errorf("remove (-want +got):\n%s", diff)
	}

	// ext_authz: the X-Remote-* fields go to the identity filter (one field
	// per value), never to ext_authz's own header mutations, which would
	// comma-join the groups and be undone by headers_to_remove.
	resp := decisionToCheckResponse(&d)
	for _, h := range resp.GetOkResponse().GetHeaders() {
		if isIdentityHeader(h.GetHeader().GetKey()) {
			t.Errorf("identity header %s is an ext_authz mutation", h.GetHeader().GetKey())
		}
	}
	if got := identityFields(t, resp); len(got) != 2*4 || got[0] != "X-Remote-User" || got[1] != "jane" {
		t.Errorf("identity metadata = %v", got)
	}
}

func identityFields(t *testing.T, resp *authv3.CheckResponse) []string {
	t.Helper()
	var out []string
	for _, v := range resp.GetDynamicMetadata().GetFields()[envoy.MetadataKeyIdentityHeaders].GetListValue().GetValues() {
		out = append(out, v.GetStringValue())
	}
	return out
}

// Both modes forward the same fields under their own names.
func TestForwardingModesCarryTheSameFields(t *testing.T) {
	id, err := newIdentity(saInfo())
	if err != nil {
		t.Fatal(err)
	}
	imp, rh := id.headers[forwardImpersonation], id.headers[forwardRequestHeader]
	if len(imp) != len(rh) || len(imp) < 6 {
		t.Fatalf("impersonation %v, requestheader %v", imp, rh)
	}
	rename := map[string]string{"Impersonate-User": "X-Remote-User", "Impersonate-Uid": "X-Remote-Uid", "Impersonate-Group": "X-Remote-Group"}
	for i := range imp {
		wantName := rename[imp[i].Name]
		if wantName == "" {
			wantName = "X-Remote-Extra-" + imp[i].Name[len("Impersonate-Extra-"):]
		}
		if rh[i].Name != wantName || rh[i].Value != imp[i].Value {
			t.Errorf("field %d: %v, want %s=%s (from %v)", i, rh[i], wantName, imp[i].Value, imp[i])
		}
	}
}

func saInfo() *user.DefaultInfo {
	extra := map[string][]string{}
	for k, v := range saUser.Extra {
		extra[k] = v
	}
	return &user.DefaultInfo{Name: saUser.Username, UID: saUser.UID, Groups: saUser.Groups, Extra: extra}
}
