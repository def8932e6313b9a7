package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/kubefrontdoor/frontdoor/internal/testenv"
	"github.com/kubefrontdoor/frontdoor/tests/sandbox"
)

// The ablation (bench --ablation) shows where Envoy's time goes in the
// InProcess mode. It copies the sandbox Envoy's InProcess filter chain, its
// routes, clusters and endpoints out of Envoy's own config dump into static
// bootstraps, each with one feature removed, and measures every copy as one
// more path (its own Envoy, same apiservers, same client certificate), so
// the cost of a feature is the paired difference to ablate-full. Nothing is
// written by hand: when the translator's output changes, the ablation
// follows it.
//
// What is rewritten to make a copy stand alone, the same in every copy:
// SDS secrets become the sandbox's certificate files (the dump redacts
// keys), EDS clusters get their endpoints inline, RDS becomes an inline
// route table, the filter chain loses its SNI match (it is the listener's
// only chain), the access log goes to a file of its own, and the module's
// config drops its metrics address (the sandbox's Envoy serves it). The
// module subscribes to the sandbox's frontdoor serve as the sandbox's
// Envoy does.

// ablation is one static copy: a name and what it removes.
type ablation struct {
	name, removes string
	edit          func(a *ablated)
}

// ablated is the copy being edited: the HCM config, the clusters, the
// filter chain (generic JSON, as Envoy dumps it).
type ablated struct {
	hcm      map[string]any
	clusters []map[string]any
	chain    map[string]any
}

// ablations are the copies, in table order; each edit removes one feature
// and "bare" removes them all.
var ablations = []ablation{
	{"full", "nothing: the InProcess chain as the sandbox's Envoy serves it", func(*ablated) {}},
	{"no-module", "the dynamic module filter (requests go out as the gateway identity)", func(a *ablated) { a.dropFilter(isModuleFilter) }},
	{"no-accesslog", "the JSON access log (Envoy's and the module's)", func(a *ablated) {
		delete(a.hcm, "access_log")
		// derive parsed the same config already: the edit cannot fail here.
		_ = a.editModuleConfig(func(cfg map[string]any) { delete(cfg, "accessLog") })
	}},
	{"no-early-mutation", "the early header mutation (client x-frontdoor-*, x-remote-*, ... stripped before routing)", func(a *ablated) {
		delete(a.hcm, "early_header_mutation_extensions")
	}},
	{"no-ratelimit", "the local_ratelimit filter", func(a *ablated) { a.dropFilter(named("envoy.filters.http.local_ratelimit")) }},
	{"no-edge-headers", "the route configuration's header edits (internal headers removed, audit-id, x-forwarded-for)", func(a *ablated) { a.dropEdgeHeaders() }},
	{"no-local-reply", "the local reply mappers (Status bodies for 429/503)", func(a *ablated) { delete(a.hcm, "local_reply_config") }},
	{"no-upstream-verdict", "the upstream header_mutation that stamps x-frontdoor-upstream-verdict on every response, and the retry on it", func(a *ablated) { a.dropUpstreamVerdict() }},
	{"no-outlier-detection", "the clusters' outlier detection", func(a *ablated) { a.dropOutlierDetection() }},
	{"bare", "all of the above and x-forwarded-client-cert: Envoy's TLS, routing and connection pool only", func(a *ablated) {
		a.dropFilter(isModuleFilter)
		a.dropFilter(named("envoy.filters.http.local_ratelimit"))
		a.dropEdgeHeaders()
		for _, k := range []string{"access_log", "early_header_mutation_extensions", "local_reply_config", "set_current_client_cert_details"} {
			delete(a.hcm, k)
		}
		a.hcm["forward_client_cert_details"] = "SANITIZE"
		a.dropUpstreamVerdict()
		a.dropOutlierDetection()
	}},
}

// AblationPrefix starts every ablation path's name.
const AblationPrefix = "ablate-"

func named(name string) func(map[string]any) bool {
	return func(f map[string]any) bool { return f["name"] == name }
}

func isModuleFilter(f map[string]any) bool {
	tc, _ := f["typed_config"].(map[string]any)
	t, _ := tc["@type"].(string)
	return strings.HasSuffix(t, ".DynamicModuleFilter")
}

// dropEdgeHeaders removes the route configuration's own request header
// edits (translator/edge.go: the internal headers, Audit-ID,
// X-Forwarded-For).
func (a *ablated) dropEdgeHeaders() {
	if rc, ok := a.hcm["route_config"].(map[string]any); ok {
		delete(rc, "request_headers_to_add")
		delete(rc, "request_headers_to_remove")
	}
}

// dropUpstreamVerdict removes the clusters' upstream header_mutation
// filter (the verdict header) and the routes' retry on that header.
func (a *ablated) dropUpstreamVerdict() {
	for _, c := range a.clusters {
		walk(c, func(k string, v any) {
			if m, ok := v.(map[string]any); ok && k == "envoy.extensions.upstreams.http.v3.HttpProtocolOptions" {
				m["http_filters"] = slices.DeleteFunc(slices.Clone(asList(m["http_filters"])), func(f any) bool {
					return named("envoy.filters.http.header_mutation")(asMap(f))
				})
			}
		})
	}
	walk(a.hcm["route_config"], func(k string, v any) {
		rp, ok := v.(map[string]any)
		if k != "retry_policy" || !ok {
			return
		}
		delete(rp, "retriable_headers")
		var on []string
		for _, c := range strings.Split(str(rp["retry_on"]), ",") {
			if c != "retriable-headers" {
				on = append(on, c)
			}
		}
		rp["retry_on"] = strings.Join(on, ",")
	})
}

func (a *ablated) dropOutlierDetection() {
	for _, c := range a.clusters {
		delete(c, "outlier_detection")
	}
}

func asMap(v any) map[string]any { m, _ := v.(map[string]any); return m }

func (a *ablated) dropFilter(match func(map[string]any) bool) {
	fs, _ := a.hcm["http_filters"].([]any)
	a.hcm["http_filters"] = slices.DeleteFunc(slices.Clone(fs), func(f any) bool {
		m, _ := f.(map[string]any)
		return match(m)
	})
}

// dumped is what the ablation needs of Envoy's config dump.
type dumped struct {
	listeners []map[string]any
	routes    map[string]map[string]any // by name
	clusters  map[string]map[string]any // by name
	endpoints map[string]map[string]any // ClusterLoadAssignment by cluster_name
}

// readDump reads the sandbox Envoy's dynamic listeners, routes, clusters
// and endpoints.
func readDump(ctx context.Context, sb *sandbox.Sandbox) (*dumped, error) {
	raw, err := sb.EnvoyAdmin(ctx, "/config_dump?include_eds")
	if err != nil {
		return nil, err
	}
	return parseDump(raw)
}

// parseDump reads a config dump (admin /config_dump?include_eds).
func parseDump(raw string) (*dumped, error) {
	var dump struct {
		Configs []map[string]any `json:"configs"`
	}
	if err := json.Unmarshal([]byte(raw), &dump); err != nil {
		return nil, fmt.Errorf("config dump: %w", err)
	}
	d := &dumped{routes: map[string]map[string]any{}, clusters: map[string]map[string]any{}, endpoints: map[string]map[string]any{}}
	// each calls fn with every item's value at path (keys) in c's list.
	each := func(c map[string]any, list string, fn func(map[string]any), path ...string) {
		for _, it := range asList(c[list]) {
			m, _ := it.(map[string]any)
			for _, k := range path {
				m, _ = m[k].(map[string]any)
			}
			if m != nil {
				fn(m)
			}
		}
	}
	for _, c := range dump.Configs {
		switch t, _ := c["@type"].(string); {
		case strings.HasSuffix(t, ".ListenersConfigDump"):
			each(c, "dynamic_listeners", func(l map[string]any) { d.listeners = append(d.listeners, l) }, "active_state", "listener")
		case strings.HasSuffix(t, ".RoutesConfigDump"):
			each(c, "dynamic_route_configs", func(r map[string]any) { d.routes[str(r["name"])] = r }, "route_config")
		case strings.HasSuffix(t, ".ClustersConfigDump"):
			each(c, "dynamic_active_clusters", func(cl map[string]any) { d.clusters[str(cl["name"])] = cl }, "cluster")
		case strings.HasSuffix(t, ".EndpointsConfigDump"):
			each(c, "dynamic_endpoint_configs", func(e map[string]any) { d.endpoints[str(e["cluster_name"])] = e }, "endpoint_config")
		}
	}
	return d, nil
}

// chainFor returns a deep copy of the filter chain that serves serverName.
func (d *dumped) chainFor(serverName string) (map[string]any, []any, error) {
	for _, l := range d.listeners {
		chains, _ := l["filter_chains"].([]any)
		for _, ch := range chains {
			m, _ := ch.(map[string]any)
			match, _ := m["filter_chain_match"].(map[string]any)
			names, _ := match["server_names"].([]any)
			if slices.Contains(names, any(serverName)) {
				return deepCopy(m), copiedListenerFilters(l), nil
			}
		}
	}
	return nil, nil, fmt.Errorf("no filter chain for %s in Envoy's config dump", serverName)
}

// copiedListenerFilters are listener l's filters for a copy on another
// port: without the PROXY protocol filter, which the sandbox's listener
// disables by destination port for its main port only (its other port
// expects the header), so on the copy's port it would wait for a header
// the bench's clients never send.
func copiedListenerFilters(l map[string]any) []any {
	lf, _ := l["listener_filters"].([]any)
	var out []any
	for _, f := range lf {
		if m, _ := f.(map[string]any); m["name"] == "envoy.filters.listener.proxy_protocol" {
			continue
		}
		out = append(out, deepCopy(f))
	}
	return out
}

func deepCopy[T any](v T) T {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // decoded JSON always encodes
	}
	var out T
	if err := json.Unmarshal(b, &out); err != nil {
		panic(err)
	}
	return out
}

// derive builds the stand-alone pieces of one copy: the filter chain with
// its HCM (inline routes), the clusters the routes name (inline
// endpoints), with SDS replaced by the sandbox's files.
func (d *dumped) derive(serverName string, files tlsFiles, accessLog string) (*ablated, []any, error) {
	chain, listenerFilters, err := d.chainFor(serverName)
	if err != nil {
		return nil, nil, err
	}
	delete(chain, "filter_chain_match")
	delete(chain, "name")
	filters, _ := chain["filters"].([]any)
	var hcm map[string]any
	for _, f := range filters {
		m, _ := f.(map[string]any)
		if m["name"] == "envoy.filters.network.http_connection_manager" {
			hcm, _ = m["typed_config"].(map[string]any)
		}
	}
	if hcm == nil {
		return nil, nil, errors.New("the filter chain has no HTTP connection manager")
	}
	rds, _ := hcm["rds"].(map[string]any)
	rc, ok := d.routes[str(rds["route_config_name"])]
	if !ok {
		return nil, nil, fmt.Errorf("route config %q not in the dump", str(rds["route_config_name"]))
	}
	delete(hcm, "rds")
	rc = deepCopy(rc)
	delete(rc, "@type") // the dump's resources are Any values
	hcm["route_config"] = rc
	names := map[string]bool{}
	walk(rc, func(k string, v any) {
		if s, ok := v.(string); ok && (k == "cluster") {
			names[s] = true
		}
	})
	a := &ablated{hcm: hcm, chain: chain}
	for _, n := range slices.Sorted(mapsKeys(names)) {
		c, ok := d.clusters[n]
		if !ok {
			return nil, nil, fmt.Errorf("cluster %q not in the dump", n)
		}
		c = deepCopy(c)
		delete(c, "@type")
		if eds, isEDS := c["eds_cluster_config"].(map[string]any); isEDS || c["type"] == "EDS" {
			e, ok := d.endpoints[str(eds["service_name"])]
			if !ok {
				if e, ok = d.endpoints[n]; !ok {
					return nil, nil, fmt.Errorf("endpoints of cluster %q not in the dump", n)
				}
			}
			e = deepCopy(e)
			delete(e, "@type")
			e["cluster_name"] = n
			// The dump shows Envoy's view: a locality weight of 0 (unset)
			// and each host's health, neither of which the control plane
			// sent.
			for _, loc := range asList(e["endpoints"]) {
				l, _ := loc.(map[string]any)
				if w, _ := l["load_balancing_weight"].(float64); w < 1 {
					delete(l, "load_balancing_weight")
				}
				for _, ep := range asList(l["lb_endpoints"]) {
					if m, ok := ep.(map[string]any); ok {
						delete(m, "health_status")
					}
				}
			}
			delete(c, "eds_cluster_config")
			c["type"] = "STATIC"
			c["load_assignment"] = e
		}
		a.clusters = append(a.clusters, c)
	}
	// The sandbox's Envoy already serves the module's metrics; the copy
	// logs to its own file, as its Envoy loggers do.
	err = a.editModuleConfig(func(cfg map[string]any) {
		delete(cfg, "metricsAddress")
		if l, _ := cfg["accessLog"].(map[string]any); l != nil && str(l["path"]) != "" {
			l["path"] = accessLog
		}
	})
	if err != nil {
		return nil, nil, err
	}
	for _, l := range asList(hcm["access_log"]) {
		if tc, _ := l.(map[string]any)["typed_config"].(map[string]any); tc != nil {
			if strings.HasSuffix(str(tc["@type"]), ".FileAccessLog") {
				tc["path"] = accessLog
			}
		}
	}
	replaceSDS(chain, files.serving, files.clientCA)
	for _, c := range a.clusters {
		replaceSDS(c, files.client, files.upstreamCA)
	}
	return a, listenerFilters, nil
}

func asList(v any) []any { l, _ := v.([]any); return l }

func mapsKeys(m map[string]bool) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// editModuleConfig edits the module filter's JSON config (the
// translator's envoy.InProcessConfig) in place.
func (a *ablated) editModuleConfig(edit func(cfg map[string]any)) error {
	for _, f := range asList(a.hcm["http_filters"]) {
		m, _ := f.(map[string]any)
		if !isModuleFilter(m) {
			continue
		}
		tc, _ := m["typed_config"].(map[string]any)
		fc, _ := tc["filter_config"].(map[string]any)
		var cfg map[string]any
		if err := json.Unmarshal([]byte(str(fc["value"])), &cfg); err != nil {
			return fmt.Errorf("the module's filter config: %w", err)
		}
		edit(cfg)
		b, err := json.Marshal(cfg)
		if err != nil {
			return err
		}
		fc["value"] = string(b)
	}
	return nil
}

// walk calls fn for every key/value pair in v, depth first.
func walk(v any, fn func(k string, v any)) {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			fn(k, x)
			walk(x, fn)
		}
	case []any:
		for _, x := range t {
			walk(x, fn)
		}
	}
}

// keyPair is a certificate and its key, as files.
type keyPair struct{ cert, key string }

// tlsFiles are the sandbox's files that stand in for the SDS secrets.
type tlsFiles struct {
	serving, client      keyPair
	clientCA, upstreamCA string
}

// replaceSDS turns every common_tls_context under v that takes SDS secrets
// into one that reads files: the certificate from pair, the trusted CA
// from ca, every other validation setting (SAN matchers, trust-chain
// verification) kept.
func replaceSDS(v any, pair keyPair, ca string) {
	walk(v, func(k string, x any) {
		ctc, ok := x.(map[string]any)
		if k != "common_tls_context" || !ok {
			return
		}
		if _, sds := ctc["tls_certificate_sds_secret_configs"]; sds {
			delete(ctc, "tls_certificate_sds_secret_configs")
			ctc["tls_certificates"] = []any{map[string]any{
				"certificate_chain": map[string]any{"filename": pair.cert},
				"private_key":       map[string]any{"filename": pair.key},
			}}
		}
		vc := map[string]any{}
		if cvc, ok := ctc["combined_validation_context"].(map[string]any); ok {
			if dvc, ok := cvc["default_validation_context"].(map[string]any); ok {
				vc = dvc
			}
			delete(ctc, "combined_validation_context")
		} else if _, sds := ctc["validation_context_sds_secret_config"]; sds {
			delete(ctc, "validation_context_sds_secret_config")
		} else {
			return
		}
		vc["trusted_ca"] = map[string]any{"filename": ca}
		ctc["validation_context"] = vc
	})
}

// bootstrap is a static Envoy config serving the copy on port, its admin
// on adminPort.
func (a *ablated) bootstrap(adminPort, port int, listenerFilters []any) map[string]any {
	l := map[string]any{
		"name":          "measured",
		"address":       map[string]any{"socket_address": map[string]any{"address": "127.0.0.1", "port_value": port}},
		"filter_chains": []any{a.chain},
	}
	if len(listenerFilters) > 0 {
		l["listener_filters"] = listenerFilters
	}
	clusters := make([]any, len(a.clusters))
	for i, c := range a.clusters {
		clusters[i] = c
	}
	return map[string]any{
		"admin":            map[string]any{"address": map[string]any{"socket_address": map[string]any{"address": "127.0.0.1", "port_value": adminPort}}},
		"static_resources": map[string]any{"listeners": []any{l}, "clusters": clusters},
	}
}

// startAblations starts one static Envoy per ablation, copied from the
// sandbox's InProcess chain, and returns them as paths (client c pointed at
// each). A copy that fails is a path with its reason in na.
func startAblations(ctx context.Context, sb *sandbox.Sandbox, outDir string, c Client) ([]*path, func(), error) {
	d, err := readDump(ctx, sb)
	if err != nil {
		return nil, nil, err
	}
	pki := func(n string) string { return filepath.Join(sb.Dir, "pki", n) }
	files := tlsFiles{
		serving:  keyPair{pki("gateway-serving.crt"), pki("gateway-serving.key")},
		client:   keyPair{pki("gateway-client.crt"), pki("gateway-client.key")},
		clientCA: filepath.Join(sb.Dir, "ca.crt"), upstreamCA: filepath.Join(sb.Dir, "ca.crt"),
	}
	var (
		paths    []*path
		children []*child
	)
	stop := func() {
		for _, ch := range children {
			ch.stop()
		}
	}
	for _, ab := range ablations {
		name := AblationPrefix + ab.name
		p := &path{name: name, note: "static copy of the InProcess chain without " + ab.removes, mode: "InProcess"}
		paths = append(paths, p)
		ch, url, err := startAblation(ctx, d, ab, name, sb, outDir, files)
		if err != nil {
			p.na = "n/a: " + err.Error()
			continue
		}
		children = append(children, ch)
		p.c = c
		p.c.URL, p.c.ServerName = url, c.ServerName
		p.procs = map[string]int{"envoy": ch.pid()}
		if err := p.c.waitServed(ctx, 30*time.Second); err != nil {
			p.na = "n/a: " + err.Error()
		}
	}
	return paths, stop, nil
}

func startAblation(ctx context.Context, d *dumped, ab ablation, name string, sb *sandbox.Sandbox, outDir string, files tlsFiles) (*child, string, error) {
	a, lf, err := d.derive(inProcessCluster.sni, files, filepath.Join(outDir, name+"-access.log"))
	if err != nil {
		return nil, "", err
	}
	ab.edit(a)
	ports, err := testenv.FreePorts(2) // admin, measured
	if err != nil {
		return nil, "", err
	}
	b, err := json.MarshalIndent(a.bootstrap(ports[0], ports[1], lf), "", "  ")
	if err != nil {
		return nil, "", err
	}
	cfgPath := filepath.Join(outDir, name+".json")
	if err := os.WriteFile(cfgPath, b, 0o644); err != nil {
		return nil, "", err
	}
	ch, err := startChild(name, filepath.Join(outDir, name+".log"), nil, filepath.Join(sb.BinDir, "envoy"),
		"-c", cfgPath, "--use-dynamic-base-id", "--log-level", "warn", "--concurrency", "2",
		"--file-flush-interval-msec", "200")
	if err != nil {
		return nil, "", err
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := waitTLS(wctx, ch, fmt.Sprintf("127.0.0.1:%d", ports[1])); err != nil {
		ch.stop()
		return nil, "", fmt.Errorf("%w (config %s, log %s)", err, cfgPath, ch.log)
	}
	return ch, fmt.Sprintf("https://127.0.0.1:%d", ports[1]), nil
}
