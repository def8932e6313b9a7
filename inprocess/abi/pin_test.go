package abi

// Pinning the binding to the Envoy binary: when tools/versions.env moves to
// another Envoy, these tests fail until someone re-verifies the ABI (the
// procedure is the header comment of abi.go) and updates version.go.

import (
	"bytes"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
)

var (
	envoyImageOnce sync.Once
	envoyImageData []byte
	envoyImageErr  error
)

// envoyImage is the bytes of bin/envoy (about 100 MB), read once.
func envoyImage(t *testing.T) []byte {
	t.Helper()
	bin := envoyBinary(t)
	envoyImageOnce.Do(func() { envoyImageData, envoyImageErr = os.ReadFile(bin) })
	if envoyImageErr != nil {
		t.Fatal(envoyImageErr)
	}
	return envoyImageData
}

func TestPinnedEnvoyVersion(t *testing.T) {
	bin := envoyBinary(t)
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	env, err := os.ReadFile(filepath.Join(root, "tools", "versions.env"))
	if err != nil {
		t.Fatal(err)
	}
	pinned := ""
	for _, line := range strings.Split(string(env), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "ENVOY_VERSION="); ok {
			pinned = v
		}
	}
	if pinned != EnvoyVersion {
		t.Fatalf("tools/versions.env pins Envoy %q but package abi is verified against Envoy %s: "+
			"re-verify the dynamic-module ABI (see abi.go) and update version.go", pinned, EnvoyVersion)
	}
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("envoy --version: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "/"+EnvoyVersion+"/") {
		t.Fatalf("bin/envoy reports %q, not Envoy %s: run `make tools`", bytes.TrimSpace(out), EnvoyVersion)
	}
	if !bytes.Contains(envoyImage(t), []byte("\x00"+ABIVersion+"\x00")) {
		t.Fatalf("bin/envoy does not carry the ABI version string %q: the dynamic-module ABI changed", ABIVersion)
	}
}

// TestEnvoyExportsDeclaredCallbacks: every callback frontdoor_abi.h declares
// is a function the binary exports. (A missing one would load as NULL and
// crash on first use, since the declarations are weak.)
func TestEnvoyExportsDeclaredCallbacks(t *testing.T) {
	header, err := os.ReadFile("frontdoor_abi.h")
	if err != nil {
		t.Fatal(err)
	}
	declared := regexp.MustCompile(`\benvoy_dynamic_module_callback_[a-z_]+\b`).FindAllString(string(header), -1)
	slices.Sort(declared)
	declared = slices.Compact(declared)
	if len(declared) < 15 {
		t.Fatalf("found only %d callbacks in frontdoor_abi.h: %v", len(declared), declared)
	}
	exported := definedFuncs(t, envoyBinary(t))
	for _, name := range declared {
		if !exported[name] {
			t.Errorf("bin/envoy does not export %s", name)
		}
	}
}

// TestModuleExportsRequiredHooks: the built module exports exactly the hooks
// Envoy requires, Envoy knows every one of them, and every HTTP filter hook
// Envoy knows is either implemented or deliberately left out. A hook added by
// a newer Envoy fails here instead of failing the filter config at runtime.
func TestModuleExportsRequiredHooks(t *testing.T) {
	module := testModule(t)
	var exported []string
	for name := range definedFuncs(t, module) {
		if strings.HasPrefix(name, "envoy_dynamic_module_on_") {
			exported = append(exported, name)
		}
	}
	slices.Sort(exported)
	required := slices.Sorted(slices.Values(requiredHooks))
	if !slices.Equal(exported, required) {
		t.Errorf("module exports hooks\n%v\nwant\n%v", exported, required)
	}

	image := envoyImage(t)
	known := envoyHTTPFilterHooks(image)
	if len(known) < len(requiredHooks)-1 {
		t.Fatalf("found only %d HTTP filter hook names in bin/envoy: %v", len(known), known)
	}
	t.Logf("bin/envoy knows %d HTTP filter hooks", len(known))
	if !bytes.Contains(image, []byte("\x00envoy_dynamic_module_on_program_init\x00")) {
		t.Errorf("bin/envoy does not look up envoy_dynamic_module_on_program_init")
	}
	for _, h := range requiredHooks {
		if strings.HasPrefix(h, "envoy_dynamic_module_on_http_filter_") && !slices.Contains(known, h) {
			t.Errorf("bin/envoy does not know the hook %s that this package exports", h)
		}
	}
	for _, h := range known {
		if !slices.Contains(requiredHooks, h) && !slices.Contains(optionalHooks, h) {
			t.Errorf("bin/envoy resolves %s, which package abi neither implements nor lists as optional: find out whether Envoy requires it", h)
		}
	}

	// Go marks c-shared libraries NODELETE: Envoy's dlclose (when a config
	// without do_not_close goes away) cannot unload the Go runtime.
	f, err := elf.Open(module)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	flags, err := f.DynValue(elf.DT_FLAGS_1)
	if err != nil || len(flags) == 0 || flags[0]&uint64(elf.DF_1_NODELETE) == 0 {
		t.Errorf("module is not marked NODELETE (DT_FLAGS_1 %v, %v)", flags, err)
	}
}

// definedFuncs lists the functions an ELF file exports.
func definedFuncs(t *testing.T, path string) map[string]bool {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, err := f.DynamicSymbols()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, s := range syms {
		if s.Section != elf.SHN_UNDEF && elf.ST_TYPE(s.Info) == elf.STT_FUNC {
			out[s.Name] = true
		}
	}
	return out
}

// envoyHTTPFilterHooks extracts the NUL-terminated hook names the binary
// looks up with dlsym (string literals in Envoy's C++; names that share
// storage with a longer literal are cut at their own prefix).
func envoyHTTPFilterHooks(image []byte) []string {
	const prefix = "envoy_dynamic_module_on_http_filter_"
	var out []string
	for _, m := range regexp.MustCompile(`envoy_dynamic_module_on_http_filter_[a-z_]+\x00`).FindAll(image, -1) {
		s := string(m[:len(m)-1])
		s = s[strings.LastIndex(s, prefix):]
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}
