package sandbox

// PIDs returns the process ID of every running child by component name
// (etcd, apiserver-1.., frontdoor, envoy), so benchmarks can read each
// one's CPU time and memory from /proc.
func (s *Sandbox) PIDs() map[string]int {
	pids := map[string]int{}
	for _, p := range s.all() {
		p.mu.Lock()
		if p.cmd != nil && p.cmd.Process != nil && !isClosed(p.done) {
			pids[p.name] = p.cmd.Process.Pid
		}
		p.mu.Unlock()
	}
	return pids
}
