package chart

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func container(t *testing.T, d *appsv1.Deployment, name string) *corev1.Container {
	t.Helper()
	for i, c := range d.Spec.Template.Spec.Containers {
		if c.Name == name {
			return &d.Spec.Template.Spec.Containers[i]
		}
	}
	t.Fatalf("no container %q", name)
	return nil
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

// tokenMounters names the containers that mount a projected ServiceAccount
// token.
func tokenMounters(d *appsv1.Deployment) []string {
	spec := d.Spec.Template.Spec
	vols := map[string]bool{}
	for _, v := range spec.Volumes {
		if v.Projected == nil {
			continue
		}
		for _, s := range v.Projected.Sources {
			if s.ServiceAccountToken != nil {
				vols[v.Name] = true
			}
		}
	}
	var names []string
	for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
		if slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return vols[m.Name] }) {
			names = append(names, c.Name)
		}
	}
	return names
}

// hardened: what every value set must keep (README "Trust boundaries",
// TestManifestExposure for the raw manifests): gRPC and HTTP on loopback,
// probes on the probe listener, no automounted token, none for Envoy or the
// bootstrap, Envoy draining through frontdoor drain before it stops.
func hardened(t *testing.T, d *appsv1.Deployment) {
	t.Helper()
	fd := container(t, d, "frontdoor")
	for _, f := range []string{"http-address", "grpc-address"} {
		if v, _ := flagValue(fd.Args, f); !strings.HasPrefix(v, "127.0.0.1:") {
			t.Errorf("frontdoor --%s = %q, want loopback", f, v)
		}
	}
	if v, _ := flagValue(fd.Args, "probe-address"); v != "0.0.0.0:18081" {
		t.Errorf("frontdoor --probe-address = %q, want 0.0.0.0:18081", v)
	}
	if p := fd.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/readyz" || p.HTTPGet.Port.String() != "probes" {
		t.Errorf("readiness probe %+v, want GET /readyz on port probes", p)
	}
	if p := fd.LivenessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/healthz" || p.HTTPGet.Port.String() != "probes" {
		t.Errorf("liveness probe %+v, want GET /healthz on port probes", p)
	}
	spec := d.Spec.Template.Spec
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Error("the Pod automounts its ServiceAccount token into every container")
	}
	for _, n := range tokenMounters(d) {
		if n != "frontdoor" && n != "metrics-proxy" {
			t.Errorf("container %s mounts a ServiceAccount token", n)
		}
	}
	if len(spec.InitContainers) != 1 || spec.InitContainers[0].Args[0] != "bootstrap" {
		t.Fatalf("init containers %+v, want one running frontdoor bootstrap", spec.InitContainers)
	}
	if v, _ := flagValue(spec.InitContainers[0].Args, "xds-address"); v != "127.0.0.1:18000" {
		t.Errorf("bootstrap --xds-address = %q, want frontdoor's loopback gRPC address", v)
	}
	envoy := container(t, d, "envoy")
	if envoy.Lifecycle == nil || envoy.Lifecycle.PreStop == nil || envoy.Lifecycle.PreStop.Exec == nil {
		t.Fatal("Envoy has no preStop exec hook: a terminated Pod would cut its connections")
	}
	cmd := envoy.Lifecycle.PreStop.Exec.Command
	if len(cmd) < 2 || cmd[0] != "/usr/local/bin/frontdoor" || cmd[1] != "drain" {
		t.Errorf("Envoy preStop %q, want /usr/local/bin/frontdoor drain", cmd)
	}
	if v, _ := flagValue(cmd, "admin-address"); v != "127.0.0.1:19000" {
		t.Errorf("frontdoor drain --admin-address = %q, want Envoy's admin 127.0.0.1:19000", v)
	}
	if spec.TerminationGracePeriodSeconds == nil || *spec.TerminationGracePeriodSeconds <= 25 {
		t.Errorf("terminationGracePeriodSeconds %v, want above the drain timeout (25s)", spec.TerminationGracePeriodSeconds)
	}
}

func hasArg(args []string, a string) bool { return slices.Contains(args, a) }

// TestChartValueSets renders each value set of ci/ (and two --set
// variants) and checks what it asked for, with the Pod hardened in all.
func TestChartValueSets(t *testing.T) {
	ci := func(name string) []string { return []string{"-f", filepath.Join(chartDir(t), "ci", name)} }
	dashboard, err := os.ReadFile(filepath.Join(repoRoot(t), "manifests", "dashboards", "frontdoor.json"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		flags []string
		check func(t *testing.T, o objects, d *appsv1.Deployment)
	}{{
		name:  "defaults: in-cluster Kubernetes mode",
		flags: ci("default-values.yaml"),
		check: func(t *testing.T, o objects, d *appsv1.Deployment) {
			fd := container(t, d, "frontdoor")
			if got := tokenMounters(d); !slices.Equal(got, []string{"frontdoor"}) {
				t.Errorf("token mounted by %v, want frontdoor only", got)
			}
			if _, ok := flagValue(fd.Args, "config-dir"); ok {
				t.Error("Kubernetes mode with --config-dir")
			}
			if _, ok := flagValue(fd.Args, "kubeconfig"); ok {
				t.Error("in-cluster mode with --kubeconfig")
			}
			if _, ok := flagValue(fd.Args, "max-connection-age"); ok {
				t.Error("--max-connection-age by default (rebalancing is off unless asked for)")
			}
			if slices.Contains(fd.Args, "--drain-buckets") || slices.ContainsFunc(container(t, d, "envoy").Lifecycle.PreStop.Exec.Command,
				func(a string) bool { return strings.HasPrefix(a, "--window") }) {
				t.Error("a paced drain by default")
			}
			if v, _ := flagValue(fd.Args, "gateway-namespace"); v != releaseNamespace {
				t.Errorf("--gateway-namespace %q, want the release namespace", v)
			}
			for _, kn := range [][2]string{{"ClusterRole", "frontdoor-control-plane"}, {"ClusterRoleBinding", "frontdoor-control-plane"},
				{"Role", "frontdoor-control-plane-secrets"}, {"RoleBinding", "frontdoor-control-plane-secrets"},
				{"ServiceAccount", "frontdoor"}, {"Service", "frontdoor"}, {"PodDisruptionBudget", "frontdoor"}} {
				if o.find(kn[0], kn[1]) == nil {
					t.Errorf("no %s %s", kn[0], kn[1])
				}
			}
			if r := o.find("Role", "frontdoor-control-plane-secrets"); r != nil && r.GetNamespace() != releaseNamespace {
				t.Errorf("Secrets Role in %q, want %q", r.GetNamespace(), releaseNamespace)
			}
			wantString(t, o.find("Service", "frontdoor"), "LoadBalancer", "spec", "type")
			if pdb := o.find("PodDisruptionBudget", "frontdoor"); pdb != nil {
				if v := number(pdb, "spec", "minAvailable"); v != "1" {
					t.Errorf("PDB minAvailable %s, want 1", v)
				}
			}
			for _, k := range []string{"ServiceMonitor", "ConfigMap", "Namespace"} {
				if o.kinds()[k] > 0 {
					t.Errorf("a %s by default", k)
				}
			}
			images(t, d, "ghcr.io/kubefrontdoor/frontdoor/frontdoor:"+appVersion(t), "ghcr.io/kubefrontdoor/frontdoor/envoy:1.40.0")
			spec := d.Spec.Template.Spec
			if a := spec.Affinity; a == nil || a.PodAntiAffinity == nil || len(a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution) != 1 {
				t.Errorf("affinity %+v, want a preferred pod anti-affinity", a)
			}
			if len(spec.TopologySpreadConstraints) != 1 || spec.TopologySpreadConstraints[0].LabelSelector == nil ||
				spec.TopologySpreadConstraints[0].LabelSelector.MatchLabels["app.kubernetes.io/instance"] != "frontdoor" {
				t.Errorf("topology spread %+v, want one over zones selecting this release's Pods", spec.TopologySpreadConstraints)
			}
			if env := container(t, d, "envoy").Env; len(env) != 0 {
				t.Errorf("Envoy env %v without inProcess", env)
			}
		},
	}, {
		name:  "file mode from a Secret",
		flags: ci("files-values.yaml"),
		check: func(t *testing.T, o objects, d *appsv1.Deployment) {
			fd := container(t, d, "frontdoor")
			if v, _ := flagValue(fd.Args, "config-dir"); v != "/etc/frontdoor/config" {
				t.Errorf("--config-dir %q", v)
			}
			if !slices.ContainsFunc(fd.VolumeMounts, func(m corev1.VolumeMount) bool { return m.Name == "config" && m.MountPath == "/etc/frontdoor/config" }) {
				t.Errorf("frontdoor mounts %+v, want the config Secret at /etc/frontdoor/config", fd.VolumeMounts)
			}
			if !slices.ContainsFunc(d.Spec.Template.Spec.Volumes, func(v corev1.Volume) bool { return v.Secret != nil && v.Secret.SecretName == "frontdoor-config" }) {
				t.Error("no volume of Secret frontdoor-config")
			}
			if got := tokenMounters(d); len(got) != 0 {
				t.Errorf("file mode mounts a token into %v", got)
			}
			for _, k := range []string{"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"} {
				if o.kinds()[k] > 0 {
					t.Errorf("file mode renders a %s", k)
				}
			}
			wantString(t, o.find("Service", "frontdoor"), "ClusterIP", "spec", "type")
		},
	}, {
		name:  "a remote control cluster through a kubeconfig Secret",
		flags: ci("remote-values.yaml"),
		check: func(t *testing.T, o objects, d *appsv1.Deployment) {
			fd := container(t, d, "frontdoor")
			if v, _ := flagValue(fd.Args, "kubeconfig"); v != "/etc/frontdoor/kubeconfig/kubeconfig" {
				t.Errorf("--kubeconfig %q", v)
			}
			if v, _ := flagValue(fd.Args, "gateway-namespace"); v != "frontdoor-secrets" {
				t.Errorf("--gateway-namespace %q, want frontdoor-secrets", v)
			}
			if !slices.ContainsFunc(d.Spec.Template.Spec.Volumes, func(v corev1.Volume) bool { return v.Secret != nil && v.Secret.SecretName == "control-cluster" }) {
				t.Error("no volume of Secret control-cluster")
			}
			if got := tokenMounters(d); len(got) != 0 {
				t.Errorf("a remote control cluster, yet a token of this one in %v", got)
			}
			if o.kinds()["ClusterRole"] > 0 || o.kinds()["Role"] > 0 {
				t.Error("RBAC rendered in this cluster for a remote control cluster")
			}
			svc := o.find("Service", "frontdoor")
			wantString(t, svc, "NodePort", "spec", "type")
			wantString(t, svc, "Local", "spec", "externalTrafficPolicy")
			ports, _, _ := unstructured.NestedSlice(svc.Object, "spec", "ports")
			if len(ports) != 1 || fmt.Sprint(ports[0].(map[string]any)["nodePort"]) != "30443" {
				t.Errorf("Service ports %v, want nodePort 30443", ports)
			}
		},
	}, {
		name:  "everything optional on",
		flags: ci("full-values.yaml"),
		check: func(t *testing.T, o objects, d *appsv1.Deployment) {
			images(t, d, "localhost/frontdoor/frontdoor:dev", "localhost/frontdoor/envoy:1.40.0")
			fd, envoy := container(t, d, "frontdoor"), container(t, d, "envoy")
			if v, _ := flagValue(fd.Args, "inprocess-module"); v != "/usr/local/lib/frontdoor/libfrontdoor.so" {
				t.Errorf("--inprocess-module %q", v)
			}
			if v, _ := flagValue(fd.Args, "max-connection-age"); v != "30m" {
				t.Errorf("--max-connection-age %q, want 30m", v)
			}
			if v, _ := flagValue(fd.Args, "max-connection-age-jitter"); v != "10" {
				t.Errorf("--max-connection-age-jitter %q, want 10", v)
			}
			if !slices.Contains(fd.Args, "--drain-buckets") {
				t.Errorf("drain.window without serve --drain-buckets: %v", fd.Args)
			}
			preStop := envoy.Lifecycle.PreStop.Exec.Command
			if v, _ := flagValue(preStop, "window"); v != "10s" {
				t.Errorf("preStop %v: --window %q, want 10s", preStop, v)
			}
			if v, _ := flagValue(preStop, "control-plane-url"); v != "http://127.0.0.1:18080" {
				t.Errorf("preStop %v: --control-plane-url %q, want serve's --http-address", preStop, v)
			}
			if v, _ := flagValue(fd.Args, "inprocess-metrics-address"); v != "127.0.0.1:18082" {
				t.Errorf("--inprocess-metrics-address %q", v)
			}
			if v, _ := flagValue(fd.Args, "extra-listen-ports"); v != "8443" {
				t.Errorf("--extra-listen-ports %q, want 8443", v)
			}
			if v, _ := flagValue(fd.Args, "proxy-protocol-ports"); v != "8443" {
				t.Errorf("--proxy-protocol-ports %q, want 8443", v)
			}
			if !slices.ContainsFunc(envoy.Ports, func(p corev1.ContainerPort) bool { return p.Name == "lb" && p.ContainerPort == 8443 }) {
				t.Errorf("Envoy ports %v, want lb 8443", envoy.Ports)
			}
			if svc := o.find("Service", "frontdoor"); svc == nil {
				t.Error("no Service")
			} else if ports, _, _ := unstructured.NestedSlice(svc.Object, "spec", "ports"); len(ports) != 2 ||
				fmt.Sprint(ports[1]) != "map[name:lb port:9443 targetPort:lb]" {
				t.Errorf("Service ports %v, want https and lb 9443 -> lb", ports)
			}
			if !slices.Contains(envoy.Env, corev1.EnvVar{Name: "ENVOY_DYNAMIC_MODULES_SEARCH_PATH", Value: "/usr/local/lib/frontdoor"}) {
				t.Errorf("Envoy env %v, want ENVOY_DYNAMIC_MODULES_SEARCH_PATH=/usr/local/lib/frontdoor", envoy.Env)
			}
			if !hasArg(envoy.Args, "--concurrency") {
				t.Errorf("Envoy args %q without --concurrency", envoy.Args)
			}
			if v, _ := flagValue(d.Spec.Template.Spec.InitContainers[0].Args, "max-heap-bytes"); v != "1932735283" {
				t.Errorf("bootstrap --max-heap-bytes %q", v)
			}
			proxy := container(t, d, "metrics-proxy")
			if v, _ := flagValue(proxy.Args, "upstream"); v != "http://127.0.0.1:18080/" {
				t.Errorf("metrics proxy --upstream %q, want frontdoor's loopback HTTP", v)
			}
			if v, _ := flagValue(proxy.Args, "allow-paths"); v != "/metrics" {
				t.Errorf("metrics proxy --allow-paths %q, want /metrics only (not /debug/config)", v)
			}
			if got := tokenMounters(d); !slices.Equal(got, []string{"frontdoor", "metrics-proxy"}) {
				t.Errorf("token mounted by %v, want frontdoor and metrics-proxy", got)
			}
			if sm := o.find("ServiceMonitor", "frontdoor"); sm == nil {
				t.Error("no ServiceMonitor")
			} else if l := sm.GetLabels()["release"]; l != "prometheus" {
				t.Errorf("ServiceMonitor label release=%q", l)
			}
			for _, kn := range [][2]string{{"Service", "frontdoor-metrics"}, {"ClusterRole", "frontdoor-metrics-reader"}, {"ClusterRoleBinding", "frontdoor-metrics-auth"}} {
				if o.find(kn[0], kn[1]) == nil {
					t.Errorf("no %s %s", kn[0], kn[1])
				}
			}
			if cm := o.find("ConfigMap", "frontdoor-dashboard"); cm == nil {
				t.Error("no dashboard ConfigMap")
			} else if got, _, _ := unstructured.NestedString(cm.Object, "data", "frontdoor.json"); got != strings.TrimRight(string(dashboard), "\n") {
				t.Errorf("the dashboard ConfigMap is not manifests/dashboards/frontdoor.json (%d bytes, want %d)", len(got), len(dashboard))
			}
			nsOf := map[string]bool{}
			for _, u := range o {
				if u.GetKind() == "Role" {
					nsOf[u.GetNamespace()] = true
				}
			}
			if !nsOf[releaseNamespace] || !nsOf["default"] || len(nsOf) != 2 {
				t.Errorf("Secrets Roles in %v, want %s and default (secretNamespaces)", nsOf, releaseNamespace)
			}
			if v, _ := flagValue(fd.Args, "secret-namespaces"); v != "default" {
				t.Errorf("--secret-namespaces %q", v)
			}
			if a := d.Spec.Template.Spec.Affinity; a == nil || a.PodAntiAffinity == nil || len(a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution) != 1 {
				t.Errorf("affinity %+v, want a required pod anti-affinity", a)
			}
			pdb := o.find("PodDisruptionBudget", "frontdoor")
			if _, has, _ := unstructured.NestedFieldNoCopy(pdb.Object, "spec", "minAvailable"); has {
				t.Error("PDB has minAvailable although it was unset")
			}
			if v := number(pdb, "spec", "maxUnavailable"); v != "1" {
				t.Errorf("PDB maxUnavailable %s, want 1", v)
			}
		},
	}, {
		name:  "registry localhost: the names make image builds",
		flags: []string{"--set", "image.registry=localhost"},
		check: func(t *testing.T, _ objects, d *appsv1.Deployment) {
			images(t, d, "localhost/frontdoor/frontdoor:"+appVersion(t), "localhost/frontdoor/envoy:1.40.0")
		},
	}, {
		name:  "the Namespace object of the raw manifests",
		flags: []string{"--set", "namespace.create=true"},
		check: func(t *testing.T, o objects, _ *appsv1.Deployment) {
			if o.find("Namespace", releaseNamespace) == nil {
				t.Error("no Namespace " + releaseNamespace)
			}
		},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := template(t, c.flags...)
			if err != nil {
				t.Fatal(err)
			}
			o := parse(t, out)
			d := o.deployment(t)
			hardened(t, d)
			c.check(t, o, d)
		})
	}
}

// TestChartRefusesValues: values that cannot do what they say, and values
// the chart does not have (values.schema.json), fail the rendering with a
// message naming the value, rather than install something else.
func TestChartRefusesValues(t *testing.T) {
	for _, c := range []struct {
		set  []string
		want string
	}{
		{[]string{"globalRateLimit.enabled=true"}, "the chart does not deploy the ratelimit service and Redis yet"},
		{[]string{"config.mode=files"}, "config.files.secretName"},
		{[]string{"config.mode=etcd"}, "at '/config/mode': value must be one of 'kubernetes', 'files'"},
		{[]string{"service.type=ExternalName"}, "at '/service/type': value must be one of"},
		{[]string{"metrics.serviceMonitor.enabled=true"}, "needs metrics.proxy.enabled"},
		{[]string{"config.kubernetes.secretNamespaces={*}"}, "needs a ClusterRole"},
		{[]string{"inProcess.enabled=true", "inProcess.modulePath=libfrontdoor.so"}, "must be absolute"},
		{[]string{"podAntiAffinity=always"}, "at '/podAntiAffinity': value must be one of"},
		// values.schema.json: a misspelt or mistyped value is refused, not
		// ignored.
		{[]string{"servce.type=NodePort"}, "additional properties 'servce' not allowed"},
		{[]string{"config.kubernetes.kubeconfig=x"}, "additional properties 'kubeconfig' not allowed"},
		{[]string{"replicaCount=two"}, "at '/replicaCount': got string, want integer"},
		{[]string{"drain.timeout=25"}, "at '/drain/timeout'"},
		{[]string{"frontdoor.maxConnectionAge=30 minutes"}, "at '/frontdoor/maxConnectionAge'"},
		{[]string{"frontdoor.maxConnectionAgeJitter=150"}, "at '/frontdoor/maxConnectionAgeJitter'"},
		{[]string{"drain.window=10"}, "at '/drain/window'"},
	} {
		var flags []string
		for _, s := range c.set {
			flags = append(flags, "--set", s)
		}
		out, err := template(t, flags...)
		if err == nil {
			t.Errorf("--set %v rendered:\n%.300s", c.set, out)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("--set %v: %v; want a message with %q", c.set, err, c.want)
		}
	}
}

func images(t *testing.T, d *appsv1.Deployment, frontdoor, envoy string) {
	t.Helper()
	spec := d.Spec.Template.Spec
	for _, c := range []corev1.Container{spec.InitContainers[0], *container(t, d, "frontdoor")} {
		if c.Image != frontdoor {
			t.Errorf("container %s image %q, want %q", c.Name, c.Image, frontdoor)
		}
	}
	if got := container(t, d, "envoy").Image; got != envoy {
		t.Errorf("Envoy image %q, want %q", got, envoy)
	}
}

// number is the number (or string) at path, as text: the parsed YAML
// holds numbers as float64.
func number(u *unstructured.Unstructured, path ...string) string {
	v, ok, _ := unstructured.NestedFieldNoCopy(u.Object, path...)
	if !ok {
		return "(none)"
	}
	return fmt.Sprint(v)
}

func wantString(t *testing.T, u *unstructured.Unstructured, want string, path ...string) {
	t.Helper()
	if u == nil {
		t.Errorf("no object for %v", path)
		return
	}
	if got, _, _ := unstructured.NestedString(u.Object, path...); got != want {
		t.Errorf("%s %s: %v = %q, want %q", u.GetKind(), u.GetName(), path, got, want)
	}
}

// appVersion is Chart.yaml's appVersion, the frontdoor image's default tag.
func appVersion(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(chartDir(t), "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "appVersion: "); ok {
			return strings.Trim(v, `"`)
		}
	}
	t.Fatal("Chart.yaml has no appVersion")
	return ""
}
