package translator_test

import (
	"slices"
	"testing"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/kubefrontdoor/frontdoor/translator"
)

// The edge options reach every filter chain and connection manager of the
// listener; zero or negative values take the defaults (never "no timeout").
func TestEdgeOptions(t *testing.T) {
	for _, tc := range []struct {
		name               string
		opts               translator.EdgeOptions
		handshake, headers time.Duration
		hops               uint32
	}{
		{name: "defaults", handshake: translator.DefaultTLSHandshakeTimeout, headers: translator.DefaultRequestHeadersTimeout},
		{name: "negative", opts: translator.EdgeOptions{TLSHandshakeTimeout: -1, RequestHeadersTimeout: -1},
			handshake: translator.DefaultTLSHandshakeTimeout, headers: translator.DefaultRequestHeadersTimeout},
		{name: "tuned", opts: translator.EdgeOptions{TLSHandshakeTimeout: 3 * time.Second, RequestHeadersTimeout: 2 * time.Second, TrustedForwardingHops: 2},
			handshake: 3 * time.Second, headers: 2 * time.Second, hops: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := loadCase(t, "sni-clusters")
			in.Options.Edge = tc.opts
			out := translator.Translate(in)
			ls := out.Resources[resourcev3.ListenerType]
			if len(ls) != 1 {
				t.Fatalf("%d listeners", len(ls))
			}
			if got := ls[0].(*listenerv3.Listener).GetListenerFiltersTimeout().AsDuration(); got != tc.handshake {
				t.Errorf("listener_filters_timeout %v, want %v", got, tc.handshake)
			}
			chains := ls[0].(*listenerv3.Listener).GetFilterChains()
			if len(chains) < 2 {
				t.Fatalf("%d filter chains, want one per cluster", len(chains))
			}
			for _, fc := range chains {
				if got := fc.GetTransportSocketConnectTimeout().AsDuration(); got != tc.handshake {
					t.Errorf("%s: transport_socket_connect_timeout %v, want %v", fc.GetName(), got, tc.handshake)
				}
				hcm := &hcmv3.HttpConnectionManager{}
				if err := fc.GetFilters()[0].GetTypedConfig().UnmarshalTo(hcm); err != nil {
					t.Fatal(err)
				}
				if got := hcm.GetRequestHeadersTimeout().AsDuration(); got != tc.headers {
					t.Errorf("%s: request_headers_timeout %v, want %v", fc.GetName(), got, tc.headers)
				}
				if hcm.GetXffNumTrustedHops() != tc.hops {
					t.Errorf("%s: xff_num_trusted_hops %d, want %d", fc.GetName(), hcm.GetXffNumTrustedHops(), tc.hops)
				}
				if a := hcm.GetCommonHttpProtocolOptions().GetHeadersWithUnderscoresAction().String(); a != "REJECT_REQUEST" {
					t.Errorf("%s: headers_with_underscores_action %s", fc.GetName(), a)
				}
			}
			// The edge headers are every route configuration's own, applied
			// by the router after the filters and the route choice.
			routes := out.Resources[resourcev3.RouteType]
			if len(routes) < 2 {
				t.Fatalf("%d route configurations, want one per cluster", len(routes))
			}
			for _, r := range routes {
				rc := r.(*routev3.RouteConfiguration)
				if got, want := rc.GetRequestHeadersToRemove(), []string{"x-frontdoor-rule", "x-frontdoor-user", "audit-id", "x-forwarded-for"}; !slices.Equal(got, want) {
					t.Errorf("%s: request_headers_to_remove %v, want %v", rc.GetName(), got, want)
				}
				var adds []string
				for _, h := range rc.GetRequestHeadersToAdd() {
					adds = append(adds, h.GetHeader().GetKey()+"="+h.GetHeader().GetValue()+" "+h.GetAppendAction().String())
				}
				if want := []string{"audit-id=%REQ(X-REQUEST-ID)% OVERWRITE_IF_EXISTS_OR_ADD",
					"x-forwarded-for=%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% OVERWRITE_IF_EXISTS_OR_ADD"}; !slices.Equal(adds, want) {
					t.Errorf("%s: request_headers_to_add %v, want %v", rc.GetName(), adds, want)
				}
			}
		})
	}
}
