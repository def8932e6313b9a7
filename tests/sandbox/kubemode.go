package sandbox

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Config modes of the sandbox's frontdoor.
const (
	// ModeFiles runs `frontdoor serve --config-dir DIR/config`.
	ModeFiles = "files"
	// ModeKubernetes installs the UpstreamCluster CRD and the control-plane
	// RBAC in the sandbox itself, applies DIR/config (the Secrets and the
	// UpstreamCluster) there, and runs `frontdoor serve --kubeconfig`: the
	// gateway's config lives in the cluster it fronts.
	ModeKubernetes = "kubernetes"
)

// ControlPlaneUser is the identity frontdoor uses in Kubernetes mode: the
// user name of the ServiceAccount that manifests/rbac/control-plane.yaml
// binds, so the sandbox proves that RBAC is enough.
const ControlPlaneUser = "system:serviceaccount:frontdoor-system:frontdoor"

// Kubectl runs bin/kubectl as admin straight against replica 1 and returns
// its stdout.
func (s *Sandbox) Kubectl(ctx context.Context, args ...string) (string, error) {
	kubeconfig := s.path("pki", "admin-direct.kubeconfig")
	if err := s.WriteKubeconfig(kubeconfig, s.ReplicaURLs[0], s.AdminCertPEM, s.AdminKeyPEM); err != nil {
		return "", err
	}
	return s.KubectlWith(ctx, kubeconfig, 30*time.Second, args...)
}

// KubectlWith runs bin/kubectl with kubeconfig, each request bounded by
// requestTimeout, and returns its stdout; a non-zero exit is an error that
// carries stderr.
func (s *Sandbox) KubectlWith(ctx context.Context, kubeconfig string, requestTimeout time.Duration, args ...string) (string, error) {
	args = append([]string{"--kubeconfig", kubeconfig, "--request-timeout", requestTimeout.String()}, args...)
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, s.bin("kubectl"), args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// installControlPlane prepares Kubernetes mode and returns the kubeconfig
// frontdoor serve reads: CRD (waited until established), namespace,
// control-plane RBAC, then the Secrets and UpstreamCluster of DIR/config.
func (s *Sandbox) installControlPlane(ctx context.Context) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	m := func(p ...string) string { return filepath.Join(append([]string{root, "manifests"}, p...)...) }
	steps := [][]string{
		{"apply", "-f", m("crds")},
		{"wait", "--for=condition=Established", "--timeout=60s", "crd/upstreamclusters.frontdoor.dev"},
		{"apply", "-f", m("deploy", "00-namespace.yaml")},
		{"apply", "-f", m("rbac", "control-plane.yaml")},
		{"apply", "-f", s.path("config")},
	}
	s.progress("Kubernetes mode: CRD, control-plane RBAC (user %s) and %s applied to the sandbox", ControlPlaneUser, s.path("config"))
	for _, args := range steps {
		if _, err := s.Kubectl(ctx, args...); err != nil {
			return "", err
		}
	}
	certPEM, keyPEM := s.ClientCert(ControlPlaneUser)
	kubeconfig := s.path("pki", "control-plane.kubeconfig")
	if err := s.WriteKubeconfig(kubeconfig, s.ReplicaURLs[0], certPEM, keyPEM); err != nil {
		return "", err
	}
	return kubeconfig, nil
}
