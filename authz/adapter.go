package authz

import (
	"context"
	"strings"

	"github.com/kubefrontdoor/frontdoor/envoy"
)

// What every adapter between Envoy and the pipeline shares. Envoy can ask
// the request service three ways (spec.requestService): ext_authz (this
// package's extauthz.go), ext_proc (package extproc) and in process, as a
// dynamic module inside Envoy (package inprocess). Each adapter only
// converts: Envoy's headers into a Request (RequestBuilder), the Decision
// back into header operations (Decision.Apply) and access-log fields
// (Decision.EachAccessLogField). What a request means is decided once, here.

// Checker is the pipeline as adapters see it.
type Checker interface {
	// Check decides req, calling TokenReview or SubjectAccessReview on a
	// cache miss.
	Check(ctx context.Context, req *Request) Decision
	// TryCheck decides req only if that needs no network call (every
	// credential it needs is cached); ok=false means "call Check off the
	// hot path". An in-process adapter calls it on Envoy's worker thread.
	TryCheck(req *Request) (d Decision, ok bool)
}

var _ Checker = (*Pipeline)(nil)

// RequestBuilder fills a Request from the header fields of an HTTP request
// as Envoy lists them: pseudo-headers included, one call per field.
type RequestBuilder struct {
	req Request
}

// NewRequestBuilder starts the Request of one request for cluster; n is a
// hint of how many header fields follow.
func NewRequestBuilder(cluster string, n int) *RequestBuilder {
	return &RequestBuilder{req: Request{Cluster: cluster, Headers: make(map[string]string, n)}}
}

// Add records one header field. Names are lowercased; repeated fields are
// comma-joined, as Envoy's ext_authz delivers them. The client certificate
// comes from x-forwarded-client-cert, which only Envoy's HCM sets in the
// modes that read it (forward_client_cert_details SANITIZE_SET: a client's
// own copy never survives); it is not kept as a header.
func (b *RequestBuilder) Add(name, value string) {
	if hasUpper(name) {
		name = strings.ToLower(name)
	}
	switch name {
	case ":method":
		b.req.Method = value
	case ":path":
		b.req.Path = value
	case envoy.HeaderClientCert:
		b.req.PeerCertificate = XFCCCert(value)
		return
	}
	if old, ok := b.req.Headers[name]; ok {
		value = old + "," + value
	}
	b.req.Headers[name] = value
}

// Request returns the Request built so far.
func (b *RequestBuilder) Request() *Request { return &b.req }

// XFCCCert returns the Cert value of the (single, Envoy-set) element of an
// x-forwarded-client-cert header: the URL-encoded PEM of the client's
// certificate, the form ext_authz reports it in. Empty when absent.
func XFCCCert(xfcc string) string {
	if xfcc == "" {
		return ""
	}
	// SANITIZE_SET leaves exactly one element; never trust a second.
	elem, _, _ := strings.Cut(xfcc, ",")
	for kv := range strings.SplitSeq(elem, ";") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), "Cert") {
			continue
		}
		// Returned as is: the x509 authenticator decodes it only on a cache
		// miss, and refuses (and remembers) a value that does not decode.
		return strings.Trim(strings.TrimSpace(v), `"`)
	}
	return ""
}

// Mutator changes the headers of a request on its way upstream.
type Mutator interface {
	// RemoveHeader removes every field of name.
	RemoveHeader(name string)
	// SetHeader replaces every field of name with one.
	SetHeader(name, value string)
	// AppendHeader adds one more field of name.
	AppendHeader(name, value string)
}

// Apply applies an allowed decision's header plan through m, so that no
// transport's own order of removals and additions can matter: a name that
// is set is not also removed; instead its first field replaces the
// client's fields and the others are appended, each value its own field
// (one Impersonate-Group per group, as kube-apiserver requires). The
// forwarded client certificate is always removed: it was only for the
// request service.
func (d *Decision) Apply(m Mutator) {
	for _, name := range d.RemoveHeaders {
		if !d.sets(name) {
			m.RemoveHeader(name)
		}
	}
	m.RemoveHeader(envoy.HeaderClientCert)
	for i, h := range d.SetHeaders {
		if firstOfName(d.SetHeaders[:i], h.Name) {
			m.SetHeader(h.Name, h.Value)
		} else {
			m.AppendHeader(h.Name, h.Value)
		}
	}
}

// sets reports whether the plan sets a field of name.
func (d *Decision) sets(name string) bool {
	for _, h := range d.SetHeaders {
		if strings.EqualFold(h.Name, name) {
			return true
		}
	}
	return false
}

func firstOfName(before []Header, name string) bool {
	for _, h := range before {
		if strings.EqualFold(h.Name, name) {
			return false
		}
	}
	return true
}

// EachAccessLogField calls str or num for each field Envoy's access log
// learns about the request (envoy.AccessLogFields): the Kubernetes
// coordinates, the user name, the requestor (who authenticated, also on a
// refused impersonation or a rejection), the group count, the rule and
// the decision.
// Nothing in it is a credential: the user name is what kube-apiserver's own
// audit log records, and groups are only counted. Strings are valid UTF-8
// (a path may decode to any bytes; protobuf and JSON need UTF-8).
func (d *Decision) EachAccessLogField(str func(key, value string), num func(key string, value float64)) {
	s := func(k, v string) { str(k, strings.ToValidUTF8(v, "\uFFFD")) }
	s(envoy.AccessLogDecision, string(d.Outcome))
	if d.Allowed() {
		s(envoy.AccessLogUser, d.User)
		num(envoy.AccessLogGroups, float64(d.Groups))
		s(envoy.AccessLogRule, d.Rule)
	}
	if d.Requestor != "" {
		s(envoy.AccessLogRequestor, d.Requestor)
	}
	if i := d.Info; i != nil {
		s(envoy.AccessLogVerb, i.Verb)
		s(envoy.AccessLogAPIGroup, i.APIGroup)
		s(envoy.AccessLogResource, i.Resource)
		s(envoy.AccessLogSubresource, i.Subresource)
		s(envoy.AccessLogNamespace, i.Namespace)
		s(envoy.AccessLogName, i.Name)
	}
}

// readHeaders are the header fields the pipeline reads (ReadsHeader).
var readHeaders = append([]envoy.RequestHeaderMatch{{Name: ":method"}, {Name: ":path"}, {Name: envoy.HeaderClientCert}},
	envoy.RequestServiceHeaders...)

// ReadsHeader reports whether the pipeline reads the header field name
// (lowercase, as Envoy hands it over): the request-service headers
// (envoy.RequestServiceHeaders, also ext_authz's allowed_headers), plus the
// method, path and client certificate, which ext_authz carries in fields of
// their own and the other adapters read as headers. An adapter may hand the
// pipeline only these; the pipeline's tests run with every other header
// filtered out, so a new lookup that is not listed fails them.
func ReadsHeader(name []byte) bool {
	// Byte comparisons, not RequestHeaderMatch.Matches: adapters call this
	// for every header of every request, and a string(name) argument may
	// allocate.
	for _, m := range readHeaders {
		if string(name) == m.Name || m.Prefix && len(name) >= len(m.Name) && string(name[:len(m.Name)]) == m.Name {
			return true
		}
	}
	return false
}
