package main

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strconv"

	"github.com/kubefrontdoor/frontdoor/translator"
	"github.com/kubefrontdoor/frontdoor/xds"
)

// drainStepPath is serve's endpoint for `frontdoor drain --window`:
// POST /drain?node=ID&step=N removes drain buckets [0, N) from that
// Envoy's listener (xds.Drains). It changes what an Envoy serves, so it
// answers loopback clients only, whatever --http-address binds: the drain
// runs beside Envoy, in the same pod.
const drainStepPath = "/drain"

// drainStepResponse is the endpoint's JSON answer.
type drainStepResponse struct {
	Node    string `json:"node"`
	Step    int    `json:"step"`
	Buckets int    `json:"buckets"`
}

func drainStepHandler(drains *xds.Drains) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		if !fromLoopback(r) {
			http.Error(w, "the drain endpoint answers loopback clients only", http.StatusForbidden)
			return
		}
		node := r.URL.Query().Get("node")
		step, err := strconv.Atoi(r.URL.Query().Get("step"))
		if node == "" || err != nil {
			http.Error(w, "want ?node=<Envoy node ID>&step=<buckets removed>", http.StatusBadRequest)
			return
		}
		switch err := drains.Set(r.Context(), node, step); {
		case errors.Is(err, xds.ErrNotBucketed):
			http.Error(w, err.Error(), http.StatusConflict)
			return
		case errors.Is(err, xds.ErrUnknownNode):
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		case err != nil:
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(drainStepResponse{Node: node, Step: step, Buckets: translator.ConnectionBuckets})
	}
}

// fromLoopback reports whether r came from a loopback address.
func fromLoopback(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}
