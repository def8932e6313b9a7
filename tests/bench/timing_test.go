package bench

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestParseVariant(t *testing.T) {
	tests := []struct {
		in   string
		want Variant
		err  bool
	}{
		{in: "nolog:--access-log=off", want: Variant{Name: "nolog", Args: []string{"--access-log=off"}}},
		{in: "before=/tmp/fd", want: Variant{Name: "before", Bin: "/tmp/fd"}},
		{in: "gc:GOGC=400 GOMEMLIMIT=256MiB --log-level=warn", want: Variant{Name: "gc", Env: []string{"GOGC=400", "GOMEMLIMIT=256MiB"}, Args: []string{"--log-level=warn"}}},
		{in: "uds=/x/fd:unix", want: Variant{Name: "uds", Bin: "/x/fd", Unix: true}},
		{in: "old:mode=InProcess module=/tmp/lib.so", want: Variant{Name: "old", Mode: "InProcess", Module: "/tmp/lib.so"}},
		{in: "e:mode=ExtProc", want: Variant{Name: "e", Mode: "ExtProc"}},
		{in: ":unix", err: true},
		{in: "x:bogus", err: true},
		{in: "x:mode=Lua", err: true},
		{in: "x:module=lib.so", err: true},
	}
	for _, tt := range tests {
		got, err := ParseVariant(tt.in)
		if (err != nil) != tt.err {
			t.Errorf("%q: err = %v", tt.in, err)
			continue
		}
		if !tt.err && (got.Name != tt.want.Name || got.Bin != tt.want.Bin || got.Unix != tt.want.Unix || got.Mode != tt.want.Mode || got.Module != tt.want.Module ||
			!slices.Equal(got.Args, tt.want.Args) || !slices.Equal(got.Env, tt.want.Env)) {
			t.Errorf("%q = %+v, want %+v", tt.in, got, tt.want)
		}
	}
	if !accessLogOff([]string{"--access-log", "off"}) || !accessLogOff([]string{"--access-log=off"}) ||
		accessLogOff([]string{"--access-log=off", "--access-log=/tmp/x"}) || accessLogOff(nil) {
		t.Error("accessLogOff")
	}
}

// readTimings keeps the window's 2xx lines, numbers typed or quoted, and
// adds both request-service waits.
func TestReadTimings(t *testing.T) {
	lines := `{"time":"2026-11-29T10:00:00.000Z","code":200,"durationUs":900,"upstreamUs":500,"requestServiceUs":250}
not json
{"time":"2026-11-29T10:00:01.000Z","code":200,"durationUs":"1000","upstreamUs":"600","requestServiceUs":200,"requestServiceResponseUs":100}
{"time":"2026-11-29T10:00:01.500Z","code":401,"durationUs":300,"upstreamUs":null,"requestServiceUs":200}
{"time":"2026-11-29T10:00:02.000Z","code":200,"durationUs":800,"upstreamUs":400}
{"time":"2026-11-29T10:00:09.000Z","code":200,"durationUs":800,"upstreamUs":400}
`
	log := filepath.Join(t.TempDir(), "access.log")
	if err := os.WriteFile(log, []byte("{\"time\":\"old\"}\n"+lines), 0o600); err != nil {
		t.Fatal(err)
	}
	from := time.Date(2026, 11, 29, 10, 0, 0, 500_000, time.UTC)
	got, err := readTimings(log, int64(len("{\"time\":\"old\"}\n")), from, from.Add(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	want := []requestTiming{
		{total: 900, upstream: 500, service: 250, hasService: true},
		{total: 1000, upstream: 600, service: 300, hasService: true},
		{total: 800, upstream: 400},
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}
