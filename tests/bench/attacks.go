package bench

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// An attack runs until its context ends and then reports what it achieved:
// the abuse benchmark (RunAbuse) offers the valid users' load while one
// runs. Every attack is bounded: a fixed number of connections, workers or
// requests, against one loopback gateway, for the phase's window only.
type attack interface {
	// run blocks until ctx ends and every connection it opened is closed.
	run(ctx context.Context)
	// volume is what the attack achieved over elapsed (its whole run).
	volume(elapsed time.Duration) AttackVolume
}

// AttackVolume is how hard an attack actually pushed: a one-line summary
// for the table and its figures for results JSON.
type AttackVolume struct {
	Summary string             `json:"summary"`
	Figures map[string]float64 `json:"figures,omitempty"`
}

// connHolder keeps n connections open to a target, each re-dialled when the
// other side closes it (as a real slow-loris or half-open attacker does, so
// a gateway that sheds them is measured shedding them over and over), and
// calls tick on each every interval. The slow-loris and half-open attacks
// are connHolders with different dial and tick functions.
type connHolder struct {
	n        int
	interval time.Duration
	// ramp spreads the first dials over this long (not one burst of n
	// handshakes on a 2-core machine).
	ramp time.Duration
	// dial opens one connection and sends its opening bytes.
	dial func(ctx context.Context, slot int) (net.Conn, error)
	// tick sends the next trickle on c; nil sends nothing (stall).
	tick func(c net.Conn, slot int, n int) error

	// kinds, if set, name the kinds of connection slots cycle through
	// (slot i is kinds[i%len(kinds)]), so closes are reported per kind.
	kinds []string

	open, peak, opened, closedByPeer, dialErrors, ticks atomic.Int64
	mu                                                  sync.Mutex
	lifetimes                                           map[string][]time.Duration // of connections the peer closed, by kind
}

func (h *connHolder) kind(slot int) string {
	if len(h.kinds) == 0 {
		return ""
	}
	return h.kinds[slot%len(h.kinds)]
}

func (h *connHolder) run(ctx context.Context) {
	var wg sync.WaitGroup
	for slot := range h.n {
		delay := time.Duration(0)
		if h.n > 1 {
			delay = h.ramp * time.Duration(slot) / time.Duration(h.n)
		}
		wg.Go(func() {
			if !sleepCtx(ctx, delay) {
				return
			}
			for ctx.Err() == nil {
				if !h.hold(ctx, slot) {
					// Dial failed or the peer closed: back off briefly so a
					// refusing gateway is not dialled in a hot loop.
					sleepCtx(ctx, 100*time.Millisecond)
				}
			}
		})
	}
	wg.Wait()
}

// hold opens one connection and keeps it until ctx ends (true) or the peer
// closes it or a write fails (false).
func (h *connHolder) hold(ctx context.Context, slot int) bool {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	c, err := h.dial(dctx, slot)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			h.dialErrors.Add(1)
		}
		return false
	}
	h.opened.Add(1)
	now := h.open.Add(1)
	for p := h.peak.Load(); now > p && !h.peak.CompareAndSwap(p, now); p = h.peak.Load() {
	}
	defer h.open.Add(-1)
	start := time.Now()
	// The reader notices the peer closing: anything it answers (a 408, a
	// TLS alert) is read and dropped until the connection ends.
	closed := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, c)
		close(closed)
	}()
	defer func() { c.Close(); <-closed }()
	t := time.NewTicker(h.interval)
	defer t.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return true
		case <-closed:
			h.peerClosed(slot, time.Since(start))
			return false
		case <-t.C:
			if h.tick == nil {
				continue
			}
			if err := h.tick(c, slot, n); err != nil {
				h.peerClosed(slot, time.Since(start))
				return false
			}
			h.ticks.Add(1)
		}
	}
}

func (h *connHolder) peerClosed(slot int, lifetime time.Duration) {
	h.closedByPeer.Add(1)
	h.mu.Lock()
	if h.lifetimes == nil {
		h.lifetimes = map[string][]time.Duration{}
	}
	k := h.kind(slot)
	h.lifetimes[k] = append(h.lifetimes[k], lifetime)
	h.mu.Unlock()
}

// figures are the holder's counters; peak_held, the most connections open
// at once, is the attack volume the table reports. Closes by the gateway
// and their median lifetime are also given per kind (suffix _<kind>).
func (h *connHolder) figures() map[string]float64 {
	f := map[string]float64{
		"target": float64(h.n), "peak_held": float64(h.peak.Load()), "opened": float64(h.opened.Load()),
		"closed_by_gateway": float64(h.closedByPeer.Load()), "dial_errors": float64(h.dialErrors.Load()),
		"trickles_sent": float64(h.ticks.Load()),
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for k, lt := range h.lifetimes {
		lt = slices.Clone(lt)
		slices.Sort(lt)
		suffix := ""
		if k != "" {
			suffix = "_" + k
			f["closed_by_gateway"+suffix] = float64(len(lt))
		}
		f["median_lifetime_s"+suffix] = lt[len(lt)/2].Seconds()
	}
	return f
}

// closedText says what the gateway closed, per kind when there are kinds.
func (h *connHolder) closedText(f map[string]float64) string {
	if len(h.kinds) == 0 {
		if f["closed_by_gateway"] == 0 {
			return "none closed by the gateway"
		}
		return fmt.Sprintf("%.0f closed by the gateway (median after %.1fs)", f["closed_by_gateway"], f["median_lifetime_s"])
	}
	var parts []string
	for _, k := range h.kinds {
		if n := f["closed_by_gateway_"+k]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %.0f (median after %.1fs)", k, n, f["median_lifetime_s_"+k]))
		} else {
			parts = append(parts, k+" none")
		}
	}
	return "closed by the gateway: " + strings.Join(parts, ", ")
}

// slowLoris holds n TLS connections to the gateway (HTTP/1.1 by ALPN, no
// client certificate: an anonymous attacker), each of which sends a request
// line and one header, then trickles one more header byte every interval
// and never ends its headers.
type slowLoris struct{ connHolder }

func newSlowLoris(target Client, n int, interval, ramp time.Duration) (*slowLoris, error) {
	u, err := url.Parse(target.URL)
	if err != nil {
		return nil, err
	}
	cfg, err := tlsConfig(Client{CAPEM: target.CAPEM, ServerName: target.ServerName})
	if err != nil {
		return nil, err
	}
	if cfg.ServerName == "" {
		cfg.ServerName = u.Hostname()
	}
	cfg.NextProtos = []string{"http/1.1"}
	opening := fmt.Sprintf("GET /api/v1/namespaces/%s/configmaps HTTP/1.1\r\nHost: %s\r\nUser-Agent: bench-abuse/slowloris\r\n", ListNamespace, cfg.ServerName)
	// One header byte at a time, forever: the request never completes.
	const trickle = "X-Slow: abcdefghijklmnopqrstuvwxyz0123456789\r\n"
	s := &slowLoris{connHolder{n: n, interval: interval, ramp: ramp}}
	s.dial = func(ctx context.Context, _ int) (net.Conn, error) {
		d := tls.Dialer{Config: cfg}
		c, err := d.DialContext(ctx, "tcp", u.Host)
		if err != nil {
			return nil, err
		}
		if _, err := io.WriteString(c, opening); err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	}
	s.tick = func(c net.Conn, _ int, n int) error {
		_, err := c.Write([]byte{trickle[n%len(trickle)]})
		return err
	}
	return s, nil
}

func (s *slowLoris) volume(time.Duration) AttackVolume {
	f := s.figures()
	return AttackVolume{Figures: f, Summary: fmt.Sprintf("%.0f/%d TLS conns held (peak), %.0f opened, %s",
		f["peak_held"], s.n, f["opened"], s.closedText(f))}
}

// halfOpen holds n TCP connections to the gateway's TLS port that never
// finish a handshake, a third of each kind: "silent" sends nothing,
// "partial" sends the first half of a real ClientHello (with the gateway's
// SNI) and stalls, "hello" sends the whole ClientHello, reads whatever the
// gateway answers and never sends its own Finished (past the TLS
// inspector, only a handshake timeout can end it).
type halfOpen struct {
	connHolder
	hello []byte
}

// halfOpenKinds are the kinds of stalled handshake, in slot order.
var halfOpenKinds = []string{"silent", "partial", "hello"}

func newHalfOpen(target Client, n int, ramp time.Duration) (*halfOpen, error) {
	u, err := url.Parse(target.URL)
	if err != nil {
		return nil, err
	}
	sni := target.ServerName
	if sni == "" {
		sni = u.Hostname()
	}
	hello, err := clientHello(sni)
	if err != nil {
		return nil, err
	}
	h := &halfOpen{connHolder: connHolder{n: n, interval: time.Second, ramp: ramp, kinds: halfOpenKinds}, hello: hello}
	h.dial = func(ctx context.Context, slot int) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", u.Host)
		if err != nil {
			return nil, err
		}
		var opening []byte
		switch h.kind(slot) {
		case "partial":
			opening = hello[:len(hello)/2]
		case "hello":
			opening = hello
		}
		if _, err := c.Write(opening); err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	}
	return h, nil
}

func (h *halfOpen) volume(time.Duration) AttackVolume {
	f := h.figures()
	return AttackVolume{Figures: f, Summary: fmt.Sprintf("%.0f/%d handshakes stalled (peak; silent, half a ClientHello, a whole ClientHello), %.0f opened, %s",
		f["peak_held"], h.n, f["opened"], h.closedText(f))}
}

// clientHello is the first TLS record Go's client sends to a server named
// sni: a real ClientHello, captured over a pipe (the handshake never
// completes).
func clientHello(sni string) ([]byte, error) {
	client, server := net.Pipe()
	defer server.Close()
	go func() {
		c := tls.Client(client, &tls.Config{ServerName: sni, InsecureSkipVerify: true, NextProtos: []string{"h2", "http/1.1"}}) //nolint:gosec // never completes: only its first record is captured
		_ = c.Handshake()
		client.Close()
	}()
	_ = server.SetReadDeadline(time.Now().Add(5 * time.Second))
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(server, hdr); err != nil {
		return nil, fmt.Errorf("capturing a ClientHello: %w", err)
	}
	if hdr[0] != 0x16 {
		return nil, fmt.Errorf("capturing a ClientHello: record type %#x, not a handshake", hdr[0])
	}
	body := make([]byte, int(hdr[3])<<8|int(hdr[4]))
	if _, err := io.ReadFull(server, body); err != nil {
		return nil, fmt.Errorf("capturing a ClientHello: %w", err)
	}
	return append(hdr, body...), nil
}

// tokenFlood sends GETs with a fresh random bearer token each, over HTTP/2
// and no client certificate, from workers that each send as soon as their
// last answer came: every token is one the gateway has never seen, so no
// cache of reviewed tokens helps.
type tokenFlood struct {
	client  Client
	workers int

	sent, transportErrs atomic.Int64
	mu                  sync.Mutex
	statuses            map[int]int
}

func newTokenFlood(target Client, workers int) *tokenFlood {
	c := target
	c.CertPEM, c.KeyPEM, c.Token = nil, nil, ""
	return &tokenFlood{client: c, workers: workers, statuses: map[int]int{}}
}

func (f *tokenFlood) run(ctx context.Context) {
	clients, err := f.client.transports(4)
	if err != nil {
		f.transportErrs.Add(1)
		return
	}
	defer closeAll(clients)
	for _, hc := range clients {
		hc.Timeout = 10 * time.Second
	}
	target := f.client.URL + "/api/v1/namespaces/" + ListNamespace + "/configmaps/cm-0"
	var wg sync.WaitGroup
	for w := range f.workers {
		hc := clients[w%len(clients)]
		wg.Go(func() {
			for ctx.Err() == nil {
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
				if err != nil {
					return
				}
				req.Header.Set("Authorization", "Bearer "+randomToken())
				f.sent.Add(1)
				resp, err := hc.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						f.transportErrs.Add(1)
						sleepCtx(ctx, 10*time.Millisecond)
					}
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				f.mu.Lock()
				f.statuses[resp.StatusCode]++
				f.mu.Unlock()
			}
		})
	}
	wg.Wait()
}

func (f *tokenFlood) volume(elapsed time.Duration) AttackVolume {
	f.mu.Lock()
	defer f.mu.Unlock()
	fig := map[string]float64{"workers": float64(f.workers), "sent": float64(f.sent.Load()), "transport_errors": float64(f.transportErrs.Load())}
	if elapsed > 0 {
		fig["tokens_per_s"] = float64(f.sent.Load()) / elapsed.Seconds()
	}
	for code, n := range f.statuses {
		fig[fmt.Sprintf("status_%d", code)] = float64(n)
	}
	return AttackVolume{Figures: fig, Summary: fmt.Sprintf("%.0f random tokens/s (%d workers), answers %s",
		fig["tokens_per_s"], f.workers, statusText(f.statuses, f.transportErrs.Load()))}
}

// statusText is "401×1234, 503×5, errors×2", by code.
func statusText(statuses map[int]int, errs int64) string {
	var codes []int
	for c := range statuses {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	var parts []string
	for _, c := range codes {
		parts = append(parts, fmt.Sprintf("%d×%d", c, statuses[c]))
	}
	if errs > 0 {
		parts = append(parts, fmt.Sprintf("errors×%d", errs))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// randomToken looks like a ServiceAccount JWT (header.claims.signature,
// base64url) but is random: a token format check alone cannot reject it,
// and it was never issued, so each one costs the gateway a review.
func randomToken() string {
	part := func(n int) string {
		b := make([]byte, n)
		_, _ = rand.Read(b)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	header := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RS256","kid":"` + part(16) + `"}`))
	return header + "." + part(180) + "." + part(256)
}

// hungRequests keeps n requests in flight, as a valid (x509) user, to an
// UpstreamCluster whose server never answers them (a blackHole): a client
// of pods/proxy to a pod that hangs. A request that ends anyway (an answer
// or an error from the gateway) is counted and sent again.
type hungRequests struct {
	client Client
	n      int
	path   string

	inFlight, peak, started, ended atomic.Int64
	mu                             sync.Mutex
	statuses                       map[int]int
	errs                           int64
}

func newHungRequests(target Client, n int) *hungRequests {
	return &hungRequests{client: target, n: n, statuses: map[int]int{},
		path: "/api/v1/namespaces/default/pods/web-0/proxy/hang"}
}

func (h *hungRequests) run(ctx context.Context) {
	// Enough connections that the gateway's per-connection stream limit
	// is never what holds the attack back.
	clients, err := h.client.transports(max(1, h.n/64))
	if err != nil {
		h.mu.Lock()
		h.errs++
		h.mu.Unlock()
		return
	}
	defer closeAll(clients)
	for _, hc := range clients {
		hc.Timeout = 0 // held until the phase ends
	}
	var wg sync.WaitGroup
	for i := range h.n {
		hc := clients[i%len(clients)]
		wg.Go(func() {
			if !sleepCtx(ctx, time.Duration(i)*time.Millisecond) {
				return
			}
			for ctx.Err() == nil {
				h.once(ctx, hc)
			}
		})
	}
	wg.Wait()
}

func (h *hungRequests) once(ctx context.Context, hc *http.Client) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.client.URL+h.path, nil)
	if err != nil {
		return
	}
	h.started.Add(1)
	now := h.inFlight.Add(1)
	for p := h.peak.Load(); now > p && !h.peak.CompareAndSwap(p, now); p = h.peak.Load() {
	}
	resp, err := hc.Do(req)
	h.inFlight.Add(-1)
	if ctx.Err() != nil {
		if resp != nil {
			resp.Body.Close()
		}
		return
	}
	h.ended.Add(1)
	h.mu.Lock()
	if err != nil {
		h.errs++
	} else {
		h.statuses[resp.StatusCode]++
	}
	h.mu.Unlock()
	if resp != nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	sleepCtx(ctx, 100*time.Millisecond)
}

func (h *hungRequests) volume(time.Duration) AttackVolume {
	h.mu.Lock()
	defer h.mu.Unlock()
	fig := map[string]float64{"target": float64(h.n), "peak_in_flight": float64(h.peak.Load()),
		"started": float64(h.started.Load()), "ended_before_phase_end": float64(h.ended.Load())}
	ended := "none ended early"
	if h.ended.Load() > 0 {
		ended = fmt.Sprintf("%d ended early: %s", h.ended.Load(), statusText(h.statuses, h.errs))
	}
	return AttackVolume{Figures: fig, Summary: fmt.Sprintf("%.0f/%d requests hung (peak in flight), %s", fig["peak_in_flight"], h.n, ended)}
}

// tlsConfig is the client TLS config of c (its CA, certificate and SNI).
func tlsConfig(c Client) (*tls.Config, error) {
	clients, err := c.transports(1)
	if err != nil {
		return nil, err
	}
	tr, ok := clients[0].Transport.(*http.Transport)
	if !ok {
		return nil, errors.New("unexpected transport type")
	}
	return tr.TLSClientConfig.Clone(), nil
}

// sleepCtx sleeps d, or until ctx ends (false).
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
