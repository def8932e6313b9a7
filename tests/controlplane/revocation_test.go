package controlplane

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubefrontdoor/frontdoor/api/v1alpha1"
	"github.com/kubefrontdoor/frontdoor/tests/sandbox"
)

// revocationBudget is the bar: a revoked certificate is refused
// within 2 s of the edit.
const revocationBudget = 2 * time.Second

// revocationCRL is a PEM CRL of the sandbox CA revoking serials.
func revocationCRL(t *testing.T, serials ...*big.Int) string {
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
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, sb.CA.Cert, sb.CA.Key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}))
}

// crlSecretManifest is an Opaque Secret holding crl as ca.crl.
func crlSecretManifest(name, crl string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: Secret\nmetadata: {namespace: %s, name: %s}\ntype: Opaque\nstringData:\n  ca.crl: |\n%s",
		sandbox.SecretNamespace, name, indent(strings.TrimSpace(crl), "    ")+"\n")
}

// TestRevocationInKubernetesMode: in Kubernetes mode, a certificate is
// refused within 2 s of an UpstreamCluster edit denying its fingerprint,
// and within 2 s of an in-place edit of the referenced CRL Secret listing
// another one (the Secret is watched because the cluster references it);
// a third client sees no failure meanwhile. A reference to a garbage CRL
// is ResolvedRefs False (InvalidSecret) and Programmed False
// (LastGoodServed) on the object, and the last good version, revocations
// included, keeps serving.
func TestRevocationInKubernetesMode(t *testing.T) {
	ctx := setup(t, 3*time.Minute)
	const name = "revocation"
	sni := name + "." + sandbox.TestDomain
	type client struct {
		http   *http.Client
		der    []byte
		serial *big.Int
	}
	newClient := func(user string) client {
		certPEM, keyPEM := sb.ClientCert(user, "system:masters")
		c, err := sniClient(sb.CA.Cert, sni, certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.CloseIdleConnections)
		block, _ := pem.Decode(certPEM)
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return client{http: c, der: block.Bytes, serial: cert.SerialNumber}
	}
	byFP, byCRL, other := newClient("revoked-by-fingerprint"), newClient("revoked-by-crl"), newClient("never-revoked")
	url := sb.GatewayURL + "/api/v1/namespaces/default"

	// Its own serving certificate for its SNI: the sandbox's shared
	// "serving" Secret is rotated to a localhost-only one by the lifecycle
	// test, which runs first.
	servingCrt, servingKey, err := sb.CA.ServingCert(sni, []string{sni}, nil)
	if err != nil {
		t.Fatal(err)
	}
	applyYAML(t, ctx, tlsSecretYAML("revocation-serving", servingCrt, servingKey, nil))
	applyYAML(t, ctx, crlSecretManifest("revocation-crl", revocationCRL(t)))
	applyYAML(t, ctx, crlSecretManifest("revocation-crl-garbage", "-----BEGIN X509 CRL-----\nbm90IGEgQ1JM\n-----END X509 CRL-----"))
	applyYAML(t, ctx, fmt.Sprintf(`apiVersion: frontdoor.dev/v1alpha1
kind: UpstreamCluster
metadata: {name: %s}
spec:
  servers: [{endpoint: %q}]
  clientConfig:
    secretRef: {namespace: %[3]s, name: upstream}
  secureServing:
    serverNames: [%[4]s]
    secretRef: {namespace: %[3]s, name: revocation-serving}
    clientCASecretRef: {namespace: %[3]s, name: client-ca}
  authentication:
    x509:
      revocation:
        crlSecretRef: {namespace: %[3]s, name: revocation-crl}
`, name, sb.ReplicaURLs[0], sandbox.SecretNamespace, sni))
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, _ = sb.Kubectl(cctx, "delete", "upstreamcluster", name, "--ignore-not-found")
		_, _ = sb.Kubectl(cctx, "delete", "secret", "-n", sandbox.SecretNamespace, "revocation-crl", "revocation-crl-garbage", "revocation-serving", "--ignore-not-found")
	})
	waitUC(t, ctx, name, 30*time.Second, "Programmed", func(uc *v1alpha1.UpstreamCluster) bool { return programmed(uc) })
	// Programmed means Envoy acknowledged the listener; its new filter
	// chain serves once the chain's SDS certificate arrived, a moment
	// later (until then the catch-all chain answers the SNI).
	for _, c := range []client{byFP, byCRL, other} {
		deadline := time.Now().Add(15 * time.Second)
		for {
			code, _, err := statusOf(ctx, c.http, url)
			if err == nil && code == http.StatusOK {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("before revocation: %d %v", code, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	// The never-revoked client loads the gateway throughout.
	var ok, failed atomic.Int64
	var firstFailure atomic.Value
	lctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for lctx.Err() == nil {
				code, _, err := statusOf(lctx, other.http, url)
				switch {
				case lctx.Err() != nil:
				case err == nil && code == http.StatusOK:
					ok.Add(1)
				default:
					failed.Add(1)
					firstFailure.CompareAndSwap(nil, fmt.Sprintf("%d %v", code, err))
				}
			}
		})
	}
	defer func() { stop(); wg.Wait() }()

	// refusedWithin polls c until it is refused 401 and checks it came
	// within the budget of start.
	refusedWithin := func(c client, start time.Time, what string) {
		t.Helper()
		for {
			code, _, err := statusOf(ctx, c.http, url)
			if err == nil && code == http.StatusUnauthorized {
				break
			}
			if time.Since(start) > 10*time.Second {
				t.Fatalf("%s: still %d (%v) 10 s after the edit", what, code, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
		took := time.Since(start)
		t.Logf("%s: refused %v after the edit", what, took.Round(time.Millisecond))
		if took > revocationBudget {
			t.Errorf("%s: refused %v after the edit, want within %v", what, took, revocationBudget)
		}
	}

	sum := sha256.Sum256(byFP.der)
	start := time.Now()
	patchUC(t, ctx, name, fmt.Sprintf(`{"spec":{"authentication":{"x509":{"revocation":{"deniedFingerprints":[%q]}}}}}`, hex.EncodeToString(sum[:])))
	refusedWithin(byFP, start, "UpstreamCluster edit denying a fingerprint")

	start = time.Now()
	applyYAML(t, ctx, crlSecretManifest("revocation-crl", revocationCRL(t, byCRL.serial)))
	refusedWithin(byCRL, start, "CRL Secret edited in place")

	patchUC(t, ctx, name, fmt.Sprintf(`{"spec":{"authentication":{"x509":{"revocation":{"crlSecretRef":{"namespace":%q,"name":"revocation-crl-garbage"}}}}}}`, sandbox.SecretNamespace))
	waitUC(t, ctx, name, 10*time.Second, "InvalidSecret, last good served", func(uc *v1alpha1.UpstreamCluster) bool {
		refs, prog := cond(uc, v1alpha1.ConditionResolvedRefs), cond(uc, v1alpha1.ConditionProgrammed)
		return refs.ObservedGeneration == uc.Generation && refs.Status == metav1.ConditionFalse && refs.Reason == v1alpha1.ReasonInvalidSecret &&
			prog.ObservedGeneration == uc.Generation && prog.Status == metav1.ConditionFalse && prog.Reason == v1alpha1.ReasonLastGoodServed
	})
	time.Sleep(time.Second)
	for what, c := range map[string]client{"revoked by fingerprint": byFP, "revoked by CRL": byCRL} {
		if code, _, err := statusOf(ctx, c.http, url); err != nil || code != http.StatusUnauthorized {
			t.Errorf("%s, under the rejected edit: %d %v, want 401 (the last good version)", what, code, err)
		}
	}

	stop()
	wg.Wait()
	t.Logf("never-revoked client: %d ok, %d failed", ok.Load(), failed.Load())
	if failed.Load() != 0 || ok.Load() == 0 {
		t.Errorf("never-revoked client: %d failed requests (first: %v), %d ok; want 0 failed", failed.Load(), firstFailure.Load(), ok.Load())
	}
}
