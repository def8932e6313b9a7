package xds

import "sync"

// ackTracker follows, per ADS stream, which snapshot version Envoy has
// acknowledged: a response's nonce maps to the snapshot version it carried
// (go-control-plane sets it as system_version_info); a later request that
// echoes the nonce without an error ACKs it. A stream is at version V when
// its last ACK carried V and no response sent to it awaits an answer.
type ackTracker struct {
	mu      sync.Mutex
	streams map[int64]*streamAcks
	changed chan struct{}
}

type streamAcks struct {
	pending map[string]string // nonce → version
	acked   string
}

func newAckTracker() *ackTracker {
	return &ackTracker{streams: map[int64]*streamAcks{}, changed: make(chan struct{}, 1)}
}

func (a *ackTracker) stream(id int64) *streamAcks {
	s := a.streams[id]
	if s == nil {
		s = &streamAcks{pending: map[string]string{}}
		a.streams[id] = s
	}
	return s
}

func (a *ackTracker) sent(id int64, nonce, version string) {
	if nonce == "" {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.stream(id).pending[nonce] = version
}

// answered records a request echoing nonce; nack is true when it carries
// an error (Envoy rejected the response and keeps its previous config).
func (a *ackTracker) answered(id int64, nonce string, nack bool) {
	if nonce == "" {
		return
	}
	a.mu.Lock()
	s := a.stream(id)
	v, ok := s.pending[nonce]
	delete(s.pending, nonce)
	moved := false
	if ok && !nack && len(s.pending) == 0 && s.acked != v {
		s.acked, moved = v, true
	}
	a.mu.Unlock()
	if moved {
		a.notify()
	}
}

func (a *ackTracker) closed(id int64) {
	a.mu.Lock()
	delete(a.streams, id)
	a.mu.Unlock()
	a.notify()
}

func (a *ackTracker) notify() {
	select {
	case a.changed <- struct{}{}:
	default:
	}
}

// count returns how many streams are at version, and how many are open. A
// node's snapshot version is the translated version with its views' tags
// (NodeVersion): a stream is at version when its acknowledged snapshot was
// made from it.
func (a *ackTracker) count(version string) (at, open int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, s := range a.streams {
		open++
		if baseVersion(s.acked) == version && len(s.pending) == 0 {
			at++
		}
	}
	return at, open
}
