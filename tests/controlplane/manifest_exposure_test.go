package controlplane

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/kubefrontdoor/frontdoor/tests/sandbox"
)

// deployment reads the Deployment of manifests/deploy/frontdoor.yaml.
func deployment(t *testing.T) *appsv1.Deployment {
	t.Helper()
	root, err := sandbox.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "manifests", "deploy", "frontdoor.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range bytes.Split(data, []byte("\n---\n")) {
		var d appsv1.Deployment
		if err := yaml.Unmarshal(doc, &d); err == nil && d.Kind == "Deployment" {
			return &d
		}
	}
	t.Fatal("no Deployment in manifests/deploy/frontdoor.yaml")
	return nil
}

func container(t *testing.T, d *appsv1.Deployment, name string) corev1.Container {
	t.Helper()
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no container %q", name)
	return corev1.Container{}
}

// flagValue is the value of --name=value in args.
func flagValue(args []string, name string) (string, bool) {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// TestManifestExposure: the shipped Deployment keeps /metrics, /debug and
// pprof (--http-address) and the gRPC port on loopback, probes kubelet on a
// separate probe listener with readiness on /readyz (so draining takes the
// Pod out of the Service), and gives a ServiceAccount token to the
// frontdoor container only: Envoy, which faces clients, holds none.
// (TestManifestsApplyServerSide checks the same files are valid.)
func TestManifestExposure(t *testing.T) {
	d := deployment(t)
	fd := container(t, d, "frontdoor")
	for _, f := range []string{"http-address", "grpc-address"} {
		v, ok := flagValue(fd.Args, f)
		if !ok || !strings.HasPrefix(v, "127.0.0.1:") {
			t.Errorf("frontdoor --%s = %q, want a loopback address", f, v)
		}
	}
	probe, ok := flagValue(fd.Args, "probe-address")
	if !ok {
		t.Fatal("frontdoor has no --probe-address: kubelet would need --http-address on the Pod IP")
	}
	_, probePort, _ := strings.Cut(probe, ":")
	if fd.ReadinessProbe == nil || fd.ReadinessProbe.HTTPGet == nil || fd.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("frontdoor readiness probe %+v, want GET /readyz", fd.ReadinessProbe)
	}
	if fd.LivenessProbe == nil || fd.LivenessProbe.HTTPGet == nil || fd.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("frontdoor liveness probe %+v, want GET /healthz", fd.LivenessProbe)
	}
	for _, p := range []*corev1.Probe{fd.ReadinessProbe, fd.LivenessProbe} {
		if p == nil || p.HTTPGet == nil {
			continue
		}
		port := p.HTTPGet.Port.String()
		for _, cp := range fd.Ports {
			if cp.Name == port {
				port = strconv.Itoa(int(cp.ContainerPort))
			}
		}
		if port != probePort {
			t.Errorf("probe %s on port %q, want the probe listener's %s", p.HTTPGet.Path, port, probePort)
		}
	}

	spec := d.Spec.Template.Spec
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Error("the Pod automounts its ServiceAccount token into every container, Envoy included")
	}
	tokenVolumes := map[string]bool{}
	for _, v := range spec.Volumes {
		if v.Projected == nil {
			continue
		}
		for _, src := range v.Projected.Sources {
			if src.ServiceAccountToken != nil {
				tokenVolumes[v.Name] = true
			}
		}
	}
	mounts := func(c corev1.Container) bool {
		return slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return tokenVolumes[m.Name] })
	}
	if !mounts(fd) {
		t.Error("the frontdoor container mounts no ServiceAccount token: it cannot reach the apiserver")
	}
	for _, c := range append(slices.Clone(spec.InitContainers), container(t, d, "envoy")) {
		if mounts(c) {
			t.Errorf("container %s mounts a ServiceAccount token", c.Name)
		}
	}
}
