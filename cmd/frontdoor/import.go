package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/kubefrontdoor/frontdoor/api/v1alpha1"
	"github.com/kubefrontdoor/frontdoor/importer/kubegateway"
)

// runImport converts another gateway's configuration into Frontdoor
// objects: `frontdoor import kubegateway -f FILE [-o DIR]`. The objects go
// to stdout as one YAML stream (or one file each under -o), the report of
// what was converted, not carried or added to stderr. Only input that
// cannot be read or parsed fails; fields that cannot be carried are
// warnings in the report.
func runImport(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "kubegateway" {
		return errors.New(`usage: frontdoor import kubegateway -f FILE [-o DIR] (the only source is "kubegateway")`)
	}
	fs := flag.NewFlagSet("import kubegateway", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("f", "", `KubeGateway proxy.kubegateway.io/v1alpha1 UpstreamClusters (YAML, several documents or a List); "-" reads stdin (required)`)
	outDir := fs.String("o", "", "write one manifest per object into this directory (secret-<name>.yaml, upstreamcluster-<name>.yaml) instead of a stream on stdout")
	namespace := fs.String("namespace", kubegateway.DefaultNamespace, "namespace of the Secrets the inline PEM data becomes (the gateway's own, in Kubernetes mode)")
	requestService := fs.String("request-service", "", "set spec.requestService (ExtAuthz, ExtProc or InProcess) on every UpstreamCluster; empty keeps the default")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *file == "" {
		return errors.New("-f is required")
	}
	switch v1alpha1.RequestService(*requestService) {
	case "", v1alpha1.RequestServiceExtAuthz, v1alpha1.RequestServiceExtProc, v1alpha1.RequestServiceInProcess:
	default:
		return fmt.Errorf("--request-service %q: want ExtAuthz, ExtProc or InProcess", *requestService)
	}
	var data []byte
	var err error
	if *file == "-" {
		data, err = io.ReadAll(stdin)
	} else {
		data, err = os.ReadFile(*file)
	}
	if err != nil {
		return err
	}
	res, err := kubegateway.Convert(data, kubegateway.Options{Namespace: *namespace, RequestService: v1alpha1.RequestService(*requestService)})
	if err != nil {
		return fmt.Errorf("%s: %w", *file, err)
	}
	if *outDir == "" {
		stream, err := res.Stream()
		if err != nil {
			return err
		}
		if _, err := stdout.Write(stream); err != nil {
			return err
		}
	} else {
		files, err := res.Files()
		if err != nil {
			return err
		}
		if err := os.MkdirAll(*outDir, 0o750); err != nil {
			return err
		}
		for _, f := range files {
			// Secrets hold private keys: owner-only, as kubectl would want them.
			if err := os.WriteFile(filepath.Join(*outDir, f.Name), f.Data, 0o600); err != nil {
				return err
			}
		}
	}
	fmt.Fprint(stderr, res.Report())
	fmt.Fprintf(stderr, "converted %d UpstreamCluster(s) and %d Secret(s); %d finding(s) above\n", len(res.Clusters), len(res.Secrets), len(res.Findings))
	return nil
}
