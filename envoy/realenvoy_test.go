package envoy

import (
	"encoding/json"
	"testing"

	"github.com/kubefrontdoor/frontdoor/internal/testenv"
)

// Helpers of the tests that run the real Envoy (bin/envoy) on a config of
// their own: free ports, starting it, waiting until it serves.

// runEnvoy writes config (a bootstrap as a JSON-able value) and runs
// bin/envoy on it until the test ends; it returns once Envoy's admin
// /ready answers 200. Only the process started here is killed.
func runEnvoy(t *testing.T, config any, adminPort int) {
	t.Helper()
	b, err := json.Marshal(config)
	if err != nil {
		t.Fatal(err)
	}
	testenv.RunEnvoyConfig(t, b, adminPort)
}

// sockAddr is a socket address in Envoy's JSON config.
func sockAddr(port int) map[string]any {
	return map[string]any{"socket_address": map[string]any{"address": "127.0.0.1", "port_value": port}}
}

// httpListener is a plain HTTP listener on port whose connection manager
// runs filters (the router is appended) and routes everything to route.
func httpListener(name string, port int, route map[string]any, filters ...map[string]any) map[string]any {
	routeEntry := map[string]any{"match": map[string]any{"prefix": "/"}}
	for k, v := range route {
		routeEntry[k] = v
	}
	filters = append(filters, map[string]any{
		"name":         "envoy.filters.http.router",
		"typed_config": map[string]any{"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
	})
	return map[string]any{
		"name":    name,
		"address": sockAddr(port),
		"filter_chains": []any{map[string]any{"filters": []any{map[string]any{
			"name": "envoy.filters.network.http_connection_manager",
			"typed_config": map[string]any{
				"@type":       "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
				"stat_prefix": name,
				"route_config": map[string]any{"virtual_hosts": []any{map[string]any{
					"name": "all", "domains": []string{"*"},
					"routes": []any{routeEntry},
				}}},
				"http_filters": filters,
			},
		}}}},
	}
}
