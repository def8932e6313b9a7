package controlplane

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"github.com/kubefrontdoor/frontdoor/api/v1alpha1"
	"github.com/kubefrontdoor/frontdoor/tests/sandbox"
)

// serversPatch is a merge patch setting spec.servers to urls (a merge patch
// replaces the whole list).
func serversPatch(urls ...string) string {
	var servers []map[string]string
	for _, u := range urls {
		servers = append(servers, map[string]string{"endpoint": u})
	}
	b, _ := json.Marshal(map[string]any{"spec": map[string]any{"servers": servers}})
	return string(b)
}

func patchUC(t *testing.T, ctx context.Context, name, patch string) {
	t.Helper()
	kubectl(t, ctx, "patch", "upstreamcluster", name, "--type=merge", "-p", patch)
}

// load sends GETs through the gateway until stopped and counts failures.
type load struct {
	ok, failed atomic.Int64
	firstErr   atomic.Value
	stop       chan struct{}
	done       sync.WaitGroup
}

func startLoad(ctx context.Context, cs *kubernetes.Clientset, cm string) *load {
	l := &load{stop: make(chan struct{})}
	for range 4 {
		l.done.Go(func() {
			for {
				select {
				case <-l.stop:
					return
				case <-ctx.Done():
					return
				default:
				}
				if _, err := cs.CoreV1().ConfigMaps(metav1.NamespaceDefault).Get(ctx, cm, metav1.GetOptions{}); err != nil {
					if ctx.Err() != nil {
						return
					}
					l.failed.Add(1)
					l.firstErr.CompareAndSwap(nil, err.Error())
				} else {
					l.ok.Add(1)
				}
			}
		})
	}
	return l
}

func (l *load) finish() (ok, failed int64, first any) {
	close(l.stop)
	l.done.Wait()
	return l.ok.Load(), l.failed.Load(), l.firstErr.Load()
}

// replicaRequests is replica i's (1-based) own count of requests matching filter.
func replicaRequests(ctx context.Context, i int, filter map[string]string) (float64, error) {
	client, err := sb.HTTPClient(sb.AdminCertPEM, sb.AdminKeyPEM)
	if err != nil {
		return 0, err
	}
	text, err := sandbox.Get(ctx, client, sb.ReplicaURLs[i-1]+"/metrics")
	if err != nil {
		return 0, err
	}
	return sandbox.SumMetric(text, "apiserver_request_total", filter)
}

// TestUpstreamClusterLifecycle walks one UpstreamCluster through the edits
// an operator makes, under continuous client load and with a watch open
// from before the first edit:
//
//   - created by kubectl (the sandbox applies it) → Programmed, 3 servers, 3 healthy;
//   - a 4th apiserver added to spec.servers → it serves requests within 2 s;
//   - a server removed → gone from Envoy, no client request fails;
//   - a bad Secret ref, then a CEL-valid but wrong endpoint → False
//     conditions with reasons, Envoy's config and traffic unchanged;
//   - a good edit → Programmed again (and acknowledged by Envoy);
//   - the serving certificate's Secret rotated → new connections get it;
//   - the upstream client certificate's Secret rotated → Envoy loads it;
//   - the watch opened before all this still delivers events;
//   - lastTransitionTime of a condition that stayed True never moves.
func TestUpstreamClusterLifecycle(t *testing.T) {
	ctx := setup(t, 6*time.Minute)
	name := sandbox.ClusterName
	uc := waitUC(t, ctx, name, 60*time.Second, "Programmed with 3 of 3 servers healthy", func(uc *v1alpha1.UpstreamCluster) bool {
		return programmed(uc) && uc.Status.ServerCount == 3 && uc.Status.HealthyServerCount == 3
	})
	acceptedSince := cond(uc, v1alpha1.ConditionAccepted).LastTransitionTime
	if out := kubectl(t, ctx, "get", "upstreamcluster", name); !strings.Contains(out, "True") {
		t.Errorf("kubectl get upstreamcluster shows no Accepted column:\n%s", out)
	} else {
		t.Logf("kubectl get upstreamcluster:\n%s", out)
	}

	gw := sandbox.Clientset(t, adminGateway())
	cm := "lifecycle-load"
	if _, err := gw.CoreV1().ConfigMaps(metav1.NamespaceDefault).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: cm}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The watch's client has no request timeout, as a controller's: the
	// sandbox configs' 30 s would end the watch itself on a slow run.
	watchCfg := adminGateway()
	watchCfg.Timeout = 0
	w, err := sandbox.Clientset(t, watchCfg).CoreV1().ConfigMaps(metav1.NamespaceDefault).Watch(ctx, metav1.ListOptions{LabelSelector: "frontdoor-test=lifecycle"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	l := startLoad(ctx, gw, cm)
	defer func() {
		if l != nil {
			l.finish()
		}
	}()

	// A 4th replica receives traffic within 2 s of the edit.
	i := extraReplicas(t, ctx, 1)[0]
	url4 := sb.ReplicaURLs[i-1]
	r1, r2, r3 := sb.ReplicaURLs[0], sb.ReplicaURLs[1], sb.ReplicaURLs[2]
	start := time.Now()
	patchUC(t, ctx, name, serversPatch(r1, r2, r3, url4))
	var inEnvoy, healthy time.Duration // when Envoy had the host, and had it healthy
	for {
		if h, err := envoyHosts(ctx, name); err == nil {
			flags, ok := h[hostPort(url4)]
			if ok && inEnvoy == 0 {
				inEnvoy = time.Since(start)
			}
			if ok && flags == "healthy" && healthy == 0 {
				healthy = time.Since(start)
			}
		}
		// Envoy's own count of requests it sent to the host (scraping the
		// replica's /metrics takes longer than what is measured here).
		if n, err := envoyHostStat(ctx, name, hostPort(url4), "rq_total"); err == nil && n > 0 {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("replica %d received no request within 10 s of being added", i)
		}
		time.Sleep(50 * time.Millisecond)
	}
	elapsed := time.Since(start)
	filter := map[string]string{"resource": "configmaps", "verb": "GET"}
	if n, err := replicaRequests(ctx, i, filter); err != nil || n == 0 {
		t.Errorf("replica %d counts %v configmap GETs (err %v), want some", i, n, err)
	}
	t.Logf("replica %d after `kubectl patch` returned: in Envoy after %v, healthy after %v, sent its first request after %v",
		i, inEnvoy.Round(time.Millisecond), healthy.Round(time.Millisecond), elapsed.Round(time.Millisecond))
	if elapsed > 2*time.Second {
		t.Errorf("replica %d took %v to receive traffic, want ≤ 2 s", i, elapsed)
	}
	uc = waitUC(t, ctx, name, 20*time.Second, "Programmed with 4 servers", func(uc *v1alpha1.UpstreamCluster) bool {
		return programmed(uc) && uc.Status.ServerCount == 4
	})
	if got := cond(uc, v1alpha1.ConditionAccepted).LastTransitionTime; !got.Equal(&acceptedSince) {
		t.Errorf("Accepted stayed True across a good edit, but its lastTransitionTime moved: %v → %v", acceptedSince, got)
	}

	// Remove replica 2 from the servers: Envoy drops it, nothing fails.
	patchUC(t, ctx, name, serversPatch(r1, r3, url4))
	waitEnvoy(t, ctx, name, 5*time.Second, "replica 2 removed", func(h map[string]string) bool {
		_, has := h[hostPort(r2)]
		return !has && len(h) == 3
	})
	time.Sleep(time.Second) // keep the load running on the new set

	// Invalid edits: the served config does not change.
	hostsBefore, _ := envoyHosts(ctx, name)
	versionBefore := snapshotVersion(t, ctx)
	patchUC(t, ctx, name, `{"spec":{"clientConfig":{"secretRef":{"namespace":"frontdoor-system","name":"no-such-secret"}}}}`)
	uc = waitUC(t, ctx, name, 20*time.Second, "ResolvedRefs False (SecretNotFound) and Programmed False (LastGoodServed)", func(uc *v1alpha1.UpstreamCluster) bool {
		rr, p := cond(uc, v1alpha1.ConditionResolvedRefs), cond(uc, v1alpha1.ConditionProgrammed)
		return uc.Status.ObservedGeneration == uc.Generation &&
			rr.Status == metav1.ConditionFalse && rr.Reason == v1alpha1.ReasonSecretNotFound &&
			p.Status == metav1.ConditionFalse && p.Reason == v1alpha1.ReasonLastGoodServed
	})
	t.Logf("bad Secret ref: ResolvedRefs=%s/%s %q; Programmed=%s/%s %q",
		cond(uc, v1alpha1.ConditionResolvedRefs).Status, cond(uc, v1alpha1.ConditionResolvedRefs).Reason, cond(uc, v1alpha1.ConditionResolvedRefs).Message,
		cond(uc, v1alpha1.ConditionProgrammed).Status, cond(uc, v1alpha1.ConditionProgrammed).Reason, cond(uc, v1alpha1.ConditionProgrammed).Message)

	// Valid for the CRD's pattern, but not an IP address or DNS name.
	patchUC(t, ctx, name, `{"spec":{"clientConfig":{"secretRef":{"namespace":"frontdoor-system","name":"upstream"}},"servers":[{"endpoint":"https://999.1.1.1:6443"}]}}`)
	uc = waitUC(t, ctx, name, 20*time.Second, "Accepted False (InvalidServer)", func(uc *v1alpha1.UpstreamCluster) bool {
		a := cond(uc, v1alpha1.ConditionAccepted)
		return uc.Status.ObservedGeneration == uc.Generation && a.Status == metav1.ConditionFalse && a.Reason == v1alpha1.ReasonInvalidServer
	})
	t.Logf("bad endpoint: Accepted=%s/%s %q", cond(uc, v1alpha1.ConditionAccepted).Status, cond(uc, v1alpha1.ConditionAccepted).Reason, cond(uc, v1alpha1.ConditionAccepted).Message)
	if msg := cond(uc, v1alpha1.ConditionAccepted).Message; !strings.Contains(msg, "spec.servers[0].endpoint") {
		t.Errorf("the Accepted message does not name the field spec.servers[0].endpoint: %q", msg)
	}
	time.Sleep(500 * time.Millisecond) // past the debounce: nothing may follow
	if v := snapshotVersion(t, ctx); v != versionBefore {
		t.Errorf("invalid edits changed the served snapshot: %s → %s", versionBefore, v)
	}
	if h, _ := envoyHosts(ctx, name); fmt.Sprint(keys(h)) != fmt.Sprint(keys(hostsBefore)) {
		t.Errorf("invalid edits changed Envoy's servers: %v → %v", keys(hostsBefore), keys(h))
	}

	// A good edit replaces it (back to the three original replicas).
	patchUC(t, ctx, name, serversPatch(r1, r2, r3))
	uc = waitUC(t, ctx, name, 20*time.Second, "Programmed again with 3 servers, acknowledged by the Envoy", func(uc *v1alpha1.UpstreamCluster) bool {
		return programmed(uc) && uc.Status.ServerCount == 3 &&
			strings.Contains(cond(uc, v1alpha1.ConditionProgrammed).Message, "acknowledged by 1 of 1 connected Envoys")
	})
	t.Logf("after a good edit: Programmed %q", cond(uc, v1alpha1.ConditionProgrammed).Message)
	waitEnvoy(t, ctx, name, 5*time.Second, "the three original replicas", func(h map[string]string) bool {
		_, has2 := h[hostPort(r2)]
		_, has4 := h[hostPort(url4)]
		return has2 && !has4 && len(h) == 3
	})
	if got := cond(uc, v1alpha1.ConditionResolvedRefs).LastTransitionTime; got.IsZero() {
		t.Error("ResolvedRefs has no lastTransitionTime")
	}

	// Rotate the serving certificate: new TLS connections get the new one
	// (SDS), established ones and the watch carry on.
	crt, key, err := sb.CA.ServingCert("frontdoor-gateway-rotated", []string{"localhost"}, []net.IP{net.ParseIP("127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	applyYAML(t, ctx, tlsSecretYAML("serving", crt, key, nil))
	rotated := time.Now()
	for {
		if cn, err := gatewayCertCN(); err == nil && cn == "frontdoor-gateway-rotated" {
			break
		}
		if time.Since(rotated) > 10*time.Second {
			t.Fatal("new connections still get the old serving certificate 10 s after the Secret changed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("serving certificate rotated: new connections got it %v after `kubectl apply` returned", time.Since(rotated).Round(time.Millisecond))

	// Rotate the upstream client certificate (same user, new key and
	// serial): Envoy loads it by SDS without a restart, while the load
	// and the watch carry on.
	upCrt, upKey, err := sb.CA.ClientCert(sandbox.GatewayUser)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(upCrt)
	upCert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	serial := upCert.SerialNumber
	applyYAML(t, ctx, tlsSecretYAML("upstream", upCrt, upKey, sb.CA.CertPEM))
	rotated = time.Now()
	for {
		certs, err := sb.EnvoyAdmin(ctx, "/certs")
		if err == nil && slices.ContainsFunc(certSerials(certs), func(n *big.Int) bool { return n.Cmp(serial) == 0 }) {
			break
		}
		if time.Since(rotated) > 10*time.Second {
			t.Fatalf("Envoy's /certs lacks the rotated upstream client certificate (serial %s) 10 s after the Secret changed:\n%s", serial, certs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("upstream client certificate rotated: in Envoy %v after `kubectl apply` returned", time.Since(rotated).Round(time.Millisecond))
	time.Sleep(time.Second) // keep the load running across the rotation

	ok, failed, first := l.finish()
	l = nil
	t.Logf("client load through all edits: %d requests, %d failed", ok+failed, failed)
	if failed > 0 {
		t.Errorf("%d of %d requests failed during the edits; first: %v", failed, ok+failed, first)
	}

	// The watch opened before every edit still delivers.
	if _, err := gw.CoreV1().ConfigMaps(metav1.NamespaceDefault).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
		Name: "lifecycle-after-edits", Labels: map[string]string{"frontdoor-test": "lifecycle"},
	}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case ev, open := <-w.ResultChan():
		if !open || ev.Type != watch.Added {
			t.Fatalf("watch opened before the edits: got %v (open %v), want ADDED", ev.Type, open)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the watch opened before the edits delivered nothing within 10 s")
	}

	// A rebuild that changes nothing (a referenced Secret is touched) must
	// not move any lastTransitionTime.
	uc, _ = getUC(ctx, name)
	since := cond(uc, v1alpha1.ConditionAccepted).LastTransitionTime
	kubectl(t, ctx, "annotate", "secret", "-n", sandbox.SecretNamespace, "upstream", "frontdoor.dev/touched="+fmt.Sprint(time.Now().UnixNano()), "--overwrite")
	time.Sleep(time.Second)
	uc, _ = getUC(ctx, name)
	if got := cond(uc, v1alpha1.ConditionAccepted).LastTransitionTime; !got.Equal(&since) {
		t.Errorf("Accepted lastTransitionTime flapped without a transition: %v → %v", since, got)
	}
}

// tlsSecretYAML is a kubernetes.io/tls Secret in the sandbox's Secret
// namespace holding crt and key, and ca as ca.crt when it is not nil.
func tlsSecretYAML(name string, crt, key, ca []byte) string {
	out := fmt.Sprintf("apiVersion: v1\nkind: Secret\nmetadata: {namespace: %s, name: %s}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: |\n%s  tls.key: |\n%s",
		sandbox.SecretNamespace, name, indent(string(crt), "    "), indent(string(key), "    "))
	if ca != nil {
		out += "  ca.crt: |\n" + indent(string(ca), "    ")
	}
	return out
}

// certSerials returns the serial numbers in Envoy's admin /certs JSON.
func certSerials(certs string) []*big.Int {
	var out []*big.Int
	for _, m := range regexp.MustCompile(`"serial_number":\s*"([0-9a-fA-F]+)"`).FindAllStringSubmatch(certs, -1) {
		if n, ok := new(big.Int).SetString(m[1], 16); ok {
			out = append(out, n)
		}
	}
	return out
}

// gatewayCertCN opens a new TLS connection to the gateway (no SNI: the
// sandbox cluster) and returns the serving certificate's CN.
func gatewayCertCN() (string, error) {
	pool := x509.NewCertPool()
	pool.AddCert(sb.CA.Cert)
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", hostPort(sb.GatewayURL),
		&tls.Config{RootCAs: pool, ServerName: "127.0.0.1", NextProtos: []string{"h2"}})
	if err != nil {
		return "", err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].Subject.CommonName, nil
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// envoyHostStat reads one per-host counter of cluster "<uc>/default" from
// Envoy's /clusters.
func envoyHostStat(ctx context.Context, uc, hostPort, stat string) (int64, error) {
	text, err := sb.EnvoyAdmin(ctx, "/clusters")
	if err != nil {
		return 0, err
	}
	prefix := uc + "/default::" + hostPort + "::" + stat + "::"
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			var n int64
			_, err := fmt.Sscan(v, &n)
			return n, err
		}
	}
	return 0, fmt.Errorf("no %s for %s in %s/default", stat, hostPort, uc)
}

// waitEnvoy polls Envoy's hosts of the cluster until ok accepts them.
func waitEnvoy(t *testing.T, ctx context.Context, uc string, timeout time.Duration, what string, ok func(map[string]string) bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last map[string]string
	for {
		h, err := envoyHosts(ctx, uc)
		if err == nil {
			last = h
			if ok(h) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("Envoy's %s/default: %s not reached in %v; hosts %v", uc, what, timeout, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// snapshotVersion is the version frontdoor serves (frontdoor_xds_snapshot_info).
func snapshotVersion(t *testing.T, ctx context.Context) string {
	t.Helper()
	text, err := sb.FrontdoorMetrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	vs := sandbox.MetricLabels(text, "frontdoor_xds_snapshot_info")
	if len(vs) != 1 {
		t.Fatalf("frontdoor_xds_snapshot_info: %v, want one version", vs)
	}
	return vs[0]
}
