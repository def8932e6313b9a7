package bench

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kubefrontdoor/frontdoor/internal/testenv"
	"github.com/kubefrontdoor/frontdoor/tests/sandbox"
)

// Variant is one more Frontdoor gateway (frontdoor serve and its own Envoy)
// that the bench starts beside the sandbox's, on a copy of the sandbox's
// config and against the same apiservers, and measures as one more path
// (client certificates, the ExtAuthz cluster). It is how one run compares a
// change with what it changes: another frontdoor binary (the build before
// the change), other serve flags (the access log off), another environment
// (GOGC), or the gRPC hop on a Unix socket.
type Variant struct {
	// Name is the path's name in every table.
	Name string
	// Bin is the frontdoor binary (serve and bootstrap); the sandbox's
	// bin/frontdoor when empty.
	Bin string
	// Args are more `frontdoor serve` flags, after the bench's own (so they
	// win: --access-log off).
	Args []string
	// Env is more KEY=VALUE environment for frontdoor serve and its Envoy
	// (GOGC=400; in InProcess mode the module's Go runtime reads it in
	// Envoy's process: GOMAXPROCS=8).
	Env []string
	// Unix puts ADS and the request service on a Unix socket:
	// serve --grpc-address unix://PATH, bootstrap --xds-address unix://PATH.
	Unix bool
	// Mode measures a second UpstreamCluster of the variant's own with
	// this request service (InProcess, ExtProc), chosen by SNI as the
	// frontdoor-inprocess and frontdoor-extproc paths do; the sandbox's
	// ExtAuthz cluster when empty.
	Mode string
	// Module is the in-process module file the variant's serve hands its
	// Envoy (--inprocess-module); the sandbox's bin/libfrontdoor.so when
	// empty.
	Module string
}

// ParseVariant reads NAME[=BINARY][:ARG ...] (the --variant flag): each ARG
// is an environment variable (KEY=VALUE with an upper-case KEY), the word
// "unix" (the gRPC hop on a Unix socket), mode=MODE (measure a cluster with
// that request service), module=PATH (another in-process module file), or a
// `frontdoor serve` flag.
//
//	--variant nolog:--access-log=off
//	--variant before=/tmp/frontdoor-before
//	--variant gogc400:GOGC=400
//	--variant uds:unix
//	--variant "module-before:mode=InProcess module=/tmp/libfrontdoor-before.so"
func ParseVariant(s string) (Variant, error) {
	head, args, _ := strings.Cut(s, ":")
	name, bin, _ := strings.Cut(head, "=")
	v := Variant{Name: strings.TrimSpace(name), Bin: strings.TrimSpace(bin)}
	if v.Name == "" {
		return v, fmt.Errorf("--variant %q: want NAME[=BINARY][:ARG ...]", s)
	}
	for _, a := range strings.Fields(args) {
		k, _, isKV := strings.Cut(a, "=")
		switch {
		case a == "unix":
			v.Unix = true
		case strings.HasPrefix(a, "mode="):
			if _, ok := modeClusters[strings.TrimPrefix(a, "mode=")]; !ok {
				return v, fmt.Errorf("--variant %q: mode must be InProcess or ExtProc", s)
			}
			v.Mode = strings.TrimPrefix(a, "mode=")
		case strings.HasPrefix(a, "module="):
			v.Module = strings.TrimPrefix(a, "module=")
			if !filepath.IsAbs(v.Module) {
				return v, fmt.Errorf("--variant %q: module must be an absolute path (Envoy loads it)", s)
			}
		case isKV && !strings.HasPrefix(a, "-") && k == strings.ToUpper(k):
			v.Env = append(v.Env, a)
		case strings.HasPrefix(a, "-"):
			v.Args = append(v.Args, a)
		default:
			return v, fmt.Errorf("--variant %q: %q is not KEY=VALUE, unix or a serve flag", s, a)
		}
	}
	return v, nil
}

// PathFrontdoorNoLog is the default variant: frontdoor-x509 with Envoy's
// access log off, which prices the JSON access log.
const PathFrontdoorNoLog = "frontdoor-nolog"

// noLogVariant is PathFrontdoorNoLog's gateway.
var noLogVariant = Variant{Name: PathFrontdoorNoLog, Args: []string{"--access-log=off"}}

func (v Variant) describe() string {
	var parts []string
	if v.Bin != "" {
		parts = append(parts, "binary "+v.Bin)
	}
	if len(v.Args) > 0 {
		parts = append(parts, "serve "+strings.Join(v.Args, " "))
	}
	if len(v.Env) > 0 {
		parts = append(parts, "env "+strings.Join(v.Env, " "))
	}
	if v.Unix {
		parts = append(parts, "gRPC on a Unix socket")
	}
	if v.Mode != "" {
		parts = append(parts, "its requestService: "+v.Mode+" cluster")
	}
	if v.Module != "" {
		parts = append(parts, "module "+v.Module)
	}
	if len(parts) == 0 {
		parts = append(parts, "same build and flags")
	}
	return "a second Frontdoor gateway (its own frontdoor and Envoy, same apiservers), client cert: " + strings.Join(parts, "; ")
}

// mode is the request service the variant's measured cluster runs.
func (v Variant) mode() string {
	if v.Mode == "" {
		return "ExtAuthz"
	}
	return v.Mode
}

// variantGateway is a running variant.
type variantGateway struct {
	frontdoor, envoy *child
	url              string
	serverName       string // the SNI of the measured cluster ("" for the sandbox's)
	accessLog        string // "" when the access log is off
}

func (g *variantGateway) stop() {
	if g == nil {
		return
	}
	g.envoy.stop()
	g.frontdoor.stop()
}

// startVariant starts v's frontdoor on a copy of the sandbox's config
// directory with the flags the sandbox gives its own (plus v's), renders
// the bootstrap with v's binary, starts Envoy as the sandbox does, and
// waits until c is served through it.
func startVariant(ctx context.Context, sb *sandbox.Sandbox, v Variant, outDir string, c Client) (*variantGateway, error) {
	dir := filepath.Join(outDir, "variants", v.Name)
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := copyDir(filepath.Join(sb.Dir, "config"), filepath.Join(dir, "config")); err != nil {
		return nil, err
	}
	var mc modeCluster
	if v.Mode != "" {
		mc = modeClusters[v.Mode]
		if err := mc.write(sb.Dir, filepath.Join(dir, "config")); err != nil {
			return nil, err
		}
	}
	bin := v.Bin
	if bin == "" {
		bin = filepath.Join(sb.BinDir, "frontdoor")
	}
	ports, err := testenv.FreePorts(5) // listener, Envoy admin, gRPC, HTTP, module metrics
	if err != nil {
		return nil, err
	}
	grpcAddr := "127.0.0.1:" + strconv.Itoa(ports[2])
	if v.Unix {
		grpcAddr = "unix://" + filepath.Join(dir, "grpc.sock")
	}
	adminAddr := "127.0.0.1:" + strconv.Itoa(ports[1])
	httpAddr := "127.0.0.1:" + strconv.Itoa(ports[3])
	g := &variantGateway{accessLog: filepath.Join(dir, "access.log"), url: "https://127.0.0.1:" + strconv.Itoa(ports[0]), serverName: mc.sni}
	module := v.Module
	if module == "" {
		module = filepath.Join(sb.BinDir, sandbox.ModuleFile)
	}
	args := []string{"serve", "--config-dir", filepath.Join(dir, "config"), "--envoy-admin-url", "http://" + adminAddr,
		"--grpc-address", grpcAddr, "--http-address", httpAddr,
		"--listen-address", "127.0.0.1", "--listen-port", strconv.Itoa(ports[0]),
		"--access-log", g.accessLog, "--pprof",
		"--inprocess-module", module, "--inprocess-metrics-address", "127.0.0.1:" + strconv.Itoa(ports[4])}
	args = append(args, v.Args...)
	if accessLogOff(v.Args) {
		g.accessLog = ""
	}
	if g.frontdoor, err = startChild(v.Name+"-frontdoor", filepath.Join(dir, "frontdoor.log"), v.Env, bin, args...); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			g.stop()
		}
	}()
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		if err := sandbox.ExpectStatus(wctx, http.DefaultClient, "http://"+httpAddr+"/healthz", http.StatusOK); err == nil {
			break
		}
		select {
		case <-g.frontdoor.done:
			return nil, fmt.Errorf("%s: frontdoor exited; see %s", v.Name, g.frontdoor.log)
		case <-wctx.Done():
			return nil, fmt.Errorf("%s: frontdoor not healthy; see %s", v.Name, g.frontdoor.log)
		case <-time.After(200 * time.Millisecond):
		}
	}
	bootstrap, err := exec.CommandContext(wctx, bin, "bootstrap", "--xds-address", grpcAddr,
		"--admin-address", adminAddr, "--node-id", v.Name+"-envoy").Output()
	if err != nil {
		return nil, fmt.Errorf("%s: frontdoor bootstrap: %w", v.Name, err)
	}
	bootstrapPath := filepath.Join(dir, "envoy.yaml")
	if err := os.WriteFile(bootstrapPath, bootstrap, 0o644); err != nil {
		return nil, err
	}
	if g.envoy, err = startChild(v.Name+"-envoy", filepath.Join(dir, "envoy.log"), v.Env, filepath.Join(sb.BinDir, "envoy"),
		sandbox.EnvoyArgs(bootstrapPath)...); err != nil {
		return nil, err
	}
	c.URL, c.ServerName = g.url, g.serverName
	if mc.sni != "" {
		admin := func(ctx context.Context, path string) (string, error) {
			return sandbox.Get(ctx, http.DefaultClient, "http://"+adminAddr+path)
		}
		if err := waitListenerHas(wctx, admin, mc.sni, 45*time.Second); err != nil {
			return nil, fmt.Errorf("%s: %w; see %s", v.Name, err, g.envoy.log)
		}
	}
	if err := c.waitServed(wctx, 45*time.Second); err != nil {
		return nil, fmt.Errorf("%s: not served through its Envoy (%w); see %s and %s", v.Name, err, g.frontdoor.log, g.envoy.log)
	}
	ok = true
	return g, nil
}

// accessLogOff reports whether serve flags turn the access log off (the
// last --access-log wins, as with Go's flag package).
func accessLogOff(args []string) bool {
	off := false
	for i, a := range args {
		switch {
		case a == "--access-log" || a == "-access-log":
			off = i+1 < len(args) && args[i+1] == "off"
		case strings.HasPrefix(a, "--access-log=") || strings.HasPrefix(a, "-access-log="):
			off = strings.HasSuffix(a, "=off")
		}
	}
	return off
}

// copyDir copies the regular files of src into dst, keeping their modes
// (Secrets stay 0600).
func copyDir(src, dst string) error {
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, info.Mode().Perm()); err != nil {
			return err
		}
	}
	return nil
}
