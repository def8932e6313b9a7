package deploy

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/kubefrontdoor/frontdoor/internal/testenv"
)

func readManifest(t *testing.T) *Manifest {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "manifests", "deploy", "frontdoor.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := ParseManifest(data)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func counter() func() (int, error) {
	next := 40000
	return func() (int, error) { next++; return next, nil }
}

// TestRenderPodAdjustsOnlyWhatTheHostForces renders today's manifest and
// checks each adjustment: no fixed port and no 0.0.0.0 is left anywhere a
// container binds or dials, the images are the built ones, the
// ServiceAccount volume is a hostPath at the same mount, and the rest
// (probes by port name, volumes, init container) is the manifest's own.
func TestRenderPodAdjustsOnlyWhatTheHostForces(t *testing.T) {
	m := readManifest(t)
	r, err := RenderPod(m, Images{Frontdoor: "localhost/frontdoor/frontdoor:v1", Envoy: "localhost/frontdoor/envoy:1.40.0"},
		Target{PodName: "p", APIServerHost: "127.0.0.1", APIServerPort: "6443", ServiceAccountDir: "/tmp/sa", FreePort: counter()})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Pod.Spec.HostNetwork {
		t.Error("not on the host network")
	}
	if len(r.Ports) == 0 {
		t.Fatal("no port remapped")
	}
	for _, c := range r.containers() {
		if !strings.HasPrefix(c.Image, "localhost/frontdoor/") {
			t.Errorf("container %s runs %s, not a built image", c.Name, c.Image)
		}
		for _, args := range commandLines(c) {
			joined := strings.Join(*args, " ")
			if strings.Contains(joined, "0.0.0.0") {
				t.Errorf("container %s still binds 0.0.0.0: %s", c.Name, joined)
			}
			for old := range r.Ports {
				if strings.Contains(joined, ":"+strconv.Itoa(old)) || strings.Contains(joined, "="+strconv.Itoa(old)) {
					t.Errorf("container %s still names port %d: %s", c.Name, old, joined)
				}
			}
		}
		for _, p := range c.Ports {
			if p.ContainerPort < 40000 {
				t.Errorf("container %s port %s stays %d", c.Name, p.Name, p.ContainerPort)
			}
		}
	}
	envoy := r.Container("envoy")
	if envoy == nil || envoy.Image != "localhost/frontdoor/envoy:1.40.0" {
		t.Fatalf("envoy container: %+v", envoy)
	}
	fd := r.Container("frontdoor")
	if fd == nil || fd.Image != "localhost/frontdoor/frontdoor:v1" {
		t.Fatalf("frontdoor container: %+v", fd)
	}
	if p, err := probePort(fd, fd.ReadinessProbe.HTTPGet.Port.String()); err != nil || p != r.Port(18081) {
		t.Errorf("frontdoor's readiness probe resolves to %d (%v), want the remapped probe port %d", p, err, r.Port(18081))
	}
	if got := flagValue(fd.Args, "--listen-port"); got != strconv.Itoa(r.Port(6443)) {
		t.Errorf("--listen-port = %s, want %d", got, r.Port(6443))
	}
	if got := flagValue(r.Container("bootstrap").Args, "--node-id"); got != "p" {
		t.Errorf("bootstrap --node-id = %q, want the Pod's name (the kubelet expands $(POD_NAME))", got)
	}
	var sa, emptyDir bool
	for _, v := range r.Pod.Spec.Volumes {
		if v.Name == "serviceaccount" {
			sa = v.HostPath != nil && v.HostPath.Path == "/tmp/sa"
		}
		if v.Name == "p-envoy-config" {
			emptyDir = v.EmptyDir != nil
		}
	}
	if !emptyDir {
		t.Error("envoy-config is not the manifest's emptyDir named after the Pod")
	}
	for _, c := range r.containers() {
		for _, m := range c.VolumeMounts {
			if m.Name == "envoy-config" {
				t.Errorf("container %s still mounts envoy-config under its old name", c.Name)
			}
		}
	}
	if !sa {
		t.Error("the serviceaccount volume is not the hostPath /tmp/sa")
	}
	if len(r.Pod.Spec.InitContainers) != len(m.Deployment.Spec.Template.Spec.InitContainers) {
		t.Error("init containers changed")
	}
}

func TestRenderPodRefusesWhatItCannotRun(t *testing.T) {
	m := readManifest(t)
	m.Deployment.Spec.Template.Spec.Containers[0].Image = "docker.io/library/nginx:1"
	if _, err := RenderPod(m, Images{Frontdoor: "f", Envoy: "e"}, Target{FreePort: counter()}); err == nil || !strings.Contains(err.Error(), "neither a frontdoor nor an envoy image") {
		t.Errorf("an unknown image: err = %v", err)
	}
	m = readManifest(t)
	for i := range m.Deployment.Spec.Template.Spec.Containers {
		m.Deployment.Spec.Template.Spec.Containers[i].VolumeMounts = nil
	}
	if _, err := RenderPod(m, Images{Frontdoor: "f", Envoy: "e"}, Target{FreePort: counter()}); err == nil || !strings.Contains(err.Error(), "no container mounts") {
		t.Errorf("no ServiceAccount mount: err = %v", err)
	}
}

func TestExpandVarsAsTheKubeletDoes(t *testing.T) {
	vars := map[string]string{"POD_NAME": "p-1"}
	for in, want := range map[string]string{
		"--node-id=$(POD_NAME)": "--node-id=p-1",
		"$$(POD_NAME)":          "$(POD_NAME)",
		"$(UNSET)":              "$(UNSET)",
		"plain":                 "plain",
	} {
		if got := expandVars(in, vars); got != want {
			t.Errorf("expandVars(%q) = %q, want %q", in, got, want)
		}
	}
}
