package sandbox

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"syscall"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// GatewayUser is the CN of the gateway's upstream client certificate, the
// identity that impersonates every client.
const GatewayUser = "frontdoor-gateway"

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
		return expectStatus(ctx, client, s.ETCDURL+"/health", http.StatusOK)
	})
}

// apiserverArgs are the flags of replica i (1-based). StartReplica reuses
// them, so a restarted replica comes back on the same port.
func (s *Sandbox) apiserverArgs(i, port int) []string {
	return []string{
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
	}
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
		return expectStatus(ctx, client, url, http.StatusOK)
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

// applyRBAC grants the gateway's upstream identity what it needs to forward
// requests on behalf of clients: impersonate every kind of identity, and
// create TokenReviews and SubjectAccessReviews.
func (s *Sandbox) applyRBAC(ctx context.Context) error {
	s.progress("RBAC: ClusterRole and ClusterRoleBinding %s for user %s", GatewayUser, GatewayUser)
	cs, err := kubernetes.NewForConfig(s.RESTConfig(s.ReplicaURLs[0], s.AdminCertPEM, s.AdminKeyPEM))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: GatewayUser},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"users", "groups", "serviceaccounts"}, Verbs: []string{"impersonate"}},
			// uids and userextras/<key> for every extra key. RBAC has no
			// prefix wildcard ("userextras/*" matches nothing), and extra
			// keys are open-ended (credential-id, pod-name, ...), so this
			// takes every resource of the group for the impersonate verb.
			{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"*"}, Verbs: []string{"impersonate"}},
			{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"tokenreviews"}, Verbs: []string{"create"}},
			{APIGroups: []string{"authorization.k8s.io"}, Resources: []string{"subjectaccessreviews"}, Verbs: []string{"create"}},
		},
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: GatewayUser},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: GatewayUser},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: GatewayUser}},
	}
	if _, err := cs.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); apierrors.IsAlreadyExists(err) {
		_, err = cs.RbacV1().ClusterRoles().Update(ctx, role, metav1.UpdateOptions{})
		if err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); apierrors.IsAlreadyExists(err) {
		_, err = cs.RbacV1().ClusterRoleBindings().Update(ctx, binding, metav1.UpdateOptions{})
		return err
	} else if err != nil {
		return err
	}
	return nil
}
