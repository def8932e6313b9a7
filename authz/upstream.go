package authz

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"sync/atomic"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/flowcontrol"

	"github.com/kubefrontdoor/frontdoor/policy"
)

// upstreamTimeout bounds one review attempt against one server; Envoy's
// ext_authz timeout (2s) bounds the whole Check.
const upstreamTimeout = 1500 * time.Millisecond

// newUpstreamClient returns a clientset that reaches the cluster's servers
// with the gateway's own identity. Every request goes to the next server in
// turn; when a server cannot be reached or answers 5xx, the same request is
// retried on the following ones, so one replica down costs no review.
func newUpstreamClient(u policy.Upstream) (*kubernetes.Clientset, error) {
	if len(u.ServerURLs) == 0 {
		return nil, errors.New("upstream has no servers")
	}
	if len(u.ClientCertPEM) == 0 || len(u.ClientKeyPEM) == 0 || len(u.CAPEM) == 0 {
		return nil, errors.New("upstream has no client certificate, key or CA")
	}
	hosts := make([]string, len(u.ServerURLs))
	for i, s := range u.ServerURLs {
		pu, err := url.Parse(s)
		if err != nil || pu.Scheme != "https" || pu.Host == "" {
			return nil, fmt.Errorf("upstream server %q is not an https URL", s)
		}
		hosts[i] = pu.Host
	}
	cfg := &rest.Config{
		Host: u.ServerURLs[0],
		TLSClientConfig: rest.TLSClientConfig{
			CertData:   u.ClientCertPEM,
			KeyData:    u.ClientKeyPEM,
			CAData:     u.CAPEM,
			ServerName: u.ServerName,
		},
		// Reviews are small; JSON keeps them readable in any proxy log.
		ContentConfig: rest.ContentConfig{ContentType: "application/json", AcceptContentTypes: "application/json"},
		Timeout:       upstreamTimeout,
		UserAgent:     "frontdoor-request-service",
		RateLimiter:   flowcontrol.NewFakeAlwaysRateLimiter(),
		WrapTransport: func(rt http.RoundTripper) http.RoundTripper {
			return &failoverTransport{next: rt, hosts: hosts}
		},
	}
	return kubernetes.NewForConfig(cfg)
}

// failoverTransport spreads requests over hosts round robin and fails over
// to the next host on a transport error or a 5xx answer.
type failoverTransport struct {
	next  http.RoundTripper
	hosts []string
	n     atomic.Uint32
}

func (t *failoverTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	start := int(t.n.Add(1))
	var lastErr error
	for i := range t.hosts {
		if err := req.Context().Err(); err != nil {
			return nil, err
		}
		r := req.Clone(req.Context())
		r.URL.Host = t.hosts[(start+i)%len(t.hosts)]
		r.Host = ""
		if req.Body != nil && req.GetBody != nil {
			b, err := req.GetBody()
			if err != nil {
				return nil, err
			}
			r.Body = b
		}
		resp, err := t.next.RoundTrip(r)
		if err == nil && (resp.StatusCode < 500 || i == len(t.hosts)-1) {
			return resp, nil
		}
		if err == nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			_ = resp.Body.Close()
			lastErr = fmt.Errorf("%s answered %s", r.URL.Host, resp.Status)
			continue
		}
		lastErr = err
		if req.GetBody == nil && req.Body != nil {
			break // the body is consumed; no retry possible
		}
	}
	return nil, lastErr
}

// compileUpstream gives cc its token authenticators, anonymous setting and
// impersonator. They are kept from old when nothing they depend on changed,
// so warm TokenReview and SubjectAccessReview caches survive unrelated
// config changes. Without a usable upstream connection, tokens do not
// authenticate and impersonation is refused (fail closed).
func (p *Pipeline) compileUpstream(name string, c *policy.Cluster, old *compiledCluster, cc *compiledCluster) {
	cc.anonymous = c.Anonymous
	cc.upstream = c
	if old != nil && old.upstream != nil && sameUpstream(old.upstream, c) {
		cc.tokens, cc.impersonate = old.tokens, old.impersonate
	} else {
		client, err := newUpstreamClient(c.Upstream)
		if err != nil {
			p.log.Error("cluster upstream unusable, token authentication and impersonation disabled",
				"cluster", name, "error", err)
			return
		}
		if tr := c.TokenReview; tr.Enabled {
			cc.tokens = newTokenAuthenticator(name, client.AuthenticationV1(), tr.Audiences,
				time.Duration(tr.CacheTTL), time.Duration(tr.NegativeCacheTTL), p.tokenLimits, p.reqMetrics)
		}
		if cc.impersonate, err = newImpersonator(client.AuthorizationV1(), p.reqMetrics); err != nil {
			p.log.Error("impersonation authorizer", "cluster", name, "error", err)
		}
	}
	if cc.tokens != nil {
		cc.authenticators = append(cc.authenticators, bearerAuthenticator{cc.tokens}, newWebsocketAuthenticator(cc.tokens))
	}
}

// sameUpstream reports whether two cluster policies build the same token
// authenticator and impersonator: the same token settings and upstream,
// compared whole, so a field added to either is compared too.
func sameUpstream(a, b *policy.Cluster) bool {
	return reflect.DeepEqual(a.TokenReview, b.TokenReview) && reflect.DeepEqual(a.Upstream, b.Upstream)
}
