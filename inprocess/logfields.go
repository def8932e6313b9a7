package inprocess

import (
	"strconv"
	"sync"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kubefrontdoor/frontdoor/authz"
	"github.com/kubefrontdoor/frontdoor/envoy"
	"github.com/kubefrontdoor/frontdoor/inprocess/abi"
)

// The module writes each request's access log line itself (abi.AccessLog):
// Envoy's view of the request (code, durations, bytes, replica) comes from
// the ABI when the stream completes, and the filter hands over the
// decision's fields (envoy.AccessLogFields) as JSON object members, the same
// keys and value shapes as the Envoy-formatted line of the other modes.

// AccessLog: the cluster's log, when the gateway has one (the translator
// puts the settings in the filter config).
func (c *filterConfig) AccessLog() *abi.AccessLog {
	a := c.accessLog
	if a == nil {
		return nil
	}
	return &abi.AccessLog{
		Path:          a.Path,
		Members:       `"cluster":` + jsonString(c.cluster),
		Absent:        absentLogFields,
		FailuresOnly:  a.FailuresOnly,
		SlowerThan:    time.Duration(a.SlowerThanMs) * time.Millisecond,
		MarkNamespace: envoy.MetadataNamespaceInProcess,
		MarkKey:       envoy.InProcessLoggedKey,
	}
}

// absentLogFields are the members of a line whose request the filter never
// decided (it failed closed first): every field null.
var absentLogFields = string(appendLogFields(nil, nil))

// registerAccessLogMetrics counts the module's access log lines.
func registerAccessLogMetrics(reg prometheus.Registerer) {
	const name, help = "frontdoor_inprocess_access_log_lines_total",
		"Access log lines the in-process module wrote (queued for its file; outcome=queued) and lost (outcome=dropped: out of memory, or the file refused the write; a dropped line may have been counted as queued first)."
	for _, o := range []struct {
		outcome string
		read    func() float64
	}{
		{"queued", func() float64 { w, _ := abi.AccessLogLines(); return float64(w) }},
		{"dropped", func() float64 { _, d := abi.AccessLogLines(); return float64(d) }},
	} {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: name, Help: help, ConstLabels: prometheus.Labels{"outcome": o.outcome},
		}, o.read))
	}
}

var logFieldBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// setLogFields hands the stream the decision's access-log members.
func setLogFields(s stream, d *authz.Decision) {
	bp := logFieldBufs.Get().(*[]byte)
	b := appendLogFields((*bp)[:0], d)
	s.SetLogFields(unsafe.String(unsafe.SliceData(b), len(b))) //nolint:gosec // the stream copies the bytes before SetLogFields returns; b is reused after

	*bp = b
	logFieldBufs.Put(bp)
}

// logField is one decided field: a string, or a number (n) when num is set.
type logField struct {
	set, num bool
	s        string
	n        float64
}

// appendLogFields appends d's fields (nil: none) as JSON object members, in
// envoy.AccessLogFields order; a field the decision has not is null, as in
// Envoy's lines.
func appendLogFields(b []byte, d *authz.Decision) []byte {
	var f [16]logField
	if d != nil {
		d.EachAccessLogField(
			func(k, v string) {
				if i := logFieldIndex(k); i >= 0 && i < len(f) {
					f[i] = logField{set: true, s: v}
				}
			},
			func(k string, v float64) {
				if i := logFieldIndex(k); i >= 0 && i < len(f) {
					f[i] = logField{set: true, num: true, n: v}
				}
			})
	}
	for i, k := range envoy.AccessLogFields {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, k...)
		b = append(b, '"', ':')
		var v logField
		if i < len(f) {
			v = f[i]
		}
		switch {
		case !v.set:
			b = append(b, "null"...)
		case v.num:
			b = strconv.AppendFloat(b, v.n, 'f', -1, 64)
		default:
			b = appendJSONString(b, v.s)
		}
	}
	return b
}

// logFieldIndex is k's position in envoy.AccessLogFields, -1 if absent.
func logFieldIndex(k string) int {
	for i, f := range envoy.AccessLogFields {
		if f == k {
			return i
		}
	}
	return -1
}

func jsonString(s string) string { return string(appendJSONString(nil, s)) }

// appendJSONString appends s (valid UTF-8: EachAccessLogField makes it so)
// as a JSON string: quotes, backslashes and control characters escaped.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		if c == '"' || c == '\\' {
			b = append(b, '\\', c)
		} else {
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
