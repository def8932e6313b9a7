package controlplane

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kubefrontdoor/frontdoor/api/v1alpha1"
	"github.com/kubefrontdoor/frontdoor/internal/testpki"
	"github.com/kubefrontdoor/frontdoor/tests/sandbox"
)

const sniB = "b.frontdoor.test"

// sliceYAML is an EndpointSlice of Service frontdoor-system/<svc> holding
// one endpoint ip:port (each slice its own port, as replicas on one host
// need). The apiserver forbids loopback IPs in EndpointSlices, so these
// replicas listen on every interface and are named by the host's address.
// The slice is labelled as the EndpointSlice controller labels its own (the
// sandbox runs no controller manager): Frontdoor uses no other slices.
func sliceYAML(svc, name, ip string, port int, ready bool) string {
	return fmt.Sprintf(`apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  namespace: %s
  name: %s
  labels: {kubernetes.io/service-name: %s, endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io}
addressType: IPv4
ports:
- {name: https, port: %d, protocol: TCP}
endpoints:
- addresses: [%s]
  conditions: {ready: %v}
`, sandbox.SecretNamespace, name, svc, port, ip, ready)
}

func indent(s, pad string) string {
	out := ""
	for _, line := range splitLines(s) {
		out += pad + line + "\n"
	}
	return out
}

func splitLines(s string) []string {
	var lines []string
	start := 0
	for i := range len(s) {
		if s[i] == '\n' {
			lines = append(lines, s[start:i])
			start = i + 1
		}
	}
	if start < len(s) {
		lines = append(lines, s[start:])
	}
	return lines
}

// sniClient connects with SNI serverName, trusting roots and presenting
// the given client certificate.
func sniClient(roots *x509.Certificate, serverName string, certPEM, keyPEM []byte) (*http.Client, error) {
	pool := x509.NewCertPool()
	pool.AddCert(roots)
	cfg := &tls.Config{RootCAs: pool, ServerName: serverName, MinVersion: tls.VersionTLS12}
	if certPEM != nil {
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}}, nil
}

func statusOf(ctx context.Context, c *http.Client, url string) (int, *tls.ConnectionState, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	return resp.StatusCode, resp.TLS, nil
}

// TestSNISelectsCluster: a second UpstreamCluster on the same listener,
// chosen by SNI, with its own serving certificate, its own client CA and
// its own servers (replicas 4 and 5, which the sandbox cluster does not
// use, discovered from EndpointSlices with a port per slice). The SNI picks it: its certificate is served, only its
// CA's users get in, only its servers get requests; without the SNI the
// sandbox cluster answers and rejects its users. A slice turning not ready
// takes its server out.
func TestSNISelectsCluster(t *testing.T) {
	ctx := setup(t, 4*time.Minute)
	extra := extraReplicas(t, ctx, 2)
	ra, rb := extra[0], extra[1]
	ip := hostIP(t)
	caB, err := testpki.NewCA("cluster-b-ca")
	if err != nil {
		t.Fatal(err)
	}
	servingCrt, servingKey, err := caB.ServingCert(sniB, []string{sniB}, nil)
	if err != nil {
		t.Fatal(err)
	}
	userCrt, userKey, err := caB.ClientCert("cluster-b-admin", "system:masters")
	if err != nil {
		t.Fatal(err)
	}
	port := func(i int) int {
		var p int
		if _, err := fmt.Sscanf(hostPort(sb.ReplicaURLs[i-1]), "127.0.0.1:%d", &p); err != nil {
			t.Fatalf("replica %d URL %s: %v", i, sb.ReplicaURLs[i-1], err)
		}
		return p
	}
	applyYAML(t, ctx, fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata: {namespace: %[1]s, name: cluster-b-serving}
type: kubernetes.io/tls
stringData:
  tls.crt: |
%[2]s  tls.key: |
%[3]s---
apiVersion: v1
kind: Secret
metadata: {namespace: %[1]s, name: cluster-b-client-ca}
stringData:
  ca.crt: |
%[4]s---
%[5]s---
%[6]s---
apiVersion: frontdoor.dev/v1alpha1
kind: UpstreamCluster
metadata: {name: cluster-b}
spec:
  endpointsFrom:
    service: {namespace: %[1]s, name: cluster-b}
  clientConfig:
    secretRef: {namespace: %[1]s, name: upstream}
  secureServing:
    serverNames: [%[7]s]
    secretRef: {namespace: %[1]s, name: cluster-b-serving}
    clientCASecretRef: {namespace: %[1]s, name: cluster-b-client-ca}
  healthCheck: {interval: 1s, timeout: 1s, unhealthyThreshold: 1, healthyThreshold: 1}
`, sandbox.SecretNamespace, indent(string(servingCrt), "    "), indent(string(servingKey), "    "), indent(string(caB.CertPEM), "    "),
		sliceYAML("cluster-b", "cluster-b-a", ip, port(ra), true), sliceYAML("cluster-b", "cluster-b-b", ip, port(rb), true), sniB))
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, _ = sb.Kubectl(cctx, "delete", "upstreamcluster", "cluster-b", "--ignore-not-found")
	})

	waitUC(t, ctx, "cluster-b", 30*time.Second, "Programmed with 2 healthy servers", func(uc *v1alpha1.UpstreamCluster) bool {
		return programmed(uc) && uc.Status.ServerCount == 2 && uc.Status.HealthyServerCount == 2
	})

	url := sb.GatewayURL + "/api/v1/namespaces/default/configmaps"
	userB, err := sniClient(caB.Cert, sniB, userCrt, userKey)
	if err != nil {
		t.Fatal(err)
	}
	filter := map[string]string{"resource": "configmaps", "verb": "LIST"}
	before, err := sb.ReplicaRequestCounts(ctx, filter)
	if err != nil {
		t.Fatal(err)
	}
	const n = 60
	for i := range n {
		code, st, err := statusOf(ctx, userB, url)
		if err != nil || code != http.StatusOK {
			t.Fatalf("request %d with SNI %s as cluster-b's user: %d, %v", i, sniB, code, err)
		}
		if cn := st.PeerCertificates[0].Subject.CommonName; cn != sniB {
			t.Fatalf("SNI %s was served certificate %q", sniB, cn)
		}
	}
	var deltas []float64
	deadline := time.Now().Add(10 * time.Second)
	for {
		after, err := sb.ReplicaRequestCounts(ctx, filter)
		if err != nil {
			t.Fatal(err)
		}
		deltas = make([]float64, len(after))
		var total float64
		for i := range after {
			deltas[i] = after[i] - before[i]
			total += deltas[i]
		}
		if total >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("configmap LISTs per replica with SNI %s: %v", sniB, deltas)
	for i, d := range deltas {
		switch r := i + 1; r {
		case ra, rb:
			if d == 0 {
				t.Errorf("replica %d (a cluster-b server) got none of the %d requests: %v", r, n, deltas)
			}
		default:
			if d != 0 {
				t.Errorf("replica %d is not a cluster-b server but got %v requests: %v", r, d, deltas)
			}
		}
	}

	// The client CA follows the SNI.
	sandboxUserOnB, err := sniClient(caB.Cert, sniB, sb.AdminCertPEM, sb.AdminKeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if code, _, err := statusOf(ctx, sandboxUserOnB, url); err != nil || code != http.StatusUnauthorized {
		t.Errorf("sandbox CA user with SNI %s: %d, %v; want 401 (cluster-b trusts only its own CA)", sniB, code, err)
	}
	userBOnDefault, err := sniClient(sb.CA.Cert, "", userCrt, userKey)
	if err != nil {
		t.Fatal(err)
	}
	userBOnDefault.Transport.(*http.Transport).TLSClientConfig.ServerName = "127.0.0.1"
	if code, st, err := statusOf(ctx, userBOnDefault, url); err != nil || code != http.StatusUnauthorized {
		t.Errorf("cluster-b user without SNI: %d, %v; want 401 from the sandbox cluster", code, err)
	} else if cn := st.PeerCertificates[0].Subject.CommonName; cn == sniB {
		t.Errorf("without SNI the gateway served cluster-b's certificate")
	}

	// A server that dies shows in status: healthy count and which one, why.
	if err := sb.StopReplica(rb); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := sb.StartReplica(cctx, rb); err != nil {
			t.Errorf("restarting replica %d: %v", rb, err)
		}
	})
	dead := fmt.Sprintf("%s:%d", ip, port(rb))
	uc := waitUC(t, ctx, "cluster-b", 15*time.Second, "1 of 2 servers healthy, the dead one listed", func(uc *v1alpha1.UpstreamCluster) bool {
		return uc.Status.ServerCount == 2 && uc.Status.HealthyServerCount == 1 &&
			len(uc.Status.UnhealthyServers) == 1 && strings.HasPrefix(uc.Status.UnhealthyServers[0], dead+": ") &&
			strings.Contains(uc.Status.UnhealthyServers[0], "failed_health_probe")
	})
	t.Logf("after replica %d died: healthyServerCount %d, unhealthyServers %q", rb, uc.Status.HealthyServerCount, uc.Status.UnhealthyServers)

	// A slice's endpoint turning not ready takes that server out.
	applyYAML(t, ctx, sliceYAML("cluster-b", "cluster-b-b", ip, port(rb), false))
	waitEnvoy(t, ctx, "cluster-b", 5*time.Second, "only the first server", func(h map[string]string) bool {
		_, hasA := h[fmt.Sprintf("%s:%d", ip, port(ra))]
		return hasA && len(h) == 1
	})
	waitUC(t, ctx, "cluster-b", 10*time.Second, "serverCount 1", func(uc *v1alpha1.UpstreamCluster) bool {
		return programmed(uc) && uc.Status.ServerCount == 1
	})
}
