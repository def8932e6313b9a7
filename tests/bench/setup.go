package bench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kubefrontdoor/frontdoor/tests/sandbox"
)

// BenchUser is the x509 identity every client-certificate path uses.
const BenchUser = "bench-user"

// benchSA is the ServiceAccount whose token the bearer-token path sends.
const benchSA = "bench-client"

// seed creates the namespaces, the ListSize ConfigMaps, and the RBAC that
// lets the bench user, the bench ServiceAccount and (for the plain Envoy
// path, which has no impersonation) the gateway identity itself read and
// write ConfigMaps there. It returns a token of the bench ServiceAccount.
func seed(ctx context.Context, s *sandbox.Sandbox) (token string, err error) {
	cs, err := kubernetes.NewForConfig(s.DirectConfig(1, s.AdminCertPEM, s.AdminKeyPEM))
	if err != nil {
		return "", err
	}
	for _, ns := range []string{ListNamespace, CreateNamespace} {
		if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			return "", fmt.Errorf("namespace %s: %w", ns, err)
		}
		role := &rbacv1.Role{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bench"},
			Rules: []rbacv1.PolicyRule{{
				APIGroups: []string{""}, Resources: []string{"configmaps"},
				Verbs: []string{"get", "list", "watch", "create", "patch", "update"},
			}},
		}
		if _, err := cs.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
			return "", err
		}
		binding := &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bench"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "bench"},
			Subjects: []rbacv1.Subject{
				{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: BenchUser},
				{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: sandbox.GatewayUser},
				{Kind: rbacv1.ServiceAccountKind, Namespace: ListNamespace, Name: benchSA},
			},
		}
		if _, err := cs.RbacV1().RoleBindings(ns).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
			return "", err
		}
	}
	// 500 ConfigMaps of ~1 KiB each, created by 16 workers.
	value := strings.Repeat("x", 1024)
	errs := make(chan error, ListSize)
	work := make(chan int)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for i := range work {
				cm := &corev1.ConfigMap{
					ObjectMeta: metav1.ObjectMeta{Namespace: ListNamespace, Name: fmt.Sprintf("cm-%d", i), Labels: map[string]string{"bench": "list"}},
					Data:       map[string]string{"v": value},
				}
				if _, err := cs.CoreV1().ConfigMaps(ListNamespace).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
					errs <- err
				}
			}
		})
	}
	for i := range ListSize {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return "", fmt.Errorf("seeding ConfigMaps: %w", err)
	}

	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ListNamespace, Name: benchSA}}
	if _, err := cs.CoreV1().ServiceAccounts(ListNamespace).Create(ctx, sa, metav1.CreateOptions{}); err != nil {
		return "", err
	}
	ttl := int64(3600)
	tr, err := cs.CoreV1().ServiceAccounts(ListNamespace).CreateToken(ctx, benchSA,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &ttl}}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("token for %s: %w", benchSA, err)
	}
	return tr.Status.Token, nil
}

// tokenSupport decides whether this frontdoor build authenticates bearer
// tokens: it sends the token through the gateway and, if that is refused
// and the CRD in this tree has a tokenReview field, enables it on the
// sandbox's UpstreamCluster and tries again until the config has applied.
// It never fakes support: n/a is returned with the reason.
func tokenSupport(ctx context.Context, s *sandbox.Sandbox, root string, c Client) (ok bool, why string) {
	if err := c.probe(ctx); err == nil {
		return true, ""
	}
	crd, _ := os.ReadFile(filepath.Join(root, "manifests", "crds", "frontdoor.dev_upstreamclusters.yaml"))
	if !strings.Contains(string(crd), "tokenReview:") {
		return false, "n/a: not supported by this build"
	}
	ucPath := filepath.Join(s.Dir, "config", "upstreamcluster-"+sandbox.ClusterName+".yaml")
	uc, err := os.ReadFile(ucPath)
	if err != nil {
		return false, err.Error()
	}
	if !strings.Contains(string(uc), "tokenReview") {
		uc = append(uc, []byte("  authentication:\n    x509: {enabled: true}\n    tokenReview: {enabled: true}\n")...)
		if err := os.WriteFile(ucPath, uc, 0o644); err != nil {
			return false, err.Error()
		}
	}
	if err := c.waitServed(ctx, 15*time.Second); err != nil {
		return false, "n/a: tokenReview enabled but a token was still refused (" + err.Error() + ")"
	}
	return true, ""
}

// modeCluster is one more UpstreamCluster over the same replicas whose
// requests go through another request-service mode; clients pick it by
// SNI, so every mode is measured against one Envoy and one frontdoor.
type modeCluster struct{ name, sni, mode string }

var (
	extProcCluster   = modeCluster{"bench-extproc", "extproc." + sandbox.TestDomain, "ExtProc"}
	inProcessCluster = modeCluster{"bench-inprocess", "inprocess." + sandbox.TestDomain, "InProcess"}
	// requestHeaderCluster forwards identities as X-Remote-* (the sandbox's
	// replicas trust the gateway's certificate for them): the apiservers'
	// cost without impersonation.
	requestHeaderCluster = forwardedCluster{modeCluster{"bench-requestheader", "requestheader." + sandbox.TestDomain, "ExtAuthz"}, "RequestHeader"}
	// inProcessRHCluster is the in-process request service forwarding as
	// requestHeaderCluster does.
	inProcessRHCluster = forwardedCluster{modeCluster{"bench-inprocess-rh", "inprocess-requestheader." + sandbox.TestDomain, "InProcess"}, "RequestHeader"}
	// modeClusters by request service, for variants (Variant.Mode).
	modeClusters = map[string]modeCluster{extProcCluster.mode: extProcCluster, inProcessCluster.mode: inProcessCluster}
)

// sniCluster is an UpstreamCluster a bench path reaches by SNI
// (modeCluster, forwardedCluster).
type sniCluster interface {
	serverName() string
	requestService() string
	start(ctx context.Context, s *sandbox.Sandbox, c Client) error
}

func (m modeCluster) serverName() string     { return m.sni }
func (m modeCluster) requestService() string { return m.mode }

// start writes the cluster into the sandbox's config and waits until c
// gets a 200 through it.
func (m modeCluster) start(ctx context.Context, s *sandbox.Sandbox, c Client) error {
	return m.startForwarding(ctx, s, c, "")
}

// forwardedCluster is a modeCluster with its own
// spec.clientConfig.identityForwarding.
type forwardedCluster struct {
	modeCluster
	forwarding string
}

func (f forwardedCluster) start(ctx context.Context, s *sandbox.Sandbox, c Client) error {
	return f.startForwarding(ctx, s, c, f.forwarding)
}

// startForwarding is start with spec.clientConfig.identityForwarding
// forwarding ("" keeps the sandbox's).
func (m modeCluster) startForwarding(ctx context.Context, s *sandbox.Sandbox, c Client, forwarding string) error {
	if err := m.writeForwarding(s.Dir, filepath.Join(s.Dir, "config"), forwarding); err != nil {
		return err
	}
	// Until Envoy has the new filter chain, the catch-all chain of the
	// sandbox's cluster answers this SNI too: a probe's 200 proves nothing,
	// and connections opened now would stay on the old chain.
	if err := waitListenerHas(ctx, s.EnvoyAdmin, m.sni, 30*time.Second); err != nil {
		return err
	}
	if err := c.waitServed(ctx, 15*time.Second); err != nil {
		return fmt.Errorf("the %s UpstreamCluster did not serve: %w", m.mode, err)
	}
	return nil
}

// write renders the cluster (the sandbox's in sandboxDir, renamed, with
// its own server name and request service) into configDir.
func (m modeCluster) write(sandboxDir, configDir string) error {
	return m.writeForwarding(sandboxDir, configDir, "")
}

// writeForwarding is write with spec.clientConfig.identityForwarding
// forwarding ("" keeps the sandbox's).
func (m modeCluster) writeForwarding(sandboxDir, configDir, forwarding string) error {
	base, err := os.ReadFile(filepath.Join(sandboxDir, "config", "upstreamcluster-"+sandbox.ClusterName+".yaml"))
	if err != nil {
		return err
	}
	uc := strings.Replace(string(base), "name: "+sandbox.ClusterName+"\n", "name: "+m.name+"\n", 1)
	uc = strings.Replace(uc, "  secureServing:\n", "  secureServing:\n    serverNames: ["+m.sni+"]\n", 1)
	var kept []string
	for _, line := range strings.SplitAfter(uc, "\n") {
		if strings.HasPrefix(line, "  requestService: ") || forwarding != "" && strings.HasPrefix(line, "    identityForwarding: ") {
			continue
		}
		kept = append(kept, line)
		if line == "  clientConfig:\n" && forwarding != "" {
			kept = append(kept, "    identityForwarding: "+forwarding+"\n")
		}
	}
	uc = strings.Join(kept, "") + "  requestService: " + m.mode + "\n"
	return os.WriteFile(filepath.Join(configDir, "upstreamcluster-"+m.name+".yaml"), []byte(uc), 0o644)
}

// waitListenerHas waits until the active listener of the Envoy whose admin
// API admin reads has a filter chain for serverName (none warming).
func waitListenerHas(ctx context.Context, admin func(ctx context.Context, path string) (string, error), serverName string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		dump, err := admin(ctx, "/config_dump?resource=dynamic_listeners")
		if err == nil && strings.Contains(dump, `"`+serverName+`"`) && !strings.Contains(dump, "warming_state") {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no filter chain for %s in Envoy after %s (last error: %w)", serverName, timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// probe sends one GET of a seeded ConfigMap as c, on a new connection (so
// that it meets the gateway's current listener config), and fails unless
// the answer is 200.
func (c Client) probe(ctx context.Context) error {
	clients, err := c.transports(1)
	if err != nil {
		return err
	}
	defer closeAll(clients)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL+"/api/v1/namespaces/"+ListNamespace+"/configmaps/cm-0", nil)
	if err != nil {
		return err
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := clients[0].Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	return nil
}

// waitServed probes every 300 ms until a probe succeeds or timeout passes,
// and then returns the last probe's error.
func (c Client) waitServed(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := c.probe(ctx)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("not served within %v (last: %w)", timeout, err)
		}
		time.Sleep(300 * time.Millisecond)
	}
}
