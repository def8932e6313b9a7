package probe

import "testing"

// The verdict follows Envoy's active health-check rules.
func TestStateTransitions(t *testing.T) {
	type step struct {
		r           result
		healthy     bool
		changed     bool
		description string
	}
	cases := []struct {
		name                 string
		unhealthy, healthyTh uint32
		steps                []step
	}{
		{"a new server is healthy after one pass, whatever the healthy threshold", 2, 3, []step{
			{passed, true, true, "first pass"},
			{passed, true, false, "stays"},
		}},
		{"a new server that does not answer starts unhealthy", 2, 1, []step{
			{unreachable, false, true, "first probe unreachable: known, unhealthy"},
			{passed, true, true, "one pass with threshold 1"},
		}},
		{"unreachable probes count towards the unhealthy threshold", 3, 1, []step{
			{passed, true, true, ""},
			{unreachable, true, false, "1 of 3"},
			{unreachable, true, false, "2 of 3"},
			{unreachable, false, true, "3 of 3"},
		}},
		{"a pass resets the unreachable count", 2, 1, []step{
			{passed, true, true, ""},
			{unreachable, true, false, "1 of 2"},
			{passed, true, false, "reset"},
			{unreachable, true, false, "1 of 2 again"},
			{unreachable, false, true, "2 of 2"},
		}},
		{"a refusal (non-200) ejects at once", 5, 1, []step{
			{passed, true, true, ""},
			{refused, false, true, "503 from /readyz"},
		}},
		{"recovery needs healthyThreshold passes in a row", 1, 3, []step{
			{passed, true, true, ""},
			{unreachable, false, true, "threshold 1"},
			{passed, false, false, "1 of 3"},
			{passed, false, false, "2 of 3"},
			{refused, false, false, "a failure restarts the count"},
			{passed, false, false, "1 of 3"},
			{passed, false, false, "2 of 3"},
			{passed, true, true, "3 of 3"},
		}},
		{"zero thresholds act as one", 0, 0, []step{
			{passed, true, true, ""},
			{unreachable, false, true, ""},
			{passed, true, true, ""},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var s state
			for i, st := range c.steps {
				changed := s.observe(st.r, c.unhealthy, c.healthyTh)
				if !s.known || s.healthy != st.healthy || changed != st.changed {
					t.Fatalf("step %d (%s, %s): known %v healthy %v changed %v, want healthy %v changed %v",
						i, st.r, st.description, s.known, s.healthy, changed, st.healthy, st.changed)
				}
			}
		})
	}
}
