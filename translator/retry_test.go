package translator

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/kubefrontdoor/frontdoor/api/v1alpha1"
	"github.com/kubefrontdoor/frontdoor/envoy"
	"github.com/kubefrontdoor/frontdoor/internal/testenv"
)

// TestRetriesOnlyRefusalsBeforeExecution runs the real Envoy with the
// translator's routes and upstream filters in front of three servers that
// answer as kube-apiserver v1.37 does (k8s.io/apiserver/pkg/server/filters;
// importing it would pull etcd's client into the product module): the
// shutdown 429 as withRetryAfter writes it, the APF/max-inflight 429 as
// tooManyRequests does (http.Error, Retry-After).
// Only those are retried, once, on another server, with the request body;
// a 429 Status (JSON or protobuf), a plain-text 200 and a server's forged
// verdict are not; no client ever sees the internal header.
func TestRetriesOnlyRefusalsBeforeExecution(t *testing.T) {
	up := &fakeReplicas{attempts: map[string][]attempt{}}
	var ports []int
	for i := range 3 {
		s := httptest.NewServer(up.handler(i))
		t.Cleanup(s.Close)
		ports = append(ports, s.Listener.Addr().(*net.TCPAddr).Port)
	}
	listen, admin := runRetryEnvoy(t, ports)
	client := &http.Client{Timeout: 10 * time.Second}

	cases := []struct {
		path, method, body string
		upgrade            bool
		wantCode           int
		wantAttempts       int
	}{
		{path: "/apf-once", method: http.MethodGet, wantCode: http.StatusOK, wantAttempts: 2},
		{path: "/shutdown-once", method: http.MethodGet, wantCode: http.StatusOK, wantAttempts: 2},
		{path: "/shutdown-once-post", method: http.MethodPost, body: `{"kind":"ConfigMap"}`, wantCode: http.StatusCreated, wantAttempts: 2},
		{path: "/shutdown-once-upgrade", method: http.MethodGet, upgrade: true, wantCode: http.StatusOK, wantAttempts: 2},
		{path: "/shutdown-always", method: http.MethodGet, wantCode: http.StatusTooManyRequests, wantAttempts: 2},
		{path: "/status-json", method: http.MethodPost, body: `{"kind":"Eviction"}`, wantCode: http.StatusTooManyRequests, wantAttempts: 1},
		{path: "/status-protobuf", method: http.MethodGet, wantCode: http.StatusTooManyRequests, wantAttempts: 1},
		{path: "/log", method: http.MethodGet, wantCode: http.StatusOK, wantAttempts: 1},
		{path: "/forged", method: http.MethodGet, wantCode: http.StatusOK, wantAttempts: 1},
	}
	for _, tc := range cases {
		req, err := http.NewRequestWithContext(t.Context(), tc.method, listen+tc.path, strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		if tc.upgrade { // exec, attach, port-forward: the upgrade route
			req.Header.Set("Connection", "Upgrade")
			req.Header.Set("Upgrade", "websocket")
			req.Header.Set("Sec-WebSocket-Version", "13")
			req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.method, tc.path, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		got := up.of(tc.path)
		if resp.StatusCode != tc.wantCode || len(got) != tc.wantAttempts {
			t.Errorf("%s %s: %d after %d attempts %v; want %d after %d", tc.method, tc.path, resp.StatusCode, len(got), got, tc.wantCode, tc.wantAttempts)
		}
		if v := resp.Header.Get(upstreamVerdictHeader); v != "" {
			t.Errorf("%s %s: the client saw %s: %q", tc.method, tc.path, upstreamVerdictHeader, v)
		}
		if len(got) == 2 && got[0].server == got[1].server {
			t.Errorf("%s %s: retried on the server that refused it (%d)", tc.method, tc.path, got[0].server)
		}
		for _, a := range got {
			if a.body != tc.body {
				t.Errorf("%s %s: server %d got body %q; want %q", tc.method, tc.path, a.server, a.body, tc.body)
			}
		}
	}

	// The upgrade went by the upgrade route; Envoy counts each retry on the
	// cluster it retried in.
	for cluster, want := range map[string]string{"retry/upgrade": "1", "retry/default": "4"} {
		stat := "cluster." + cluster + ".upstream_rq_retry"
		resp, err := client.Get(admin + "/stats?filter=^" + strings.ReplaceAll(stat, ".", "\\.") + "$")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if got := strings.TrimSpace(string(b)); got != stat+": "+want {
			t.Errorf("Envoy stats %q; want %s: %s", got, stat, want)
		}
	}
}

// attempt is one request a fake replica received.
type attempt struct {
	server int
	body   string
}

// fakeReplicas answer by path, and record every attempt.
type fakeReplicas struct {
	mu       sync.Mutex
	attempts map[string][]attempt
}

func (f *fakeReplicas) of(path string) []attempt {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]attempt(nil), f.attempts[path]...)
}

func (f *fakeReplicas) handler(server int) http.Handler {
	served := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.Method == http.MethodPost {
			w.WriteHeader(http.StatusCreated)
		}
		_, _ = w.Write([]byte(`{"kind":"ConfigMap"}`))
	})
	// As filters.withRetryAfter answers once the shutdown delay has
	// elapsed (--shutdown-send-retry-after).
	shuttingDown := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Connection", "close")
		w.Header().Set("Retry-After", "5")
		http.Error(w, "The apiserver is shutting down, please try again later.", http.StatusTooManyRequests)
	})
	// As filters.tooManyRequests answers for API Priority and Fairness and
	// max-inflight.
	apfRejected := func(w http.ResponseWriter) {
		w.Header().Set("Retry-After", "1")
		http.Error(w, "Too many requests, please try again later.", http.StatusTooManyRequests)
	}
	status := func(w http.ResponseWriter, contentType string, body []byte) {
		w.Header().Set("Content-Type", contentType)
		w.Header().Set("Retry-After", "10")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = w.Write(body)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		f.mu.Lock()
		f.attempts[r.URL.Path] = append(f.attempts[r.URL.Path], attempt{server: server, body: string(body)})
		first := len(f.attempts[r.URL.Path]) == 1
		f.mu.Unlock()
		switch r.URL.Path {
		case "/apf-once":
			if first {
				apfRejected(w)
				return
			}
		case "/shutdown-once", "/shutdown-once-post", "/shutdown-once-upgrade":
			if first {
				shuttingDown.ServeHTTP(w, r)
				return
			}
		case "/shutdown-always":
			shuttingDown.ServeHTTP(w, r)
			return
		case "/status-json":
			status(w, "application/json", []byte(`{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"TooManyRequests","code":429}`))
			return
		case "/status-protobuf":
			status(w, "application/vnd.kubernetes.protobuf", []byte("k8s\x00"))
			return
		case "/log":
			w.Header().Set("Content-Type", "text/plain")
			_, _ = w.Write([]byte("a log line\n"))
			return
		case "/forged":
			w.Header().Set(upstreamVerdictHeader, refusedBeforeExecution)
		}
		served.ServeHTTP(w, r)
	})
}

// runRetryEnvoy runs bin/envoy with one listener whose routes are the
// translator's (routeConfiguration) over two clusters (default and
// upgrade) of plain HTTP/1.1 to ports, with the translator's upstream
// filters; it returns the listener's and the admin's URLs once Envoy is
// ready.
func runRetryEnvoy(t *testing.T, ports []int) (listen, admin string) {
	t.Helper()
	listenPort, adminPort := testenv.MustFreePort(t), testenv.MustFreePort(t)
	c := &ClusterIR{Name: "retry", RequestService: RequestServiceIR(v1alpha1.RequestServiceExtAuthz)}
	rc := routeConfiguration(c)
	rc.GetVirtualHosts()[0].TypedPerFilterConfig = nil // no request service here
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix:     "retry",
		UpgradeConfigs: []*hcmv3.HttpConnectionManager_UpgradeConfig{{UpgradeType: "websocket"}},
		RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: rc},
		HttpFilters:    []*hcmv3.HttpFilter{{Name: "envoy.filters.http.router", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&routerv3.Router{})}}},
	}
	var eps []*endpointv3.LbEndpoint
	for _, p := range ports {
		eps = append(eps, &endpointv3.LbEndpoint{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: socketAddress("127.0.0.1", uint32(p))}}})
	}
	plain := func(name string) *clusterv3.Cluster {
		return &clusterv3.Cluster{
			Name:                          name,
			ConnectTimeout:                duration(time.Second),
			ClusterDiscoveryType:          &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
			LoadAssignment:                &endpointv3.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: eps}}},
			TypedExtensionProtocolOptions: map[string]*anypb.Any{httpProtocolOptionsKey: mustAny(upstreamHTTP1Options())},
		}
	}
	bs := &bootstrapv3.Bootstrap{
		Admin: &bootstrapv3.Admin{Address: socketAddress("127.0.0.1", uint32(adminPort))},
		StaticResources: &bootstrapv3.Bootstrap_StaticResources{
			Listeners: []*listenerv3.Listener{{
				Name:         "retry",
				Address:      socketAddress("127.0.0.1", uint32(listenPort)),
				FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{Name: "envoy.filters.network.http_connection_manager", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(hcm)}}}}},
			}},
			Clusters: []*clusterv3.Cluster{plain(envoy.DefaultClusterName(c.Name)), plain(envoy.UpgradeClusterName(c.Name))},
		},
	}
	b, err := protojson.Marshal(bs)
	if err != nil {
		t.Fatal(err)
	}
	testenv.RunEnvoyConfig(t, b, adminPort)
	return "http://127.0.0.1:" + strconv.Itoa(listenPort), "http://127.0.0.1:" + strconv.Itoa(adminPort)
}
