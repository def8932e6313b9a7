package sandbox

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kubefrontdoor/frontdoor/internal/testenv"
)

// stopGrace is how long a child gets between SIGTERM and SIGKILL.
const stopGrace = 5 * time.Second

// process is one child of the sandbox. Each child runs in its own process
// group so that stopping it also stops anything it forked, and it dies with
// us (Pdeathsig) if the test binary is killed without running cleanups.
// We never look processes up by name: only the group we started is signalled.
type process struct {
	name    string
	path    string
	args    []string
	logPath string
	// env, when set, is added to the test's environment (the ratelimit
	// service takes its settings only from there).
	env []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has been reaped
	err  error         // exit status, valid after done
}

func newProcess(name, path, logPath string, args ...string) *process {
	return &process{name: name, path: path, args: args, logPath: logPath}
}

// start launches the process, appending stdout and stderr to its log file
// (appending keeps the history of a replica that is stopped and started).
func (p *process) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil && !isClosed(p.done) {
		return fmt.Errorf("%s is already running", p.name)
	}
	logFile, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(logFile, "=== %s: %s %s\n", time.Now().Format(time.RFC3339), p.path, strings.Join(p.args, " "))
	cmd := exec.Command(p.path, p.args...)
	if len(p.env) > 0 {
		cmd.Env = append(os.Environ(), p.env...)
	}
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("starting %s: %w", p.name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done = cmd, done
	go func() {
		err := cmd.Wait()
		logFile.Close()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(done)
	}()
	return nil
}

// exited reports whether the process has exited, and its error if so.
func (p *process) exited() (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || !isClosed(p.done) {
		return false, nil
	}
	return true, p.err
}

// stop sends sig to the process group, waits up to grace for the process to
// exit, then SIGKILLs the group. Safe to call on a stopped process.
func (p *process) stop(sig syscall.Signal, grace time.Duration) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil || isClosed(done) {
		return
	}
	pgid := cmd.Process.Pid
	_ = syscall.Kill(-pgid, sig)
	_ = syscall.Kill(-pgid, syscall.SIGCONT) // a paused process must run to handle sig
	select {
	case <-done:
	case <-time.After(grace):
	}
	// Also reap whatever else is left in the group (a child of the child).
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
}

// signal sends sig to the running process's group.
func (p *process) signal(sig syscall.Signal) error {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil || isClosed(done) {
		return fmt.Errorf("%s is not running", p.name)
	}
	return syscall.Kill(-cmd.Process.Pid, sig)
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// waitFor polls check every interval until it succeeds, the process exits,
// or ctx ends. The error names the log file so a failure is one step from its
// cause.
func (p *process) waitFor(ctx context.Context, what string, interval time.Duration, check func(context.Context) error) error {
	var last error
	for {
		if exited, err := p.exited(); exited {
			return fmt.Errorf("%s exited (%w) before %s; see %s:\n%s", p.name, err, what, p.logPath, tail(p.logPath, 20))
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		last = check(cctx)
		cancel()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("timed out waiting for %s %s (last error: %w); see %s:\n%s", p.name, what, last, p.logPath, tail(p.logPath, 20))
		case <-time.After(interval):
		}
	}
}

// tail returns the last n lines of a file, for error messages.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	lines := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// RepoRoot finds the Frontdoor (product) module root by walking up from the
// working directory, past tests/go.mod, so `go test` (run in the package
// dir), `go -C tests run` and bin/bench (run in the repo root) agree on
// where bin/ and _sandbox/ are.
func RepoRoot() (string, error) { return testenv.RepoRoot() }
