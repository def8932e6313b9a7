package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

const checkGoodCluster = `apiVersion: frontdoor.dev/v1alpha1
kind: UpstreamCluster
metadata: {name: good, generation: 4}
spec:
  servers: [{endpoint: "https://10.0.0.1:6443"}]
  clientConfig: {secretRef: {namespace: fd, name: upstream}}
  secureServing: {secretRef: {namespace: fd, name: serving}}
`

const checkBadCluster = `apiVersion: frontdoor.dev/v1alpha1
kind: UpstreamCluster
metadata: {name: bad}
spec:
  servers: [{endpoint: "ftp://10.0.0.2"}]
  clientConfig: {secretRef: {namespace: fd, name: missing}}
  secureServing: {secretRef: {namespace: fd, name: serving}}
`

// writeCheckDir writes the Secrets good needs (test PEMs from the
// translator's golden inputs) plus the given files.
func writeCheckDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	pki := func(name string) string {
		b, err := os.ReadFile(filepath.Join("..", "..", "translator", "testdata", "in", "pki", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	secrets := map[string]map[string]string{
		"upstream": {"tls.crt": pki("client.crt"), "tls.key": pki("client.key"), "ca.crt": pki("ca.crt")},
		"serving":  {"tls.crt": pki("serving.crt"), "tls.key": pki("serving.key")},
	}
	for name, data := range secrets {
		b, err := yaml.Marshal(corev1.Secret{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
			ObjectMeta: metav1.ObjectMeta{Namespace: "fd", Name: name},
			StringData: data,
		})
		if err != nil {
			t.Fatal(err)
		}
		files["secret-"+name+".yaml"] = string(b)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name    string
		files   map[string]string
		wantErr string
		want    []string
	}{
		{
			name:  "valid",
			files: map[string]string{"good.yaml": checkGoodCluster},
			want: []string{
				"UpstreamCluster good (generation 4): accepted, 1 servers",
				"  Accepted=True Accepted:",
				"  ResolvedRefs=True ResolvedRefs:",
			},
		},
		{
			name:    "one rejected",
			files:   map[string]string{"good.yaml": checkGoodCluster, "bad.yaml": checkBadCluster},
			wantErr: "1 of 2 UpstreamCluster(s) rejected",
			want: []string{
				"UpstreamCluster bad (generation 0): REJECTED",
				`  Accepted=False InvalidServer: spec.servers[0].endpoint: Invalid value: "ftp://10.0.0.2": scheme must be https`,
				"  ResolvedRefs=False SecretNotFound: Secret fd/missing not found",
				"UpstreamCluster good (generation 4): accepted",
			},
		},
		{
			name:    "unparsable file",
			files:   map[string]string{"good.yaml": checkGoodCluster, "broken.yaml": "kind: UpstreamCluster\nspec: [\n"},
			wantErr: "1 file(s) do not parse",
			want:    []string{"broken.yaml: ", "UpstreamCluster good (generation 4): accepted"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeCheckDir(t, tt.files)
			var out strings.Builder
			err := runCheck([]string{"--config-dir", dir}, &out)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("runCheck: %v\n%s", err, out.String())
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("runCheck error = %v, want %q\n%s", err, tt.wantErr, out.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
}

func TestCheckNeedsConfigDir(t *testing.T) {
	if err := runCheck(nil, &strings.Builder{}); err == nil {
		t.Fatal("runCheck without --config-dir succeeded")
	}
}
