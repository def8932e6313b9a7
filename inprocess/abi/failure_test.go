package abi

// What happens when the module is missing, broken or crashes, and whether the
// Go runtime inside Envoy leaves Envoy's own signal handling intact. Each test
// runs its own Envoy, since most of them end it.

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kubefrontdoor/frontdoor/internal/testenv"
)

// newFixtureParts returns upstreams and PKI for a dedicated Envoy.
func newFixtureParts(t *testing.T) (first, second *upstream, p *pki) {
	t.Helper()
	first, second = newUpstream("first"), newUpstream("second")
	t.Cleanup(first.srv.Close)
	t.Cleanup(second.srv.Close)
	p, err := newPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return first, second, p
}

// notAModule builds a valid shared object without any hook.
func notAModule(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "empty.c")
	if err := os.WriteFile(src, []byte("int frontdoor_not_a_module = 1;\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cc, err := exec.Command("go", "env", "CC").Output()
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "libnotamodule.so")
	if b, err := exec.Command(strings.TrimSpace(string(cc)), "-shared", "-fPIC", "-o", out, src).CombinedOutput(); err != nil {
		t.Fatalf("building a plain shared object: %v\n%s", err, b)
	}
	return out
}

// TestStartupFailuresNeverForward: with a static bootstrap, every way the
// module can fail to load or to accept its config makes Envoy refuse the
// configuration and exit; the listener never serves, nothing reaches an
// upstream.
func TestStartupFailuresNeverForward(t *testing.T) {
	module := testModule(t)
	garbage := filepath.Join(t.TempDir(), "libgarbage.so")
	if err := os.WriteFile(garbage, bytes.Repeat([]byte("not an ELF shared object\n"), 200), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, module, filterName, config string
		wantLog                          []string
	}{
		{"missing-file", filepath.Join(t.TempDir(), "libmissing.so"), "frontdoor-test", `{}`,
			[]string{"Failed to load dynamic module", "cannot open shared object file"}},
		{"not-elf", garbage, "frontdoor-test", `{}`,
			[]string{"Failed to load dynamic module", "invalid ELF header"}},
		{"not-a-module", notAModule(t), "frontdoor-test", `{}`,
			[]string{"Failed to resolve symbol envoy_dynamic_module_on_program_init"}},
		{"config-error", module, "frontdoor-test", `{"fail":true}`,
			[]string{"Failed to initialize dynamic module", `filter config "frontdoor-test" rejected: testmodule: config asked to fail`}},
		{"config-panic", module, "frontdoor-test", `{"panic":true}`,
			[]string{"Failed to initialize dynamic module", "panic in creating filter config frontdoor-test: testmodule: config asked to panic"}},
		{"config-not-json", module, "frontdoor-test", `not json`,
			[]string{"Failed to initialize dynamic module", "rejected: invalid character"}},
		{"unknown-filter-name", module, "no-such-filter", `{}`,
			[]string{"Failed to initialize dynamic module", `no filter registered under filter_name "no-such-filter"`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			first, second, p := newFixtureParts(t)
			port := testenv.MustFreePort(t)
			e := newEnvoy(t, bootOpts{module: c.module, filterName: c.filterName, filterConfig: c.config,
				pki: p, first: first, second: second, port: port}, "")
			err, exited := e.waitExit(30 * time.Second)
			if !exited {
				t.Fatalf("Envoy kept running with a broken module")
			}
			if err == nil {
				t.Errorf("Envoy exited with status 0")
			}
			log := e.logText()
			for _, s := range c.wantLog {
				if !strings.Contains(log, s) {
					t.Errorf("Envoy log lacks %q:\n%s", s, e.logTail(15))
				}
			}
			// Nothing listens; nothing was forwarded.
			if _, err := p.httpClient(true, false).Get("https://127.0.0.1:" + strconv.Itoa(port) + "/startup"); err == nil {
				t.Errorf("a request was answered on the listener")
			}
			if n := first.saw("/startup") + second.saw("/startup"); n != 0 {
				t.Errorf("upstreams saw %d requests", n)
			}
		})
	}
}

// TestLDSRejectsBrokenModule: with listeners from LDS (as Frontdoor's xDS
// delivers them), a listener whose module cannot load is rejected and never
// created while Envoy keeps running; a later update with a good module works.
func TestLDSRejectsBrokenModule(t *testing.T) {
	module := testModule(t)
	first, second, p := newFixtureParts(t)
	ldsDir := t.TempDir()
	lds := filepath.Join(ldsDir, "lds.yaml")
	o := bootOpts{module: filepath.Join(ldsDir, "libmissing.so"), filterName: "frontdoor-test", filterConfig: `{"tag":"lds"}`,
		pki: p, first: first, second: second, port: testenv.MustFreePort(t)}
	if err := os.WriteFile(lds, o.ldsFile("1"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := newEnvoy(t, o, lds)
	if err := e.waitReady(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	if !waitFor(10*time.Second, func() bool { v, _ := e.stat("listener_manager.lds.update_rejected"); return v == "1" }) {
		t.Fatalf("LDS update with a missing module was not rejected:\n%s", e.logTail(20))
	}
	if !strings.Contains(e.logText(), "cannot open shared object file") {
		t.Errorf("the LDS rejection is not about the module:\n%s", e.logTail(20))
	}
	url := "https://127.0.0.1:" + strconv.Itoa(o.port)
	if _, err := p.httpClient(true, false).Get(url + "/lds-broken"); err == nil {
		t.Errorf("a listener with a missing module answered")
	}
	if n := first.saw("/lds-broken"); n != 0 {
		t.Errorf("upstream saw %d requests", n)
	}

	// Fix the module path: the module loads at runtime, on the main thread.
	o.module = module
	tmp := filepath.Join(ldsDir, "lds.tmp")
	if err := os.WriteFile(tmp, o.ldsFile("2"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, lds); err != nil {
		t.Fatal(err)
	}
	if !waitFor(15*time.Second, func() bool { _, err := e.listenerPort("filtered"); return err == nil }) {
		t.Fatalf("the fixed listener did not come up:\n%s", e.logTail(20))
	}
	var r echoReply
	waitFor(10*time.Second, func() bool {
		resp, err := p.httpClient(true, false).Get(url + "/lds-fixed")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	r = echo(t, p.httpClient(true, false), url+"/lds-fixed", nil)
	want(t, r, "x-test-config", "lds")

	// Replace the listener: the new filter config is created, and once the
	// old listener has drained Envoy destroys the old one through
	// on_http_filter_config_destroy (FilterConfig.Destroy).
	o.filterConfig = `{"tag":"lds3"}`
	if err := os.WriteFile(tmp, o.ldsFile("3"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, lds); err != nil {
		t.Fatal(err)
	}
	ok := waitFor(20*time.Second, func() bool {
		resp, err := p.httpClient(true, false).Get(url + "/lds-replaced")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			return false
		}
		return slices.Equal(r.Headers["X-Test-Config"], []string{"lds3"}) &&
			slices.Equal(r.Headers["X-Test-Configs-Live"], []string{"1"})
	})
	if !ok {
		t.Errorf("after replacing the listener: config %q, live configs %q (want lds3, 1)",
			r.Headers["X-Test-Config"], r.Headers["X-Test-Configs-Live"])
	}
}

// TestCrashReachesEnvoyCrashHandler: the Go runtime installs its SIGSEGV
// handler when the module loads, but a fault outside Go code (here C code
// called from the module) is forwarded to Envoy's own crash handler, which
// logs a backtrace and kills the process: crashes are not masked.
func TestCrashReachesEnvoyCrashHandler(t *testing.T) {
	first, second, p := newFixtureParts(t)
	o := bootOpts{module: testModule(t), filterName: "frontdoor-test", filterConfig: `{"tag":"crash"}`,
		pki: p, first: first, second: second, port: testenv.MustFreePort(t)}
	e := newEnvoy(t, o, "")
	if err := e.waitReady(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	c := p.httpClient(true, false)
	url := "https://127.0.0.1:" + strconv.Itoa(o.port)
	echo(t, c, url+"/before-crash", nil)
	req, _ := httpGet(url+"/crash", "x-test-crash", "1")
	if resp, err := c.Do(req); err == nil {
		resp.Body.Close()
		t.Errorf("the crashing request was answered: %s", resp.Status)
	}
	err, exited := e.waitExit(30 * time.Second)
	if !exited {
		t.Fatal("Envoy survived a segmentation fault")
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("wait: %v", err)
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGSEGV {
		t.Errorf("Envoy ended with %v, want killed by SIGSEGV (re-raised by its crash handler)", err)
	}
	log := e.logText()
	for _, s := range []string{"Caught Segmentation fault", "Backtrace"} {
		if !strings.Contains(log, s) {
			t.Errorf("Envoy's crash handler did not run (log lacks %q):\n%s", s, e.logTail(30))
		}
	}
	if first.saw("/crash") != 0 {
		t.Errorf("the crashing request reached the upstream")
	}
}

// TestSIGTERMStillHandled: with the Go runtime loaded and busy (goroutines
// from async requests), SIGTERM to the Envoy process still reaches Envoy's
// handler and it shuts down cleanly.
func TestSIGTERMStillHandled(t *testing.T) {
	first, second, p := newFixtureParts(t)
	o := bootOpts{module: testModule(t), filterName: "frontdoor-test", filterConfig: `{"tag":"term"}`,
		pki: p, first: first, second: second, port: testenv.MustFreePort(t)}
	e := newEnvoy(t, o, "")
	if err := e.waitReady(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	url := "https://127.0.0.1:" + strconv.Itoa(o.port)
	want(t, echo(t, p.httpClient(true, false), url+"/before-term", hdr("x-test-async", "1")), "x-test-resumed", "42")
	if err := syscall.Kill(e.cmd.Process.Pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err, exited := e.waitExit(20 * time.Second)
	if !exited {
		t.Fatal("Envoy ignored SIGTERM")
	}
	if err != nil {
		t.Errorf("Envoy exited with %v after SIGTERM, want status 0", err)
	}
	if log := e.logText(); !strings.Contains(log, "caught ENVOY_SIGTERM") {
		t.Errorf("Envoy did not log its SIGTERM handling:\n%s", e.logTail(20))
	}
}
