package controlplane

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubefrontdoor/frontdoor/tests/sandbox"
)

// The CRD caps the TokenReview cache TTLs (cacheTTL at most 10m,
// negativeCacheTTL at most 1m): the apiserver refuses more with the
// rule's message, and accepts the caps themselves. Server-side dry runs,
// so the served configuration never changes.
func TestCRDCapsTokenCacheTTLs(t *testing.T) {
	ctx := setup(t, time.Minute)
	for _, c := range []struct {
		name, tokenReview, wantErr string
	}{
		{"cacheTTL 1h", "{cacheTTL: 1h}", "cacheTTL must be at most 10m"},
		{"cacheTTL 10m1s", "{cacheTTL: 10m1s}", "cacheTTL must be at most 10m"},
		{"negativeCacheTTL 2m", "{negativeCacheTTL: 2m}", "negativeCacheTTL must be at most 1m"},
		{"both at their caps", "{cacheTTL: 10m, negativeCacheTTL: 1m}", ""},
		{"both below", "{cacheTTL: 30s, negativeCacheTTL: 0s}", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			doc := sb.UpstreamClusterYAML("ttl-caps", sandbox.ServersYAML(sb.ReplicaURLs), nil,
				"  authentication:\n    tokenReview: "+c.tokenReview+"\n")
			p := filepath.Join(t.TempDir(), "uc.yaml")
			if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := sb.Kubectl(ctx, "create", "--dry-run=server", "-f", p)
			switch {
			case c.wantErr == "" && err != nil:
				t.Errorf("refused: %v", err)
			case c.wantErr != "" && err == nil:
				t.Errorf("accepted, want refused with %q", c.wantErr)
			case c.wantErr != "" && !strings.Contains(err.Error(), c.wantErr):
				t.Errorf("refused with %v, want %q", err, c.wantErr)
			}
		})
	}
}
