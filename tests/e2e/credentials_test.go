package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/kubefrontdoor/frontdoor/internal/testenv"
	"github.com/kubefrontdoor/frontdoor/internal/testhttp"
	"github.com/kubefrontdoor/frontdoor/tests/sandbox"
)

// Helpers for the token, anonymous, impersonation and adversarial tests:
// service accounts and their tokens, a second UpstreamCluster chosen by
// SNI, raw HTTP requests, and reading what the replicas' audit logs say.

// uniq returns a short random suffix for object names and request markers.
func uniq() string {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// serviceAccount creates namespace default's service account name (direct,
// as admin) and deletes it when the test ends.
func serviceAccount(t *testing.T, ctx context.Context, name string) *corev1.ServiceAccount {
	t.Helper()
	cs := sandbox.Clientset(t, adminUser().direct())
	sa, err := cs.CoreV1().ServiceAccounts("default").Create(ctx,
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating service account: %v", err)
	}
	t.Cleanup(func() {
		_ = cs.CoreV1().ServiceAccounts("default").Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	return sa
}

// tokenFor requests a token for service account sa (TokenRequest API),
// bound to pod when pod is not nil.
func tokenFor(t *testing.T, ctx context.Context, sa string, pod *corev1.Pod) string {
	t.Helper()
	cs := sandbox.Clientset(t, adminUser().direct())
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{}}
	if pod != nil {
		tr.Spec.BoundObjectRef = &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID}
	}
	out, err := cs.CoreV1().ServiceAccounts("default").CreateToken(ctx, sa, tr, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("TokenRequest for %s: %v", sa, err)
	}
	return out.Status.Token
}

// podFor creates a pod running as service account sa, already bound to a
// node name (no scheduler runs in the sandbox), labelled app=name (for a
// selector), and deletes it at the end.
func podFor(t *testing.T, ctx context.Context, name, sa string) *corev1.Pod {
	t.Helper()
	cs := sandbox.Clientset(t, adminUser().direct())
	pod, err := cs.CoreV1().Pods("default").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": name}},
		Spec: corev1.PodSpec{
			ServiceAccountName:           sa,
			AutomountServiceAccountToken: new(bool),
			NodeName:                     "node-" + name,
			Containers:                   []corev1.Container{{Name: "c", Image: "registry.invalid/none"}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating pod: %v", err)
	}
	t.Cleanup(func() {
		zero := int64(0)
		_ = cs.CoreV1().Pods("default").Delete(context.Background(), name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
	})
	return pod
}

// tokenConfig is a client-go config presenting a bearer token to server
// (TLS server name sni when set).
func tokenConfig(server, sni, token string) *rest.Config {
	cfg := sb.RESTConfig(server, nil, nil)
	cfg.BearerToken = token
	cfg.ServerName = sni
	return cfg
}

// The second UpstreamCluster: same replicas and Secrets as the sandbox's,
// chosen by SNI altCluster.sandbox.test, with anonymous requests enabled and
// a TokenReview cache of 2s (1s for failures), so tests can see anonymous
// behaviour and a revoked token stop working after the cache TTL.
const (
	altCluster       = "alt"
	altSNI           = altCluster + "." + sandbox.TestDomain
	altTokenCacheTTL = 2 * time.Second
	altClusterSpec   = `  authentication:
    tokenReview: {cacheTTL: 2s, negativeCacheTTL: 1s}
    anonymous: {enabled: true}
`
)

// altClusterYAML is an UpstreamCluster like alt (altClusterSpec), named
// name and chosen by SNI sni, over servers.
func altClusterYAML(name, sni, servers string) string {
	return sb.UpstreamClusterYAML(name, servers, []string{sni}, altClusterSpec)
}

var altOnce, deadOnce struct {
	sync.Once
	err error
}

// ensureAltCluster writes the second UpstreamCluster into frontdoor's
// config directory (once per package) and waits until it serves: an
// anonymous /version answers 200 only there.
func ensureAltCluster(t *testing.T, ctx context.Context) {
	t.Helper()
	ensureCluster(t, ctx, &altOnce.Once, &altOnce.err, altCluster, sandbox.ServersYAML(sb.ReplicaURLs), nil, http.StatusOK)
}

// deadSNI selects a third UpstreamCluster whose only server never answers
// (nothing listens on its port): every request is authenticated, then finds
// no healthy upstream.
const deadCluster = "dead"

var deadSNI = deadCluster + "." + sandbox.TestDomain

func ensureDeadCluster(t *testing.T, ctx context.Context) {
	t.Helper()
	addr := "127.0.0.1:" + strconv.Itoa(testenv.MustFreePort(t)) // reserved, so nothing listens there
	admin := adminUser()
	ensureCluster(t, ctx, &deadOnce.Once, &deadOnce.err, deadCluster, sandbox.ServersYAML([]string{"https://" + addr}),
		&admin, http.StatusServiceUnavailable)
}

// ensureCluster writes an UpstreamCluster like the sandbox's, chosen by SNI
// name.sandbox.test, with the given servers block (once per package), and
// waits until a GET /version by u (nil: no credentials) through it answers
// want.
func ensureCluster(t *testing.T, ctx context.Context, once *sync.Once, errp *error, name, servers string, u *user, want int) {
	t.Helper()
	once.Do(func() {
		sni := name + "." + sandbox.TestDomain
		uc := altClusterYAML(name, sni, servers)
		if *errp = os.WriteFile(filepath.Join(sb.Dir, "config", "upstreamcluster-"+name+".yaml"), []byte(uc), 0o644); *errp != nil {
			return
		}
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		*errp = poll(wctx, 200*time.Millisecond, func() (bool, error) {
			// A new connection each time: an open one stays on the filter
			// chain it was accepted by.
			var client *http.Client
			if u != nil {
				client = httpClient(t, sni, u.certPEM, u.keyPEM)
			} else {
				client = httpClient(t, sni, nil, nil)
			}
			defer client.CloseIdleConnections()
			code, _, _ := do(t, wctx, client, http.MethodGet, sb.GatewayURL+"/version", nil, nil)
			return code == want, nil
		})
	})
	if *errp != nil {
		t.Fatalf("UpstreamCluster %q not serving: %v", name, *errp)
	}
}

// httpClient trusts the sandbox CA, sends TLS server name sni (if set) and
// presents the given client certificate (if any).
func httpClient(t *testing.T, sni string, certPEM, keyPEM []byte) *http.Client {
	t.Helper()
	return sandboxClient(t, sb, sni, certPEM, keyPEM)
}

// sandboxClient is httpClient for a sandbox of a test's own.
func sandboxClient(t *testing.T, s *sandbox.Sandbox, sni string, certPEM, keyPEM []byte) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(s.CA.Cert)
	cfg := &tls.Config{RootCAs: pool, ServerName: sni, MinVersion: tls.VersionTLS12}
	if certPEM != nil {
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}}
}

// do sends one request (headers h as spelled; a body is JSON) and returns
// its status, headers and body (testhttp.Do). A transport error fails the
// test.
func do(t *testing.T, ctx context.Context, client *http.Client, method, url string, h http.Header, body []byte) (int, http.Header, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
		h = maps.Clone(h)
		if h == nil {
			h = http.Header{}
		}
		h.Set("Content-Type", "application/json")
	}
	resp, out := testhttp.Do(t, ctx, client, method, url, h, rd)
	return resp.StatusCode, resp.Header, out
}

// auditEvent is the part of a kube-apiserver audit event the tests read.
type auditEvent struct {
	Stage            string                     `json:"stage"`
	RequestURI       string                     `json:"requestURI"`
	User             authenticationv1.UserInfo  `json:"user"`
	ImpersonatedUser *authenticationv1.UserInfo `json:"impersonatedUser"`
	ResponseStatus   *metav1.Status             `json:"responseStatus"`
	AuditID          string                     `json:"auditID"`
	SourceIPs        []string                   `json:"sourceIPs"`
	UserAgent        string                     `json:"userAgent"`
	// Replica is the replica (1-based) whose audit log holds the event.
	Replica int `json:"-"`
}

// effectiveUser is who the apiserver authorized the request as.
func (e auditEvent) effectiveUser() authenticationv1.UserInfo {
	if e.ImpersonatedUser != nil {
		return *e.ImpersonatedUser
	}
	return e.User
}

// auditEvents returns every ResponseComplete (or Panic) audit event of
// every replica whose request URI contains marker.
func auditEvents(t *testing.T, marker string) []auditEvent {
	t.Helper()
	return auditEventsOf(sb, marker)
}

// auditEventsOf is auditEvents for the replicas of sandbox s.
func auditEventsOf(s *sandbox.Sandbox, marker string) []auditEvent {
	var out []auditEvent
	for i := range s.ReplicaURLs {
		f, err := os.Open(filepath.Join(s.Dir, "logs", fmt.Sprintf("audit-%d.log", i+1)))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			line := sc.Bytes()
			if !bytes.Contains(line, []byte(marker)) {
				continue
			}
			var e auditEvent
			if json.Unmarshal(line, &e) == nil && strings.Contains(e.RequestURI, marker) &&
				(e.Stage == "ResponseComplete" || e.Stage == "Panic") {
				e.Replica = i + 1
				out = append(out, e)
			}
		}
		f.Close()
	}
	return out
}

// reachedAs asserts that exactly the requests marked with marker reached
// the apiservers, each as user (nil: none may have reached them).
func reachedAs(t *testing.T, marker string, user *string) {
	t.Helper()
	// The audit log is written before the response, but give a slow
	// replica's buffered writer a moment.
	var events []auditEvent
	deadline := time.Now().Add(2 * time.Second)
	for {
		events = auditEvents(t, marker)
		if user == nil || len(events) > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if user == nil {
		if len(events) > 0 {
			t.Errorf("request %s reached an apiserver as %q; want it stopped at the gateway", marker, events[0].effectiveUser().Username)
		}
		return
	}
	if len(events) == 0 {
		t.Errorf("request %s never reached an apiserver; want it forwarded as %q", marker, *user)
		return
	}
	for _, e := range events {
		if got := e.effectiveUser().Username; got != *user {
			t.Errorf("request %s reached an apiserver as %q (authenticated %q); want %q", marker, got, e.User.Username, *user)
		}
	}
}
