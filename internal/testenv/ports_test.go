package testenv

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// childEnv makes the test binary a second test process that reserves ports,
// prints them and holds them until its stdin closes.
const childEnv = "FRONTDOOR_TESTENV_PORTS_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		ports, err := FreePorts(4)
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println(strings.Trim(fmt.Sprint(ports), "[]"))
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestPortsAreExclusiveAcrossProcesses is what `go test ./...` relies on:
// a port one test process holds for its server is never handed to another,
// and a process that exits gives its ports back.
func TestPortsAreExclusiveAcrossProcesses(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	var held []int
	for _, f := range strings.Fields(line) {
		p, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("child: %s", line)
		}
		held = append(held, p)
	}
	if len(held) != 4 {
		t.Fatalf("child reserved %v, want 4 ports", held)
	}
	lo, hi, err := testPortRange()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range held {
		if p < lo || p >= hi {
			t.Errorf("port %d outside the test range %d-%d", p, lo, hi-1)
		}
	}
	only := func(want int) func(int) bool { return func(p int) bool { return p == want } }
	for _, p := range held[:2] {
		if got, err := FreePortWhere(only(p)); err == nil {
			t.Errorf("port %d, held by the other process, was handed out here too (%d)", p, got)
		}
	}

	_ = stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
	for _, p := range held[2:] {
		if got, err := FreePortWhere(only(p)); err != nil || got != p {
			t.Errorf("port %d of an exited process: got %d, %v; want it back", p, got, err)
		}
	}
}

// TestPortsAreDistinctInProcess: one process never gets a port twice.
func TestPortsAreDistinctInProcess(t *testing.T) {
	ports, err := FreePorts(50)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if seen[p] {
			t.Fatalf("port %d handed out twice: %v", p, ports)
		}
		seen[p] = true
	}
	even, err := FreePortWhere(func(p int) bool { return p%2 == 0 })
	if err != nil || even%2 != 0 {
		t.Fatalf("FreePortWhere(even) = %d, %v", even, err)
	}
}
