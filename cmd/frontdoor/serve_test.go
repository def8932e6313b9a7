package main

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestAccessLogFlag(t *testing.T) {
	for _, tc := range []struct {
		flag     string
		path     string
		disabled bool
	}{
		{"stdout", "", false},
		{"off", "", true},
		{"/var/log/frontdoor/access.log", "/var/log/frontdoor/access.log", false},
	} {
		f, err := parseServeFlags([]string{"--config-dir", "x", "--access-log", tc.flag})
		if err != nil {
			t.Fatal(err)
		}
		opts := translatorOptions(f)
		if opts.AccessLogPath != tc.path || opts.DisableAccessLog != tc.disabled {
			t.Errorf("--access-log %s: path %q disabled %v, want %q %v", tc.flag, opts.AccessLogPath, opts.DisableAccessLog, tc.path, tc.disabled)
		}
	}
	f, err := parseServeFlags([]string{"--config-dir", "x"})
	if err != nil || f.accessLog != "stdout" {
		t.Errorf("default --access-log = %q (%v), want stdout", f.accessLog, err)
	}
}

// --access-log-failures-only filters the log (with --access-log-slower-than
// also slow requests); the slow bound alone, or a filter on no log, is refused.
func TestAccessLogFilterFlags(t *testing.T) {
	f, err := parseServeFlags([]string{"--config-dir", "x", "--access-log-failures-only", "--access-log-slower-than", "1500ms"})
	if err != nil {
		t.Fatal(err)
	}
	if o := translatorOptions(f); !o.AccessLogFailuresOnly || o.AccessLogSlowerThan != 1500*time.Millisecond {
		t.Errorf("failures only %v, slower than %v; want true, 1.5s", o.AccessLogFailuresOnly, o.AccessLogSlowerThan)
	}
	if o := translatorOptions(mustParse(t, "--config-dir", "x")); o.AccessLogFailuresOnly || o.AccessLogSlowerThan != 0 {
		t.Errorf("by default: failures only %v, slower than %v; want every request logged", o.AccessLogFailuresOnly, o.AccessLogSlowerThan)
	}
	for _, args := range [][]string{
		{"--access-log-slower-than", "1s"},
		{"--access-log-failures-only", "--access-log-slower-than", "10us"},
		{"--access-log-failures-only", "--access-log", "off"},
	} {
		if _, err := parseServeFlags(append([]string{"--config-dir", "x"}, args...)); err == nil {
			t.Errorf("%v: accepted", args)
		}
	}
}

func mustParse(t *testing.T, args ...string) *serveFlags {
	t.Helper()
	f, err := parseServeFlags(args)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// --grpc-address unix:///path listens on a socket only its user may use,
// replaces a stale socket file and refuses one that is in use.
func TestListenGRPCUnix(t *testing.T) {
	path := filepath.Join(t.TempDir(), "grpc.sock")
	l, err := listenGRPC("unix://" + path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode()&os.ModeSocket == 0 || st.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want a socket with 0600", st.Mode())
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if _, err := listenGRPC("unix://" + path); err == nil {
		t.Error("a socket in use was taken over")
	}
	// A crash leaves the file behind; the next start replaces it.
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
	l2, err := listenGRPC("unix://" + path)
	if err != nil {
		t.Fatalf("stale socket: %v", err)
	}
	l2.Close()
	for _, bad := range []string{"unix://relative.sock", "unix://"} {
		if _, err := listenGRPC(bad); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := listenGRPC("unix://" + file); err == nil {
		t.Error("a regular file was replaced")
	}
}

// The edge flags reach the translator; a timeout that is not positive, or
// a hop count that is not a small number, is refused.
func TestEdgeFlags(t *testing.T) {
	f, err := parseServeFlags([]string{"--config-dir", "x", "--tls-handshake-timeout", "3s", "--request-headers-timeout", "2s", "--trusted-forwarding-hops", "1"})
	if err != nil {
		t.Fatal(err)
	}
	e := translatorOptions(f).Edge
	if e.TLSHandshakeTimeout.String() != "3s" || e.RequestHeadersTimeout.String() != "2s" || e.TrustedForwardingHops != 1 {
		t.Errorf("edge options %+v", e)
	}
	for _, bad := range [][]string{
		{"--tls-handshake-timeout", "0s"},
		{"--request-headers-timeout", "-1s"},
		{"--trusted-forwarding-hops", "-1"},
		{"--trusted-forwarding-hops", "1000"},
	} {
		if _, err := parseServeFlags(append([]string{"--config-dir", "x"}, bad...)); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
}

// TestConnectionAgeFlags: the maximum connection age and its jitter reach
// the translator; off by default; an age under a second or a jitter that
// is not a percentage is refused.
func TestConnectionAgeFlags(t *testing.T) {
	f, err := parseServeFlags([]string{"--config-dir", "x"})
	if err != nil {
		t.Fatal(err)
	}
	if e := translatorOptions(f).Edge; e.MaxConnectionAge != 0 {
		t.Errorf("default max connection age %v, want 0 (off)", e.MaxConnectionAge)
	}
	f, err = parseServeFlags([]string{"--config-dir", "x", "--max-connection-age", "30m", "--max-connection-age-jitter", "10"})
	if err != nil {
		t.Fatal(err)
	}
	if e := translatorOptions(f).Edge; e.MaxConnectionAge != 30*time.Minute || e.MaxConnectionAgeJitter != 10 {
		t.Errorf("edge options %+v", e)
	}
	for _, bad := range [][]string{
		{"--max-connection-age", "500ms"},
		{"--max-connection-age", "-1m"},
		{"--max-connection-age", "1m", "--max-connection-age-jitter", "101"},
		{"--max-connection-age", "1m", "--max-connection-age-jitter", "-5"},
	} {
		if _, err := parseServeFlags(append([]string{"--config-dir", "x"}, bad...)); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
}

// TestListenerPortFlags: extra ports and PROXY protocol ports reach the
// translator; a PROXY protocol port must be one the listener serves.
func TestListenerPortFlags(t *testing.T) {
	f, err := parseServeFlags([]string{"--config-dir", "x", "--listen-port", "6443", "--extra-listen-ports", "443, 8443", "--proxy-protocol-ports", "8443"})
	if err != nil {
		t.Fatal(err)
	}
	o := translatorOptions(f)
	if !slices.Equal(o.ListenerExtraPorts, []uint32{443, 8443}) || !slices.Equal(o.Edge.ProxyProtocolPorts, []uint32{8443}) {
		t.Errorf("extra ports %v, PROXY protocol ports %v", o.ListenerExtraPorts, o.Edge.ProxyProtocolPorts)
	}
	for _, bad := range [][]string{
		{"--proxy-protocol-ports", "8443"},                                 // not a listener port
		{"--extra-listen-ports", "6443"},                                   // the main port again
		{"--extra-listen-ports", "443,443"},                                // twice
		{"--extra-listen-ports", "70000"},                                  // not a port
		{"--extra-listen-ports", "0"},                                      // not a port
		{"--extra-listen-ports", "443", "--proxy-protocol-ports", "https"}, // not a number
	} {
		if _, err := parseServeFlags(append([]string{"--config-dir", "x"}, bad...)); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
}

// TestSecretNamespaces: Kubernetes mode reads Secrets from the gateway's
// namespace plus --secret-namespaces; "*" (or file mode) allows any.
func TestSecretNamespaces(t *testing.T) {
	inClusterNamespaceFile = filepath.Join(t.TempDir(), "namespace") // not in a pod
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{nil, []string{"frontdoor-system"}},
		{[]string{"--gateway-namespace", "gw"}, []string{"gw"}},
		{[]string{"--gateway-namespace", "gw", "--secret-namespaces", "b, a,gw"}, []string{"a", "b", "gw"}},
		{[]string{"--secret-namespaces", "a,*"}, nil},
		{[]string{"--config-dir", "/x"}, nil},
	} {
		f, err := parseServeFlags(tc.args)
		if err != nil {
			t.Fatal(err)
		}
		if got := secretNamespaces(f); !slices.Equal(got, tc.want) {
			t.Errorf("%v: %q, want %q", tc.args, got, tc.want)
		}
	}
	if err := os.WriteFile(inClusterNamespaceFile, []byte("team-gw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, _ := parseServeFlags(nil)
	if got := secretNamespaces(f); !slices.Equal(got, []string{"team-gw"}) {
		t.Errorf("in a pod: %q, want the pod's namespace", got)
	}
}
