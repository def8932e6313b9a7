// Command frontdoor-module is frontdoor's request service as an Envoy
// dynamic module: build it with
//
//	CGO_ENABLED=1 go build -buildmode=c-shared -o libfrontdoor.so ./cmd/frontdoor-module
//
// and give its absolute path to frontdoor serve --inprocess-module; clusters
// with spec.requestService: InProcess then load it into Envoy (package
// inprocess). It must be built against the Envoy version the project pins
// (tools/versions.env): the ABI is checked by package abi's tests.
//
// It imports package inprocess only: everything in the library runs inside
// Envoy, so nothing that listens, logs to stdout or reads files belongs here.
package main

import "github.com/kubefrontdoor/frontdoor/inprocess"

func init() { inprocess.Register() }

// main is never called: Envoy loads the library, and init registers the filter.
func main() {}
