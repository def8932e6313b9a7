package main

import "testing"

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
