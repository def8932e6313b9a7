package abi

import "testing"

// TestRetryVerdictConfig: only the registered filter_name gets the C writer's
// handle, which is never a Go config handle and survives destroy; a second
// registration is a programming error. The writer itself runs in the real
// Envoy in the translator's TestRetriesOnlyRefusalsBeforeExecution.
func TestRetryVerdictConfig(t *testing.T) {
	if _, ok := verdictConfig("retry_verdict"); ok {
		t.Fatal("a verdict config before RegisterRetryVerdict")
	}
	RegisterRetryVerdict("retry_verdict", "x-test-verdict", "x-test-attempt")
	h, ok := verdictConfig("retry_verdict")
	if !ok || h == 0 || !isVerdictConfig(h) {
		t.Fatalf("verdictConfig = %#x, %v; want the writer's handle", h, ok)
	}
	if again, _ := verdictConfig("retry_verdict"); again != h {
		t.Errorf("a second config got %#x; want the same handle %#x", again, h)
	}
	if _, ok := verdictConfig("request_service"); ok {
		t.Error("another filter_name got the verdict writer")
	}
	if newConfigHandle("retry_verdict", nil) != h {
		t.Error("newConfigHandle did not hand out the writer's handle")
	}
	destroyConfigHandle(h) // must not treat it as a runtime/cgo.Handle
	if isVerdictConfig(1) || isVerdictConfig(0) {
		t.Error("a Go handle taken for the verdict writer")
	}
	defer func() {
		if recover() == nil {
			t.Error("a second RegisterRetryVerdict did not panic")
		}
	}()
	RegisterRetryVerdict("retry_verdict", "x-test-verdict", "x-test-attempt")
}
