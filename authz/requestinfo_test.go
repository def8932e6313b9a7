package authz

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"k8s.io/apiserver/pkg/endpoints/request"
)

func TestParseRequestInfo(t *testing.T) {
	tests := []struct {
		name   string
		method string
		target string
		want   request.RequestInfo
	}{
		{"healthz", "GET", "/healthz", request.RequestInfo{Path: "/healthz", Verb: "get"}},
		{"version", "GET", "/version?timeout=32s", request.RequestInfo{Path: "/version", Verb: "get"}},
		{"apis discovery", "GET", "/apis", request.RequestInfo{Path: "/apis", Verb: "get"}},
		{"group discovery", "GET", "/apis/apps/v1", request.RequestInfo{Path: "/apis/apps/v1", Verb: "get", APIPrefix: "apis"}},
		{"openapi", "GET", "/openapi/v3", request.RequestInfo{Path: "/openapi/v3", Verb: "get"}},
		{"get namespaced", "GET", "/api/v1/namespaces/default/pods/web-0", resource("get", "", "v1", "default", "pods", "", "web-0")},
		{"list namespaced", "GET", "/api/v1/namespaces/default/pods?limit=500", resource("list", "", "v1", "default", "pods", "", "")},
		{"list all namespaces", "GET", "/api/v1/pods", resource("list", "", "v1", "", "pods", "", "")},
		{"watch query", "GET", "/apis/apps/v1/namespaces/kube-system/deployments?watch=true&resourceVersion=10", resource("watch", "apps", "v1", "kube-system", "deployments", "", "")},
		{"watch=1", "GET", "/api/v1/pods?watch=1", resource("watch", "", "v1", "", "pods", "", "")},
		{"watch=false lists", "GET", "/api/v1/pods?watch=false", resource("list", "", "v1", "", "pods", "", "")},
		{"legacy watch path", "GET", "/api/v1/watch/namespaces/default/pods/web-0", resource("watch", "", "v1", "default", "pods", "", "web-0")},
		{"legacy watch list", "GET", "/api/v1/watch/pods", resource("watch", "", "v1", "", "pods", "", "")},
		{"field selector name", "GET", "/api/v1/namespaces/default/pods?fieldSelector=metadata.name%3Dweb-0", func() request.RequestInfo {
			r := resource("list", "", "v1", "default", "pods", "", "web-0")
			r.FieldSelector = "metadata.name=web-0"
			return r
		}()},
		{"create", "POST", "/api/v1/namespaces/default/configmaps", resource("create", "", "v1", "default", "configmaps", "", "")},
		{"update", "PUT", "/apis/apps/v1/namespaces/default/deployments/web", resource("update", "apps", "v1", "default", "deployments", "", "web")},
		{"patch", "PATCH", "/apis/apps/v1/namespaces/default/deployments/web", resource("patch", "apps", "v1", "default", "deployments", "", "web")},
		{"delete", "DELETE", "/api/v1/namespaces/default/pods/web-0", resource("delete", "", "v1", "default", "pods", "", "web-0")},
		{"deletecollection", "DELETE", "/api/v1/namespaces/default/pods?labelSelector=app%3Dweb", func() request.RequestInfo {
			r := resource("deletecollection", "", "v1", "default", "pods", "", "")
			r.LabelSelector = "app=web"
			return r
		}()},
		{"head is get", "HEAD", "/api/v1/namespaces/default/pods/web-0", resource("get", "", "v1", "default", "pods", "", "web-0")},
		{"pods/log", "GET", "/api/v1/namespaces/default/pods/web-0/log?follow=true", resource("get", "", "v1", "default", "pods", "log", "web-0")},
		{"pods/exec", "POST", "/api/v1/namespaces/default/pods/web-0/exec?command=sh&stdin=true", resource("create", "", "v1", "default", "pods", "exec", "web-0")},
		{"status subresource", "PUT", "/apis/apps/v1/namespaces/default/deployments/web/status", resource("update", "apps", "v1", "default", "deployments", "status", "web")},
		{"namespace get", "GET", "/api/v1/namespaces/default", resource("get", "", "v1", "default", "namespaces", "", "default")},
		{"namespace list", "GET", "/api/v1/namespaces", resource("list", "", "v1", "", "namespaces", "", "")},
		{"namespace finalize", "PUT", "/api/v1/namespaces/default/finalize", resource("update", "", "v1", "default", "namespaces", "finalize", "default")},
		{"node cluster-scoped", "GET", "/api/v1/nodes/node-1", resource("get", "", "v1", "", "nodes", "", "node-1")},
		{"node proxy", "GET", "/api/v1/nodes/node-1/proxy/metrics", resource("get", "", "v1", "", "nodes", "proxy", "node-1")},
		{"clusterrole", "DELETE", "/apis/rbac.authorization.k8s.io/v1/clusterroles/admin", resource("delete", "rbac.authorization.k8s.io", "v1", "", "clusterroles", "", "admin")},
		{"escaped path decoded", "GET", "/api/v1/namespaces/default/configmaps/a%2Eb", resource("get", "", "v1", "default", "configmaps", "", "a.b")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseRequestInfo(tt.method, tt.target)
			if err != nil {
				t.Fatalf("parseRequestInfo: %v", err)
			}
			if diff := cmp.Diff(tt.want, *got, cmpopts.IgnoreFields(request.RequestInfo{}, "Parts", "Path")); diff != "" {
				t.Errorf("info (-want +got):\n%s", diff)
			}
		})
	}
}

// resource builds the RequestInfo of a resource request; the Path field is
// ignored by the comparison.
func resource(verb, group, version, ns, res, sub, name string) request.RequestInfo {
	prefix := "apis"
	if group == "" {
		prefix = "api"
	}
	return request.RequestInfo{
		IsResourceRequest: true, Verb: verb, APIPrefix: prefix, APIGroup: group, APIVersion: version,
		Namespace: ns, Resource: res, Subresource: sub, Name: name,
	}
}

func TestParseRequestInfoErrors(t *testing.T) {
	// Malformed targets: the apiserver's HTTP server would answer 400.
	for _, target := range []string{"", "api/v1/pods", "/api/v1/pods/%zz", "/a\x7fb"} {
		if info, err := parseRequestInfo("GET", target); info != nil || err == nil {
			t.Errorf("parseRequestInfo(%q) = %+v, %v; want nil info and an error", target, info, err)
		}
	}
	// The factory's own error still yields partial info, which is forwarded.
	info, err := parseRequestInfo("GET", "/api/v1/watch")
	if err == nil || info == nil || info.APIVersion != "v1" {
		t.Errorf("parseRequestInfo(/api/v1/watch) = %+v, %v; want partial info and an error", info, err)
	}
}
