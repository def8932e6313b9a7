package kubegateway

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strconv"
	"strings"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// document is one KubeGateway UpstreamCluster read from the input, with what
// reading it found (quirks it repaired, fields it does not know).
type document struct {
	uc       kgUpstreamCluster
	findings []Finding
}

// decode splits a YAML stream (documents separated by ---; a v1 List's
// items are taken one by one) into KubeGateway UpstreamClusters. Only YAML
// that does not parse is an error: another kind, or a document that does
// not decode as an UpstreamCluster, is a finding and is skipped.
func decode(data []byte) ([]document, []Finding, error) {
	var docs []document
	var skipped []Finding
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for n := 1; ; n++ {
		raw, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("document %d: %w", n, err)
		}
		var v any
		if err := yaml.Unmarshal(raw, &v); err != nil {
			return nil, nil, fmt.Errorf("document %d: %w", n, err)
		}
		if v == nil {
			continue // empty document or only comments
		}
		obj, ok := v.(map[string]any)
		if !ok {
			skipped = append(skipped, Finding{Object: fmt.Sprintf("(document %d)", n), Field: "document", Kind: NotCarried, Detail: "not an object; skipped"})
			continue
		}
		objs := []map[string]any{obj}
		if items, ok := obj["items"].([]any); ok && strings.HasSuffix(str(obj["kind"]), "List") {
			objs = objs[:0]
			for _, it := range items {
				if m, ok := it.(map[string]any); ok {
					objs = append(objs, m)
				}
			}
		}
		for i, o := range objs {
			where := "document " + strconv.Itoa(n)
			if len(objs) > 1 || o["kind"] != obj["kind"] {
				where += " item " + strconv.Itoa(i)
			}
			d, f := decodeObject(o, where)
			if d == nil {
				skipped = append(skipped, f...)
				continue
			}
			docs = append(docs, *d)
		}
	}
	return docs, skipped, nil
}

func str(v any) string { s, _ := v.(string); return s }

// decodeObject decodes one object, repairing the quirks of KubeGateway's
// documentation that users copy: flow-control schemas placed directly under
// spec.flowControl (its quick start's "Full Quote", which KubeGateway's own
// apiserver refuses to decode) become spec.flowControl.flowControlSchemas.
// The misspelled upsteamSubset is a field of its own (kgDispatchPolicy).
func decodeObject(o map[string]any, where string) (*document, []Finding) {
	name := ""
	if md, ok := o["metadata"].(map[string]any); ok {
		name = str(md["name"])
	}
	name = strings.ToLower(name) // KubeGateway lowercases cluster names
	if name == "" {
		name = "(" + where + ")"
	}
	if av, kind := str(o["apiVersion"]), str(o["kind"]); av != APIVersion || kind != "UpstreamCluster" {
		return nil, []Finding{{Object: name, Field: "kind", Kind: NotCarried,
			Detail: fmt.Sprintf("%s %s is not a %s UpstreamCluster; skipped", av, kind, APIVersion)}}
	}
	var d document
	if spec, ok := o["spec"].(map[string]any); ok {
		if list, ok := spec["flowControl"].([]any); ok {
			spec["flowControl"] = map[string]any{"flowControlSchemas": list}
			d.findings = append(d.findings, Finding{Object: name, Field: "spec.flowControl", Kind: Converted,
				Detail: "schemas listed directly under flowControl (as KubeGateway's quick start \"Full Quote\" shows them) read as flowControl.flowControlSchemas"})
		}
	}
	// metadata is Kubernetes' own (uid, resourceVersion, ...): only name,
	// labels and annotations are read, and reported where they matter.
	walk := make(map[string]any, len(o))
	for k, v := range o {
		if k != "metadata" {
			walk[k] = v
		}
	}
	for _, p := range unknownFields(walk, reflect.TypeFor[kgUpstreamCluster](), "") {
		d.findings = append(d.findings, Finding{Object: name, Field: p, Kind: NotCarried,
			Detail: "not a field of KubeGateway's UpstreamCluster (its apiserver dropped it too)"})
	}
	js, err := json.Marshal(o)
	if err == nil {
		err = json.Unmarshal(js, &d.uc)
	}
	if err != nil {
		return nil, []Finding{{Object: name, Field: "spec", Kind: NotCarried, Detail: "does not decode as a KubeGateway UpstreamCluster: " + err.Error() + "; skipped"}}
	}
	d.uc.Metadata.Name = strings.ToLower(d.uc.Metadata.Name) // KubeGateway lowercases cluster names
	if d.uc.Metadata.Name == "" {
		return nil, []Finding{{Object: name, Field: "metadata.name", Kind: NotCarried, Detail: "no name; skipped"}}
	}
	return &d, d.findings
}

// unknownFields lists the paths of keys in v that t (by json tags) does
// not have, sorted, so a typo is reported where it is instead of vanishing.
func unknownFields(v any, t reflect.Type, path string) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var out []string
	switch t.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			return nil // a type error, which decoding reports
		}
		fields := map[string]reflect.Type{}
		for i := range t.NumField() {
			f := t.Field(i)
			tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if tag != "" && tag != "-" {
				fields[tag] = f.Type
			}
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			p := join(path, k)
			ft, ok := fields[k]
			if !ok {
				out = append(out, p)
				continue
			}
			out = append(out, unknownFields(m[k], ft, p)...)
		}
	case reflect.Slice:
		if items, ok := v.([]any); ok {
			for i, it := range items {
				out = append(out, unknownFields(it, t.Elem(), path+"["+strconv.Itoa(i)+"]")...)
			}
		}
	}
	return out
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}
