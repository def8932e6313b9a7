// Package deploy runs Frontdoor as it is deployed: the images `make image`
// builds (images/build.sh), and the Pod of manifests/deploy/frontdoor.yaml
// started with `podman --runtime runc kube play` on the host network,
// pointed at a sandbox's apiservers. It is the test that catches a wrong
// probe, a missing volume, a bootstrap that does not render or an image
// that lacks a library.
//
// No kubelet runs here (a real one needs a CRI runtime this machine does not
// have); podman plays the Pod, and the test does the two kubelet jobs
// podman does not: it runs the probes the Pod spec declares, and on stop it
// runs the preStop hooks before sending SIGTERM.
package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/kubefrontdoor/frontdoor/internal/testenv"
)

// Podman runs podman as the deployment test needs it: the runc runtime, and
// a containers.conf without default ulimits (the default nofile limit is
// refused inside this machine's containers).
type Podman struct{ conf string }

// NewPodman writes its containers.conf into dir. A missing podman is an
// error, never a skip: `make test` installs it (tools/install.sh podman).
func NewPodman(dir string) (*Podman, error) {
	if _, err := exec.LookPath("podman"); err != nil {
		return nil, fmt.Errorf("podman not found (install it: bash tools/install.sh podman): %w", err)
	}
	conf := filepath.Join(dir, "containers.conf")
	if err := os.WriteFile(conf, []byte("[containers]\ndefault_ulimits = []\n"), 0o644); err != nil {
		return nil, err
	}
	return &Podman{conf: conf}, nil
}

// Run runs `podman --runtime runc ARGS...` and returns its stdout; a
// non-zero exit is an error carrying stderr.
func (p *Podman) Run(ctx context.Context, args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "podman", append([]string{"--runtime", "runc"}, args...)...)
	cmd.Env = append(os.Environ(), "CONTAINERS_CONF="+p.conf)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("podman %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// RunCombined is Run returning stdout and stderr together (a hook's log
// goes to stderr).
func (p *Podman) RunCombined(ctx context.Context, args ...string) (string, error) {
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "podman", append([]string{"--runtime", "runc"}, args...)...)
	cmd.Env = append(os.Environ(), "CONTAINERS_CONF="+p.conf)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("podman %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// BuiltImage is one image `make image` built: its reference in local
// storage, its version and its OCI archive.
type BuiltImage struct {
	Image   string `json:"image"`
	Version string `json:"version"`
	Archive string `json:"archive"` // relative to _images/
}

// BuiltImages is _images/images.json, written by images/build.sh.
type BuiltImages struct {
	Frontdoor BuiltImage `json:"frontdoor"`
	Envoy     BuiltImage `json:"envoy"`
	// Dir is the _images directory the archives are in.
	Dir string `json:"-"`
}

// ReadBuiltImages reads _images/images.json; an error says to run make image.
func ReadBuiltImages() (*BuiltImages, error) {
	root, err := testenv.RepoRoot()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(root, "_images")
	data, err := os.ReadFile(filepath.Join(dir, "images.json"))
	if err != nil {
		return nil, fmt.Errorf("no images built (run make image): %w", err)
	}
	b := &BuiltImages{Dir: dir}
	if err := json.Unmarshal(data, b); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, "images.json"), err)
	}
	return b, nil
}

// Load loads both archives into podman's storage (`podman load`), which
// also proves they load, and returns the references to run.
func (b *BuiltImages) Load(ctx context.Context, p *Podman) (Images, error) {
	for _, img := range []BuiltImage{b.Frontdoor, b.Envoy} {
		if _, err := p.Run(ctx, "load", "--quiet", "-i", filepath.Join(b.Dir, img.Archive)); err != nil {
			return Images{}, err
		}
		if _, err := p.Run(ctx, "image", "exists", img.Image); err != nil {
			return Images{}, fmt.Errorf("after loading %s, no image %s: %w", img.Archive, img.Image, err)
		}
	}
	return Images{Frontdoor: b.Frontdoor.Image, Envoy: b.Envoy.Image}, nil
}
