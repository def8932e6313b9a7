package authz

import (
	"net/url"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apiserver/pkg/endpoints/request"
)

// Dispatch rules match the request info kube-apiserver derives (its verb,
// namespace, resource), which is what RBAC authorizes. Some requests get
// the same data as another verb or namespace would, so a policy that sheds
// or limits that other request would be sidestepped by them. A rule is
// therefore also matched against these equivalent views of a request
// (README, "Equivalent requests"):
//
//   - a collection watch that begins with the collection's current state
//     (sendInitialEvents=true, or no resourceVersion / resourceVersion "0"
//     without sendInitialEvents=false: the apiserver sends every object as a
//     synthetic ADDED event first) is also a list; a watch of one named
//     object that does so is also a get;
//   - a server-side apply (PATCH with an application/apply-patch media
//     type) creates the object when it does not exist, so it is also a
//     create;
//   - a list, watch or deletecollection across all namespaces whose field
//     selector requires metadata.namespace=ns returns exactly ns's objects,
//     so it is also that request in namespace ns. (k8s.io/apiserver's
//     RequestInfoFactory takes the name from a metadata.name selector, but
//     not the namespace from metadata.namespace: RBAC checks such a list
//     cluster-wide.)
//
// The request keeps its own info for everything else (rule routes, the
// long-running check, metrics, audit).

// applyPatchMediaType prefixes the media types of server-side apply
// (application/apply-patch+yaml, +json, +cbor).
const applyPatchMediaType = "application/apply-patch"

// equivalentRequests are the views of a request a dispatch rule must also
// catch (none for most requests). target is the raw request target,
// headers the request headers (for Content-Type).
func equivalentRequests(info *request.RequestInfo, target string, headers map[string]string) []*request.RequestInfo {
	if info == nil || !info.IsResourceRequest {
		return nil
	}
	var out []*request.RequestInfo
	if ns := selectorNamespace(info); ns != "" {
		v := *info
		v.Namespace = ns
		out = append(out, &v)
	}
	verb := ""
	switch info.Verb {
	case "watch":
		if watchSendsState(target) {
			verb = "list"
			if info.Name != "" {
				verb = "get"
			}
		}
	case "patch":
		if strings.HasPrefix(strings.ToLower(strings.TrimSpace(header(headers, "content-type"))), applyPatchMediaType) {
			verb = "create"
		}
	}
	if verb != "" {
		for _, base := range append([]*request.RequestInfo{info}, out...) {
			v := *base
			v.Verb = verb
			out = append(out, &v)
		}
	}
	return out
}

// selectorNamespace is the namespace an all-namespaces list, watch or
// deletecollection pins with its field selector ("" if none).
func selectorNamespace(info *request.RequestInfo) string {
	if info.Namespace != "" || info.FieldSelector == "" {
		return ""
	}
	switch info.Verb {
	case "list", "watch", "deletecollection":
	default:
		return ""
	}
	sel, err := fields.ParseSelector(info.FieldSelector)
	if err != nil {
		return "" // kube-apiserver answers 400
	}
	ns, _ := sel.RequiresExactMatch("metadata.namespace")
	return ns
}

// watchSendsState reports whether a watch begins with the current state of
// what it watches, as kube-apiserver serves it: with sendInitialEvents=true,
// or, unless sendInitialEvents=false, from resourceVersion unset or "0".
// An unparsable value counts as sending it (the safe side; the apiserver
// refuses such a request anyway).
func watchSendsState(target string) bool {
	u, err := url.ParseRequestURI(target)
	if err != nil {
		return true
	}
	q := u.Query()
	if v, ok := q["sendInitialEvents"]; ok && len(v) > 0 {
		send, err := strconv.ParseBool(v[0])
		return err != nil || send
	}
	rv := q.Get("resourceVersion")
	return rv == "" || rv == "0"
}
