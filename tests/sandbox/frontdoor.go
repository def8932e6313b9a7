package sandbox

import (
	"context"
	"net/http"
	"syscall"
	"time"
)

// StopFrontdoor kills frontdoor (control plane and request service) with
// SIGKILL, as a crash would. Envoy keeps its last configuration and, with
// ext_authz failing closed, answers every request 503.
func (s *Sandbox) StopFrontdoor() {
	s.frontdoor.stop(syscall.SIGKILL, stopGrace)
}

// StartFrontdoor starts frontdoor again with the same flags and waits until
// it is healthy (Envoy reconnects to it on its own).
func (s *Sandbox) StartFrontdoor(ctx context.Context) error {
	if err := s.frontdoor.start(); err != nil {
		return err
	}
	fctx, cancel := waitCtx(ctx, frontdoorTimeout)
	defer cancel()
	return s.frontdoor.waitFor(fctx, "to become healthy ("+s.FrontdoorHealthURL+")", 200*time.Millisecond, func(ctx context.Context) error {
		return ExpectStatus(ctx, &http.Client{}, s.FrontdoorHealthURL, http.StatusOK)
	})
}
