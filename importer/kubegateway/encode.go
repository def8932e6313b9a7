package kubegateway

import (
	"bytes"
	"encoding/json"
	"strings"

	"sigs.k8s.io/yaml"
)

// File is one converted object as a manifest.
type File struct {
	// Name is secret-<name>.yaml or upstreamcluster-<name>.yaml: what
	// `frontdoor serve --config-dir` and `kubectl apply -f DIR` read.
	Name string
	Data []byte
}

// Files renders every object as its own manifest, Secrets first.
func (r *Result) Files() ([]File, error) {
	var out []File
	for i := range r.Secrets {
		data, err := manifest(&r.Secrets[i])
		if err != nil {
			return nil, err
		}
		out = append(out, File{Name: "secret-" + r.Secrets[i].Name + ".yaml", Data: data})
	}
	for i := range r.Clusters {
		data, err := manifest(&r.Clusters[i])
		if err != nil {
			return nil, err
		}
		out = append(out, File{Name: "upstreamcluster-" + r.Clusters[i].Name + ".yaml", Data: data})
	}
	return out, nil
}

// Stream renders every object as one multi-document YAML stream, Secrets
// first, as `kubectl apply -f -` takes it.
func (r *Result) Stream() ([]byte, error) {
	files, err := r.Files()
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	for i, f := range files {
		if i > 0 {
			b.WriteString("---\n")
		}
		b.Write(f.Data)
	}
	return b.Bytes(), nil
}

// Report is the findings, one per line.
func (r *Result) Report() string {
	var b strings.Builder
	for _, f := range r.Findings {
		b.WriteString(f.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// manifest is an object's YAML without the fields only a server fills
// (an empty status, a null creationTimestamp), so the file reads as written
// by hand.
func manifest(obj any) ([]byte, error) {
	js, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(js, &m); err != nil {
		return nil, err
	}
	if st, ok := m["status"].(map[string]any); ok && len(st) == 0 {
		delete(m, "status")
	}
	if md, ok := m["metadata"].(map[string]any); ok && md["creationTimestamp"] == nil {
		delete(md, "creationTimestamp")
	}
	pruneEmpty(m)
	return yaml.Marshal(m)
}

// pruneEmpty drops the empty objects Go's zero values leave (healthCheck:
// {}, authentication: {x509: {}}): the CRD defaults them alike. An empty
// exempt: {} is the schema's kind and stays.
func pruneEmpty(m map[string]any) {
	for k, v := range m {
		sub, ok := v.(map[string]any)
		if !ok || k == "exempt" {
			continue
		}
		pruneEmpty(sub)
		if len(sub) == 0 {
			delete(m, k)
		}
	}
}
