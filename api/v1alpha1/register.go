package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupVersion is the API group and version of every type in this package.
var GroupVersion = schema.GroupVersion{Group: "frontdoor.dev", Version: "v1alpha1"}

// UpstreamClusterResource is the UpstreamCluster CRD's resource, for dynamic
// clients and informers.
var UpstreamClusterResource = GroupVersion.WithResource("upstreamclusters")

var (
	// SchemeBuilder registers this package's types with a runtime.Scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)
	// AddToScheme adds this package's types to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &UpstreamCluster{}, &UpstreamClusterList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
