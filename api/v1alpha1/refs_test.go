package v1alpha1

import (
	"fmt"
	"reflect"
	"testing"
)

// Every SecretReference field of the spec, however deep (through structs
// and pointers), is in SecretRefs: a reference the source does not read is
// a Secret the translator never sees, so the cluster is rejected in
// Kubernetes mode although its Secret exists.
func TestSecretRefsNamesEveryField(t *testing.T) {
	var spec UpstreamClusterSpec
	var want []string
	n := 0
	var fill func(v reflect.Value, path string)
	fill = func(v reflect.Value, path string) {
		switch {
		case v.Type() == reflect.TypeFor[SecretReference]():
			n++
			v.Set(reflect.ValueOf(SecretReference{Namespace: "ns", Name: fmt.Sprintf("s%d", n)}))
			want = append(want, fmt.Sprintf("s%d (%s)", n, path))
		case v.Kind() == reflect.Pointer && v.Type().Elem().Kind() == reflect.Struct:
			v.Set(reflect.New(v.Type().Elem()))
			fill(v.Elem(), path)
		case v.Kind() == reflect.Struct:
			for i := range v.NumField() {
				if f := v.Type().Field(i); f.IsExported() {
					fill(v.Field(i), path+"."+f.Name)
				}
			}
		}
	}
	fill(reflect.ValueOf(&spec).Elem(), "spec")
	got := map[string]bool{}
	for _, r := range spec.SecretRefs() {
		got[r.Name] = true
	}
	for i, w := range want {
		if !got[fmt.Sprintf("s%d", i+1)] {
			t.Errorf("SecretRefs misses %s", w)
		}
	}
	if len(want) < 5 {
		t.Errorf("found only %d SecretReference fields: the walk is broken", len(want))
	}
}
