package main

import (
	"strings"
	"testing"
)

// TestGRPCAddressNeedsMutualTLS: serve refuses a gRPC address other hosts
// can reach without mutual TLS, naming the flags that fix it; loopback and
// Unix sockets need none; half a TLS configuration is refused too.
func TestGRPCAddressNeedsMutualTLS(t *testing.T) {
	tls := []string{"--grpc-tls-cert-file", "c", "--grpc-tls-key-file", "k", "--grpc-client-ca-file", "ca"}
	for _, tc := range []struct {
		args    []string
		wantErr string
	}{
		{[]string{"--grpc-address", "0.0.0.0:18000"}, "--grpc-tls-cert-file, --grpc-tls-key-file and --grpc-client-ca-file"},
		{[]string{"--grpc-address", ":18000"}, "--grpc-client-ca-file"},
		{[]string{"--grpc-address", "10.1.2.3:18000"}, "not a loopback address"},
		{[]string{"--grpc-address", "[::]:18000"}, "mutual TLS"},
		{[]string{"--grpc-address", "frontdoor.example:18000"}, "mutual TLS"},
		{[]string{"--grpc-address", "0.0.0.0:18000", "--grpc-tls-cert-file", "c", "--grpc-tls-key-file", "k"}, "needs all of"},
		{[]string{"--grpc-address", "127.0.0.1:18000", "--grpc-client-ca-file", "ca"}, "needs all of"},
		{[]string{"--grpc-address", "127.0.0.1:18000"}, ""},
		{[]string{"--grpc-address", "127.0.0.2:18000"}, ""},
		{[]string{"--grpc-address", "[::1]:18000"}, ""},
		{[]string{"--grpc-address", "localhost:18000"}, ""},
		{[]string{"--grpc-address", "unix:///run/frontdoor/grpc.sock"}, ""},
		{append([]string{"--grpc-address", "0.0.0.0:18000"}, tls...), ""},
	} {
		_, err := parseServeFlags(tc.args)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%v: %v, want no error", tc.args, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%v: error %v, want one containing %q", tc.args, err, tc.wantErr)
		}
	}
}
