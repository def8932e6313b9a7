package sandbox

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"syscall"
	"time"

	"github.com/kubefrontdoor/frontdoor/internal/testenv"
)

// SecondCluster is another Kubernetes cluster beside the sandbox's: one
// kube-apiserver with its own storage (its own etcd prefix on the sandbox's
// etcd), its own service-account issuer and signing key, and the sandbox's
// CA and admin certificate. Tests use it where a second cluster's
// credentials must reach the first through the gateway (e.g. its
// service-account tokens as JWT clients).
type SecondCluster struct {
	// URL is its kube-apiserver (https://127.0.0.1:P).
	URL string
	// Issuer is its --service-account-issuer (and API audience).
	Issuer string
	p      *process
}

// StartSecondCluster starts a second cluster named name and waits until it
// is ready. The caller stops it (Stop); the sandbox does not know it.
func (s *Sandbox) StartSecondCluster(ctx context.Context, name string) (*SecondCluster, error) {
	ports, err := testenv.FreePorts(1)
	if err != nil {
		return nil, err
	}
	priv, pub, err := newServiceAccountKey()
	if err != nil {
		return nil, err
	}
	dir := s.path("cluster-" + name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	for file, data := range map[string][]byte{"sa.key": priv, "sa.pub": pub} {
		if err := os.WriteFile(dir+"/"+file, data, 0o600); err != nil {
			return nil, err
		}
	}
	c := &SecondCluster{
		URL:    fmt.Sprintf("https://127.0.0.1:%d", ports[0]),
		Issuer: "https://" + name + ".cluster.example",
	}
	args := s.apiserverArgs(0, ports[0])
	for j := 0; j < len(args)-1; j++ {
		switch args[j] {
		case "--service-account-issuer", "--api-audiences":
			args[j+1] = c.Issuer
		case "--service-account-key-file":
			args[j+1] = dir + "/sa.pub"
		case "--service-account-signing-key-file":
			args[j+1] = dir + "/sa.key"
		case "--cert-dir":
			args[j+1] = dir + "/certs"
		case "--audit-log-path":
			args[j+1] = s.path("logs", "audit-"+name+".log")
		}
	}
	args = append(args, "--etcd-prefix", "/"+name)
	logName := "apiserver-" + name
	c.p = newProcess(logName, s.bin("kube-apiserver"), s.logPath(logName), args...)
	s.progress("second cluster %s: kube-apiserver on %s (log: %s)", name, c.URL, c.p.logPath)
	if err := c.p.start(); err != nil {
		return nil, err
	}
	client, err := s.HTTPClient(s.AdminCertPEM, s.AdminKeyPEM)
	if err != nil {
		c.Stop()
		return nil, err
	}
	wctx, cancel := waitCtx(ctx, apiserverTimeout)
	defer cancel()
	if err := c.p.waitFor(wctx, "to become ready ("+c.URL+"/readyz)", 500*time.Millisecond, func(ctx context.Context) error {
		return ExpectStatus(ctx, client, c.URL+"/readyz", http.StatusOK)
	}); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// Stop stops the second cluster's kube-apiserver.
func (c *SecondCluster) Stop() { c.p.stop(syscall.SIGTERM, 10*time.Second) }
