package translator

import (
	"fmt"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Small proto builders shared by the xDS files. They keep the per-concept
// files readable: a listener reads as a listener, not as Any plumbing.

// adsConfigSource points a dynamic resource (RDS, EDS, SDS) back at the
// same ADS stream, so one connection carries everything in order.
func adsConfigSource() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ResourceApiVersion:    corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
	}
}

// mustAny packs m. Packing a generated message cannot fail; a failure is a
// programming error, surfaced as a panic that Translate turns into a status.
// Packing is deterministic (map fields, as in a JSON access-log format, are
// sorted), so equal inputs give equal bytes and one config version.
func mustAny(m proto.Message) *anypb.Any {
	a := &anypb.Any{}
	if err := anypb.MarshalFrom(a, m, proto.MarshalOptions{Deterministic: true}); err != nil {
		panic(fmt.Sprintf("translator: packing %T: %v", m, err))
	}
	return a
}

// typedExtension is a named extension with its typed config.
func typedExtension(name string, m proto.Message) *corev3.TypedExtensionConfig {
	return &corev3.TypedExtensionConfig{Name: name, TypedConfig: mustAny(m)}
}

func duration(d time.Duration) *durationpb.Duration { return durationpb.New(d) }

func socketAddress(host string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address:       host,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}
