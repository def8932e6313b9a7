package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/kubefrontdoor/frontdoor/internal/testpki"
	"github.com/kubefrontdoor/frontdoor/tests/sandbox"
)

// The revocation cluster: like the sandbox's, chosen by SNI
// revocation.sandbox.test, its spec.authentication.x509.revocation edited
// by the test while clients keep loading it.
const (
	revCluster = "revocation"
	// revocationBudget is the bar: a revoked certificate is refused
	// within 2 s of the edit.
	revocationBudget = 2 * time.Second
)

var revSNI = revCluster + "." + sandbox.TestDomain

// revClient is one x509 client with exactly one HTTP/2 connection to the
// gateway for the whole test: dials counts the connections it opened, so a
// connection Envoy closed shows up as a second dial.
type revClient struct {
	user   user
	der    []byte
	http   *http.Client
	dials  atomic.Int32
	ok     atomic.Int64
	denied atomic.Int64
	// firstDenied is when the first 401 answered (zero: none yet);
	// okAfterDenied counts 200s to requests sent after it.
	firstDenied  atomic.Pointer[time.Time]
	okAfterDeny  atomic.Int64
	failures     atomic.Int64
	failureMu    sync.Mutex
	failureFirst string
}

func newRevClient(t *testing.T, name string) *revClient {
	t.Helper()
	u := newUser(name, "system:masters")
	block, _ := pem.Decode(u.certPEM)
	c := &revClient{user: u, der: block.Bytes}
	pool := x509.NewCertPool()
	pool.AddCert(sb.CA.Cert)
	pair, err := tls.X509KeyPair(u.certPEM, u.keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{
			RootCAs: pool, ServerName: revSNI, MinVersion: tls.VersionTLS12,
			Certificates: []tls.Certificate{pair},
		},
		ForceAttemptHTTP2: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c.dials.Add(1)
			return dialer.DialContext(ctx, network, addr)
		},
	}
	c.http = &http.Client{Timeout: 30 * time.Second, Transport: tr}
	t.Cleanup(c.http.CloseIdleConnections)
	return c
}

// fingerprint is the colon-separated upper-case SHA-256 of the client's
// certificate, as openssl prints it (the translator normalizes it).
func (c *revClient) fingerprint() string {
	sum := sha256.Sum256(c.der)
	parts := make([]string, len(sum))
	for i, b := range sum {
		parts[i] = fmt.Sprintf("%02X", b)
	}
	return strings.Join(parts, ":")
}

func (c *revClient) serial(t *testing.T) *big.Int {
	cert, err := x509.ParseCertificate(c.der)
	if err != nil {
		t.Fatal(err)
	}
	return cert.SerialNumber
}

// get sends one GET and records its outcome: 200, 401 (with the
// apiserver's Unauthorized Status), or a failure (anything else,
// transport errors included).
func (c *revClient) get(ctx context.Context, url string) {
	sent := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		c.fail(err.Error())
		return
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			c.fail(err.Error())
		}
		return
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		if ctx.Err() == nil { // else the load was stopped mid-body
			c.fail(fmt.Sprintf("%d, reading the body: %v", resp.StatusCode, err))
		}
		return
	}
	switch resp.StatusCode {
	case http.StatusOK:
		c.ok.Add(1)
		if fd := c.firstDenied.Load(); fd != nil && sent.After(*fd) {
			c.okAfterDeny.Add(1)
		}
	case http.StatusUnauthorized:
		var st metav1.Status
		if err := json.Unmarshal(body, &st); err != nil || st.Kind != "Status" || st.Reason != metav1.StatusReasonUnauthorized || st.Code != 401 {
			c.fail(fmt.Sprintf("401 without the apiserver's Unauthorized Status: %s", body))
			return
		}
		now := time.Now()
		c.firstDenied.CompareAndSwap(nil, &now)
		c.denied.Add(1)
	default:
		if ctx.Err() == nil {
			c.fail(fmt.Sprintf("%d: %s", resp.StatusCode, body))
		}
	}
}

func (c *revClient) fail(msg string) {
	c.failures.Add(1)
	c.failureMu.Lock()
	defer c.failureMu.Unlock()
	if c.failureFirst == "" {
		c.failureFirst = msg
	}
}

// load runs workers concurrent GET loops over the client's one connection
// until ctx ends.
func (c *revClient) load(ctx context.Context, wg *sync.WaitGroup, url string, workers int) {
	for range workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				c.get(ctx, url)
			}
		})
	}
}

// revocationYAML is the revocation cluster's UpstreamCluster with the given
// revocation block (two-space-indented fields under revocation:, or "").
func revocationYAML(revocation string) string {
	// Anonymous requests tell this cluster from the sandbox's (which
	// serves unknown SNI and refuses them) while it is being set up.
	spec := "  authentication:\n    anonymous: {enabled: true}\n"
	if revocation != "" {
		spec += "    x509:\n      revocation:\n"
	}
	return sb.UpstreamClusterYAML(revCluster, sandbox.ServersYAML(sb.ReplicaURLs), []string{revSNI}, spec+revocation)
}

// writeConfig writes one file of frontdoor's config directory (file mode)
// and removes it when the test ends.
func writeConfig(t *testing.T, name, content string) {
	t.Helper()
	path := filepath.Join(sb.Dir, "config", name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(path) })
}

// crlSecretYAML is an Opaque Secret named name holding crl (DER) as ca.crl
// in PEM.
func crlSecretYAML(t *testing.T, name string, crl []byte) string {
	t.Helper()
	s := corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Namespace: sandbox.SecretNamespace, Name: name},
		Type:       corev1.SecretTypeOpaque,
		StringData: map[string]string{"ca.crl": string(crl)},
	}
	out, err := yaml.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// signCRL is a PEM CRL of ca revoking serials, valid for an hour.
func signCRL(t *testing.T, ca *testpki.CA, serials ...*big.Int) []byte {
	t.Helper()
	tmpl := &x509.RevocationList{
		Number:     big.NewInt(time.Now().UnixNano()),
		ThisUpdate: time.Now().Add(-time.Minute),
		NextUpdate: time.Now().Add(time.Hour),
	}
	for _, s := range serials {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries,
			x509.RevocationListEntry{SerialNumber: s, RevocationTime: time.Now()})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.Cert, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
}

// rejectionLogged reports whether frontdoor logged the revocation
// cluster rejected for an unresolved reference whose message names
// secret, with its last good version served. In file mode that log line
// (and frontdoor_config_errors_total) is where the verdict shows; in
// Kubernetes mode the same conditions are written to the object's status.
func rejectionLogged(t *testing.T, secret string) bool {
	t.Helper()
	data, err := os.ReadFile(sb.LogFiles()["frontdoor"])
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		var rec struct {
			Msg, Name, Condition, Reason, Message string
			LastGoodServed                        bool
		}
		if json.Unmarshal([]byte(line), &rec) != nil {
			continue
		}
		if rec.Msg == "upstreamcluster rejected" && rec.Name == revCluster && rec.Condition == "Accepted" &&
			rec.Reason == "UnresolvedRefs" && strings.Contains(rec.Message, sandbox.SecretNamespace+"/"+secret+" key \"ca.crl\"") && rec.LastGoodServed {
			return true
		}
	}
	return false
}

// envoyStat reads one counter of Envoy's admin /stats.
func envoyStat(t *testing.T, ctx context.Context, name string) string {
	t.Helper()
	text, err := sb.EnvoyAdmin(ctx, "/stats?filter=^"+strings.ReplaceAll(name, ".", `\.`)+"$")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(text)
}

// counterStat reads one counter of Envoy's admin /stats as a number.
func counterStat(t *testing.T, ctx context.Context, name string) int {
	t.Helper()
	line := envoyStat(t, ctx, name)
	v, ok := strings.CutPrefix(line, name+": ")
	if !ok {
		t.Fatalf("Envoy's stats have no %s (got %q)", name, line)
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("parsing %q: %v", line, err)
	}
	return n
}

// watchEvents opens a watch of ConfigMaps in ns with c's connection and
// sends the name of every object it reports; the channel closes when the
// watch ends. The status of the watch request is returned.
func (c *revClient) watchEvents(t *testing.T, ctx context.Context, ns string) (int, <-chan string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet,
		sb.GatewayURL+"/api/v1/namespaces/"+ns+"/configmaps?watch=1&allowWatchBookmarks=false", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	events := make(chan string, 16)
	if resp.StatusCode != http.StatusOK {
		_ = resp.Body.Close()
		close(events)
		return resp.StatusCode, events
	}
	go func() {
		defer close(events)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			var ev struct {
				Object struct {
					Metadata struct {
						Name string `json:"name"`
					} `json:"metadata"`
				} `json:"object"`
			}
			if json.Unmarshal(sc.Bytes(), &ev) == nil {
				events <- ev.Object.Metadata.Name
			}
		}
	}()
	return resp.StatusCode, events
}

// waitEvent waits for the event naming name.
func waitEvent(t *testing.T, events <-chan string, name string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case got, ok := <-events:
			if !ok {
				t.Fatalf("watch ended before reporting %s", name)
			}
			if got == name {
				return
			}
		case <-timeout:
			t.Fatalf("watch did not report %s within 10s", name)
		}
	}
}

// Certificate revocation under load: four x509 clients, each with one
// HTTP/2 connection, load the gateway concurrently while the test revokes
// one by fingerprint and another by CRL, then tries two bad CRLs. Each
// revoked certificate is refused (401, the apiserver's Unauthorized
// Status) within 2 s of the edit, on the connection it already had, and
// never served again; the other clients see no failed request and no
// reconnection, and Envoy's listener is never modified. A bad CRL is a
// status condition while the last good version keeps serving. A watch the
// revoked client opened before its revocation keeps running (the check is
// per request, at request start); a new watch of its is refused.
func TestCertificateRevocation(t *testing.T) {
	ctx := setup(t, 5*time.Minute)
	writeConfig(t, "upstreamcluster-"+revCluster+".yaml", revocationYAML(""))

	names := []string{"rev-fp", "rev-crl", "rev-c", "rev-d"}
	clients := map[string]*revClient{}
	for _, n := range names {
		clients[n] = newRevClient(t, n+"-"+uniq())
	}
	byFP, byCRL := clients["rev-fp"], clients["rev-crl"]
	url := sb.GatewayURL + "/api/v1/namespaces/default"
	if err := poll(ctx, 200*time.Millisecond, func() (bool, error) {
		// A fresh connection per try: an open one stays on the filter
		// chain it was accepted by.
		probe := httpClient(t, revSNI, nil, nil)
		defer probe.CloseIdleConnections()
		code, _, _ := do(t, ctx, probe, http.MethodGet, sb.GatewayURL+"/version", nil, nil)
		return code == http.StatusOK, nil
	}); err != nil {
		t.Fatalf("cluster %s not serving: %v", revCluster, err)
	}

	// The revoked client's watch, opened before its revocation.
	ns := createNamespace(t, ctx, "revocation")
	admin := sandbox.Clientset(t, adminUser().direct())
	createCM := func(name string) {
		t.Helper()
		if _, err := admin.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	code, events := byFP.watchEvents(t, wctx, ns)
	if code != http.StatusOK {
		t.Fatalf("watch before revocation: %d", code)
	}
	createCM("before")
	waitEvent(t, events, "before")

	lctx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, c := range clients {
		// One request first, so the client has its HTTP/2 connection
		// before its workers start (concurrent first requests would each
		// dial, a client-side race, not a reconnection).
		c.get(ctx, url)
		c.load(lctx, &wg, url, 2)
	}
	defer func() { stopLoad(); wg.Wait() }()
	time.Sleep(2 * time.Second) // every client is up and has its connection
	listenerModified := envoyStat(t, ctx, "listener_manager.listener_modified")

	// measure waits until c's first 401 after start and checks it came
	// within the budget.
	measure := func(c *revClient, start time.Time, how string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for c.firstDenied.Load() == nil && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		fd := c.firstDenied.Load()
		if fd == nil {
			t.Fatalf("%s: still served 10s after the edit", how)
		}
		took := fd.Sub(start)
		t.Logf("%s: first 401 %v after the edit", how, took.Round(time.Millisecond))
		if took > revocationBudget {
			t.Errorf("%s: refused %v after the edit, want within %v", how, took, revocationBudget)
		}
	}

	// 1. Revoke by fingerprint.
	start := time.Now()
	writeConfig(t, "upstreamcluster-"+revCluster+".yaml", revocationYAML(
		"        deniedFingerprints: [\""+byFP.fingerprint()+"\"]\n"))
	measure(byFP, start, "denied fingerprint")

	// Its watch opened before the revocation is still delivering; a new
	// one is refused.
	createCM("after")
	waitEvent(t, events, "after")
	if code, _ := byFP.watchEvents(t, ctx, ns); code != http.StatusUnauthorized {
		t.Errorf("new watch of the revoked client: %d, want 401", code)
	}

	// 2. Revoke another by a CRL of the sandbox CA (the Secret first, then
	// the reference to it).
	writeConfig(t, "secret-revocation-crl.yaml", crlSecretYAML(t, "revocation-crl", signCRL(t, sb.CA, byCRL.serial(t))))
	start = time.Now()
	goodSpec := "        crlSecretRef: {namespace: " + sandbox.SecretNamespace + ", name: revocation-crl}\n" +
		"        deniedFingerprints: [\"" + byFP.fingerprint() + "\"]\n"
	writeConfig(t, "upstreamcluster-"+revCluster+".yaml", revocationYAML(goodSpec))
	measure(byCRL, start, "CRL")

	// 3. Bad CRLs: a condition, and the last good version keeps serving
	// (both stay revoked, the others keep working).
	foreign, err := testpki.NewCA(sb.CA.Cert.Subject.CommonName) // same name, another key
	if err != nil {
		t.Fatal(err)
	}
	for name, crl := range map[string][]byte{
		"revocation-crl-garbage":      []byte("-----BEGIN X509 CRL-----\nbm90IGEgQ1JM\n-----END X509 CRL-----\n"),
		"revocation-crl-wrong-signer": signCRL(t, foreign),
	} {
		writeConfig(t, "secret-"+name+".yaml", crlSecretYAML(t, name, crl))
		writeConfig(t, "upstreamcluster-"+revCluster+".yaml", revocationYAML(
			"        crlSecretRef: {namespace: "+sandbox.SecretNamespace+", name: "+name+"}\n"))
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := poll(pctx, 100*time.Millisecond, func() (bool, error) { return rejectionLogged(t, name), nil })
		cancel()
		if err != nil {
			t.Fatalf("%s: the edit was not reported rejected with its last good version served: %v", name, err)
		}
		time.Sleep(time.Second) // requests keep flowing under the rejected edit
	}

	stopLoad()
	wg.Wait()
	stopWatch()

	for _, n := range names {
		c := clients[n]
		revoked := c == byFP || c == byCRL
		t.Logf("%s: %d ok, %d 401, %d failures, %d dials", n, c.ok.Load(), c.denied.Load(), c.failures.Load(), c.dials.Load())
		if c.failures.Load() != 0 {
			t.Errorf("%s: %d failed requests, first: %s", n, c.failures.Load(), c.failureFirst)
		}
		if d := c.dials.Load(); d != 1 {
			t.Errorf("%s: %d connections, want its first one kept throughout", n, d)
		}
		if c.ok.Load() == 0 {
			t.Errorf("%s: no request served", n)
		}
		if revoked {
			if c.okAfterDeny.Load() != 0 {
				t.Errorf("%s: %d requests served after its first 401", n, c.okAfterDeny.Load())
			}
		} else if c.denied.Load() != 0 {
			t.Errorf("%s: %d requests refused, but it was never revoked", n, c.denied.Load())
		}
	}
	if got := envoyStat(t, ctx, "listener_manager.listener_modified"); got != listenerModified {
		t.Errorf("Envoy's listener was modified by the revocation edits: %q, then %q", listenerModified, got)
	}
}
