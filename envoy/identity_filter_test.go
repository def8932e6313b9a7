package envoy

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"

	"github.com/kubefrontdoor/frontdoor/internal/testenv"
)

// TestIdentityFilterFailsClosed runs the identity filter's Lua in the real
// Envoy behind a set_metadata filter that plays ext_authz's dynamic
// metadata, one listener per metadata value, in front of a recording
// upstream. A well-formed list is added as headers and forwarded; anything
// else, including values that make a Lua call fail (Envoy's Lua filter
// logs such an error and lets the request continue, which would forward it
// as the gateway itself), is answered 503 with the Status body and never
// forwarded.
func TestIdentityFilterFailsClosed(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]http.Header{} // by path
	up := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.URL.Path] = r.Header.Clone()
		mu.Unlock()
	}))
	defer up.Close()
	upPort := up.Listener.Addr().(*net.TCPAddr).Port

	cases := []struct {
		name   string
		fields any // the identity-headers metadata value; nil: none set
		want   int
	}{
		{name: "identity", fields: []any{"impersonate-user", "alice", "impersonate-group", "g1", "impersonate-group", "g2"}, want: http.StatusOK},
		{name: "no-metadata", want: http.StatusServiceUnavailable},
		{name: "empty", fields: []any{}, want: http.StatusServiceUnavailable},
		{name: "odd", fields: []any{"impersonate-user"}, want: http.StatusServiceUnavailable},
		// These made the old script raise an error in headers:add.
		{name: "boolean-value", fields: []any{"impersonate-user", true}, want: http.StatusServiceUnavailable},
		{name: "list-value", fields: []any{"impersonate-user", []any{"alice"}}, want: http.StatusServiceUnavailable},
		{name: "struct-name", fields: []any{map[string]any{"a": "b"}, "alice"}, want: http.StatusServiceUnavailable},
		{name: "string-not-list", fields: "impersonate-user", want: http.StatusServiceUnavailable},
	}

	adminPort := testenv.MustFreePort(t)
	var listeners []any
	ports := map[string]int{}
	for _, tc := range cases {
		md := map[string]any{"unrelated": "x"}
		if tc.fields != nil {
			md[MetadataKeyIdentityHeaders] = tc.fields
		}
		ports[tc.name] = testenv.MustFreePort(t)
		listeners = append(listeners, httpListener(tc.name, ports[tc.name], map[string]any{"route": map[string]any{"cluster": "upstream"}},
			map[string]any{
				"name": "envoy.filters.http.set_metadata",
				"typed_config": map[string]any{
					"@type":    "type.googleapis.com/envoy.extensions.filters.http.set_metadata.v3.Config",
					"metadata": []any{map[string]any{"metadata_namespace": MetadataNamespaceExtAuthz, "value": md}},
				},
			},
			map[string]any{
				"name": IdentityFilterName,
				"typed_config": map[string]any{
					"@type":               "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua",
					"default_source_code": map[string]any{"inline_string": IdentityFilterLua},
				},
			}))
	}
	runEnvoy(t, map[string]any{
		"admin": map[string]any{"address": sockAddr(adminPort)},
		"static_resources": map[string]any{
			"listeners": listeners,
			"clusters": []any{map[string]any{
				"name": "upstream", "type": "STATIC", "connect_timeout": "1s",
				"load_assignment": map[string]any{"cluster_name": "upstream", "endpoints": []any{map[string]any{
					"lb_endpoints": []any{map[string]any{"endpoint": map[string]any{"address": sockAddr(upPort)}}},
				}}},
			}},
		},
	}, adminPort)

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(ports[tc.name]) + "/" + tc.name)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d (body %q)", resp.StatusCode, tc.want, body)
			}
			mu.Lock()
			h, reached := seen["/"+tc.name]
			mu.Unlock()
			if tc.want != http.StatusOK {
				if reached {
					t.Errorf("forwarded to the upstream without a decided identity (headers %v)", h)
				}
				if string(body) != string(NoIdentityBody) {
					t.Errorf("body %q, want the Status %q", body, NoIdentityBody)
				}
				return
			}
			if !reached {
				t.Fatal("not forwarded")
			}
			if u := h.Values("Impersonate-User"); len(u) != 1 || u[0] != "alice" {
				t.Errorf("Impersonate-User %q, want [alice]", u)
			}
			if g := h.Values("Impersonate-Group"); len(g) != 2 || g[0] != "g1" || g[1] != "g2" {
				t.Errorf("Impersonate-Group %q, want [g1 g2]", g)
			}
		})
	}
}
