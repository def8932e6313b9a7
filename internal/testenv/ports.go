package testenv

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// Test servers (etcd, the apiservers, Envoy, frontdoor serve) are told a
// port, so a test must choose one that stays free until the server binds
// it. Listening on port 0 and closing is not enough when `go test ./...`
// runs packages side by side: the kernel hands the same just-closed port to
// the next process that listens on port 0, and any outgoing connection may
// take it as its source port (both seen in CI as "address already in use").
// So ports come from below the kernel's ephemeral range, where the kernel
// never picks, and each is reserved across processes by an fcntl record
// lock on its byte of one shared file, held until the process exits (the
// kernel drops the locks of a process that dies, so nothing goes stale).

// lowestTestPort is where the range starts: above the well-known and most
// registered service ports a developer's machine may be running.
const lowestTestPort = 15000

// reserved is this process's share of the port range.
var reserved struct {
	sync.Mutex
	once   sync.Once
	err    error
	lock   *os.File // never closed: closing any descriptor drops every lock
	lo, hi int      // the range, [lo, hi)
	next   int
	handed map[int]bool
}

// FreePort returns a loopback TCP port that no test process was given and
// nothing listened on a moment ago, reserved for this process, for a real
// server a test configures by port rather than by a listener it could hand
// over.
func FreePort() (int, error) { return FreePortWhere(nil) }

// MustFreePort is FreePort for a test: it fails tb when no port is left.
func MustFreePort(tb testing.TB) int {
	tb.Helper()
	p, err := FreePort()
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// FreePorts returns n distinct ports as FreePort does.
func FreePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		p, err := FreePort()
		if err != nil {
			return nil, err
		}
		ports = append(ports, p)
	}
	return ports, nil
}

// FreePortWhere is FreePort for a port that ok accepts (nil: any), for a
// test that needs a port with some property, e.g. a client source port
// that lands in a given bucket.
func FreePortWhere(ok func(port int) bool) (int, error) {
	reserved.once.Do(initReserved)
	if reserved.err != nil {
		return 0, reserved.err
	}
	reserved.Lock()
	defer reserved.Unlock()
	size := reserved.hi - reserved.lo
	for range size {
		p := reserved.next
		reserved.next++
		if reserved.next == reserved.hi {
			reserved.next = reserved.lo
		}
		if reserved.handed[p] || (ok != nil && !ok(p)) {
			continue
		}
		reserved.handed[p] = true // taken or not, do not try it again
		if !lockPort(p) {
			continue // another test process has it
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue // some other program listens there
		}
		_ = l.Close()
		return p, nil
	}
	return 0, fmt.Errorf("no free test port left in %d-%d (%d handed out in this process): "+
		"lower the number of parallel test processes (go test -p) or widen the range below the ephemeral one "+
		"(/proc/sys/net/ipv4/ip_local_port_range)", reserved.lo, reserved.hi-1, len(reserved.handed))
}

func initReserved() {
	lo, hi, err := testPortRange()
	if err != nil {
		reserved.err = err
		return
	}
	path := filepath.Join(os.TempDir(), "frontdoor-test-ports.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o666) //nolint:gosec // shared by the user's test processes on purpose
	if err != nil {
		reserved.err = fmt.Errorf("test ports: opening the reservation file: %w", err)
		return
	}
	reserved.lock, reserved.lo, reserved.hi = f, lo, hi
	// Start each process somewhere else in the range so concurrent test
	// processes rarely walk over each other's locks.
	reserved.next = lo + rand.IntN(hi-lo) //nolint:gosec // spreading, not security
	reserved.handed = map[int]bool{}
}

// lockPort takes the process-wide lock on port p's byte of the shared file;
// false if another process holds it.
func lockPort(p int) bool {
	lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: 0, Start: int64(p), Len: 1}
	for {
		err := syscall.FcntlFlock(reserved.lock.Fd(), syscall.F_SETLK, &lk)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		return err == nil
	}
}

// testPortRange is [lowestTestPort, start of the ephemeral range), or the
// ports above the ephemeral range when that is the larger gap.
func testPortRange() (lo, hi int, err error) {
	data, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, 0, fmt.Errorf("test ports: reading the kernel's ephemeral range: %w", err)
	}
	fields := strings.Fields(string(data))
	if len(fields) != 2 {
		return 0, 0, fmt.Errorf("test ports: unexpected ip_local_port_range %q", data)
	}
	ephLo, err1 := strconv.Atoi(fields[0])
	ephHi, err2 := strconv.Atoi(fields[1])
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("test ports: unexpected ip_local_port_range %q", data)
	}
	below, above := ephLo-lowestTestPort, 65535-ephHi
	switch {
	case below >= above && below >= 1000:
		return lowestTestPort, ephLo, nil
	case above >= 1000:
		return ephHi + 1, 65536, nil
	}
	return 0, 0, fmt.Errorf("test ports: the ephemeral range %d-%d leaves fewer than 1000 ports for test servers; "+
		"narrow it (sysctl net.ipv4.ip_local_port_range)", ephLo, ephHi)
}
