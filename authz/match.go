package authz

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/endpoints/request"

	"github.com/kubefrontdoor/frontdoor/kubestatus"
	"github.com/kubefrontdoor/frontdoor/policy"
)

// matchAll is the wildcard of every rule field, as RBAC's "*".
const matchAll = "*"

// dispatchPolicy is one compiled dispatch policy.
type dispatchPolicy struct {
	name   string
	rules  []policy.Rule
	reject *Decision // pre-built denial when the policy sheds
	// longRunning is the rule answered for long-running requests ("" =
	// name).
	longRunning string
}

// rule is the rule (route) name for a request of this policy.
func (p *dispatchPolicy) rule(info *request.RequestInfo) string {
	if p.longRunning != "" && isLongRunning(info) {
		return p.longRunning
	}
	return p.name
}

// Long-running requests exactly as kube-apiserver defines them
// (pkg/controlplane/apiserver/config.go: BasicLongRunningRequestCheck with
// these verbs and subresources): it excludes them from its max-in-flight
// limits, and so do we.
var (
	longRunningVerbs        = []string{"watch", "proxy"}
	longRunningSubresources = []string{"attach", "exec", "proxy", "log", "portforward"}
)

// LongRunning reports whether the decided request is long-running as
// kube-apiserver counts it (watches, proxy, exec, attach, port-forward,
// logs): its response may come minutes or never (a proxied pod that does
// not answer), so an adapter must not hold anything per request until then.
func (d *Decision) LongRunning() bool { return d.Info != nil && isLongRunning(d.Info) }

func isLongRunning(info *request.RequestInfo) bool {
	if slices.Contains(longRunningVerbs, info.Verb) {
		return true
	}
	if info.IsResourceRequest {
		return slices.Contains(longRunningSubresources, info.Subresource)
	}
	return strings.HasPrefix(info.Path, "/debug/pprof/")
}

// matchPolicy returns the first policy with a rule matching the request
// (info, or one of its equivalent views: equivalentRequests), or nil. It is
// pure: the same info and user always give the same answer.
func matchPolicy(policies []dispatchPolicy, info *request.RequestInfo, u user.Info, equivalents ...*request.RequestInfo) *dispatchPolicy {
	for i := range policies {
		for j := range policies[i].rules {
			if ruleMatches(&policies[i].rules[j], info, u) {
				return &policies[i]
			}
			for _, e := range equivalents {
				if ruleMatches(&policies[i].rules[j], e, u) {
					return &policies[i]
				}
			}
		}
	}
	return nil
}

// ruleMatches applies the semantics of an RBAC PolicyRule (as kube-apiserver's
// rbac.RuleAllows, and KubeGateway's dispatch matcher): every field ANDed, each
// list ORed, "*" matching anything. A resource request needs the resource
// fields to match (apiGroups and resources must be given), a non-resource
// request needs nonResourceURLs. Namespaces and the subject fields are
// KubeGateway's additions; empty means any.
func ruleMatches(r *policy.Rule, info *request.RequestInfo, u user.Info) bool {
	if !subjectMatches(r, u) || !has(r.Verbs, info.Verb) {
		return false
	}
	if !info.IsResourceRequest {
		return nonResourceURLMatches(r.NonResourceURLs, info.Path)
	}
	return has(r.APIGroups, info.APIGroup) &&
		resourceMatches(r.Resources, info.Resource, info.Subresource) &&
		(len(r.ResourceNames) == 0 || has(r.ResourceNames, info.Name)) &&
		(len(r.Namespaces) == 0 || has(r.Namespaces, info.Namespace))
}

// subjectMatches is true when the user is one of the rule's users, is in
// one of its groups, or is one of its service accounts; a rule naming no
// subject matches everyone.
func subjectMatches(r *policy.Rule, u user.Info) bool {
	if len(r.Users) == 0 && len(r.UserGroups) == 0 && len(r.ServiceAccounts) == 0 {
		return true
	}
	name := u.GetName()
	if has(r.Users, name) || hasExact(r.ServiceAccounts, name) {
		return true
	}
	for _, g := range u.GetGroups() {
		if has(r.UserGroups, g) {
			return true
		}
	}
	return false
}

// has reports whether list holds v or "*".
func has(list []string, v string) bool {
	for _, x := range list {
		if x == v || x == matchAll {
			return true
		}
	}
	return false
}

func hasExact(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// resourceMatches is rbac.ResourceMatches: "*" matches every resource and
// subresource, "pods" only pods itself, "pods/log" only that subresource,
// "*/scale" that subresource of any resource.
func resourceMatches(rules []string, resource, subresource string) bool {
	combined := resource
	if subresource != "" {
		combined = resource + "/" + subresource
	}
	for _, r := range rules {
		switch {
		case r == matchAll, r == combined:
			return true
		case subresource != "" && len(r) == len(subresource)+2 && strings.HasPrefix(r, "*/") && strings.HasSuffix(r, subresource):
			return true
		}
	}
	return false
}

// nonResourceURLMatches is rbac.NonResourceURLMatches: an exact path, "*",
// or a prefix ending in "*".
func nonResourceURLMatches(rules []string, path string) bool {
	for _, r := range rules {
		switch {
		case r == matchAll, r == path:
			return true
		case strings.HasSuffix(r, matchAll) && strings.HasPrefix(path, strings.TrimSuffix(r, matchAll)):
			return true
		}
	}
	return false
}

// compileDispatch prepares the policies for the hot path: a shedding
// policy's denial (Status body, Retry-After) is encoded once.
func compileDispatch(ps []policy.Dispatch) []dispatchPolicy {
	out := make([]dispatchPolicy, 0, len(ps))
	for _, p := range ps {
		dp := dispatchPolicy{name: p.Name, rules: p.Rules, longRunning: p.LongRunningRule}
		if r := p.Reject; r != nil {
			dp.reject = rejectDecision(r)
		}
		out = append(out, dp)
	}
	return out
}

// rejectDecision is the denial of a shedding policy: its code, a Status
// body with the apiserver's reason for that code (TooManyRequests for 429)
// and, when set, Retry-After in the header and in the Status details, as
// kube-apiserver's own throttling answers.
func rejectDecision(r *policy.Reject) *Decision {
	msg := r.Message
	if msg == "" {
		msg = "the request was rejected by a dispatch policy of the gateway"
	}
	d := statusDecision(Rejected, r.Code, msg, r.RetryAfterSeconds)
	return &d
}

// statusDecision is a denial answered with a Status body of code (the
// apiserver's reason for it) and, when retryAfter > 0, Retry-After in the
// header and in the Status details, as kube-apiserver's own throttling and
// unavailability answers.
func statusDecision(o Outcome, code int, msg string, retryAfter int) Decision {
	st := &metav1.Status{
		Status:  metav1.StatusFailure,
		Message: msg,
		Reason:  kubestatus.ReasonForCode(code),
		Code:    int32(code), //nolint:gosec // HTTP status codes, validated 400-599.
	}
	headers := slices.Clone(statusResponseHeaders)
	if retryAfter > 0 {
		st.Details = &metav1.StatusDetails{RetryAfterSeconds: int32(retryAfter)} //nolint:gosec // validated non-negative int32.
		headers = append(headers, Header{Name: "retry-after", Value: strconv.Itoa(retryAfter)})
	}
	return Decision{Outcome: o, Code: code, Body: kubestatus.Encode(st), ResponseHeaders: headers}
}

// userKey is the x-frontdoor-user value for a user: a fixed-length digest,
// so a per-user token bucket keys on any user name safely.
func userKey(name string) string {
	sum := sha256.Sum256([]byte(name))
	return hex.EncodeToString(sum[:8])
}

// namedUsers collects the user names dispatch rules name explicitly (users
// and service accounts; "*" is not a name), nil when there are none.
func namedUsers(ds []policy.Dispatch) map[string]struct{} {
	var out map[string]struct{}
	for _, d := range ds {
		for _, r := range d.Rules {
			for _, names := range [][]string{r.Users, r.ServiceAccounts} {
				for _, n := range names {
					if n == "" || n == "*" {
						continue
					}
					if out == nil {
						out = map[string]struct{}{}
					}
					out[n] = struct{}{}
				}
			}
		}
	}
	return out
}
