package controlplane

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kubefrontdoor/frontdoor/api/v1alpha1"
	"github.com/kubefrontdoor/frontdoor/tests/sandbox"
)

// trustClusterYAML is an UpstreamCluster on the sandbox's Secrets with the
// given servers (a YAML flow list), server names and extra spec lines.
func trustClusterYAML(name, servers, serverNames, servingSecret, extra string) string {
	return fmt.Sprintf(`apiVersion: frontdoor.dev/v1alpha1
kind: UpstreamCluster
metadata: {name: %[1]s}
spec:
  servers: %[2]s
  clientConfig:
    secretRef: {namespace: %[5]s, name: upstream}
  secureServing:
    serverNames: [%[3]s]
    secretRef: {namespace: %[5]s, name: %[4]s}
    clientCASecretRef: {namespace: %[5]s, name: client-ca}
  healthCheck: {interval: 1s, timeout: 1s, unhealthyThreshold: 1, healthyThreshold: 1}
%[6]s`, name, servers, serverNames, servingSecret, sandbox.SecretNamespace, extra)
}

func deleteOnCleanup(t *testing.T, kind string, names ...string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for _, n := range names {
			// --wait=false: the sandbox runs no namespace controller, so a
			// namespace never finishes terminating.
			args := []string{"delete", kind, n, "--ignore-not-found", "--wait=false"}
			if ns, name, ok := strings.Cut(n, "/"); ok {
				args = []string{"delete", kind, "-n", ns, name, "--ignore-not-found", "--wait=false"}
			}
			_, _ = sb.Kubectl(ctx, args...)
		}
	})
}

// servedCertCN is the CommonName of the certificate the gateway presents
// for SNI serverName (not verified: which chain answers is the question).
func servedCertCN(t *testing.T, serverName string) string {
	t.Helper()
	d := &tls.Dialer{Config: &tls.Config{ServerName: serverName, InsecureSkipVerify: true}} //nolint:gosec // reads which certificate is served
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", hostPort(sb.GatewayURL))
	if err != nil {
		t.Fatalf("TLS with SNI %s: %v", serverName, err)
	}
	defer c.Close()
	return c.(*tls.Conn).ConnectionState().PeerCertificates[0].Subject.CommonName
}

// TestNewerClusterCannotTakeOverServerNames: a new UpstreamCluster whose
// name sorts first and which copies a serving cluster's server names does
// not take them: the older cluster keeps serving them (its certificate
// answers the SNI, its status stays Programmed) and the newer is not
// accepted, with ConflictingServerNames naming the holder.
func TestNewerClusterCannotTakeOverServerNames(t *testing.T) {
	ctx := setup(t, 3*time.Minute)
	const sni = "owned.trust.test"
	thiefCrt, thiefKey, err := sb.CA.ServingCert("takeover-thief", []string{sni}, nil)
	if err != nil {
		t.Fatal(err)
	}
	deleteOnCleanup(t, "upstreamcluster", "zz-owner", "aa-takeover")
	deleteOnCleanup(t, "secret", sandbox.SecretNamespace+"/thief-serving")
	applyYAML(t, ctx, trustClusterYAML("zz-owner", fmt.Sprintf("[{endpoint: %q}]", sb.ReplicaURLs[0]), sni, "serving", ""))
	waitUC(t, ctx, "zz-owner", 30*time.Second, "Programmed", programmed)
	ownerCN := servedCertCN(t, sni)
	if ownerCN == "takeover-thief" {
		t.Fatalf("the thief's certificate is served before it exists")
	}

	// Created later, sorts first, same name.
	time.Sleep(1100 * time.Millisecond) // creationTimestamp has one-second resolution
	applyYAML(t, ctx, fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata: {namespace: %s, name: thief-serving}
type: kubernetes.io/tls
stringData:
  tls.crt: |
%s  tls.key: |
%s---
%s`, sandbox.SecretNamespace, indent(string(thiefCrt), "    "), indent(string(thiefKey), "    "),
		trustClusterYAML("aa-takeover", fmt.Sprintf("[{endpoint: %q}]", sb.ReplicaURLs[1]), strings.ToUpper(sni), "thief-serving", "")))
	thief := waitUC(t, ctx, "aa-takeover", 30*time.Second, "Accepted False", func(uc *v1alpha1.UpstreamCluster) bool {
		c := cond(uc, v1alpha1.ConditionAccepted)
		return c.ObservedGeneration == uc.Generation && c.Status != metav1.ConditionUnknown && c.Status != ""
	})
	if c := cond(thief, v1alpha1.ConditionAccepted); c.Status != metav1.ConditionFalse || c.Reason != v1alpha1.ReasonConflictingServerNames || !strings.Contains(c.Message, `"zz-owner"`) {
		t.Errorf("aa-takeover Accepted = %+v, want False, ConflictingServerNames naming zz-owner", c)
	}
	time.Sleep(2 * time.Second) // what the thief's config would have needed to reach Envoy
	owner, err := getUC(ctx, "zz-owner")
	if err != nil {
		t.Fatal(err)
	}
	if !programmed(owner) {
		t.Errorf("zz-owner is no longer Programmed after a newer cluster claimed its server name: %+v", owner.Status.Conditions)
	}
	if cn := servedCertCN(t, sni); cn != ownerCN {
		t.Errorf("SNI %s is answered with certificate %q, want the owner's %q", sni, cn, ownerCN)
	}
}

// TestSecretRefOutsideGatewayNamespace: an UpstreamCluster naming a Secret
// in another namespace (here a copy of the gateway's own impersonating
// client identity) is not served: ResolvedRefs False with RefNotPermitted,
// and Envoy has no cluster for it.
func TestSecretRefOutsideGatewayNamespace(t *testing.T) {
	ctx := setup(t, 3*time.Minute)
	const ns = "trust-borrower"
	deleteOnCleanup(t, "upstreamcluster", "borrower")
	deleteOnCleanup(t, "namespace", ns)
	kubectl(t, ctx, "create", "namespace", ns)
	kc, err := kubernetes.NewForConfig(adminDirect())
	if err != nil {
		t.Fatal(err)
	}
	orig, err := kc.CoreV1().Secrets(sandbox.SecretNamespace).Get(ctx, "upstream", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cp := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "upstream"}, Type: orig.Type, Data: orig.Data}
	if _, err := kc.CoreV1().Secrets(ns).Create(ctx, cp, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	applyYAML(t, ctx, strings.Replace(
		trustClusterYAML("borrower", fmt.Sprintf("[{endpoint: %q}]", sb.ReplicaURLs[0]), "borrower.trust.test", "serving", ""),
		"secretRef: {namespace: "+sandbox.SecretNamespace+", name: upstream}", "secretRef: {namespace: "+ns+", name: upstream}", 1))
	uc := waitUC(t, ctx, "borrower", 30*time.Second, "a verdict on this generation", func(uc *v1alpha1.UpstreamCluster) bool {
		return cond(uc, v1alpha1.ConditionProgrammed).ObservedGeneration == uc.Generation && uc.Generation > 0
	})
	if c := cond(uc, v1alpha1.ConditionResolvedRefs); c.Status != metav1.ConditionFalse || c.Reason != v1alpha1.ReasonRefNotPermitted {
		t.Errorf("ResolvedRefs = %+v, want False, RefNotPermitted", c)
	}
	if c := cond(uc, v1alpha1.ConditionProgrammed); c.Status != metav1.ConditionFalse {
		t.Errorf("Programmed = %+v, want False (nothing of it served)", c)
	}
	text, err := sb.EnvoyAdmin(ctx, "/clusters")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(text, "borrower/") {
		t.Error("Envoy has a cluster of borrower, whose client identity is another namespace's Secret")
	}
}

// TestForgedEndpointSliceIgnored: an EndpointSlice that carries the
// Service's name label but was not written by the Kubernetes EndpointSlice
// controllers contributes no server: the cluster has none (NoServers,
// saying why the slice was ignored), and no request reaches the address it
// named.
func TestForgedEndpointSliceIgnored(t *testing.T) {
	ctx := setup(t, 3*time.Minute)
	hits := startImpostor(t, "0.0.0.0:0", []string{"forged.trust.test"})
	ip := hostIP(t)
	deleteOnCleanup(t, "upstreamcluster", "forged-slices")
	deleteOnCleanup(t, "endpointslice", sandbox.SecretNamespace+"/forged-1")
	applyYAML(t, ctx, fmt.Sprintf(`apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  namespace: %[1]s
  name: forged-1
  labels: {kubernetes.io/service-name: forged-svc}
addressType: IPv4
ports:
- {name: https, port: %[2]d, protocol: TCP}
endpoints:
- addresses: [%[3]s]
---
%[4]s`, sandbox.SecretNamespace, hits.port, ip,
		strings.Replace(trustClusterYAML("forged-slices", "[]", "forged.trust.test", "serving", ""),
			"  servers: []\n", fmt.Sprintf("  endpointsFrom:\n    service: {namespace: %s, name: forged-svc}\n", sandbox.SecretNamespace), 1)))
	uc := waitUC(t, ctx, "forged-slices", 30*time.Second, "a verdict on this generation", func(uc *v1alpha1.UpstreamCluster) bool {
		return cond(uc, v1alpha1.ConditionProgrammed).ObservedGeneration == uc.Generation && uc.Generation > 0
	})
	if c := cond(uc, v1alpha1.ConditionAccepted); c.Status != metav1.ConditionFalse || c.Reason != v1alpha1.ReasonNoServers || !strings.Contains(c.Message, "managed-by") {
		t.Errorf("Accepted = %+v, want False, NoServers, naming the missing managed-by label", c)
	}
	time.Sleep(3 * time.Second) // three health-check intervals
	if n := hits.n.Load(); n != 0 {
		t.Errorf("the address of a forged EndpointSlice got %d requests", n)
	}
}

// impostor is a TLS server with a certificate from the sandbox CA (the
// upstream CA the gateway trusts) that names only the given DNS names.
type impostor struct {
	port int
	n    atomic.Int64
}

func startImpostor(t *testing.T, addr string, names []string) *impostor {
	t.Helper()
	crt, key, err := sb.CA.ServingCert("impostor", names, nil)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(crt, key)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	imp := &impostor{port: l.Addr().(*net.TCPAddr).Port}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			imp.n.Add(1)
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintln(w, `{"kind":"Status","apiVersion":"v1","status":"Success","message":"impostor"}`)
		}),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{pair}, NextProtos: []string{"h2", "http/1.1"}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() { _ = srv.ServeTLS(l, "", "") }()
	t.Cleanup(func() { _ = srv.Close() })
	return imp
}

// TestUpstreamCertificateMustNameServer: a server whose certificate chains
// to the upstream CA but does not name the address it is reached by (any
// other certificate the CA issued) gets no traffic: Envoy's health checks
// and requests fail the TLS handshake, so the gateway answers 503 and the
// impostor sees nothing.
func TestUpstreamCertificateMustNameServer(t *testing.T) {
	ctx := setup(t, 3*time.Minute)
	imp := startImpostor(t, "127.0.0.1:0", []string{"impostor.trust.test"})
	const sni = "san.trust.test"
	deleteOnCleanup(t, "upstreamcluster", "san-check")
	applyYAML(t, ctx, trustClusterYAML("san-check", fmt.Sprintf("[{endpoint: \"https://127.0.0.1:%d\"}]", imp.port), sni, "serving", ""))
	waitUC(t, ctx, "san-check", 30*time.Second, "Programmed", programmed)
	time.Sleep(3 * time.Second) // three health-check intervals

	c, err := sniClient(sb.CA.Cert, sni, sb.AdminCertPEM, sb.AdminKeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	c.Transport.(*http.Transport).TLSClientConfig.InsecureSkipVerify = true //nolint:gosec // the gateway's serving name is not under test
	code, _, err := statusOf(ctx, c, sb.GatewayURL+"/api/v1/namespaces")
	if err != nil {
		t.Fatal(err)
	}
	if code != http.StatusServiceUnavailable {
		t.Errorf("request to a cluster whose only server's certificate does not name it: %d, want 503", code)
	}
	if n := imp.n.Load(); n != 0 {
		t.Errorf("the impostor (a CA-signed certificate for another name) got %d requests (health checks included)", n)
	}
}
