package translator

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/kubefrontdoor/frontdoor/api/v1alpha1"
)

// Options are the gateway-wide settings that are not part of any CRD.
type Options struct {
	// ListenerAddress and ListenerPort are where Envoy serves clients.
	ListenerAddress string
	ListenerPort    uint32
	// ListenerExtraPorts are more ports on ListenerAddress serving the
	// same clusters (checked by ListenerPorts).
	ListenerExtraPorts []uint32
	// AccessLogPath is the file Envoy writes its JSON access log to; empty
	// means Envoy's stdout.
	AccessLogPath string
	// DisableAccessLog turns Envoy's access log off.
	DisableAccessLog bool
	// AccessLogFailuresOnly logs only the requests that did not succeed
	// (accessLogFailureFilter) instead of every request.
	AccessLogFailuresOnly bool
	// AccessLogSlowerThan, with AccessLogFailuresOnly, also logs requests
	// that took at least this long (whole milliseconds; zero: none).
	AccessLogSlowerThan time.Duration
	// InProcessModule is the absolute path of frontdoor's dynamic module on
	// the Envoy host; clusters with requestService InProcess need it.
	InProcessModule string
	// InProcessPolicyAddress is where the module reaches frontdoor serve's
	// gRPC server for the policy table (host:port or unix:///path).
	InProcessPolicyAddress string
	// InProcessMetricsAddress, when set, is where the module serves the
	// pipeline's metrics.
	InProcessMetricsAddress string
	// Edge tunes the public listener's timeouts and forwarding-header
	// trust (edge.go); zero fields take the defaults.
	Edge EdgeOptions
	// SecretNamespaces are the namespaces whose Secrets UpstreamClusters may
	// reference; a reference elsewhere is not resolved (ResolvedRefs False,
	// RefNotPermitted). Whoever may write an UpstreamCluster must not be
	// able to point the gateway at a Secret someone else owns (e.g. another
	// gateway's impersonating client key). Empty allows every namespace:
	// file mode, where one operator writes the objects and the Secrets.
	SecretNamespaces []string
	// RateLimitAddress is where Envoy reaches the ratelimit service
	// (host:port, gRPC) that enforces Global token buckets; empty means the
	// gateway has none, and Global schemas are rejected.
	RateLimitAddress string
}

// Inputs is everything one translation reads.
type Inputs struct {
	Options          Options
	UpstreamClusters []*v1alpha1.UpstreamCluster
	// Secrets are the Secrets UpstreamClusters may reference (others are
	// ignored). The translator reads data only: stringData, which the API
	// never returns, is folded into data by DecodeInputs as the apiserver
	// does on write.
	Secrets []*corev1.Secret
	// EndpointSlices are the slices spec.endpointsFrom may select (others
	// are ignored).
	EndpointSlices []*discoveryv1.EndpointSlice
	// Health are the control plane's probe verdicts on the servers of
	// Output.Probes (probes.go); nil before any.
	Health ServerHealth
}

// DecodeInputs decodes one file of the config format: YAML (or JSON)
// documents separated by "---", each a frontdoor.dev/v1alpha1
// UpstreamCluster, a v1 Secret or a discovery.k8s.io/v1 EndpointSlice, in
// that order in the result. Documents holding only comments are skipped.
//
// It is strict, so a typo never silently drops a cluster: an unknown kind or
// field, or a document that does not parse, fails the whole file, with the
// document's 1-based position in the error. A Secret's stringData is folded
// into data (stringData wins on a shared key), as the apiserver does when it
// stores a Secret. Options are left zero: they come from flags, not files.
//
// Every reader of the format calls it: the directory source, `frontdoor
// check`, the golden tests (through translatortest) and the benchmarks.
func DecodeInputs(data []byte) (Inputs, error) {
	var in Inputs
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for i := 1; ; i++ {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return in, nil
		}
		if err != nil {
			return Inputs{}, fmt.Errorf("document %d: %w", i, err)
		}
		if isEmptyDocument(doc) {
			continue
		}
		if err := decodeObject(doc, &in); err != nil {
			return Inputs{}, fmt.Errorf("document %d: %w", i, err)
		}
	}
}

// decodeObject appends the one object of doc to in.
func decodeObject(doc []byte, in *Inputs) error {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return err
	}
	switch {
	case tm.APIVersion == v1alpha1.GroupVersion.String() && tm.Kind == "UpstreamCluster":
		uc := &v1alpha1.UpstreamCluster{}
		if err := yaml.UnmarshalStrict(doc, uc); err != nil {
			return fmt.Errorf("UpstreamCluster: %w", err)
		}
		in.UpstreamClusters = append(in.UpstreamClusters, uc)
	case tm.APIVersion == "v1" && tm.Kind == "Secret":
		s := &corev1.Secret{}
		if err := yaml.UnmarshalStrict(doc, s); err != nil {
			return fmt.Errorf("decoding a Secret: %w", err)
		}
		foldStringData(s)
		in.Secrets = append(in.Secrets, s)
	case tm.APIVersion == discoveryv1.SchemeGroupVersion.String() && tm.Kind == "EndpointSlice":
		es := &discoveryv1.EndpointSlice{}
		if err := yaml.UnmarshalStrict(doc, es); err != nil {
			return fmt.Errorf("EndpointSlice: %w", err)
		}
		in.EndpointSlices = append(in.EndpointSlices, es)
	default:
		return fmt.Errorf("unsupported object %q %q: want frontdoor.dev/v1alpha1 UpstreamCluster, v1 Secret or discovery.k8s.io/v1 EndpointSlice", tm.APIVersion, tm.Kind)
	}
	return nil
}

// foldStringData moves stringData into data as the apiserver does on
// write: stringData is write-only in the API, so the translator reads one
// field.
func foldStringData(s *corev1.Secret) {
	if len(s.StringData) == 0 {
		s.StringData = nil
		return
	}
	if s.Data == nil {
		s.Data = map[string][]byte{}
	}
	for k, v := range s.StringData {
		s.Data[k] = []byte(v)
	}
	s.StringData = nil
}

// isEmptyDocument reports whether a YAML document holds only comments and
// blank lines (a leading "---" or a trailing separator produce those).
func isEmptyDocument(doc []byte) bool {
	for _, line := range bytes.Split(doc, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) > 0 && line[0] != '#' && !bytes.Equal(line, []byte("---")) {
			return false
		}
	}
	return true
}
