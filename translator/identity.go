package translator

import (
	"slices"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kubefrontdoor/frontdoor/api/v1alpha1"
	"github.com/kubefrontdoor/frontdoor/policy"
)

// Identity forwarding (spec.clientConfig.identityForwarding) and front-proxy
// clients (spec.authentication.requestHeader). The header set each mode
// forwards is the request service's business (authz/forwarding.go); Envoy's
// side only changes for front-proxy clients, whose X-Remote-* headers must
// reach the request service instead of being dropped at the edge.

// ForwardingIR is the defaulted identity-forwarding mode.
type ForwardingIR string

// Identity-forwarding modes, one to one with the API's.
const (
	ForwardImpersonation ForwardingIR = ForwardingIR(v1alpha1.IdentityForwardingImpersonation)
	ForwardRequestHeader ForwardingIR = ForwardingIR(v1alpha1.IdentityForwardingRequestHeader)
)

// FrontProxyIR is a resolved spec.authentication.requestHeader.
type FrontProxyIR struct {
	// ClientCA is the PEM bundle a front proxy's certificate chains to.
	ClientCA []byte
	// AllowedNames are the common names a front proxy may have, sorted.
	AllowedNames []string
}

// validateIdentity checks the forwarding mode and the front-proxy settings.
func validateIdentity(spec *v1alpha1.UpstreamClusterSpec, fld *field.Path) field.ErrorList {
	var errs field.ErrorList
	switch f := spec.ClientConfig.IdentityForwarding; f {
	case "", v1alpha1.IdentityForwardingImpersonation, v1alpha1.IdentityForwardingRequestHeader:
	default:
		errs = append(errs, field.NotSupported(fld.Child("clientConfig", "identityForwarding"), string(f),
			[]string{string(v1alpha1.IdentityForwardingImpersonation), string(v1alpha1.IdentityForwardingRequestHeader)}))
	}
	rh := spec.Authentication.RequestHeader
	if rh == nil {
		return errs
	}
	names := fld.Child("authentication", "requestHeader", "allowedNames")
	if len(rh.AllowedNames) == 0 {
		// An empty list would trust every certificate of the CA: refused,
		// as the CRD's MinItems refuses it in Kubernetes mode.
		errs = append(errs, field.Required(names, "at least one common name a front proxy may have"))
	}
	for i, n := range rh.AllowedNames {
		if n == "" {
			errs = append(errs, field.Required(names.Index(i), ""))
		}
	}
	return errs
}

// buildForwarding defaults the forwarding mode.
func buildForwarding(f v1alpha1.IdentityForwarding) ForwardingIR {
	if f == v1alpha1.IdentityForwardingRequestHeader {
		return ForwardRequestHeader
	}
	return ForwardImpersonation
}

// resolveFrontProxy reads the front-proxy CA of spec into c.
func resolveFrontProxy(c *ClusterIR, spec *v1alpha1.UpstreamClusterSpec, secrets secretIndex) *refError {
	rh := spec.Authentication.RequestHeader
	if rh == nil {
		return nil
	}
	ca, err := secrets.caBundle(rh.ClientCASecretRef)
	if err != nil {
		return err
	}
	names := slices.Clone(rh.AllowedNames)
	slices.Sort(names)
	c.FrontProxy = &FrontProxyIR{ClientCA: ca, AllowedNames: slices.Compact(names)}
	return nil
}

// identityPolicy is the request service's view of c's identity settings.
func identityPolicy(c *ClusterIR, p *policy.Cluster) {
	if c.Forwarding == ForwardRequestHeader {
		p.Forwarding = policy.ForwardingRequestHeader
	}
	if fp := c.FrontProxy; fp != nil {
		p.FrontProxy = &policy.FrontProxy{ClientCAPEM: fp.ClientCA, AllowedNames: fp.AllowedNames}
	}
}

// stripsRemoteHeaders reports whether Envoy drops every client X-Remote-*
// header at the edge: always, except for a cluster that accepts front
// proxies, whose headers the request service must read (and then strips
// itself, for every client, before forwarding).
func stripsRemoteHeaders(c *ClusterIR) bool { return c.FrontProxy == nil }
