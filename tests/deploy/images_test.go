package deploy

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kubefrontdoor/frontdoor/internal/testenv"
	"github.com/kubefrontdoor/frontdoor/tests/sandbox"
)

// sharedLibrary is a file the Envoy image may carry besides its binaries:
// a library from ldd's list, at the path the loader looks for it.
var sharedLibrary = regexp.MustCompile(`^(lib|lib64|usr/lib|usr/lib64)/([a-z0-9_-]+/)?(ld-linux[a-z0-9_-]*|lib[a-z0-9_+-]+)\.so(\.[0-9]+)*$`)

// TestImageArchives checks the two archives `make image` wrote, as they
// would be pushed: each holds exactly its binaries (no shell, no package
// manager, no CA bundle, no key: nothing but the allowlist below), runs as
// uid 65532 with its entrypoint, and carries the OCI version, revision
// and source labels.
func TestImageArchives(t *testing.T) {
	if testing.Short() {
		t.Skip("reads the images make image built")
	}
	built, err := ReadBuiltImages()
	if err != nil {
		t.Fatal(err)
	}
	frontdoor, err := ReadOCIArchive(filepath.Join(built.Dir, built.Frontdoor.Archive))
	if err != nil {
		t.Fatal(err)
	}
	envoy, err := ReadOCIArchive(filepath.Join(built.Dir, built.Envoy.Archive))
	if err != nil {
		t.Fatal(err)
	}

	if want := []string{"usr/local/bin/frontdoor"}; !slices.Equal(frontdoor.Files, want) {
		t.Errorf("frontdoor image files = %v, want exactly %v", frontdoor.Files, want)
	}
	var libs []string
	for _, f := range envoy.Files {
		switch {
		case f == "usr/local/bin/envoy", f == "usr/local/bin/frontdoor", f == "usr/local/lib/frontdoor/libfrontdoor.so":
		case sharedLibrary.MatchString(f):
			libs = append(libs, f)
		default:
			t.Errorf("envoy image carries %s: not a binary of the image nor a shared library", f)
		}
	}
	for _, want := range []string{"usr/local/bin/envoy", "usr/local/bin/frontdoor", "usr/local/lib/frontdoor/libfrontdoor.so", "lib64/ld-linux-x86-64.so.2"} {
		if !slices.Contains(envoy.Files, want) {
			t.Errorf("envoy image lacks %s (files: %v)", want, envoy.Files)
		}
	}
	t.Logf("envoy image libraries: %v", libs)

	for _, c := range []struct {
		name       string
		img        *OCIImage
		version    string
		ref        string
		entrypoint string
	}{
		{"frontdoor", frontdoor, built.Frontdoor.Version, built.Frontdoor.Image, "/usr/local/bin/frontdoor"},
		{"envoy", envoy, built.Envoy.Version, built.Envoy.Image, "/usr/local/bin/envoy"},
	} {
		cfg := c.img.Config
		if cfg.User != "65532:65532" {
			t.Errorf("%s image USER = %q, want 65532:65532 (numeric, non-root)", c.name, cfg.User)
		}
		if !slices.Equal(cfg.Entrypoint, []string{c.entrypoint}) {
			t.Errorf("%s image ENTRYPOINT = %v, want [%s]", c.name, cfg.Entrypoint, c.entrypoint)
		}
		if got := cfg.Labels["org.opencontainers.image.version"]; got != c.version {
			t.Errorf("%s image label version = %q, want %q", c.name, got, c.version)
		}
		if got := cfg.Labels["org.opencontainers.image.revision"]; !regexp.MustCompile(`^[0-9a-f]{40}$`).MatchString(got) {
			t.Errorf("%s image label revision = %q, want a commit hash", c.name, got)
		}
		if got := cfg.Labels["org.opencontainers.image.source"]; !strings.HasPrefix(got, "https://") {
			t.Errorf("%s image label source = %q, want the repository URL", c.name, got)
		}
		if _, tag, _ := strings.Cut(c.ref, ":"); !strings.HasSuffix(c.img.RefName, tag) {
			t.Errorf("%s archive names ref %q, want one ending in %q", c.name, c.img.RefName, tag)
		}
	}
	if !slices.Contains(envoy.Config.Env, "ENVOY_DYNAMIC_MODULES_SEARCH_PATH=/usr/local/lib/frontdoor") {
		t.Errorf("envoy image env %v lacks ENVOY_DYNAMIC_MODULES_SEARCH_PATH=/usr/local/lib/frontdoor", envoy.Config.Env)
	}
}

// TestImagesRunAsNonRoot loads both archives into podman and runs them:
// `frontdoor version` prints the version the image is labelled with,
// `envoy --version` the pinned Envoy (so every library it needs is in the
// image), and a long-running frontdoor serve runs as uid 65532 without any
// --user, as the image says (podman top reads the host's view).
func TestImagesRunAsNonRoot(t *testing.T) {
	ctx := sandbox.SlowTest(t, "podman containers", 3*time.Minute)
	p, built, images := loadBuiltImages(t, ctx, t.TempDir())
	out, err := p.Run(ctx, "run", "--rm", "--network", "none", images.Frontdoor, "version")
	if err != nil {
		t.Fatal(err)
	}
	if want := "frontdoor " + built.Frontdoor.Version + "\n"; out != want {
		t.Errorf("frontdoor version printed %q, want %q", out, want)
	}
	out, err = p.Run(ctx, "run", "--rm", "--network", "none", images.Envoy, "--version")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "/"+built.Envoy.Version+"/") {
		t.Errorf("envoy --version printed %q, want version %s", out, built.Envoy.Version)
	}
	// The Envoy image's preStop tool runs in it too.
	out, err = p.Run(ctx, "run", "--rm", "--network", "none", "--entrypoint", "/usr/local/bin/frontdoor", images.Envoy, "version")
	if err != nil {
		t.Fatal(err)
	}
	if want := "frontdoor " + built.Frontdoor.Version + "\n"; out != want {
		t.Errorf("frontdoor version in the envoy image printed %q, want %q", out, want)
	}

	name := "frontdoor-image-nonroot-" + randSuffix()
	t.Cleanup(func() {
		// By the name this test gave it, whatever happened above.
		_, _ = p.Run(context.Background(), "rm", "--force", "--time", "0", name)
	})
	if _, err := p.Run(ctx, "run", "--detach", "--name", name, "--network", "none", "--read-only", images.Frontdoor,
		"serve", "--config-dir", "/usr/local/bin"); err != nil {
		t.Fatal(err)
	}
	var users string
	deadline := time.Now().Add(30 * time.Second)
	for {
		users, err = p.Run(ctx, "top", name, "user", "huser", "comm")
		if err == nil && strings.Contains(users, "frontdoor") {
			break
		}
		if time.Now().After(deadline) {
			logs, _ := p.Run(ctx, "logs", name)
			t.Fatalf("frontdoor serve is not running in %s: %v\n%s\nlogs:\n%s", name, err, users, logs)
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Logf("podman top:\n%s", users)
	for _, line := range strings.Split(strings.TrimSpace(users), "\n")[1:] {
		if f := strings.Fields(line); len(f) < 2 || f[0] != "65532" || f[1] != "65532" {
			t.Errorf("a process of the frontdoor image runs as %q, want uid 65532 in and outside the container", line)
		}
	}
}

// moduleBootstrap is a minimal Envoy config whose one listener runs the
// in-process module, found by name through the image's
// ENVOY_DYNAMIC_MODULES_SEARCH_PATH (lib<name>.so), with no frontdoor serve
// to feed it: the module then answers every request 503 itself.
const moduleBootstrap = `admin:
  address: {socket_address: {address: 127.0.0.1, port_value: %[1]d}}
static_resources:
  listeners:
  - name: module
    address: {socket_address: {address: 127.0.0.1, port_value: %[2]d}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: module
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {prefix: /}
                direct_response: {status: 200, body: {inline_string: "not filtered"}}
          http_filters:
          - name: frontdoor.inprocess
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter
              dynamic_module_config: {name: frontdoor, do_not_close: true}
              filter_name: request_service
              filter_config:
                "@type": type.googleapis.com/google.protobuf.StringValue
                value: '{"cluster":"image-test","policyAddress":"127.0.0.1:%[3]d","metricsAddress":"127.0.0.1:%[4]d"}'
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
`

// TestEnvoyImageRunsTheModule runs the Envoy image with a listener that
// uses the in-process module: Envoy finds libfrontdoor.so on the image's
// search path and loads it with the image's libraries, and the module
// decides the request (503 until a policy table arrives, never the
// route's unfiltered 200) and serves its own metrics.
func TestEnvoyImageRunsTheModule(t *testing.T) {
	ctx := sandbox.SlowTest(t, "the Envoy image under podman", 3*time.Minute)
	dir := t.TempDir()
	p, _, images := loadBuiltImages(t, ctx, dir)
	var ports [4]int
	for i := range ports {
		var err error
		if ports[i], err = testenv.FreePort(); err != nil {
			t.Fatal(err)
		}
	}
	cfg := filepath.Join(dir, "envoy.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, moduleBootstrap, ports[0], ports[1], ports[2], ports[3]), 0o644); err != nil {
		t.Fatal(err)
	}
	name := "frontdoor-image-module-" + randSuffix()
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := p.RunCombined(context.Background(), "logs", "--tail", "30", name)
			t.Logf("envoy log:\n%s", logs)
		}
		_, _ = p.Run(context.Background(), "rm", "--force", "--time", "0", name)
	})
	if _, err := p.Run(ctx, "run", "--detach", "--name", name, "--network", "host", "--read-only",
		"--volume", cfg+":/etc/envoy/envoy.yaml:ro", images.Envoy,
		"-c", "/etc/envoy/envoy.yaml", "--use-dynamic-base-id", "--log-level", "warn"); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 5 * time.Second}
	get := func(url string) (int, string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return 0, "", err
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}
	deadline := time.Now().Add(60 * time.Second)
	var (
		code int
		body string
		err  error
	)
	for {
		code, body, err = get(fmt.Sprintf("http://127.0.0.1:%d/api", ports[1]))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the module's listener never answered: %v", err)
		}
		time.Sleep(300 * time.Millisecond)
	}
	if code != http.StatusServiceUnavailable {
		t.Errorf("a request through the module with no policy table: %d %q, want 503 from the module", code, body)
	}
	code, body, err = get(fmt.Sprintf("http://127.0.0.1:%d/metrics", ports[3]))
	if err != nil || code != http.StatusOK || !strings.Contains(body, "frontdoor_module_go_") {
		t.Errorf("the module's metrics: %d, %v, want 200 with frontdoor_module_go_* series:\n%.400s", code, err, body)
	}
}

// loadBuiltImages loads what make image built (_images/images.json, also
// returned) into a podman whose state lives under dir.
func loadBuiltImages(t *testing.T, ctx context.Context, dir string) (*Podman, *BuiltImages, Images) {
	t.Helper()
	built, err := ReadBuiltImages()
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPodman(dir)
	if err != nil {
		t.Fatal(err)
	}
	images, err := built.Load(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	return p, built, images
}
