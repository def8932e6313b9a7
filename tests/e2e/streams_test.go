package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/utils/ptr"

	"github.com/kubefrontdoor/frontdoor/tests/kubelet"
	"github.com/kubefrontdoor/frontdoor/tests/sandbox"
)

// The streaming tests run kubectl (and client-go's executors) → Envoy →
// kube-apiserver → the fake kubelet of tests/kubelet, every hop the real
// protocol: SPDY/3.1 or WebSocket from the client, SPDY from the apiserver
// to the kubelet.
const (
	streamNamespace = "e2e-streams"
	streamPod       = "shell"
	streamContainer = "main"
	streamNode      = "fake-node"
)

var (
	fakeKubeletOnce sync.Once
	fakeKubeletErr  error
)

// streamingPod starts the fake kubelet once per package, registers it as a
// Node at 127.0.0.1 and binds a Running pod to it.
func streamingPod(t *testing.T, ctx context.Context) {
	t.Helper()
	fakeKubeletOnce.Do(func() { fakeKubeletErr = startFakeKubelet(ctx) })
	if fakeKubeletErr != nil {
		t.Fatalf("fake kubelet: %v", fakeKubeletErr)
	}
}

func startFakeKubelet(ctx context.Context) error {
	certPEM, keyPEM, err := sb.CA.ServingCert(streamNode, []string{"localhost"}, []net.IP{net.ParseIP("127.0.0.1")})
	if err != nil {
		return err
	}
	k, err := kubelet.Start(certPEM, keyPEM)
	if err != nil {
		return err
	}
	// The kubelet lives as long as the test binary; the sandbox (and the
	// apiservers that call it) stop first in TestMain.
	cs, err := kubernetesClient(adminUser().direct())
	if err != nil {
		return err
	}
	node, err := cs.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: streamNode}}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	node.Status = corev1.NodeStatus{
		Addresses:       []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}},
		DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: int32(k.Port)}},
		Conditions:      []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: metav1.Now()}},
	}
	if _, err := cs.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("node status: %w", err)
	}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: streamNamespace}}, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("namespace: %w", err)
	}
	// No controller-manager runs, so nobody creates the default service
	// account the ServiceAccount admission plugin looks for.
	if _, err := cs.CoreV1().ServiceAccounts(streamNamespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("service account: %w", err)
	}
	pod, err := cs.CoreV1().Pods(streamNamespace).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: streamPod},
		Spec: corev1.PodSpec{
			NodeName:                     streamNode,
			AutomountServiceAccountToken: ptr.To(false),
			Containers:                   []corev1.Container{{Name: streamContainer, Image: "fake", Stdin: true, TTY: false}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("pod: %w", err)
	}
	pod.Status = corev1.PodStatus{
		Phase:  corev1.PodRunning,
		PodIP:  "127.0.0.1",
		HostIP: "127.0.0.1",
		ContainerStatuses: []corev1.ContainerStatus{{
			Name: streamContainer, Ready: true, Image: "fake", ImageID: "fake",
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}},
		}},
	}
	if _, err := cs.CoreV1().Pods(streamNamespace).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("pod status: %w", err)
	}
	return nil
}

// adminKubectl is bin/kubectl through the gateway as admin, with env added
// to this process's environment.
func adminKubectl(ctx context.Context, env []string, args ...string) *exec.Cmd {
	args = append([]string{"--kubeconfig", sb.AdminKubeconfig}, args...)
	cmd := exec.CommandContext(ctx, filepath.Join(sb.BinDir, "kubectl"), args...)
	cmd.Env = append(os.Environ(), env...)
	return cmd
}

// startKubectl starts adminKubectl for a command that keeps running
// (port-forward, logs -f, proxy) and returns it with its stdout to read;
// its stderr collects in the buffer returned.
func startKubectl(t *testing.T, ctx context.Context, env []string, args ...string) (*exec.Cmd, io.ReadCloser, *bytes.Buffer) {
	t.Helper()
	cmd := adminKubectl(ctx, env, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, stdout, &stderr
}

// kubectlStream runs kubectl through the gateway as admin with env added,
// stdin from in, and returns stdout, stderr and the exit code.
func kubectlStream(t *testing.T, ctx context.Context, env []string, in io.Reader, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := adminKubectl(ctx, env, args...)
	var o, e bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = in, &o, &e
	err := cmd.Run()
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		return o.String(), e.String(), ee.ExitCode()
	} else if err != nil {
		t.Fatalf("kubectl %s: %v", strings.Join(cmd.Args[1:], " "), err)
	}
	return o.String(), e.String(), 0
}

// The two protocols kubectl speaks for exec, attach and port-forward, as
// kubectl's own switches select them (both fall back to SPDY if a WebSocket
// upgrade fails, so the client-go tests below pin each protocol alone).
var kubectlProtocols = []struct {
	name string
	env  []string
	// verb is the verb of an exec or port-forward request in frontdoor's
	// request log: SPDY upgrades a POST (create), WebSocket a GET (get).
	verb string
}{
	{"SPDY", []string{"KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false", "KUBECTL_PORT_FORWARD_WEBSOCKETS=false"}, "create"},
	{"WebSocket", []string{"KUBECTL_REMOTE_COMMAND_WEBSOCKETS=true", "KUBECTL_PORT_FORWARD_WEBSOCKETS=true"}, "get"},
}

// checkProtocol returns a func that checks that, since checkProtocol was
// called, the request service decided at least want requests for
// subresource with verb and none with the other protocol's verb. kubectl
// falls back to SPDY when a WebSocket upgrade fails; the verbs show which
// protocol really ran. The access log carries the request service's verb in
// every mode; an upgraded request's line is written when its stream ends,
// so the check waits a little for it.
func checkProtocol(t *testing.T, subresource, verb string, want int) func() {
	t.Helper()
	other := map[string]string{"create": "get", "get": "create"}[verb]
	before, otherBefore := decisions(t, subresource, verb), decisions(t, subresource, other)
	return func() {
		t.Helper()
		var got, gotOther int
		deadline := time.Now().Add(10 * time.Second)
		for {
			got, gotOther = decisions(t, subresource, verb)-before, decisions(t, subresource, other)-otherBefore
			if got >= want || time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if got < want || gotOther != 0 {
			t.Errorf("the access log has %d %s requests with verb %q and %d with %q, want %d and 0", got, subresource, verb, gotOther, other, want)
		}
	}
}

// decisions counts the allowed requests for the pod subresource with verb
// in Envoy's access log.
func decisions(t *testing.T, subresource, verb string) int {
	t.Helper()
	b, err := os.ReadFile(sb.AccessLogPath)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		var l struct{ Subresource, Verb, Decision string }
		if json.Unmarshal(line, &l) == nil && l.Subresource == subresource && l.Verb == verb && l.Decision == "allowed" {
			n++
		}
	}
	return n
}

// kubectl exec through the gateway: stdout, stderr, interactive stdin and
// exit codes pass intact over both protocols.
func TestKubectlExec(t *testing.T) {
	ctx := setup(t, 2*time.Minute)
	streamingPod(t, ctx)
	before := upgradeRequests(t, ctx)
	defer func() {
		// Every exec above was an upgrade and took the HTTP/1.1 cluster.
		if after := upgradeRequests(t, ctx); after-before < 2*5 {
			t.Errorf("the upgrade cluster served %d requests during the test, want at least 10", after-before)
		}
	}()
	for _, p := range kubectlProtocols {
		t.Run(p.name, func(t *testing.T) {
			exec := func(in io.Reader, args ...string) (string, string, int) {
				return kubectlStream(t, ctx, p.env, in, append([]string{"exec", "-n", streamNamespace, streamPod, "-c", streamContainer}, args...)...)
			}
			defer checkProtocol(t, "exec", p.verb, 5)()
			if out, errOut, code := exec(nil, "--", "echo", "hello", "gateway"); out != "hello gateway\n" || code != 0 {
				t.Errorf("exec echo: stdout %q, exit %d, stderr %q; want \"hello gateway\\n\", 0", out, code, errOut)
			}
			if _, errOut, code := exec(nil, "--", "stderr", "to stderr"); !strings.Contains(errOut, "to stderr\n") || code != 0 {
				t.Errorf("exec stderr: stderr %q, exit %d", errOut, code)
			}
			if _, errOut, code := exec(nil, "--", "exit", "42"); code != 42 {
				t.Errorf("exec exit 42: exit code %d, want 42 (stderr %q)", code, errOut)
			}
			// Interactive stdin: 1 MiB in, its checksum out.
			data := randomBytes(t, 1<<20)
			want := fmt.Sprintf("%d %x\n", len(data), sha256.Sum256(data))
			if out, errOut, code := exec(bytes.NewReader(data), "-i", "--", "sha256"); out != want || code != 0 {
				t.Errorf("exec -i sha256: stdout %q, exit %d, stderr %q; want %q", out, code, errOut, want)
			}
			// Interactive stdin, line by line: what goes in comes out.
			pr, pw := io.Pipe()
			go func() {
				for i := range 5 {
					fmt.Fprintf(pw, "line %d\n", i)
					time.Sleep(50 * time.Millisecond)
				}
				pw.Close()
			}()
			if out, errOut, code := exec(pr, "-i", "--", "cat"); out != "line 0\nline 1\nline 2\nline 3\nline 4\n" || code != 0 {
				t.Errorf("exec -i cat: stdout %q, exit %d, stderr %q", out, code, errOut)
			}
		})
	}
}

// Each protocol on its own (no fallback), as client-go speaks it, with a
// terminal: resizes reach the container in order, and the exit code of the
// command comes back.
func TestExecProtocolsWithTerminalResize(t *testing.T) {
	ctx := setup(t, 2*time.Minute)
	streamingPod(t, ctx)
	cfg := adminUser().gateway()
	for name, newExec := range execExecutors(t) {
		t.Run(name, func(t *testing.T) {
			run := func(cmd ...string) (string, error) {
				ex, err := newExec(cfg, execURL(t, cfg, cmd, false, false))
				if err != nil {
					t.Fatal(err)
				}
				var out bytes.Buffer
				err = ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &out, Stderr: io.Discard})
				return out.String(), err
			}
			sizes := &sizeQueue{ch: make(chan *remotecommand.TerminalSize, 3)}
			sizes.ch <- &remotecommand.TerminalSize{Width: 80, Height: 24}
			sizes.ch <- &remotecommand.TerminalSize{Width: 120, Height: 40}
			sizes.ch <- &remotecommand.TerminalSize{Width: 200, Height: 50}
			// stdin stays open until the container has printed every size.
			pr, pw := io.Pipe()
			lines := &lineWatcher{want: 3, done: make(chan struct{})}
			go func() { <-lines.done; pw.Close() }()
			ex, err := newExec(cfg, execURL(t, cfg, []string{"resizes"}, true, true))
			if err != nil {
				t.Fatal(err)
			}
			err = ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: pr, Stdout: lines, Tty: true, TerminalSizeQueue: sizes})
			close(sizes.ch)
			if got := lines.String(); err != nil || got != "80x24\n120x40\n200x50\n" {
				t.Errorf("resizes: err %v, container saw %q; want 80x24, 120x40, 200x50 in order", err, got)
			}
			if _, err := run("exit", "7"); err == nil || !strings.Contains(err.Error(), "exit code 7") {
				t.Errorf("exit 7: err %v, want exit code 7", err)
			} else if ce, ok := err.(interface{ ExitStatus() int }); !ok || ce.ExitStatus() != 7 {
				t.Errorf("exit 7: err %T %v has no exit status 7", err, err)
			}
			if out, err := run("echo", "ok"); err != nil || out != "ok\n" {
				t.Errorf("echo: %q, %v", out, err)
			}
		})
	}
}

// kubectl attach: the client reads the container's output and its stdin
// reaches the container.
func TestKubectlAttach(t *testing.T) {
	ctx := setup(t, 2*time.Minute)
	streamingPod(t, ctx)
	for _, p := range kubectlProtocols {
		t.Run(p.name, func(t *testing.T) {
			defer checkProtocol(t, "attach", p.verb, 1)()
			out, errOut, code := kubectlStream(t, ctx, p.env, strings.NewReader("typed in\n"),
				"attach", "-i", "-n", streamNamespace, streamPod, "-c", streamContainer)
			if code != 0 || !strings.Contains(out, kubelet.AttachGreeting+"\n") || !strings.Contains(out, "typed in\n") {
				t.Errorf("attach: exit %d, stdout %q, stderr %q", code, out, errOut)
			}
		})
	}
}

// kubectl port-forward: 1 MiB each way over one forwarded connection,
// checksummed (the fake pod's port echoes).
func TestKubectlPortForward(t *testing.T) {
	ctx := setup(t, 2*time.Minute)
	streamingPod(t, ctx)
	for _, p := range kubectlProtocols {
		t.Run(p.name, func(t *testing.T) {
			defer checkProtocol(t, "portforward", p.verb, 1)()
			cctx, cancel := context.WithCancel(ctx)
			defer cancel()
			cmd, stdout, stderr := startKubectl(t, cctx, p.env, "port-forward", "-n", streamNamespace, "pod/"+streamPod, ":7000")
			defer func() { cancel(); _ = cmd.Wait() }()
			local := ""
			sc := bufio.NewScanner(stdout)
			re := regexp.MustCompile(`Forwarding from 127\.0\.0\.1:(\d+) -> 7000`)
			for sc.Scan() {
				if m := re.FindStringSubmatch(sc.Text()); m != nil {
					local = "127.0.0.1:" + m[1]
					break
				}
			}
			if local == "" {
				t.Fatalf("kubectl port-forward printed no local port; stderr: %s", stderr.String())
			}
			go func() { _, _ = io.Copy(io.Discard, stdout) }()

			conn, err := net.Dial("tcp", local)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(time.Minute))
			data := randomBytes(t, 1<<20)
			go func() { _, _ = conn.Write(data) }()
			got := make([]byte, len(data))
			if _, err := io.ReadFull(conn, got); err != nil {
				t.Fatalf("reading the echo: %v; stderr: %s", err, stderr.String())
			}
			if sha256.Sum256(got) != sha256.Sum256(data) {
				t.Fatalf("1 MiB through port-forward came back different")
			}
		})
	}
}

// kubectl logs -f streams: the first lines arrive while the container is
// still writing the later ones, and nothing is lost.
func TestKubectlLogsFollow(t *testing.T) {
	ctx := setup(t, time.Minute)
	streamingPod(t, ctx)
	cmd, stdout, stderr := startKubectl(t, ctx, nil, "logs", "-f", "-n", streamNamespace, streamPod, "-c", streamContainer)
	var lines []string
	var first, last time.Time
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if first.IsZero() {
			first = time.Now()
		}
		last = time.Now()
		lines = append(lines, sc.Text())
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("kubectl logs -f: %v; stderr: %s", err, stderr.String())
	}
	if len(lines) != kubelet.LogLines || lines[0] != streamContainer+" line 1" || lines[len(lines)-1] != fmt.Sprintf("%s line %d", streamContainer, kubelet.LogLines) {
		t.Fatalf("kubectl logs -f printed %q", lines)
	}
	// The kubelet spends (LogLines-1)*LogInterval writing; a buffering
	// proxy would deliver everything at once.
	if spread, min := last.Sub(first), time.Duration(kubelet.LogLines-3)*kubelet.LogInterval; spread < min {
		t.Errorf("log lines arrived within %v, want spread over at least %v (streamed, not buffered)", spread, min)
	}
}

// kubectl cp both ways (tar over exec with stdin): a 1 MiB file comes back
// byte for byte.
func TestKubectlCp(t *testing.T) {
	ctx := setup(t, 2*time.Minute)
	streamingPod(t, ctx)
	dir := t.TempDir()
	src, back := filepath.Join(dir, "data.bin"), filepath.Join(dir, "back.bin")
	data := randomBytes(t, 1<<20)
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	remote := fmt.Sprintf("%s/%s:/tmp/data.bin", streamNamespace, streamPod)
	if out, errOut, code := kubectlStream(t, ctx, nil, nil, "cp", "-c", streamContainer, src, remote); code != 0 {
		t.Fatalf("kubectl cp to the pod: exit %d\n%s%s", code, out, errOut)
	}
	if out, errOut, code := kubectlStream(t, ctx, nil, nil, "cp", "-c", streamContainer, remote, back); code != 0 {
		t.Fatalf("kubectl cp from the pod: exit %d\n%s%s", code, out, errOut)
	}
	got, err := os.ReadFile(back)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("kubectl cp round trip: got %d bytes, want the %d sent", len(got), len(data))
	}
}

// upgradeRequests is how many requests Envoy sent to the sandbox cluster's
// HTTP/1.1 upgrade cluster.
func upgradeRequests(t *testing.T, ctx context.Context) int {
	t.Helper()
	text, err := sb.EnvoyAdmin(ctx, "/stats?filter=^cluster\\.sandbox/upgrade\\.upstream_rq_total$")
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if _, err := fmt.Sscanf(strings.TrimSpace(text), "cluster.sandbox/upgrade.upstream_rq_total: %d", &n); err != nil {
		t.Fatalf("parsing %q: %v", text, err)
	}
	return n
}

// execExecutors are client-go's two exec protocols by name: SPDY/3.1 (a
// POST upgrade) and WebSocket (a GET upgrade), each for a config and an
// exec URL (execURL).
func execExecutors(t *testing.T) map[string]func(cfg *rest.Config, url string) (remotecommand.Executor, error) {
	return map[string]func(cfg *rest.Config, url string) (remotecommand.Executor, error){
		"SPDY": func(cfg *rest.Config, u string) (remotecommand.Executor, error) {
			return remotecommand.NewSPDYExecutor(cfg, "POST", mustParse(t, u))
		},
		"WebSocket": func(cfg *rest.Config, u string) (remotecommand.Executor, error) {
			return remotecommand.NewWebSocketExecutor(cfg, "GET", u)
		},
	}
}

func execURL(t *testing.T, cfg *rest.Config, cmd []string, tty, stdin bool) string {
	t.Helper()
	cs := sandbox.Clientset(t, cfg)
	return cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(streamNamespace).Name(streamPod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Container: streamContainer, Command: cmd, Stdin: stdin, Stdout: true, Stderr: !tty, TTY: tty}, scheme.ParameterCodec).
		URL().String()
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// sizeQueue hands the executor terminal sizes, as kubectl does on SIGWINCH.
type sizeQueue struct {
	ch chan *remotecommand.TerminalSize
}

func (q *sizeQueue) Next() *remotecommand.TerminalSize { return <-q.ch }

// lineWatcher collects output and closes done once want lines arrived.
type lineWatcher struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want int
	done chan struct{}
	once sync.Once
}

func (w *lineWatcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if strings.Count(w.buf.String(), "\n") >= w.want {
		w.once.Do(func() { close(w.done) })
	}
	return len(p), nil
}

func (w *lineWatcher) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

func mustParse(t *testing.T, raw string) *neturl.URL {
	t.Helper()
	u, err := neturl.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func kubernetesClient(cfg *rest.Config) (*kubernetes.Clientset, error) {
	return kubernetes.NewForConfig(cfg)
}
