package kubegateway

import "fmt"

// FindingKind says what happened to a field.
type FindingKind string

// Finding kinds.
const (
	// Converted: carried with the same meaning in another form (a misspelled
	// name read as meant, a negation spelled out, a rule split in two).
	Converted FindingKind = "converted"
	// NotCarried: dropped, with why; the routing may differ there.
	NotCarried FindingKind = "not carried"
	// Added: something Frontdoor needs to behave as KubeGateway did.
	Added FindingKind = "added"
)

// Finding is one line of the report: a field of one object and what the
// conversion did with it.
type Finding struct {
	// Object is the KubeGateway UpstreamCluster's name.
	Object string
	// Field is the field path in the KubeGateway object.
	Field string
	Kind  FindingKind
	// Detail says what was done and why.
	Detail string
}

func (f Finding) String() string {
	return fmt.Sprintf("%s: %s: %s: %s", f.Object, f.Field, f.Kind, f.Detail)
}

// reporter collects the findings of one object.
type reporter struct {
	object   string
	findings []Finding
}

func (r *reporter) add(field string, kind FindingKind, format string, args ...any) {
	r.findings = append(r.findings, Finding{Object: r.object, Field: field, Kind: kind, Detail: fmt.Sprintf(format, args...)})
}
