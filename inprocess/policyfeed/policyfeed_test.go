package policyfeed

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/kubefrontdoor/frontdoor/policy"
)

// serve runs a feed on a Unix socket and returns its address and a stop
// function.
func serve(t *testing.T, s *Server, sock string) func() {
	t.Helper()
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	s.Register(gs)
	go func() { _ = gs.Serve(lis) }()
	return gs.Stop
}

func table(version string) *policy.Table {
	return &policy.Table{Version: version, Clusters: map[string]*policy.Cluster{
		"a": {Name: "a", X509: true, ClientCAPEM: []byte("ca"), DefaultRule: "default"},
	}}
}

// A subscriber gets the current table, every new one, and, after the
// server restarts, the table the new server has; it never sees a partial
// table.
func TestSubscribeFollowsTheFeedAcrossRestarts(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "grpc.sock")
	srv := NewServer(nil)
	srv.SetPolicy(table("v1"))
	stop := serve(t, srv, sock)

	got := make(chan *policy.Table, 16)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go Subscribe(ctx, "unix://"+sock, func(tb *policy.Table) { got <- tb }, nil)

	next := func(want string) {
		t.Helper()
		select {
		case tb := <-got:
			if tb.Version != want || string(tb.Clusters["a"].ClientCAPEM) != "ca" {
				t.Fatalf("got table %s %+v, want %s with cluster a", tb.Version, tb.Clusters["a"], want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no table %s", want)
		}
	}
	next("v1")
	srv.SetPolicy(table("v2"))
	next("v2")

	// frontdoor serve restarts: the module keeps its table, then follows
	// the new server.
	stop()
	srv2 := NewServer(nil)
	srv2.SetPolicy(table("v3"))
	stop2 := serve(t, srv2, sock)
	defer stop2()
	next("v3")
}

// Before the first table a subscriber waits; it gets the first one as soon
// as it is published.
func TestSubscribeWaitsForTheFirstTable(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "grpc.sock")
	srv := NewServer(nil)
	defer serve(t, srv, sock)()
	got := make(chan *policy.Table, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go Subscribe(ctx, "unix://"+sock, func(tb *policy.Table) { got <- tb }, nil)
	select {
	case tb := <-got:
		t.Fatalf("got %v before any table was published", tb.Version)
	case <-time.After(300 * time.Millisecond):
	}
	srv.SetPolicy(table("first"))
	select {
	case tb := <-got:
		if tb.Version != "first" {
			t.Fatalf("got %s", tb.Version)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no table")
	}
}
