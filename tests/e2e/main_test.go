// Package e2e tests Frontdoor end to end: real etcd, three real
// kube-apiservers, the real frontdoor binary and a real Envoy, all on
// 127.0.0.1. One sandbox serves the whole package; every test asserts a
// behaviour a user of the gateway relies on.
//
// The binaries must already be in bin/ (`make tools`, `make build`); the
// tests build nothing.
package e2e

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kubefrontdoor/frontdoor/tests/sandbox"
)

// sb is the package's sandbox, started by TestMain.
var sb *sandbox.Sandbox

func TestMain(m *testing.M) {
	os.Exit(sandbox.RunTests(m, "e2e", sandbox.Options{
		Progress: os.Stderr, LogRequests: true,
		RequestService: sandbox.RequestServiceFromEnv(),
		// Redis and the ratelimit service, for globallimit_test.go: idle
		// (and no Envoy config) until a cluster has a Global token bucket.
		GlobalRateLimit: true,
	}, func(s *sandbox.Sandbox) { sb = s }))
}

// setup skips without a sandbox, prints the tails of the component logs if
// the test fails, and returns a context bounding the test.
func setup(t *testing.T, timeout time.Duration) context.Context {
	t.Helper()
	return sandbox.TestContext(t, sb, timeout, func(name string) int {
		switch {
		case name == "etcd":
			return 0
		case strings.HasPrefix(name, "apiserver-"):
			return 5 // mostly start-up noise; the audit logs say more
		}
		return 20
	})
}

// kubectl runs bin/kubectl against kubeconfig and returns its stdout; a
// non-zero exit fails the test with stderr.
func kubectl(t *testing.T, ctx context.Context, kubeconfig string, args ...string) string {
	t.Helper()
	out, err := sb.KubectlWith(ctx, kubeconfig, 20*time.Second, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// user is a client identity: an x509 cert minted by the sandbox CA.
type user struct {
	name            string
	groups          []string
	certPEM, keyPEM []byte
}

func newUser(name string, groups ...string) user {
	cert, key := sb.ClientCert(name, groups...)
	return user{name: name, groups: groups, certPEM: cert, keyPEM: key}
}

// gateway and direct return client-go configs for u through the gateway and
// straight to replica 1.
func (u user) gateway() *rest.Config { return sb.GatewayConfig(u.certPEM, u.keyPEM) }
func (u user) direct() *rest.Config  { return sb.DirectConfig(1, u.certPEM, u.keyPEM) }

// kubeconfigs writes u's gateway and direct kubeconfigs into a temp dir.
func (u user) kubeconfigs(t *testing.T) (gateway, direct string) {
	t.Helper()
	dir := t.TempDir()
	gateway, direct = filepath.Join(dir, "gateway.kubeconfig"), filepath.Join(dir, "direct.kubeconfig")
	if err := sb.WriteKubeconfig(gateway, sb.GatewayURL, u.certPEM, u.keyPEM); err != nil {
		t.Fatal(err)
	}
	if err := sb.WriteKubeconfig(direct, sb.ReplicaURLs[0], u.certPEM, u.keyPEM); err != nil {
		t.Fatal(err)
	}
	return gateway, direct
}

func adminUser() user {
	return user{name: "sandbox-admin", groups: []string{"system:masters"}, certPEM: sb.AdminCertPEM, keyPEM: sb.AdminKeyPEM}
}

// withHeaders makes every request of cfg carry extra headers, the way a
// hostile or confused client would.
func withHeaders(cfg *rest.Config, h http.Header) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return roundTripperFunc(func(req *http.Request) (*http.Response, error) {
			req = req.Clone(req.Context())
			for k, vs := range h {
				for _, v := range vs {
					req.Header.Add(k, v)
				}
			}
			return rt.RoundTrip(req)
		})
	}
	return cfg
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// whoami asks the apiserver who cs is (what `kubectl auth whoami` does).
func whoami(t *testing.T, ctx context.Context, cs *kubernetes.Clientset) authenticationv1.UserInfo {
	t.Helper()
	review, err := cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("SelfSubjectReview: %v", err)
	}
	return review.Status.UserInfo
}

// startGatewaySandbox starts a sandbox of its own for a test that needs
// frontdoor serve started with serveArgs (one replica, the request service
// of the run), stopped when the test ends, and returns it with a client
// holding its admin certificate.
func startGatewaySandbox(t *testing.T, ctx context.Context, serveArgs ...string) (*sandbox.Sandbox, *http.Client) {
	t.Helper()
	s, err := sandbox.Start(ctx, sandbox.Options{
		Dir: t.TempDir(), Replicas: 1, Progress: os.Stderr,
		RequestService: sandbox.RequestServiceFromEnv(),
		FrontdoorArgs:  serveArgs,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	admin, err := s.HTTPClient(s.AdminCertPEM, s.AdminKeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return s, admin
}

// poll calls f every interval until it returns true or ctx ends.
func poll(ctx context.Context, interval time.Duration, f func() (bool, error)) error {
	for {
		done, err := f()
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}
