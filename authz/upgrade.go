package authz

import (
	"net/http"
	"strings"

	"k8s.io/apiserver/pkg/endpoints/request"

	"github.com/kubefrontdoor/frontdoor/kubestatus"
)

// Envoy sends every request that carries an Upgrade header to the
// cluster's HTTP/1.1 upgrade route (translator/route.go), which has no
// dispatch-policy route of its own: no token bucket, no in-flight cap, no
// upstream subset. kube-apiserver ignores the header where it does not
// upgrade, so a LIST with "Upgrade: SPDY/3.1" would be served in full past
// every limit. The pipeline therefore refuses an Upgrade wherever
// kube-apiserver would not upgrade the connection.

// upgradeRefusedBody is the 400 for an Upgrade on a request that is not
// upgraded.
var upgradeRefusedBody = kubestatus.Body(http.StatusBadRequest,
	"frontdoor: this request cannot be upgraded; an Upgrade header is accepted on exec, attach, portforward and proxy requests and on watches over WebSocket only")

// upgradeAllowed reports whether a request may carry its Upgrade header
// (absent: always). kube-apiserver upgrades:
//   - the connect subresources of core resources: pods exec, attach,
//     portforward and proxy; services and nodes proxy;
//   - in other API groups (aggregated API servers, e.g. a VM console), any
//     subresource but status and scale, which never upgrade;
//   - a watch, to a WebSocket (and only to a WebSocket: a watch with another
//     Upgrade is served as a plain watch, i.e. a list with
//     sendInitialEvents, which must keep its limits).
func upgradeAllowed(info *request.RequestInfo, headers map[string]string) bool {
	upgrade := header(headers, "upgrade")
	if upgrade == "" {
		return true
	}
	if !info.IsResourceRequest {
		return false
	}
	if info.Verb == "watch" {
		return strings.EqualFold(upgrade, "websocket")
	}
	sub := info.Subresource
	if info.APIGroup != "" {
		return sub != "" && sub != "status" && sub != "scale"
	}
	switch info.Resource {
	case "pods":
		return sub == "exec" || sub == "attach" || sub == "portforward" || sub == "proxy"
	case "services", "nodes":
		return sub == "proxy"
	}
	return false
}
