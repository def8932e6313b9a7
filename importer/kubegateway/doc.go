// Package kubegateway converts KubeGateway's
// proxy.kubegateway.io/v1alpha1 UpstreamClusters into Frontdoor objects:
// inline PEM data becomes Secrets, and servers, dispatch policies, rules,
// flow-control schemas and KubeGateway's DenyAllRequests degradation become
// the frontdoor.dev/v1alpha1 UpstreamCluster that routes the same requests
// to the same servers.
//
// It owns `frontdoor import kubegateway` (cmd/frontdoor only reads the file
// and writes the result) and the README section "Coming from KubeGateway".
// The input types here are our own reading of KubeGateway's documented API
// and of how its gateway actually behaves (its rule matcher, flow-control
// lookup and dispatcher); where the two differ, the conversion follows the
// behaviour, because that is what the user's traffic sees today, and says
// so in the report.
//
// Conversion is pure (no files, no network): Convert takes the bytes of a
// YAML stream and returns the objects and a report of every field that was
// converted to another form, not carried (with why), or added. Only input
// that does not parse as YAML is an error; everything else is a finding.
package kubegateway
