// Package kubelet is a fake kubelet for end-to-end tests: it serves the
// kubelet's streaming endpoints (exec, attach, port-forward, container logs)
// over TLS with the real k8s streaming server libraries
// (k8s.io/cri-streaming), so kube-apiserver talks to it exactly as it talks
// to a kubelet. Register a Node whose InternalIP is 127.0.0.1 and whose
// kubelet port is Port, bind a Pod to it, and kubectl exec, attach,
// port-forward, logs and cp work end to end without any container.
//
// There are no containers: every pod runs the same tiny built-in "shell"
// (see Exec) over an in-memory file system, and every port of every pod is an
// echo server.
package kubelet

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"k8s.io/cri-streaming/pkg/streaming/portforward"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
)

const (
	// streamIdleTimeout and streamCreationTimeout are the kubelet's defaults
	// (4h idle, 30s to create the streams of a session).
	streamIdleTimeout     = 4 * time.Hour
	streamCreationTimeout = 30 * time.Second

	// AttachGreeting is the first line an attached client reads; after it,
	// the container echoes stdin to stdout until stdin closes.
	AttachGreeting = "attached to the fake container"
	// LogLines is how many lines a container's log has; LogInterval is the
	// pause between two lines while following.
	LogLines    = 10
	LogInterval = 200 * time.Millisecond
)

// Kubelet is a running fake kubelet.
type Kubelet struct {
	// Port is the TLS port on 127.0.0.1.
	Port int

	srv *http.Server
	ln  net.Listener

	mu    sync.Mutex
	files map[string][]byte // the shared in-memory file system, by clean absolute path
}

// Start serves on 127.0.0.1 (a free port) with the given serving
// certificate; kube-apiserver verifies it with --kubelet-certificate-authority.
func Start(certPEM, keyPEM []byte) (*Kubelet, error) {
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		// HTTP/1.1 only: SPDY and WebSocket upgrades are HTTP/1.1.
		NextProtos: []string{"http/1.1"},
	})
	if err != nil {
		return nil, err
	}
	k := &Kubelet{Port: ln.Addr().(*net.TCPAddr).Port, ln: ln, files: map[string][]byte{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/exec/{namespace}/{pod}/{container}", k.serveExec)
	mux.HandleFunc("/attach/{namespace}/{pod}/{container}", k.serveAttach)
	mux.HandleFunc("/portForward/{namespace}/{pod}", k.servePortForward)
	mux.HandleFunc("GET /containerLogs/{namespace}/{pod}/{container}", k.serveLogs)
	k.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = k.srv.Serve(ln) }()
	return k, nil
}

// Close stops serving and closes every session.
func (k *Kubelet) Close() error { return k.srv.Close() }

func (k *Kubelet) serveExec(w http.ResponseWriter, r *http.Request) {
	opts, err := remotecommand.NewOptions(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	remotecommand.ServeExec(w, r, execer{k}, podName(r), "", r.PathValue("container"), r.URL.Query()["command"],
		opts, streamIdleTimeout, streamCreationTimeout, remotecommand.SupportedStreamingProtocols)
}

func (k *Kubelet) serveAttach(w http.ResponseWriter, r *http.Request) {
	opts, err := remotecommand.NewOptions(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	remotecommand.ServeAttach(w, r, attacher{}, podName(r), "", r.PathValue("container"),
		opts, streamIdleTimeout, streamCreationTimeout, remotecommand.SupportedStreamingProtocols)
}

func (k *Kubelet) servePortForward(w http.ResponseWriter, r *http.Request) {
	opts, err := portforward.NewV4Options(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	portforward.ServePortForward(w, r, echoPorts{}, podName(r), "", opts,
		streamIdleTimeout, streamCreationTimeout, portforward.SupportedProtocols)
}

// serveLogs writes LogLines lines, LogInterval apart when following, so a
// client sees the first lines long before the last one exists.
func (k *Kubelet) serveLogs(w http.ResponseWriter, r *http.Request) {
	follow := r.URL.Query().Get("follow") == "true"
	w.Header().Set("Content-Type", "text/plain")
	flusher, _ := w.(http.Flusher)
	for i := 1; i <= LogLines; i++ {
		if _, err := fmt.Fprintf(w, "%s line %d\n", r.PathValue("container"), i); err != nil {
			return
		}
		if !follow {
			continue
		}
		if flusher != nil {
			flusher.Flush()
		}
		select {
		case <-r.Context().Done():
			return
		case <-time.After(LogInterval):
		}
	}
}

func podName(r *http.Request) string { return r.PathValue("namespace") + "/" + r.PathValue("pod") }

// exitError is a command's non-zero exit status, reported to the client the
// way the kubelet reports a container process's exit code.
type exitError int

func (e exitError) Error() string   { return fmt.Sprintf("exit status %d", int(e)) }
func (e exitError) String() string  { return e.Error() }
func (e exitError) Exited() bool    { return true }
func (e exitError) ExitStatus() int { return int(e) }

// execer runs the built-in shell.
type execer struct{ k *Kubelet }

// ExecInContainer runs cmd, one of:
//
//	echo ARGS...     print ARGS joined by spaces and a newline
//	cat              copy stdin to stdout
//	exit N           exit with status N
//	stderr TEXT      print TEXT and a newline to stderr
//	sha256           read stdin, print its length and SHA-256 hex
//	resizes          print "COLSxROWS" for every terminal size until stdin closes
//	test -d PATH     succeed if PATH is a directory (the root "/" and "/tmp" only)
//	tar -xmf - [-C DIR] / tar cf - PATH   what kubectl cp runs
func (e execer) ExecInContainer(ctx context.Context, _, _, _ string, cmd []string, in io.Reader, out, errOut io.WriteCloser, _ bool, resize <-chan remotecommand.TerminalSize, _ time.Duration) error {
	if len(cmd) == 0 {
		return errors.New("no command")
	}
	args := cmd[1:]
	switch cmd[0] {
	case "echo":
		_, err := fmt.Fprintln(out, strings.Join(args, " "))
		return err
	case "cat":
		if in == nil {
			return nil
		}
		_, err := io.Copy(out, in)
		return err
	case "exit":
		var code int
		if len(args) != 1 {
			return exitError(2)
		}
		if _, err := fmt.Sscan(args[0], &code); err != nil {
			return exitError(2)
		}
		if code == 0 {
			return nil
		}
		return exitError(code)
	case "stderr":
		_, err := fmt.Fprintln(errOut, strings.Join(args, " "))
		return err
	case "sha256":
		return sha256Of(in, out)
	case "resizes":
		return printResizes(ctx, in, out, resize)
	case "test":
		if len(args) == 2 && args[0] == "-d" && (args[1] == "/" || strings.TrimSuffix(args[1], "/") == "/tmp") {
			return nil
		}
		return exitError(1)
	case "tar":
		return e.k.tar(args, in, out)
	}
	fmt.Fprintf(errOut, "%s: command not found\n", cmd[0])
	return exitError(127)
}

// printResizes reports every terminal size the client sends, so a test can
// check resizes arrive; it ends when stdin closes.
func printResizes(ctx context.Context, in io.Reader, out io.Writer, resize <-chan remotecommand.TerminalSize) error {
	stdinDone := make(chan struct{})
	go func() {
		if in != nil {
			_, _ = io.Copy(io.Discard, in)
		}
		close(stdinDone)
	}()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-stdinDone:
			return nil
		case size, ok := <-resize:
			if !ok {
				<-stdinDone
				return nil
			}
			if _, err := fmt.Fprintf(out, "%dx%d\n", size.Width, size.Height); err != nil {
				return err
			}
		}
	}
}

// attacher attaches to the pod's one process: it greets, then echoes stdin.
type attacher struct{}

func (attacher) AttachContainer(_ context.Context, _, _, _ string, in io.Reader, out, _ io.WriteCloser, _ bool, _ <-chan remotecommand.TerminalSize) error {
	if _, err := fmt.Fprintln(out, AttachGreeting); err != nil {
		return err
	}
	if in == nil {
		return nil
	}
	_, err := io.Copy(out, in)
	return err
}

// echoPorts makes every port of every pod an echo server: the bytes the
// client sends come back unchanged until the client closes its side.
type echoPorts struct{}

func (echoPorts) PortForward(_ context.Context, _, _ string, _ int32, stream io.ReadWriteCloser) error {
	defer stream.Close()
	_, err := io.Copy(stream, stream)
	return err
}
