package bench

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// testDump is the shape of Envoy's config dump for one InProcess chain
// beside another cluster's chain: SDS secrets, RDS, EDS, the dump's own
// view of endpoints (weight 0, health).
const testDump = `{"configs":[
 {"@type":"type.googleapis.com/envoy.admin.v3.ListenersConfigDump","dynamic_listeners":[{"name":"gw","active_state":{"listener":{
  "@type":"type.googleapis.com/envoy.config.listener.v3.Listener","name":"gw","listener_filters":[{"name":"envoy.filters.listener.proxy_protocol","filter_disabled":{"destination_port_range":{"start":6443,"end":6444}}},{"name":"envoy.filters.listener.tls_inspector"}],
  "filter_chains":[
   {"name":"other","filter_chain_match":{"server_names":["other.test"]},"filters":[]},
   {"name":"in","filter_chain_match":{"server_names":["inprocess.test"]},
    "transport_socket":{"name":"envoy.transport_sockets.tls","typed_config":{"@type":"type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
     "common_tls_context":{"tls_certificate_sds_secret_configs":[{"name":"serving","sds_config":{"ads":{}}}],
      "combined_validation_context":{"default_validation_context":{"trust_chain_verification":"ACCEPT_UNTRUSTED"},"validation_context_sds_secret_config":{"name":"clients","sds_config":{"ads":{}}}}}}},
    "filters":[{"name":"envoy.filters.network.http_connection_manager","typed_config":{"@type":"type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
     "rds":{"route_config_name":"in","config_source":{"ads":{}}},
     "access_log":[{"name":"envoy.access_loggers.file","typed_config":{"@type":"type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog","path":"/sandbox/access.log"}}],
     "early_header_mutation_extensions":[{"name":"envoy.http.early_header_mutation.header_mutation"}],
     "local_reply_config":{"mappers":[]},
     "forward_client_cert_details":"SANITIZE_SET","set_current_client_cert_details":{"cert":true},
     "http_filters":[
      {"name":"frontdoor.inprocess","typed_config":{"@type":"type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter",
       "filter_config":{"@type":"type.googleapis.com/google.protobuf.StringValue","value":"{\"cluster\":\"in\",\"policyAddress\":\"127.0.0.1:1\",\"metricsAddress\":\"127.0.0.1:2\",\"accessLog\":{\"path\":\"/sandbox/access.log\"}}"}}},
      {"name":"envoy.filters.http.local_ratelimit"},
      {"name":"envoy.filters.http.router"}]}}]}]}}}]},
 {"@type":"type.googleapis.com/envoy.admin.v3.RoutesConfigDump","dynamic_route_configs":[
  {"route_config":{"@type":"type.googleapis.com/envoy.config.route.v3.RouteConfiguration","name":"in",
   "request_headers_to_remove":["x-frontdoor-rule"],"request_headers_to_add":[{"header":{"key":"audit-id","value":"%REQ(X-REQUEST-ID)%"}}],"virtual_hosts":[{"name":"in","routes":[
   {"match":{"prefix":"/"},"route":{"cluster":"in/default","retry_policy":{"retry_on":"connect-failure,retriable-headers","retriable_headers":[{"name":"x-frontdoor-upstream-verdict"}]}}}]}]}},
  {"route_config":{"name":"other","virtual_hosts":[{"routes":[{"route":{"cluster":"other/default"}}]}]}}]},
 {"@type":"type.googleapis.com/envoy.admin.v3.ClustersConfigDump","dynamic_active_clusters":[
  {"cluster":{"@type":"type.googleapis.com/envoy.config.cluster.v3.Cluster","name":"in/default","type":"EDS","eds_cluster_config":{"service_name":"in/default@abc","eds_config":{"ads":{}}},
   "outlier_detection":{"consecutive_5xx":5},
   "typed_extension_protocol_options":{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions":{"http_filters":[{"name":"envoy.filters.http.header_mutation"},{"name":"envoy.filters.http.upstream_codec"}]}},
   "transport_socket":{"name":"envoy.transport_sockets.tls","typed_config":{"@type":"type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
    "common_tls_context":{"tls_certificate_sds_secret_configs":[{"name":"client"}],
     "combined_validation_context":{"default_validation_context":{"match_typed_subject_alt_names":[{"san_type":"DNS","matcher":{"exact":"replica"}}]},"validation_context_sds_secret_config":{"name":"apiserver-ca"}}}}}}},
  {"cluster":{"name":"other/default"}}]},
 {"@type":"type.googleapis.com/envoy.admin.v3.EndpointsConfigDump","dynamic_endpoint_configs":[
  {"endpoint_config":{"@type":"type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment","cluster_name":"in/default@abc",
   "endpoints":[{"load_balancing_weight":0,"lb_endpoints":[{"health_status":"HEALTHY","endpoint":{"address":{"socket_address":{"address":"127.0.0.1","port_value":6443}}}}]}]}}]}
]}`

var testFiles = tlsFiles{serving: keyPair{"/pki/serving.crt", "/pki/serving.key"}, client: keyPair{"/pki/client.crt", "/pki/client.key"},
	clientCA: "/pki/clients.crt", upstreamCA: "/pki/ca.crt"}

// The copy stands alone: only the InProcess chain, routes inline, the
// clusters they name with endpoints inline, SDS replaced by files with the
// other validation settings kept, its own access log, no metrics address.
func TestAblationDerive(t *testing.T) {
	d, err := parseDump(testDump)
	if err != nil {
		t.Fatal(err)
	}
	a, lf, err := d.derive("inprocess.test", testFiles, "/out/ablate.log")
	if err != nil {
		t.Fatal(err)
	}
	b := a.bootstrap(9901, 8443, lf)
	got := mustJSON(t, b)
	for _, banned := range []string{"sds", "rds", "eds_cluster_config", "filter_chain_match", "other", "metricsAddress",
		"/sandbox/access.log", "health_status", `"@type":"type.googleapis.com/envoy.config`} {
		if strings.Contains(got, banned) {
			t.Errorf("the copy still has %q:\n%s", banned, got)
		}
	}
	for _, want := range []string{
		`"route_config":{"name":"in"`, `"cluster":"in/default"`, `"type":"STATIC"`, `"port_value":6443`,
		`"trust_chain_verification":"ACCEPT_UNTRUSTED","trusted_ca":{"filename":"/pki/clients.crt"}`,
		`"certificate_chain":{"filename":"/pki/serving.crt"}`, `"certificate_chain":{"filename":"/pki/client.crt"}`,
		`"match_typed_subject_alt_names":[{"matcher":{"exact":"replica"},"san_type":"DNS"}],"trusted_ca":{"filename":"/pki/ca.crt"}`,
		`"path":"/out/ablate.log"`, `{\"accessLog\":{\"path\":\"/out/ablate.log\"},\"cluster\":\"in\",\"policyAddress\":\"127.0.0.1:1\"}`,
		`"listener_filters":[{"name":"envoy.filters.listener.tls_inspector"}]`, `"port_value":8443`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the copy lacks %s:\n%s", want, got)
		}
	}
	if strings.Count(got, `"name":"in/default"`) != 1 || len(a.clusters) != 1 {
		t.Errorf("want exactly the route's one cluster, got %d", len(a.clusters))
	}
}

// Each ablation removes its feature and nothing else; bare removes all.
func TestAblationsRemoveOneFeatureEach(t *testing.T) {
	d, err := parseDump(testDump)
	if err != nil {
		t.Fatal(err)
	}
	features := map[string]func(a *ablated) bool{
		"module": func(a *ablated) bool { return a.hasFilter(isModuleFilter) },
		"accesslog": func(a *ablated) bool {
			envoyLog, moduleLog := a.hcm["access_log"] != nil, strings.Contains(mustJSON(t, a.hcm["http_filters"]), `accessLog`)
			if a.hasFilter(isModuleFilter) && envoyLog != moduleLog {
				t.Errorf("Envoy's access log present = %v, the module's = %v: the ablation keeps one of two", envoyLog, moduleLog)
			}
			return envoyLog
		},
		"early-mutation": func(a *ablated) bool { return a.hcm["early_header_mutation_extensions"] != nil },
		"ratelimit":      func(a *ablated) bool { return a.hasFilter(named("envoy.filters.http.local_ratelimit")) },
		"edge-headers": func(a *ablated) bool {
			rc, _ := a.hcm["route_config"].(map[string]any)
			return rc["request_headers_to_add"] != nil && rc["request_headers_to_remove"] != nil
		},
		"local-reply": func(a *ablated) bool { return a.hcm["local_reply_config"] != nil },
		"xfcc":        func(a *ablated) bool { return a.hcm["forward_client_cert_details"] == "SANITIZE_SET" },
		"upstream-verdict": func(a *ablated) bool {
			s := mustJSON(t, a.clusters) + mustJSON(t, a.hcm["route_config"])
			if !strings.Contains(s, "upstream_codec") {
				t.Errorf("the upstream codec is gone: %s", s)
			}
			return strings.Contains(s, "header_mutation") || strings.Contains(s, "retriable")
		},
		"outlier-detection": func(a *ablated) bool { return a.clusters[0]["outlier_detection"] != nil },
	}
	var names []string
	for _, ab := range ablations {
		names = append(names, ab.name)
		a, _, err := d.derive("inprocess.test", testFiles, "/out/x.log")
		if err != nil {
			t.Fatal(err)
		}
		ab.edit(a)
		if !a.hasFilter(named("envoy.filters.http.router")) {
			t.Errorf("%s: the router is gone", ab.name)
		}
		for f, present := range features {
			removed := ab.name == "bare" || ab.name == "no-"+f
			if present(a) == removed {
				t.Errorf("%s: %s present = %v", ab.name, f, present(a))
			}
		}
	}
	for f := range features {
		if f != "xfcc" && !slices.Contains(names, "no-"+f) {
			t.Errorf("no ablation removes %s", f)
		}
	}
}

func (a *ablated) hasFilter(match func(map[string]any) bool) bool {
	for _, f := range asList(a.hcm["http_filters"]) {
		if m, _ := f.(map[string]any); match(m) {
			return true
		}
	}
	return false
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
