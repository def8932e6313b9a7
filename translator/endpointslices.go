package translator

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubefrontdoor/frontdoor/api/v1alpha1"
)

// defaultSlicePortName is the port picked from a slice when
// endpointsFrom.service.portName is empty and the slice has several ports;
// it is the name of the `kubernetes` Service's port.
const defaultSlicePortName = "https"

// sliceIndex finds EndpointSlices by the Service they belong to
// (namespace/kubernetes.io/service-name), each list sorted by slice name.
type sliceIndex map[string][]*discoveryv1.EndpointSlice

func newSliceIndex(slices_ []*discoveryv1.EndpointSlice) sliceIndex {
	idx := sliceIndex{}
	for _, s := range slices_ {
		if s == nil {
			continue
		}
		svc := s.Labels[discoveryv1.LabelServiceName]
		if svc == "" {
			continue
		}
		k := s.Namespace + "/" + svc
		idx[k] = append(idx[k], s)
	}
	for _, l := range idx {
		slices.SortFunc(l, func(a, b *discoveryv1.EndpointSlice) int { return strings.Compare(a.Name, b.Name) })
	}
	return idx
}

// Managers of EndpointSlices that belong to their Service
// (endpointslice.kubernetes.io/managed-by): the controller that derives
// slices from a Service's selector, and the one that mirrors the Endpoints
// of a Service without a selector.
var trustedSliceManagers = map[string]bool{
	"endpointslice-controller.k8s.io":          true,
	"endpointslicemirroring-controller.k8s.io": true,
}

// fromService reports whether s is one of the Service's own slices, and
// why not. "Only from the named Service" means: labelled with the Service's
// name (the index), written by the Kubernetes controllers that keep a
// Service's slices (not by any client with write access that copied the
// label), of an IP address type (those controllers never write FQDN
// slices), and, when it names a controlling owner, owned by that Service.
// kube-apiserver writes the slice of default/kubernetes itself, with the
// service-name label only; that one slice counts without a manager.
//
// Labels are not proof: whoever may write EndpointSlices in the Service's
// namespace can forge them, so that namespace's writers are trusted
// (default, for the kubernetes Service, is normally locked down).
func fromService(s *discoveryv1.EndpointSlice, svc string) (bool, string) {
	manager, managed := s.Labels[discoveryv1.LabelManagedBy]
	apiserversOwn := s.Namespace == metav1.NamespaceDefault && s.Name == "kubernetes" && svc == "kubernetes"
	switch {
	case managed && !trustedSliceManagers[manager]:
		return false, fmt.Sprintf("is managed by %q, not by the Kubernetes EndpointSlice controllers", manager)
	case !managed && !apiserversOwn:
		return false, "has no " + discoveryv1.LabelManagedBy + " label (only the Kubernetes EndpointSlice controllers' slices are used)"
	case s.AddressType != discoveryv1.AddressTypeIPv4 && s.AddressType != discoveryv1.AddressTypeIPv6:
		return false, fmt.Sprintf("has address type %s (a Service's own slices are IPv4 or IPv6)", s.AddressType)
	}
	for _, o := range s.OwnerReferences {
		if o.Controller != nil && *o.Controller && (o.Kind != "Service" || o.Name != svc) {
			return false, fmt.Sprintf("is controlled by %s %q, not by Service %q", o.Kind, o.Name, svc)
		}
	}
	return true, ""
}

// servers returns the ready endpoints of the selected Service as servers,
// each on the port its own slice declares, sorted and deduplicated. A slice
// without a usable port contributes nothing (it is named in the returned
// notes so the status can say why a server is missing).
func (idx sliceIndex) servers(ref v1alpha1.ServiceEndpoints) (out []ServerIR, notes []string) {
	for _, s := range idx[ref.Namespace+"/"+ref.Name] {
		if ok, why := fromService(s, ref.Name); !ok {
			notes = append(notes, fmt.Sprintf("EndpointSlice %s/%s %s; ignored", s.Namespace, s.Name, why))
			continue
		}
		port, ok := slicePort(s, ref.PortName)
		if !ok {
			notes = append(notes, fmt.Sprintf("EndpointSlice %s/%s has no usable port", s.Namespace, s.Name))
			continue
		}
		for _, ep := range s.Endpoints {
			// A nil ready condition means ready, as the EndpointSlice API says.
			if (ep.Conditions.Ready != nil && !*ep.Conditions.Ready) || len(ep.Addresses) == 0 {
				continue
			}
			// Consumers use the first address only (the API's contract).
			srv, ok := sliceServer(s.AddressType, ep.Addresses[0], port)
			if !ok {
				notes = append(notes, fmt.Sprintf("EndpointSlice %s/%s: address %q is not a valid %s address",
					s.Namespace, s.Name, ep.Addresses[0], s.AddressType))
				continue
			}
			out = append(out, srv)
		}
	}
	slices.SortFunc(out, func(a, b ServerIR) int {
		return cmp.Or(strings.Compare(a.Host, b.Host), cmp.Compare(a.Port, b.Port))
	})
	return slices.Compact(out), notes
}

// slicePort is the port named name, or (name empty) the port named https,
// or the slice's only port.
func slicePort(s *discoveryv1.EndpointSlice, name string) (uint32, bool) {
	valid := func(p discoveryv1.EndpointPort) bool { return p.Port != nil && *p.Port > 0 && *p.Port <= 65535 }
	pick := name
	if pick == "" {
		pick = defaultSlicePortName
	}
	for _, p := range s.Ports {
		if p.Name != nil && *p.Name == pick && valid(p) {
			return uint32(*p.Port), true //nolint:gosec // valid() checked 1..65535
		}
	}
	if name == "" && len(s.Ports) == 1 && valid(s.Ports[0]) {
		return uint32(*s.Ports[0].Port), true //nolint:gosec // valid() checked 1..65535
	}
	return 0, false
}

func sliceServer(t discoveryv1.AddressType, addr string, port uint32) (ServerIR, bool) {
	switch t {
	case discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6:
		a, err := netip.ParseAddr(addr)
		if err != nil || a.Zone() != "" || (t == discoveryv1.AddressTypeIPv4) != a.Is4() {
			return ServerIR{}, false
		}
		return ServerIR{Host: a.String(), Port: port, IsIP: true}, true
	case discoveryv1.AddressTypeFQDN:
		srv, err := parseEndpoint(fmt.Sprintf("https://%s:%d", addr, port))
		if err != nil || srv.IsIP {
			return ServerIR{}, false
		}
		return srv, true
	}
	return ServerIR{}, false
}
