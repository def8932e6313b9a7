package probe

// result is the outcome of one probe.
type result int

const (
	// passed: the server answered 200.
	passed result = iota
	// refused: the server answered another status. It is alive and says
	// it is not ready (a replica shutting down answers /readyz 503), so,
	// as in Envoy's HTTP checker, the server is unhealthy at once.
	refused
	// unreachable: no answer (connect or TLS failure, reset, timeout).
	// It counts towards the unhealthy threshold, as a network blip
	// should not eject a server.
	unreachable
)

func (r result) String() string {
	switch r {
	case passed:
		return "success"
	case refused:
		return "refused"
	default:
		return "unreachable"
	}
}

// state is one server's verdict and the counts that move it, with
// Envoy's active health-check rules: a new server is unhealthy until a
// first probe passes (one pass suffices, whatever the healthy threshold);
// a healthy server leaves after unhealthyThreshold unreachable probes in a
// row, or at once when it refuses; an unhealthy server returns after
// healthyThreshold passes in a row.
type state struct {
	known   bool // a probe has completed
	healthy bool
	fails   uint32 // unreachable probes in a row while healthy
	passes  uint32 // passes in a row while unhealthy
}

// observe applies one probe's result and reports whether the verdict
// (including "known") changed.
func (s *state) observe(r result, unhealthyThreshold, healthyThreshold uint32) bool {
	if !s.known {
		s.known, s.healthy, s.fails, s.passes = true, r == passed, 0, 0
		return true
	}
	if s.healthy {
		s.passes = 0
		switch r {
		case passed:
			s.fails = 0
			return false
		case refused:
			s.healthy, s.fails = false, 0
			return true
		default:
			s.fails++
			if s.fails >= max(unhealthyThreshold, 1) {
				s.healthy, s.fails = false, 0
				return true
			}
			return false
		}
	}
	s.fails = 0
	if r != passed {
		s.passes = 0
		return false
	}
	s.passes++
	if s.passes >= max(healthyThreshold, 1) {
		s.healthy, s.passes = true, 0
		return true
	}
	return false
}
