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
// It also fails closed on a script error. Envoy's Lua filter logs a
// runtime error and lets the request continue, which here would forward it
// with only some (or none) of the identity headers, that is as the gateway
// itself or with fewer groups. So the work runs under pcall, and any error
// (a value that is not a string, a malformed list, a failed header write)
// answers 503 instead. respond is called outside pcall: it ends the
// coroutine's request processing, which must not happen inside the
// protected call.
//
// The fields are Impersonate-* or X-Remote-* (the cluster's identity
// forwarding mode). ext_authz has already removed every client
// Authorization, Impersonate-* and X-Remote-* header (headers_to_remove runs after its own mutations, so
// it cannot add these fields itself without removing them again).
var IdentityFilterLua = `
local ns = "` + MetadataNamespaceExtAuthz + `"
local key = "` + MetadataKeyIdentityHeaders + `"
local denied = ` + luaString(string(NoIdentityBody)) + `

local function add_identity(request)
  local md = request:streamInfo():dynamicMetadata():get(ns)
  local fields = md and md[key]
  if type(fields) ~= "table" or #fields == 0 or #fields % 2 ~= 0 then
    return false
  end
  for i = 1, #fields do
    if type(fields[i]) ~= "string" then
      return false
    end
  end
  local headers = request:headers()
  for i = 1, #fields, 2 do
    headers:add(fields[i], fields[i + 1])
  end
  return true
end

function envoy_on_request(request)
  local ok, added = pcall(add_identity, request)
  if not ok or not added then
    request:respond({[":status"] = "503", ["content-type"] = "application/json"}, denied)
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
