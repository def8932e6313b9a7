// Package translatortest loads the translator's golden inputs
// (translator/testdata/in, described in its README.md) the same way for
// every test and benchmark, in any package. The format is the config format
// (translator.DecodeInputs, the loader the binary uses) plus two test-only
// extras handled here:
//
//   - at most one `kind: Options` document (the fields of
//     translator.Options, in camelCase), standing for the options the binary
//     takes from flags;
//   - Secret values `file:<path>`, replaced by the contents of <path>
//     relative to the inputs directory, so every case shares the PEMs in
//     pki/.
//
// It is test support, not product code, and keeps the translator's import
// rule all the same (translator's TestImports covers it): no os, net/http,
// client-go or gRPC. Files come in through an fs.FS, e.g.
// os.DirFS("testdata/in") from the translator's own tests.
package translatortest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/kubefrontdoor/frontdoor/translator"
)

// FilePrefix starts a Secret value that names a file (relative to the
// inputs directory) whose contents replace it.
const FilePrefix = "file:"

// options is the test-only "kind: Options" document.
type options struct {
	Kind            string `json:"kind"`
	ListenerAddress string `json:"listenerAddress"`
	ListenerPort    uint32 `json:"listenerPort"`
	// More ports, and the ports expecting the PROXY protocol.
	ListenerExtraPorts []uint32 `json:"listenerExtraPorts"`
	ProxyProtocolPorts []uint32 `json:"proxyProtocolPorts"`
	AccessLogPath      string   `json:"accessLogPath"`
	DisableAccessLog   bool     `json:"disableAccessLog"`
	// Log only failures (and requests slower than accessLogSlowerThan).
	AccessLogFailuresOnly bool            `json:"accessLogFailuresOnly"`
	AccessLogSlowerThan   metav1.Duration `json:"accessLogSlowerThan"`
	// The in-process module's path and frontdoor serve's addresses.
	InProcessModule         string `json:"inProcessModule"`
	InProcessPolicyAddress  string `json:"inProcessPolicyAddress"`
	InProcessMetricsAddress string `json:"inProcessMetricsAddress"`
	// The namespaces Secrets may be referenced in (frontdoor serve's
	// gateway namespace and --secret-namespaces).
	SecretNamespaces []string `json:"secretNamespaces"`
	// Rebalancing and drain pacing: the maximum connection age (a Go
	// duration), its jitter percentage, and the split into buckets by
	// source port.
	MaxConnectionAge       metav1.Duration `json:"maxConnectionAge"`
	MaxConnectionAgeJitter float64         `json:"maxConnectionAgeJitter"`
	DrainBuckets           bool            `json:"drainBuckets"`
	// The ratelimit service (frontdoor serve --ratelimit-address).
	RateLimitAddress string `json:"rateLimitAddress"`
}

// Cases returns the names of the golden cases in fsys (its *.yaml files,
// without the extension), sorted.
func Cases(fsys fs.FS) ([]string, error) {
	paths, err := fs.Glob(fsys, "*.yaml")
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(paths))
	for _, p := range paths {
		names = append(names, strings.TrimSuffix(p, ".yaml"))
	}
	slices.Sort(names)
	return names, nil
}

// Load reads and decodes the golden case name (without ".yaml") from fsys,
// the inputs directory.
func Load(fsys fs.FS, name string) (translator.Inputs, error) {
	data, err := fs.ReadFile(fsys, name+".yaml")
	if err != nil {
		return translator.Inputs{}, err
	}
	in, err := Decode(data, fsys)
	if err != nil {
		return translator.Inputs{}, fmt.Errorf("%s.yaml: %w", name, err)
	}
	return in, nil
}

// MustLoad is Load for a test: it fails tb on an error. The translator's
// tests and those of the packages that feed it (source, xds) load their
// inputs through it, so a broken case fails each the same way.
func MustLoad(tb testing.TB, fsys fs.FS, name string) translator.Inputs {
	tb.Helper()
	in, err := Load(fsys, name)
	if err != nil {
		tb.Fatal(err)
	}
	return in
}

// Decode decodes one golden input: the Options document is taken out
// (leaving an empty document in its place, so errors still count documents
// as the file has them), the rest goes through translator.DecodeInputs, and
// then every Secret value that reads file:<path> is replaced by that file
// of fsys.
func Decode(data []byte, fsys fs.FS) (translator.Inputs, error) {
	var (
		opts    *translator.Options
		config  [][]byte
		reader  = utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
		docOpts options
	)
	for i := 1; ; i++ {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return translator.Inputs{}, fmt.Errorf("document %d: %w", i, err)
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			return translator.Inputs{}, fmt.Errorf("document %d: %w", i, err)
		}
		if tm.Kind != "Options" {
			config = append(config, doc)
			continue
		}
		if opts != nil {
			return translator.Inputs{}, fmt.Errorf("document %d: a second Options document", i)
		}
		if err := yaml.UnmarshalStrict(doc, &docOpts); err != nil {
			return translator.Inputs{}, fmt.Errorf("document %d: Options: %w", i, err)
		}
		opts = &translator.Options{
			ListenerAddress: docOpts.ListenerAddress, ListenerPort: docOpts.ListenerPort,
			AccessLogPath: docOpts.AccessLogPath, DisableAccessLog: docOpts.DisableAccessLog,
			AccessLogFailuresOnly: docOpts.AccessLogFailuresOnly, AccessLogSlowerThan: docOpts.AccessLogSlowerThan.Duration,
			InProcessModule: docOpts.InProcessModule, InProcessPolicyAddress: docOpts.InProcessPolicyAddress,
			InProcessMetricsAddress: docOpts.InProcessMetricsAddress,
			SecretNamespaces:        docOpts.SecretNamespaces,
			RateLimitAddress:        docOpts.RateLimitAddress,
			ListenerExtraPorts:      docOpts.ListenerExtraPorts,
			Edge: translator.EdgeOptions{
				ProxyProtocolPorts:     docOpts.ProxyProtocolPorts,
				MaxConnectionAge:       docOpts.MaxConnectionAge.Duration,
				MaxConnectionAgeJitter: docOpts.MaxConnectionAgeJitter,
				DrainBuckets:           docOpts.DrainBuckets,
			},
		}
		config = append(config, []byte("# kind: Options (test-only, taken out)\n"))
	}
	in, err := translator.DecodeInputs(bytes.Join(config, []byte("\n---\n")))
	if err != nil {
		return translator.Inputs{}, err
	}
	if opts != nil {
		in.Options = *opts
	}
	for _, s := range in.Secrets {
		for k, v := range s.Data {
			name, ok := strings.CutPrefix(string(v), FilePrefix)
			if !ok {
				continue
			}
			b, err := fs.ReadFile(fsys, path.Clean(name))
			if err != nil {
				return translator.Inputs{}, fmt.Errorf("reading the file of Secret %s/%s key %q: %w", s.Namespace, s.Name, k, err)
			}
			s.Data[k] = b
		}
	}
	return in, nil
}
