package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	authenticationv1 "k8s.io/api/authentication/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"

	"github.com/kubefrontdoor/frontdoor/tests/sandbox"
)

// Identity forwarding in both modes, and front-proxy clients inbound.
//
// Two UpstreamClusters of the test's own, over the sandbox's replicas and
// Secrets, differ only in spec.clientConfig.identityForwarding:
// "fwd-impersonation" (Impersonation) and "fwd-requestheader"
// (RequestHeader). Both accept front proxies (spec.authentication.
// requestHeader: the sandbox CA, allowed name sandbox.FrontProxyUser), as
// the replicas themselves do, so a front-proxy client can be asked for
// directly too. The sandbox's own cluster stays as it is: the rest of the
// suite keeps running in its mode.

// forwardingCluster is one of the two clusters.
type forwardingCluster struct {
	name, mode string
}

func (c forwardingCluster) sni() string { return c.name + "." + sandbox.TestDomain }

var forwardingClusters = []forwardingCluster{
	{name: "fwd-impersonation", mode: "Impersonation"},
	{name: "fwd-requestheader", mode: "RequestHeader"},
}

const forwardingClusterTemplate = `apiVersion: frontdoor.dev/v1alpha1
kind: UpstreamCluster
metadata:
  name: %[1]s
spec:
  servers:
%[2]s  clientConfig:
    secretRef: {namespace: %[3]s, name: upstream}
    identityForwarding: %[4]s
  secureServing:
    serverNames: [%[5]s]
    secretRef: {namespace: %[3]s, name: serving}
    clientCASecretRef: {namespace: %[3]s, name: client-ca}
  authentication:
    requestHeader:
      clientCASecretRef: {namespace: %[3]s, name: client-ca}
      allowedNames: [%[6]s]
%[7]s`

var forwardingOnce struct {
	sync.Once
	err error
}

// ensureForwardingClusters writes both clusters (once per package) and
// waits until each serves front proxies.
func ensureForwardingClusters(t *testing.T, ctx context.Context) {
	t.Helper()
	forwardingOnce.Do(func() {
		for _, c := range forwardingClusters {
			uc := fmt.Sprintf(forwardingClusterTemplate, c.name, sandbox.ServersYAML(sb.ReplicaURLs), sandbox.SecretNamespace,
				c.mode, c.sni(), sandbox.FrontProxyUser, sb.RequestServiceField())
			path := filepath.Join(sb.Dir, "config", "upstreamcluster-"+c.name+".yaml")
			if forwardingOnce.err = os.WriteFile(path, []byte(uc), 0o644); forwardingOnce.err != nil {
				return
			}
		}
		// A probe only a front-proxy cluster answers with the asserted user
		// (an unknown SNI falls to the sandbox's own cluster), once its
		// servers passed their first health check.
		proxyCert, proxyKey := sb.ClientCert(sandbox.FrontProxyUser)
		probe := credential{certPEM: proxyCert, keyPEM: proxyKey, headers: http.Header{"X-Remote-User": {"probe"}}}
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		for _, c := range forwardingClusters {
			err := poll(wctx, 200*time.Millisecond, func() (bool, error) {
				// A new connection each time: an open one stays on the
				// filter chain it was accepted by.
				client := httpClient(t, c.sni(), probe.certPEM, probe.keyPEM)
				defer client.CloseIdleConnections()
				code, _, body := do(t, wctx, client, http.MethodPost, sb.GatewayURL+"/apis/authentication.k8s.io/v1/selfsubjectreviews",
					probe.header(), []byte(`{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}`))
				var r authenticationv1.SelfSubjectReview
				return code == http.StatusCreated && json.Unmarshal(body, &r) == nil && r.Status.UserInfo.Username == "probe", nil
			})
			if err != nil {
				forwardingOnce.err = fmt.Errorf("UpstreamCluster %q not serving front proxies: %w", c.name, err)
				return
			}
		}
	})
	if forwardingOnce.err != nil {
		t.Fatal(forwardingOnce.err)
	}
}

// credential is one way of proving who one is: a client certificate plus
// headers (a front proxy's X-Remote-*, or a bearer token).
type credential struct {
	name            string
	certPEM, keyPEM []byte
	token           string
	headers         http.Header
}

// config is a client-go config presenting c to server, with TLS server
// name sni when set.
func (c credential) config(server, sni string) *rest.Config {
	cfg := sb.RESTConfig(server, c.certPEM, c.keyPEM)
	cfg.ServerName = sni
	cfg.BearerToken = c.token
	if c.headers != nil {
		cfg = withHeaders(cfg, c.headers)
	}
	return cfg
}

// header is the credential as raw request headers (the certificate goes
// on the connection).
func (c credential) header() http.Header {
	h := http.Header{}
	for k, vs := range c.headers {
		h[k] = vs
	}
	if c.token != "" {
		h.Set("Authorization", "Bearer "+c.token)
	}
	return h
}

// identityCredentials are the three kinds of client the bars name: an x509
// user with groups, a ServiceAccount token bound to a pod (uid and extras),
// and a front proxy naming a user with uid, groups and extras (an extra
// key that needs escaping, an extra with two values); and an x509 admin
// impersonating someone (kubectl --as), whose final user is what is
// forwarded.
func identityCredentials(t *testing.T, ctx context.Context) []credential {
	t.Helper()
	id := uniq()
	alice := newUser("alice-"+id, "dev", "ops")
	sa := "fwd-" + id
	serviceAccount(t, ctx, sa)
	pod := podFor(t, ctx, "fwd-"+id, sa)
	proxyCert, proxyKey := sb.ClientCert(sandbox.FrontProxyUser)
	admin := adminUser()
	return []credential{
		// kubectl --as: the gateway authorizes the impersonation, then
		// forwards the final user in the cluster's mode.
		{name: "x509 admin --as", certPEM: admin.certPEM, keyPEM: admin.keyPEM, headers: http.Header{
			"Impersonate-User":  {"as-" + id},
			"Impersonate-Group": {"as-group"},
		}},
		{name: "x509", certPEM: alice.certPEM, keyPEM: alice.keyPEM},
		{name: "service account token", token: tokenFor(t, ctx, sa, pod)},
		{name: "front proxy", certPEM: proxyCert, keyPEM: proxyKey, headers: http.Header{
			"X-Remote-User":                     {"proxied-" + id},
			"X-Remote-Uid":                      {"uid-" + id},
			"X-Remote-Group":                    {"team-a", "team-b"},
			"X-Remote-Extra-Example.org%2fTeam": {"blue"},
			"X-Remote-Extra-Scopes":             {"read", "write"},
		}},
	}
}

// `kubectl auth whoami` (a SelfSubjectReview) through the gateway equals
// the same credential's whoami straight at a replica, for x509 users,
// ServiceAccount tokens and front-proxy clients, in both forwarding modes:
// user, uid, groups and extras.
func TestWhoamiEqualsDirectInBothForwardingModes(t *testing.T) {
	ctx := setup(t, 2*time.Minute)
	ensureForwardingClusters(t, ctx)
	for _, cred := range identityCredentials(t, ctx) {
		direct := whoami(t, ctx, sandbox.Clientset(t, cred.config(sb.ReplicaURLs[0], "")))
		if direct.Username == sandbox.FrontProxyUser || direct.Username == "" {
			t.Fatalf("%s: direct whoami is %q (replicas without the requestheader flags?)", cred.name, direct.Username)
		}
		for _, c := range forwardingClusters {
			t.Run(cred.name+"/"+c.mode, func(t *testing.T) {
				through := whoami(t, ctx, sandbox.Clientset(t, cred.config(sb.GatewayURL, c.sni())))
				if diff := cmp.Diff(direct, through); diff != "" {
					t.Errorf("whoami through %s differs from direct (-direct +gateway):\n%s", c.name, diff)
				}
			})
		}
	}
}

// In RequestHeader mode every replica's audit log names the real user
// (with its uid, groups and extras) as user, with no impersonatedUser; in
// Impersonation mode the user is the gateway and the real user is the
// impersonatedUser. Six requests per credential and mode reach all three
// replicas (round robin).
func TestAuditUserInBothForwardingModes(t *testing.T) {
	ctx := setup(t, 2*time.Minute)
	ensureForwardingClusters(t, ctx)
	for _, cred := range identityCredentials(t, ctx) {
		direct := whoami(t, ctx, sandbox.Clientset(t, cred.config(sb.ReplicaURLs[0], "")))
		for _, c := range forwardingClusters {
			t.Run(cred.name+"/"+c.mode, func(t *testing.T) {
				marker := "fwd-audit-" + uniq()
				client := httpClient(t, c.sni(), cred.certPEM, cred.keyPEM)
				defer client.CloseIdleConnections()
				for range 2 * len(sb.ReplicaURLs) {
					code, _, body := do(t, ctx, client, http.MethodGet, sb.GatewayURL+"/api/v1/namespaces/default/configmaps/"+marker, cred.header(), nil)
					if code != http.StatusNotFound && code != http.StatusForbidden {
						t.Fatalf("GET through %s: %d %s", c.name, code, body)
					}
				}
				events := waitAuditEvents(t, marker, 2*len(sb.ReplicaURLs))
				replicas := map[int]bool{}
				for _, e := range events {
					replicas[e.Replica] = true
					var got authenticationv1.UserInfo
					switch c.mode {
					case "RequestHeader":
						if e.ImpersonatedUser != nil {
							t.Errorf("replica %d: impersonatedUser %q in RequestHeader mode", e.Replica, e.ImpersonatedUser.Username)
						}
						got = e.User
					default:
						if e.User.Username != sandbox.GatewayUser || e.ImpersonatedUser == nil {
							t.Errorf("replica %d: user %q impersonating %v, want the gateway impersonating", e.Replica, e.User.Username, e.ImpersonatedUser)
							continue
						}
						got = *e.ImpersonatedUser
					}
					if diff := cmp.Diff(direct, got, cmpopts.EquateEmpty()); diff != "" {
						t.Errorf("replica %d audits (-direct whoami +audit):\n%s", e.Replica, diff)
					}
				}
				if len(replicas) != len(sb.ReplicaURLs) {
					t.Errorf("audit events on replicas %v, want all %d", replicas, len(sb.ReplicaURLs))
				}
			})
		}
	}
}

// waitAuditEvents waits (briefly) for n audit events marked marker.
func waitAuditEvents(t *testing.T, marker string, n int) []auditEvent {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		events := auditEvents(t, marker)
		if len(events) >= n || time.Now().After(deadline) {
			if len(events) < n {
				t.Errorf("%d audit events for %s, want %d", len(events), marker, n)
			}
			return events
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Only a front proxy may assert X-Remote-*: on clusters that accept front
// proxies (whose edge keeps those headers for the request service), an
// ordinary x509 client, a bearer-token client, a certificate with a name
// that is not allowed, and a client without credentials all send
// X-Remote-User/Group/Uid/Extra-* naming an admin, and each is itself
// (whoami equals its direct one) or refused, never the admin.
func TestRemoteHeadersFromOthersAreStripped(t *testing.T) {
	ctx := setup(t, 2*time.Minute)
	ensureForwardingClusters(t, ctx)
	spoof := http.Header{
		"X-Remote-User":         {"sandbox-admin"},
		"X-Remote-Group":        {"system:masters"},
		"X-Remote-Uid":          {"0"},
		"X-Remote-Extra-Scopes": {"*"},
	}
	id := uniq()
	mallory := newUser("mallory-"+id, "dev")
	notProxy := newUser(sandbox.FrontProxyUser+"-not", "dev")
	sa := "spoof-" + id
	serviceAccount(t, ctx, sa)
	token := tokenFor(t, ctx, sa, nil)
	for _, cred := range []credential{
		{name: "x509 client", certPEM: mallory.certPEM, keyPEM: mallory.keyPEM, headers: spoof},
		{name: "certificate named unlike an allowed proxy", certPEM: notProxy.certPEM, keyPEM: notProxy.keyPEM, headers: spoof},
		{name: "bearer token", token: token, headers: spoof},
	} {
		plain := cred
		plain.headers = nil
		direct := whoami(t, ctx, sandbox.Clientset(t, plain.config(sb.ReplicaURLs[0], "")))
		for _, c := range forwardingClusters {
			t.Run(cred.name+"/"+c.mode, func(t *testing.T) {
				through := whoami(t, ctx, sandbox.Clientset(t, cred.config(sb.GatewayURL, c.sni())))
				if diff := cmp.Diff(direct, through); diff != "" {
					t.Errorf("whoami with spoofed X-Remote-* through %s (-itself +gateway):\n%s", c.name, diff)
				}
			})
		}
	}
	for _, c := range forwardingClusters {
		t.Run("no credential/"+c.mode, func(t *testing.T) {
			client := httpClient(t, c.sni(), nil, nil)
			defer client.CloseIdleConnections()
			code, _, body := do(t, ctx, client, http.MethodGet, sb.GatewayURL+"/api/v1/namespaces/kube-system/secrets", spoof, nil)
			if code != http.StatusUnauthorized {
				t.Errorf("X-Remote-* without a certificate through %s: %d %s, want 401", c.name, code, body)
			}
		})
	}
}

// exec is an upgrade: Envoy sends it over the HTTP/1.1 upgrade cluster,
// with the identity headers of the cluster's forwarding mode and, in
// RequestHeader mode, the front-proxy client certificate. In both modes an
// exec over SPDY and over WebSocket runs, and the replica that served it
// audits the client as in TestAuditUserInBothForwardingModes.
func TestExecInBothForwardingModes(t *testing.T) {
	ctx := setup(t, 2*time.Minute)
	streamingPod(t, ctx)
	ensureForwardingClusters(t, ctx)
	admin := adminUser()
	for _, c := range forwardingClusters {
		cfg := admin.gateway()
		cfg.ServerName = c.sni()
		for name, newExec := range execExecutors(t) {
			t.Run(c.mode+"/"+name, func(t *testing.T) {
				marker := "fwdexec" + uniq()
				ex, err := newExec(cfg, execURL(t, cfg, []string{"echo", marker}, false, false))
				if err != nil {
					t.Fatal(err)
				}
				var out bytes.Buffer
				if err := ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &out, Stderr: io.Discard}); err != nil || out.String() != marker+"\n" {
					t.Fatalf("exec echo through %s: %q, %v; want %q", c.name, out.String(), err, marker+"\n")
				}
				events := govAuditEvents(t, marker)
				if len(events) == 0 {
					t.Fatalf("no audit event of the exec %s", marker)
				}
				for _, e := range events {
					user, impersonated := e.User.Username, ""
					if e.ImpersonatedUser != nil {
						impersonated = e.ImpersonatedUser.Username
					}
					switch {
					case c.mode == "RequestHeader" && (user != admin.name || impersonated != ""):
						t.Errorf("replica %d audits the exec as %q impersonating %q, want %q itself", e.Replica, user, impersonated, admin.name)
					case c.mode == "Impersonation" && (user != sandbox.GatewayUser || impersonated != admin.name):
						t.Errorf("replica %d audits the exec as %q impersonating %q, want the gateway impersonating %q", e.Replica, user, impersonated, admin.name)
					}
				}
			})
		}
	}
}
