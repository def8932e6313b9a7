package authz

import (
	"net/http"
	"net/url"

	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apiserver/pkg/endpoints/request"
)

// requestInfoFactory is configured exactly as kube-apiserver's
// (server.NewRequestInfoResolver): the same attributes the apiserver will
// authorize are the ones dispatch rules match.
var requestInfoFactory = &request.RequestInfoFactory{
	APIPrefixes:          sets.NewString("api", "apis"),
	GrouplessAPIPrefixes: sets.NewString("api"),
}

// parseRequestInfo derives Kubernetes request info from a method and a raw
// request target ("/api/v1/pods?watch=true"). It parses the target the way
// Go's HTTP server does (url.ParseRequestURI), so the path is decoded as
// kube-apiserver will decode it. A nil info means the target is malformed
// (the apiserver's HTTP server would answer 400); a non-nil info with an
// error is the partial info the factory could derive.
func parseRequestInfo(method, target string) (*request.RequestInfo, error) {
	u, err := url.ParseRequestURI(target)
	if err != nil {
		return nil, err
	}
	return requestInfoFactory.NewRequestInfo(&http.Request{Method: method, URL: u})
}
