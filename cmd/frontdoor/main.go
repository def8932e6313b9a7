// Command frontdoor is Frontdoor's one binary: the xDS control plane and the
// request service (serve), the Envoy bootstrap renderer (bootstrap), and
// version. Subcommands only parse flags and wire packages together.
//
// Nothing imports it; it may import every product package, but never
// k8s.io/kubernetes (built only as a test binary from tools/).
package main

import (
	"fmt"
	"os"
)

// version is stamped at build time (-ldflags "-X main.version=...").
var version = "dev"

const usage = `frontdoor: an Envoy front door for kube-apiserver.

Usage:
  frontdoor serve      [flags]   run the xDS control plane and the request service
  frontdoor bootstrap  [flags]   print the Envoy bootstrap that points Envoy at "frontdoor serve"
  frontdoor drain      [flags]   drain Envoy gracefully (its preStop hook), then optionally stop it
  frontdoor check      [flags]   validate a config directory offline and print each UpstreamCluster's conditions
  frontdoor import kubegateway -f FILE [flags]
                                 convert KubeGateway UpstreamClusters into Frontdoor objects (report on stderr)
  frontdoor version              print the version

Run "frontdoor <command> -h" for a command's flags.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "serve":
		err = runServe(args)
	case "bootstrap":
		err = runBootstrap(args, os.Stdout)
	case "drain":
		err = runDrain(args)
	case "check":
		err = runCheck(args, os.Stdout)
	case "import":
		err = runImport(args, os.Stdin, os.Stdout, os.Stderr)
	case "version", "--version":
		fmt.Println("frontdoor", version)
	case "help", "-h", "--help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "frontdoor: unknown command %q\n\n%s", cmd, usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "frontdoor %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}
