package deploy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// ServiceAccountMountPath is where the kubelet mounts a Pod's
// ServiceAccount token, cluster CA and namespace, and where client-go's
// in-cluster config reads them.
const ServiceAccountMountPath = "/var/run/secrets/kubernetes.io/serviceaccount"

// Images are the references of the images `make image` built.
type Images struct{ Frontdoor, Envoy string }

// Target is what the rendered Pod runs against, in place of a cluster's
// kubelet and Service network.
type Target struct {
	// PodName names the Pod (and so podman's pod and its containers,
	// "<pod>-<container>"): unique per run, so runs on one host never meet.
	PodName string
	// APIServerHost and APIServerPort are what the kubelet would put in
	// KUBERNETES_SERVICE_HOST/PORT: the sandbox apiserver.
	APIServerHost, APIServerPort string
	// ServiceAccountDir holds token, ca.crt and namespace, as the kubelet's
	// projected ServiceAccount volume would.
	ServiceAccountDir string
	// FreePort returns a free loopback port.
	FreePort func() (int, error)
}

// Rendered is the Pod to play and what the adjustments changed.
type Rendered struct {
	Pod *corev1.Pod
	// Ports maps each port of the Pod spec to the free port that replaces it.
	Ports map[int]int
	// Adjustments names each change made to the manifest's Pod spec, in order.
	Adjustments []string
}

// Port is the port that replaced the Pod spec's port p (p if none did).
func (r *Rendered) Port(p int) int {
	if n, ok := r.Ports[p]; ok {
		return n
	}
	return p
}

// Container is the Pod's container (or init container) named name.
func (r *Rendered) Container(name string) *corev1.Container {
	for _, list := range [][]corev1.Container{r.Pod.Spec.InitContainers, r.Pod.Spec.Containers} {
		for i := range list {
			if list[i].Name == name {
				return &list[i]
			}
		}
	}
	return nil
}

// YAML is the Pod as `podman kube play` reads it: Pod without the
// containers' ports (see omitPortsStep), which stay in Pod for the probes'
// named ports.
func (r *Rendered) YAML() ([]byte, error) {
	pod := r.Pod.DeepCopy()
	for i := range pod.Spec.Containers {
		pod.Spec.Containers[i].Ports = nil
	}
	return yaml.Marshal(pod)
}

// omitPortsStep is done by YAML: on the host network a containerPort
// declares nothing, and podman 4.3 turns each into a port mapping, which it
// refuses there.
const omitPortsStep = "container ports: left out of the played YAML (podman 4.3 refuses port mappings on the host network, where they declare nothing); probes still resolve named ports from the spec"

// Manifest is the parsed content of manifests/deploy/frontdoor.yaml (or the
// chart's rendering of it): the Deployment whose Pod template is tested,
// and the ServiceAccounts beside it.
type Manifest struct {
	Deployment      *appsv1.Deployment
	ServiceAccounts []corev1.ServiceAccount
}

// ParseManifest reads a multi-document YAML stream and keeps its one
// Deployment and its ServiceAccounts.
func ParseManifest(data []byte) (*Manifest, error) {
	m := &Manifest{}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		var meta metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			return nil, err
		}
		switch meta.Kind {
		case "Deployment":
			if m.Deployment != nil {
				return nil, errors.New("more than one Deployment: which Pod is the gateway's?")
			}
			m.Deployment = &appsv1.Deployment{}
			if err := yaml.UnmarshalStrict(doc, m.Deployment); err != nil {
				return nil, fmt.Errorf("the Deployment: %w", err)
			}
		case "ServiceAccount":
			var sa corev1.ServiceAccount
			if err := yaml.UnmarshalStrict(doc, &sa); err != nil {
				return nil, fmt.Errorf("a ServiceAccount: %w", err)
			}
			m.ServiceAccounts = append(m.ServiceAccounts, sa)
		}
	}
	if m.Deployment == nil {
		return nil, errors.New("no Deployment in the manifest")
	}
	return m, nil
}

// RenderPod turns the Deployment's Pod template into the Pod `podman kube
// play` runs on this host. Each adjustment is one step below, named in
// Rendered.Adjustments, and changes only what a single host without a
// kubelet, a Service network or a registry forces; everything else
// (containers, args, probes, volumes, init container, hooks, security
// contexts) is the manifest's own.
func RenderPod(m *Manifest, images Images, target Target) (*Rendered, error) {
	tmpl := m.Deployment.Spec.Template.DeepCopy()
	r := &Rendered{Pod: &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{
			Name:        target.PodName,
			Namespace:   m.Deployment.Namespace,
			Labels:      tmpl.Labels,
			Annotations: tmpl.Annotations,
		},
		Spec: tmpl.Spec,
	}, Ports: map[int]int{}}
	steps := []struct {
		name string
		do   func(r *Rendered) error
	}{
		{"hostNetwork: podman's pod network cannot reach the sandbox apiservers on the host's loopback", useHostNetwork},
		{"images: the ones make image built, in place of the registry's", func(r *Rendered) error { return useImages(r, images) }},
		{"ports: each fixed port moved to a free one, since the host network is shared with other runs", func(r *Rendered) error { return remapPorts(r, target.FreePort) }},
		{"listen addresses: 0.0.0.0 bound to 127.0.0.1, not every interface of the host", bindLoopback},
		{"ServiceAccount volume: the projected token, CA and namespace (podman has no projected volumes) as a hostPath of the same three files", func(r *Rendered) error {
			return serviceAccountHostPath(r, target.ServiceAccountDir)
		}},
		{"KUBERNETES_SERVICE_HOST/PORT: what the kubelet sets from the kubernetes Service, pointed at the sandbox apiserver", func(r *Rendered) error {
			return inClusterEnv(r, target.APIServerHost, target.APIServerPort)
		}},
		{"env and $(VAR): fieldRef metadata.name/namespace resolved and $(VAR) in command and args expanded, as the kubelet does (podman 4.3 does neither)", expandEnv},
		{"Envoy --use-dynamic-base-id: its hot-restart sockets are abstract, per network namespace, and the host's is shared with every Envoy on it", func(r *Rendered) error {
			return dynamicBaseID(r, images.Envoy)
		}},
		{"init containers of podman's type always: podman 4.3 removes a 'once' init container right after it exits, and on a busy host that removal races the exit and fails the play", initAlways},
		{"emptyDir volumes renamed <pod>-<volume>: podman keeps them as host-wide named volumes", uniqueEmptyDirs},
	}
	for _, s := range steps {
		if err := s.do(r); err != nil {
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
		r.Adjustments = append(r.Adjustments, s.name)
	}
	r.Adjustments = append(r.Adjustments, omitPortsStep)
	return r, nil
}

func useHostNetwork(r *Rendered) error {
	r.Pod.Spec.HostNetwork = true
	return nil
}

// useImages replaces each container's image by the built image of the same
// repository: .../frontdoor/envoy:TAG (or any .../envoy) becomes the Envoy
// image, .../frontdoor/frontdoor:TAG (or any .../frontdoor) the frontdoor
// image; any other image is an error (the test would not know what runs).
func useImages(r *Rendered, images Images) error {
	for _, c := range r.containers() {
		repo := c.Image
		if i := strings.LastIndex(repo, "@"); i >= 0 {
			repo = repo[:i]
		}
		if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
			repo = repo[:i]
		}
		switch path.Base(repo) {
		case "envoy":
			c.Image = images.Envoy
		case "frontdoor":
			c.Image = images.Frontdoor
		default:
			return fmt.Errorf("container %s runs %q, neither a frontdoor nor an envoy image", c.Name, c.Image)
		}
		// The image is in local storage; never look for it elsewhere.
		c.ImagePullPolicy = corev1.PullNever
	}
	return nil
}

// portInArg matches a port at the end of an argument after ':' or '='
// (--grpc-address=127.0.0.1:18000, http://127.0.0.1:19000,
// --listen-port=6443): the forms the manifest spells its ports in.
var portInArg = regexp.MustCompile(`[:=]([0-9]{2,5})$`)

// remapPorts moves every port the Pod binds or dials on its own network to
// a free one: container ports, and ports in args and hook commands, whether
// "--flag=HOST:PORT", "URL:PORT", "--flag=PORT" or "--*-port PORT". Probes
// that name a port by number follow; named ones follow their containerPort.
func remapPorts(r *Rendered, freePort func() (int, error)) error {
	ports := map[int]bool{}
	for _, c := range r.containers() {
		for _, p := range c.Ports {
			ports[int(p.ContainerPort)] = true
		}
		for _, args := range commandLines(c) {
			for i, a := range *args {
				if m := portInArg.FindStringSubmatch(a); m != nil {
					n, _ := strconv.Atoi(m[1])
					ports[n] = true
				}
				if i > 0 && strings.HasSuffix((*args)[i-1], "-port") {
					if n, err := strconv.Atoi(a); err == nil {
						ports[n] = true
					}
				}
			}
		}
	}
	for _, p := range slices.Sorted(maps.Keys(ports)) {
		n, err := freePort()
		if err != nil {
			return err
		}
		r.Ports[p] = n
	}
	for _, c := range r.containers() {
		for i := range c.Ports {
			c.Ports[i].ContainerPort = int32(r.Port(int(c.Ports[i].ContainerPort)))
			c.Ports[i].HostPort = 0
		}
		for _, args := range commandLines(c) {
			for i, a := range *args {
				if m := portInArg.FindStringSubmatchIndex(a); m != nil {
					n, _ := strconv.Atoi(a[m[2]:m[3]])
					(*args)[i] = a[:m[2]] + strconv.Itoa(r.Port(n))
				} else if i > 0 && strings.HasSuffix((*args)[i-1], "-port") {
					if n, err := strconv.Atoi(a); err == nil {
						(*args)[i] = strconv.Itoa(r.Port(n))
					}
				}
			}
		}
		for _, p := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe, c.StartupProbe} {
			if p == nil {
				continue
			}
			for _, port := range []*intstr.IntOrString{httpGetPort(p), tcpPort(p)} {
				if port != nil && port.Type == intstr.Int {
					*port = intstr.FromInt32(int32(r.Port(port.IntValue())))
				}
			}
		}
	}
	return nil
}

// bindLoopback replaces 0.0.0.0 in args by 127.0.0.1: in a Pod it is the
// Pod's own IP, on the host network every interface of a shared machine.
func bindLoopback(r *Rendered) error {
	for _, c := range r.containers() {
		for _, args := range commandLines(c) {
			for i, a := range *args {
				(*args)[i] = strings.ReplaceAll(a, "0.0.0.0", "127.0.0.1")
			}
		}
	}
	return nil
}

// serviceAccountHostPath gives the volume mounted at the ServiceAccount path
// (in the manifest: a projected token, the kube-root-ca.crt ConfigMap and
// the namespace) the same three files from dir. It is an error if no
// container mounts one: frontdoor could not reach its cluster.
func serviceAccountHostPath(r *Rendered, dir string) error {
	var name string
	for _, c := range r.containers() {
		for _, m := range c.VolumeMounts {
			if m.MountPath == ServiceAccountMountPath {
				name = m.Name
			}
		}
	}
	if name == "" {
		return errors.New("no container mounts " + ServiceAccountMountPath)
	}
	for i := range r.Pod.Spec.Volumes {
		if r.Pod.Spec.Volumes[i].Name == name {
			dirType := corev1.HostPathDirectory
			r.Pod.Spec.Volumes[i].VolumeSource = corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: dir, Type: &dirType}}
			return nil
		}
	}
	return fmt.Errorf("volume %s is mounted but not declared", name)
}

func inClusterEnv(r *Rendered, host, port string) error {
	for _, c := range r.containers() {
		c.Env = append(c.Env,
			corev1.EnvVar{Name: "KUBERNETES_SERVICE_HOST", Value: host},
			corev1.EnvVar{Name: "KUBERNETES_SERVICE_PORT", Value: port})
	}
	return nil
}

// expandEnv resolves each env var's downward API fieldRef (the Pod's name
// and namespace; any other field is an error) to its value, then expands
// $(VAR) in command and args from the container's env as the kubelet
// does; $$ escapes, and an unknown $(VAR) stays as written.
func expandEnv(r *Rendered) error {
	for _, c := range r.containers() {
		vars := map[string]string{}
		for i, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
				switch e.ValueFrom.FieldRef.FieldPath {
				case "metadata.name":
					c.Env[i] = corev1.EnvVar{Name: e.Name, Value: r.Pod.Name}
				case "metadata.namespace":
					c.Env[i] = corev1.EnvVar{Name: e.Name, Value: r.Pod.Namespace}
				default:
					return fmt.Errorf("container %s: env %s: fieldRef %s is not supported here", c.Name, e.Name, e.ValueFrom.FieldRef.FieldPath)
				}
			}
			if c.Env[i].ValueFrom == nil {
				vars[e.Name] = c.Env[i].Value
			}
		}
		for _, line := range []*[]string{&c.Command, &c.Args} {
			for i, a := range *line {
				(*line)[i] = expandVars(a, vars)
			}
		}
	}
	return nil
}

var varRef = regexp.MustCompile(`\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)`)

func expandVars(s string, vars map[string]string) string {
	return varRef.ReplaceAllStringFunc(s, func(m string) string {
		if m == "$$" {
			return "$"
		}
		if v, ok := vars[m[2:len(m)-1]]; ok {
			return v
		}
		return m
	})
}

// uniqueEmptyDirs renames each emptyDir volume (and its mounts) to
// <pod>-<volume>: podman creates an emptyDir as a named volume of the
// host, so two played Pods would otherwise share it.
func uniqueEmptyDirs(r *Rendered) error {
	renamed := map[string]string{}
	for i, v := range r.Pod.Spec.Volumes {
		if v.EmptyDir != nil {
			renamed[v.Name] = r.Pod.Name + "-" + v.Name
			r.Pod.Spec.Volumes[i].Name = renamed[v.Name]
		}
	}
	for _, c := range r.containers() {
		for i, m := range c.VolumeMounts {
			if n, ok := renamed[m.Name]; ok {
				c.VolumeMounts[i].Name = n
			}
		}
	}
	return nil
}

// dynamicBaseID adds --use-dynamic-base-id to the Envoy containers (unless
// they choose a base id): in a Pod, Envoy's default base id 0 is alone in
// its network namespace; on the host network the sandbox's Envoy, or any
// other on the host, may hold it.
func dynamicBaseID(r *Rendered, envoyImage string) error {
	for _, c := range r.containers() {
		if c.Image != envoyImage || slices.ContainsFunc(c.Args, func(a string) bool { return strings.Contains(a, "base-id") }) {
			continue
		}
		c.Args = append(c.Args, "--use-dynamic-base-id")
	}
	return nil
}

// initAlways sets podman's init container type to always (run on every
// start of the pod, kept after it exits) instead of once.
func initAlways(r *Rendered) error {
	if r.Pod.Annotations == nil {
		r.Pod.Annotations = map[string]string{}
	}
	r.Pod.Annotations["io.podman.annotations.init.container.type"] = "always"
	return nil
}

// containers are the Pod's init containers and containers, to change in place.
func (r *Rendered) containers() []*corev1.Container {
	var out []*corev1.Container
	for i := range r.Pod.Spec.InitContainers {
		out = append(out, &r.Pod.Spec.InitContainers[i])
	}
	for i := range r.Pod.Spec.Containers {
		out = append(out, &r.Pod.Spec.Containers[i])
	}
	return out
}

// commandLines are a container's command, args and exec hook and probe
// commands: every place a port or address can be spelled.
func commandLines(c *corev1.Container) []*[]string {
	lines := []*[]string{&c.Command, &c.Args}
	if c.Lifecycle != nil {
		for _, h := range []*corev1.LifecycleHandler{c.Lifecycle.PreStop, c.Lifecycle.PostStart} {
			if h != nil && h.Exec != nil {
				lines = append(lines, &h.Exec.Command)
			}
		}
	}
	for _, p := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe, c.StartupProbe} {
		if p != nil && p.Exec != nil {
			lines = append(lines, &p.Exec.Command)
		}
	}
	return lines
}

func httpGetPort(p *corev1.Probe) *intstr.IntOrString {
	if p.HTTPGet == nil {
		return nil
	}
	return &p.HTTPGet.Port
}

func tcpPort(p *corev1.Probe) *intstr.IntOrString {
	if p.TCPSocket == nil {
		return nil
	}
	return &p.TCPSocket.Port
}
