package sandbox

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"
)

// GatewayUser is the CN of the gateway's upstream client certificate, the
// identity that impersonates every client (or, with identityForwarding:
// RequestHeader, forwards it in front-proxy headers).
const GatewayUser = "frontdoor-gateway"

// FrontProxyUser is the CN of a front proxy's client certificate (from the
// sandbox CA): the replicas trust its X-Remote-* headers, so tests can ask
// them directly what a front-proxy client's identity is and compare.
const FrontProxyUser = "front-proxy"

// requestHeaderArgs are the replicas' front-proxy (requestheader) flags.
// The requestheader CA is the sandbox CA, which also signs every client
// certificate: only the two allowed names may assert X-Remote-*, and the
// gateway's certificate stays an ordinary user (frontdoor-gateway) for its
// TokenReviews, SubjectAccessReviews, impersonation and health checks.
// The flags are additive: a request without X-Remote-User authenticates
// as before. --requestheader-uid-headers needs the RemoteRequestHeaderUID
// feature (beta, on by default since 1.33).
func (s *Sandbox) requestHeaderArgs() []string {
	return []string{
		"--requestheader-client-ca-file", s.path("ca.crt"),
		"--requestheader-allowed-names", GatewayUser + "," + FrontProxyUser,
		"--requestheader-username-headers", "X-Remote-User",
		"--requestheader-uid-headers", "X-Remote-Uid",
		"--requestheader-group-headers", "X-Remote-Group",
		"--requestheader-extra-headers-prefix", "X-Remote-Extra-",
	}
}

// auditPolicy records every request at Metadata level, so a test or a human
// can see which identity each replica actually saw.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
rules:
- level: Metadata
`

const (
	etcdTimeout      = 60 * time.Second
	apiserverTimeout = 180 * time.Second // three replicas starting at once on 2 cores
)

func (s *Sandbox) startEtcd(ctx context.Context, clientPort, peerPort int) error {
	s.ETCDURL = fmt.Sprintf("http://127.0.0.1:%d", clientPort)
	peer := fmt.Sprintf("http://127.0.0.1:%d", peerPort)
	s.etcd = newProcess("etcd", s.bin("etcd"), s.logPath("etcd"),
		"--name", "sandbox",
		"--data-dir", s.path("etcd"),
		"--listen-client-urls", s.ETCDURL,
		"--advertise-client-urls", s.ETCDURL,
		"--listen-peer-urls", peer,
		"--initial-advertise-peer-urls", peer,
		"--initial-cluster", "sandbox="+peer,
		"--unsafe-no-fsync",
	)
	s.progress("etcd on 127.0.0.1:%d (log: %s)", clientPort, s.etcd.logPath)
	if err := s.etcd.start(); err != nil {
		return err
	}
	wctx, cancel := waitCtx(ctx, etcdTimeout)
	defer cancel()
	client := &http.Client{}
	return s.etcd.waitFor(wctx, "to become healthy", 200*time.Millisecond, func(ctx context.Context) error {
		return ExpectStatus(ctx, client, s.ETCDURL+"/health", http.StatusOK)
	})
}

// apiserverArgs are the flags of replica i (1-based), Options.ReplicaArgs[i]
// last. StartReplica reuses them, so a restarted replica comes back on the
// same port.
func (s *Sandbox) apiserverArgs(i, port int) []string {
	return append(s.baseAPIServerArgs(i, port), s.opts.ReplicaArgs[i]...)
}

// baseAPIServerArgs are the flags every replica i (1-based) has.
func (s *Sandbox) baseAPIServerArgs(i, port int) []string {
	return append(s.requestHeaderArgs(),
		"--bind-address", "127.0.0.1",
		"--advertise-address", "127.0.0.1",
		"--secure-port", strconv.Itoa(port),
		"--etcd-servers", s.ETCDURL,
		"--client-ca-file", s.path("ca.crt"),
		"--tls-cert-file", s.path("pki", "apiserver.crt"),
		"--tls-private-key-file", s.path("pki", "apiserver.key"),
		"--authorization-mode", "RBAC",
		"--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file", s.path("pki", "sa.pub"),
		"--service-account-signing-key-file", s.path("pki", "sa.key"),
		"--api-audiences", "https://kubernetes.default.svc.cluster.local",
		"--service-cluster-ip-range", "10.0.0.0/24",
		// All replicas share 127.0.0.1; letting each reconcile the
		// `kubernetes` Endpoints would make them overwrite each other.
		"--endpoint-reconciler-type", "none",
		"--cert-dir", s.path(fmt.Sprintf("apiserver-%d", i)),
		"--audit-log-path", s.path("logs", fmt.Sprintf("audit-%d.log", i)),
		"--audit-policy-file", s.path("pki", "audit-policy.yaml"),
		// exec, attach, port-forward and logs reach a node's kubelet (the
		// e2e fake kubelet on 127.0.0.1) with a client cert, and verify
		// its serving cert against the sandbox CA.
		"--kubelet-client-certificate", s.path("pki", "apiserver-kubelet-client.crt"),
		"--kubelet-client-key", s.path("pki", "apiserver-kubelet-client.key"),
		"--kubelet-certificate-authority", s.path("ca.crt"),
		"--kubelet-preferred-address-types", "InternalIP",
	)
}

// startAPIServers starts every replica at once and waits for all of them to
// be ready, which is much faster than one after the other.
func (s *Sandbox) startAPIServers(ctx context.Context, ports []int) error {
	s.ReplicaURLs = make([]string, len(ports))
	s.apiservers = make([]*process, len(ports))
	for idx, port := range ports {
		i := idx + 1
		name := fmt.Sprintf("apiserver-%d", i)
		s.ReplicaURLs[idx] = fmt.Sprintf("https://127.0.0.1:%d", port)
		s.apiservers[idx] = newProcess(name, s.bin("kube-apiserver"), s.logPath(name), s.apiserverArgs(i, port)...)
		s.progress("kube-apiserver replica %d on 127.0.0.1:%d (log: %s)", i, port, s.apiservers[idx].logPath)
		if err := s.apiservers[idx].start(); err != nil {
			return err
		}
	}
	wctx, cancel := waitCtx(ctx, apiserverTimeout)
	defer cancel()
	errs := make([]error, len(ports))
	var wg sync.WaitGroup
	for idx := range ports {
		wg.Go(func() { errs[idx] = s.waitReplicaReady(wctx, idx+1) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func (s *Sandbox) waitReplicaReady(ctx context.Context, i int) error {
	client, err := s.HTTPClient(s.AdminCertPEM, s.AdminKeyPEM)
	if err != nil {
		return err
	}
	url := s.ReplicaURLs[i-1] + "/readyz"
	return s.apiservers[i-1].waitFor(ctx, "to become ready ("+url+")", 500*time.Millisecond, func(ctx context.Context) error {
		return ExpectStatus(ctx, client, url, http.StatusOK)
	})
}

// StopReplica kills replica i (1-based) with SIGKILL, as a crash would: no
// graceful shutdown, connections just break.
func (s *Sandbox) StopReplica(i int) error {
	if i < 1 || i > len(s.apiservers) {
		return fmt.Errorf("no replica %d (have %d)", i, len(s.apiservers))
	}
	s.apiservers[i-1].stop(syscall.SIGKILL, stopGrace)
	return nil
}

// PauseReplica stops replica i (1-based) with SIGSTOP: it keeps its
// listening socket, so the kernel still accepts connections, but it never
// answers again, which is how a hung apiserver looks from outside.
// StopReplica (SIGKILL) ends it.
func (s *Sandbox) PauseReplica(i int) error {
	if i < 1 || i > len(s.apiservers) {
		return fmt.Errorf("no replica %d (have %d)", i, len(s.apiservers))
	}
	return s.apiservers[i-1].signal(syscall.SIGSTOP)
}

// StartReplica starts replica i (1-based) again with the same flags and port
// and waits until it is ready.
func (s *Sandbox) StartReplica(ctx context.Context, i int) error {
	if i < 1 || i > len(s.apiservers) {
		return fmt.Errorf("no replica %d (have %d)", i, len(s.apiservers))
	}
	if err := s.apiservers[i-1].start(); err != nil {
		return err
	}
	wctx, cancel := waitCtx(ctx, apiserverTimeout)
	defer cancel()
	return s.waitReplicaReady(wctx, i)
}

// applyRBAC applies manifests/rbac/gateway-upstream.yaml, the RBAC an
// operator applies on a real cluster: the gateway's upstream identity may
// impersonate every kind of identity and create TokenReviews and
// SubjectAccessReviews. Applying the shipped file (not a copy) means the
// suite proves the manifest is enough.
func (s *Sandbox) applyRBAC(ctx context.Context) error {
	root, err := RepoRoot()
	if err != nil {
		return err
	}
	path := filepath.Join(root, "manifests", "rbac", "gateway-upstream.yaml")
	s.progress("RBAC: %s (user %s)", path, GatewayUser)
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(s.RESTConfig(s.ReplicaURLs[0], s.AdminCertPEM, s.AdminKeyPEM))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, doc := range strings.Split(string(b), "\n---\n") {
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		switch tm.Kind {
		case "ClusterRole":
			role := &rbacv1.ClusterRole{}
			if err := yaml.UnmarshalStrict([]byte(doc), role); err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			if _, err := cs.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
				return fmt.Errorf("create ClusterRole %s: %w", role.Name, err)
			}
		case "ClusterRoleBinding":
			binding := &rbacv1.ClusterRoleBinding{}
			if err := yaml.UnmarshalStrict([]byte(doc), binding); err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
				return fmt.Errorf("create ClusterRoleBinding %s: %w", binding.Name, err)
			}
		default:
			return fmt.Errorf("%s: unexpected kind %q", path, tm.Kind)
		}
	}
	return nil
}
