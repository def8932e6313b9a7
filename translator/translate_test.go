package translator_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/kubefrontdoor/frontdoor/api/v1alpha1"
	"github.com/kubefrontdoor/frontdoor/envoy"
	"github.com/kubefrontdoor/frontdoor/internal/testenv"
	"github.com/kubefrontdoor/frontdoor/translator"
)

// TestConsistent checks every golden case against go-control-plane's own
// consistency rule (every EDS cluster has its endpoints, every RDS name its
// route), which the xds/ server checks before serving a snapshot.
func TestConsistent(t *testing.T) {
	for _, name := range inputCases(t) {
		out := translator.Translate(loadCase(t, name))
		snap, err := cachev3.NewSnapshot(out.Version, out.Resources)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := snap.Consistent(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if out.Policy.Version != out.Version {
			t.Errorf("%s: policy version %q != %q", name, out.Policy.Version, out.Version)
		}
		for typeURL, rs := range out.Resources {
			for _, r := range rs {
				v, ok := r.(interface{ ValidateAll() error })
				if !ok {
					// Only the ratelimit service's config has no generated
					// validation; every Envoy resource must have it.
					if typeURL != resourcev3.RateLimitConfigType {
						t.Errorf("%s: %s has no ValidateAll", name, typeURL)
					}
					continue
				}
				if err := v.ValidateAll(); err != nil {
					t.Errorf("%s: %s: %v", name, typeURL, err)
				}
			}
		}
	}
}

// TestDeterministic: input order must not change anything, including the
// version, and a change of config must change the version.
func TestDeterministic(t *testing.T) {
	in := loadCase(t, "sni-clusters")
	want := translator.Translate(in)
	rng := rand.New(rand.NewPCG(1, 2))
	for range 10 {
		rng.Shuffle(len(in.UpstreamClusters), func(i, j int) {
			in.UpstreamClusters[i], in.UpstreamClusters[j] = in.UpstreamClusters[j], in.UpstreamClusters[i]
		})
		rng.Shuffle(len(in.Secrets), func(i, j int) { in.Secrets[i], in.Secrets[j] = in.Secrets[j], in.Secrets[i] })
		if got := translator.Translate(in); got.Version != want.Version {
			t.Fatalf("version changed with input order: %s != %s", got.Version, want.Version)
		}
	}

	// Policy-only change (x509 off) changes the version too.
	in.UpstreamClusters[0] = in.UpstreamClusters[0].DeepCopy()
	off := false
	in.UpstreamClusters[0].Spec.Authentication.X509.Enabled = &off
	if got := translator.Translate(in); got.Version == want.Version {
		t.Error("disabling x509 did not change the version")
	}
}

func TestTranslateEmptyAndNil(t *testing.T) {
	out := translator.Translate(translator.Inputs{UpstreamClusters: []*v1alpha1.UpstreamCluster{nil}, Secrets: nil})
	if len(out.Statuses) != 0 || len(out.Resources[resourcev3.ListenerType]) != 0 || out.Version == "" {
		t.Errorf("unexpected output for empty input: %+v", out)
	}
}

func TestInvalidListenerAddress(t *testing.T) {
	in := loadCase(t, "one-cluster")
	in.Options.ListenerAddress = "not-an-ip"
	out := translator.Translate(in)
	if len(out.Resources[resourcev3.ListenerType]) != 0 {
		t.Error("listener emitted with an invalid address")
	}
	if c := out.Statuses[0].Conditions[0]; c.Reason != v1alpha1.ReasonInvalidConfig || !strings.Contains(c.Message, "not-an-ip") {
		t.Errorf("Accepted = %+v, want InvalidConfig naming the address", c)
	}
}

// TestImports enforces the design's import rule: translator is pure.
// Direct imports must avoid I/O packages; transitively, client-go and gRPC
// must not appear at all (net/http and os come in through apimachinery and
// the standard library, so only direct imports are checked for them).
func TestImports(t *testing.T) {
	cmd := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, "./...")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		for _, imp := range f[1:] {
			if imp == "os" || imp == "net/http" || strings.HasPrefix(imp, "net/http/") || banned(imp) {
				t.Errorf("%s imports %s", f[0], imp)
			}
		}
	}
	deps, err := exec.Command("go", "list", "-deps", "./...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, deps)
	}
	for _, d := range strings.Fields(string(deps)) {
		if banned(d) && !jwtValidationDep[d] {
			t.Errorf("translator depends on %s", d)
		}
	}
}

// jwtValidationDep are the client-go packages kube-apiserver's own
// AuthenticationConfiguration validation (spec.authentication.jwt, jwt.go)
// brings in: PEM certificate and key parsing, no client and no I/O on
// the translator's path. They are allowed only transitively; a direct
// import is still refused above.
var jwtValidationDep = map[string]bool{"k8s.io/client-go/util/cert": true, "k8s.io/client-go/util/keyutil": true}

func banned(imp string) bool {
	for _, p := range []string{"k8s.io/client-go", "google.golang.org/grpc", "k8s.io/kubernetes"} {
		if imp == p || strings.HasPrefix(imp, p+"/") {
			return true
		}
	}
	return false
}

// TestEnvoyValidate feeds the translated config of every golden case to the
// real Envoy in validate mode, catching what proto validation cannot
// (extension names, retry_on values, TLS cross-field rules). The dynamic
// resources are inlined into a static bootstrap: RDS → route_config, EDS
// → STATIC with the load assignment, SDS → static secrets.
func TestEnvoyValidate(t *testing.T) {
	envoyBin, err := testenv.Binary("envoy")
	if err != nil {
		t.Fatal(err)
	}
	if testing.Short() {
		t.Skip("runs Envoy")
	}
	for _, name := range inputCases(t) {
		t.Run(name, func(t *testing.T) {
			in := loadCase(t, name)
			out := translator.Translate(in)
			if len(out.Resources[resourcev3.ListenerType]) == 0 {
				t.Skip("no listener")
			}
			cfg := staticBootstrap(t, out)
			if in.Options.InProcessModule != "" {
				// Envoy loads the module even to validate: give it the real
				// one, so its config parser checks what we translate.
				cfg = bytes.ReplaceAll(cfg, []byte(in.Options.InProcessModule), []byte(frontdoorModule(t)))
			}
			path := filepath.Join(t.TempDir(), "envoy.json")
			if err := os.WriteFile(path, cfg, 0o600); err != nil {
				t.Fatal(err)
			}
			b, err := exec.Command(envoyBin, "--mode", "validate", "-c", path, "--log-level", "warn").CombinedOutput()
			if err != nil {
				t.Fatalf("envoy --mode validate: %v\n%s", err, b)
			}
		})
	}
}

// frontdoorModule builds cmd/frontdoor-module, the in-process request
// service, once per test binary and returns its path.
func frontdoorModule(t *testing.T) string {
	t.Helper()
	moduleOnce.Do(func() {
		root, err := testenv.RepoRoot()
		if err != nil {
			moduleErr = err
			return
		}
		dir, err := os.MkdirTemp("", "frontdoor-module")
		if err != nil {
			moduleErr = err
			return
		}
		modulePath = filepath.Join(dir, "libfrontdoor.so")
		cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", modulePath, "./cmd/frontdoor-module")
		cmd.Dir, cmd.Env = root, append(os.Environ(), "CGO_ENABLED=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			moduleErr = fmt.Errorf("building the in-process module: %w\n%s", err, out)
		}
	})
	if moduleErr != nil {
		t.Fatal(moduleErr)
	}
	return modulePath
}

var (
	moduleOnce sync.Once
	modulePath string
	moduleErr  error
)

func staticBootstrap(t *testing.T, out *translator.Output) []byte {
	t.Helper()
	toMaps := func(typeURL string) []any {
		var l []any
		for _, r := range out.Resources[typeURL] {
			b, err := protojson.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			var m any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			l = append(l, dropKey(m, "sdsConfig"))
		}
		return l
	}
	routes := map[string]any{}
	for _, r := range toMaps(resourcev3.RouteType) {
		routes[r.(map[string]any)["name"].(string)] = r
	}
	endpoints := map[string]any{}
	for _, e := range toMaps(resourcev3.EndpointType) {
		endpoints[e.(map[string]any)["clusterName"].(string)] = e
	}
	clusters := toMaps(resourcev3.ClusterType)
	for _, c := range clusters {
		c := c.(map[string]any)
		if c["type"] == "EDS" {
			c["type"] = "STATIC"
			c["loadAssignment"] = endpoints[c["name"].(string)]
			delete(c, "edsClusterConfig")
		}
	}
	clusters = append(clusters, map[string]any{
		"name": envoy.ControlPlaneCluster, "type": "STATIC",
		"typedExtensionProtocolOptions": map[string]any{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": map[string]any{
			"@type":              "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
			"explicitHttpConfig": map[string]any{"http2ProtocolOptions": map[string]any{}},
		}},
		"loadAssignment": map[string]any{"clusterName": envoy.ControlPlaneCluster, "endpoints": []any{map[string]any{
			"lbEndpoints": []any{map[string]any{"endpoint": map[string]any{"address": map[string]any{
				"socketAddress": map[string]any{"address": "127.0.0.1", "portValue": 18000},
			}}}},
		}}},
	})
	listeners := toMaps(resourcev3.ListenerType)
	for _, l := range listeners {
		for _, fc := range l.(map[string]any)["filterChains"].([]any) {
			hcm := fc.(map[string]any)["filters"].([]any)[0].(map[string]any)["typedConfig"].(map[string]any)
			rds := hcm["rds"].(map[string]any)
			hcm["routeConfig"] = routes[rds["routeConfigName"].(string)]
			delete(hcm, "rds")
		}
	}
	b, err := json.Marshal(map[string]any{
		"node": map[string]any{"id": "test", "cluster": "frontdoor"},
		"staticResources": map[string]any{
			"listeners": listeners,
			"clusters":  clusters,
			"secrets":   toMaps(resourcev3.SecretType),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// dropKey removes key from every object in v (here: sdsConfig, so an SDS
// reference names a static secret instead).
func dropKey(v any, key string) any {
	switch v := v.(type) {
	case map[string]any:
		delete(v, key)
		for k, e := range v {
			v[k] = dropKey(e, key)
		}
	case []any:
		for i := range v {
			v[i] = dropKey(v[i], key)
		}
	}
	return v
}

// TestMain removes the module frontdoorModule built, if any.
func TestMain(m *testing.M) {
	code := m.Run()
	if modulePath != "" {
		_ = os.RemoveAll(filepath.Dir(modulePath))
	}
	os.Exit(code)
}
