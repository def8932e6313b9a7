package abi

// The binding is pinned to one Envoy release. TestPinnedEnvoyVersion fails
// when bin/envoy (tools/versions.env ENVOY_VERSION) is not EnvoyVersion or no
// longer carries ABIVersion, so an Envoy bump has to re-verify this package
// (see the header of abi.go) instead of silently running a stale ABI.
const (
	// ABIVersion is the dynamic-module ABI version Envoy EnvoyVersion
	// implements, returned from on_program_init.
	ABIVersion = "v0.2.0"
	// EnvoyVersion is the Envoy release whose binary this binding was
	// verified against.
	EnvoyVersion = "1.40.0"
)
