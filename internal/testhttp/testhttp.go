// Package testhttp sends one HTTP request for a test and reads the whole
// answer. The in-process module's tests (inprocess/abi) and the end-to-end
// suites (tests/e2e) both talk to a real Envoy this way, with headers as a
// client spells them. It is for tests only; no product (non-test) package
// may import it.
//
// It imports only the standard library.
package testhttp

import (
	"context"
	"io"
	"net/http"
	"testing"
)

// Do sends method url with header h and body (nil: none) through client
// and returns the response with its body, read whole and closed. h goes
// into the request by direct map access, which keeps non-canonical names
// as spelled. A transport error fails tb; any status is an answer.
func Do(tb testing.TB, ctx context.Context, client *http.Client, method, url string, h http.Header, body io.Reader) (*http.Response, []byte) {
	tb.Helper()
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		tb.Fatal(err)
	}
	for k, vs := range h {
		req.Header[k] = append(req.Header[k], vs...)
	}
	resp, err := client.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return resp, b
}
