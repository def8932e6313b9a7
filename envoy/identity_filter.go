package envoy

import (
	"net/http"
	"strings"

	"github.com/kubefrontdoor/frontdoor/kubestatus"
)

// IdentityFilterName is the Lua HTTP filter that sits between ext_authz and
// the router and adds the identity headers (see MetadataKeyIdentityHeaders).
const IdentityFilterName = "frontdoor.identity"

// IdentityFilterLua adds the identity header fields the request service put
// in ext_authz dynamic metadata, one field per value. It fails closed: a
// request that reached it without an identity (only possible through a
// misconfiguration, since ext_authz denies first) gets 503 and is never
// forwarded with the gateway's own privileges.
//
// ext_authz has already removed every client Authorization, Impersonate-*
// and X-Remote-* header (headers_to_remove runs after its own mutations, so
// it cannot add these fields itself without removing them again).
var IdentityFilterLua = `
local ns = "` + MetadataNamespaceExtAuthz + `"
local key = "` + MetadataKeyIdentityHeaders + `"
local denied = ` + luaString(string(NoIdentityBody)) + `

function envoy_on_request(request)
  local md = request:streamInfo():dynamicMetadata():get(ns)
  local fields = md and md[key]
  if fields == nil or #fields % 2 ~= 0 or #fields == 0 then
    request:respond({[":status"] = "503", ["content-type"] = "application/json"}, denied)
    return
  end
  local headers = request:headers()
  for i = 1, #fields, 2 do
    headers:add(fields[i], fields[i + 1])
  end
end
`

// NoIdentityBody is the 503 Status of a request that reached an identity
// step without a decided identity: the in-Envoy filters fail closed with it.
var NoIdentityBody = kubestatus.Body(http.StatusServiceUnavailable, "frontdoor: no identity was decided for this request")

// luaString quotes s as a Lua string literal.
func luaString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, "'", `\'`, "\n", `\n`, "\r", `\r`).Replace(s) + "'"
}
