// Package v1alpha1 holds the frontdoor.dev/v1alpha1 API: the UpstreamCluster
// resource that tells Frontdoor which kube-apiservers to front, how to serve
// their clients and how to authenticate to them.
//
// Field names follow KubeGateway's proxy.kubegateway.io/v1alpha1 UpstreamCluster
// wherever the meaning is the same, so its users can move over; secrets are
// always references, never inline bytes.
//
// It is the API contract: it imports only apimachinery's types, never the
// project's other packages.
//
// +kubebuilder:object:generate=true
// +groupName=frontdoor.dev
package v1alpha1
