package kubegateway

import (
	"fmt"
	"strings"

	"github.com/kubefrontdoor/frontdoor/api/v1alpha1"
)

// The verbs a request can have, as k8s.io/apiserver's RequestInfoFactory
// derives them (what both gateways match): a negated verb is spelled out as
// the others of its kind.
var (
	resourceVerbs    = []string{"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection", "proxy"}
	nonResourceVerbs = []string{"get", "post", "put", "patch", "delete", "head", "options"}
)

// values is one rule list as KubeGateway's matcher reads it: "*" anywhere
// matches everything; plain entries win and negated ("-x") entries beside
// them are ignored; with only negated entries a value matches when it
// differs from any one of them, so two different ones match everything.
type values struct {
	all     bool
	plain   []string
	negated string // the one negated value, when that is the whole list
}

func (c *converter) read(field string, list []string) values {
	var plain, negated []string
	for _, v := range list {
		if v == "*" {
			return values{all: true}
		}
		if strings.HasPrefix(v, "-") {
			if !contains(negated, v[1:]) {
				negated = append(negated, v[1:])
			}
			continue
		}
		plain = append(plain, v)
	}
	switch {
	case len(plain) > 0:
		if len(negated) > 0 {
			c.add(field, Converted, "negated entries beside plain ones are ignored by KubeGateway; dropped")
		}
		return values{plain: plain}
	case len(negated) > 1:
		c.add(field, Converted, "%d different negated entries: KubeGateway matches any value that differs from one of them, that is every value (not \"none of them\", as its docs read); \"*\"", len(negated))
		return values{all: true}
	case len(negated) == 1:
		return values{negated: negated[0]}
	}
	return values{}
}

func (v values) list() []string {
	if v.all {
		return []string{"*"}
	}
	return v.plain
}

// convertRule converts one KubeGateway rule into Frontdoor rules of the
// same meaning: one for resource requests and one for non-resource
// requests (a Frontdoor rule has one kind), either absent when KubeGateway's
// rule cannot match that kind. A rule that cannot be carried exactly is
// dropped and reported, so it matches less, never more: its requests reach
// the next policy instead of being governed by one they never were.
func (c *converter) convertRule(field string, r kgRule) []v1alpha1.DispatchPolicyRule {
	base, ok := c.subjects(field, r)
	if !ok {
		return nil
	}
	verbs := c.read(field+".verbs", r.Verbs)
	if !verbs.all && verbs.negated == "" && len(verbs.plain) == 0 {
		c.add(field+".verbs", Converted, "no verb: the rule matches nothing in KubeGateway; left out")
		return nil
	}
	verbsFor := func(domain []string) []string {
		if verbs.negated == "" {
			return verbs.list()
		}
		var out []string
		for _, v := range domain {
			if v != verbs.negated {
				out = append(out, v)
			}
		}
		return out
	}
	if verbs.negated != "" {
		c.add(field+".verbs", Converted, "-%s: spelled out as every other verb a request can have", verbs.negated)
	}

	var out []v1alpha1.DispatchPolicyRule
	if res, ok := c.resourcePart(field, r); ok {
		res.Verbs = verbsFor(resourceVerbs)
		res.Users, res.UserGroups, res.ServiceAccounts = base.Users, base.UserGroups, base.ServiceAccounts
		out = append(out, res)
	}
	if urls := c.nonResourceURLs(field+".nonResourceURLs", r.NonResourceURLs); len(urls) > 0 {
		nr := base
		nr.Verbs = verbsFor(nonResourceVerbs)
		nr.NonResourceURLs = urls
		out = append(out, nr)
	}
	switch {
	case len(out) == 2:
		c.add(field, Converted, "split into a rule for resources and one for nonResourceURLs (a Frontdoor rule has one kind)")
	case len(out) == 0 && (len(r.NonResourceURLs) == 0 && (len(r.APIGroups) == 0 || len(r.Resources) == 0)):
		c.add(field, Converted, "no apiGroups and resources, nor nonResourceURLs: the rule matches nothing in KubeGateway; left out")
	}
	return out
}

// subjects carries users, serviceAccounts and userGroups. KubeGateway
// requires (users or serviceAccounts) and userGroups to match; Frontdoor
// matches any one of its subject fields. The two agree when one side is
// empty or "*", which is every rule the docs show; a rule naming both is
// dropped.
func (c *converter) subjects(field string, r kgRule) (v1alpha1.DispatchPolicyRule, bool) {
	var out v1alpha1.DispatchPolicyRule
	users := c.read(field+".users", r.Users)
	groups := c.read(field+".userGroups", r.UserGroups)
	for _, f := range []struct {
		name string
		v    values
	}{{"users", users}, {"userGroups", groups}} {
		if f.v.negated != "" {
			c.add(field+"."+f.name, NotCarried, "-%s: Frontdoor has no negation, and %s have no closed set to spell the others out; the rule is dropped", f.v.negated, f.name)
			return out, false
		}
	}
	var plainUsers []string
	for _, u := range users.plain {
		if strings.HasSuffix(u, "*") {
			hint := ""
			if strings.HasPrefix(u, "system:serviceaccount:") && strings.Count(u, ":") == 3 {
				hint = fmt.Sprintf(" (userGroups [system:serviceaccounts:%s] comes close: it misses only users so named without that group)", strings.Split(u, ":")[2])
			}
			c.add(field+".users", NotCarried, "%q: a prefix match on user names, which Frontdoor does not have; entry dropped%s", u, hint)
			continue
		}
		plainUsers = append(plainUsers, u)
	}
	if len(users.plain) > 0 && len(plainUsers) == 0 {
		c.add(field+".users", NotCarried, "no user entry is left; the rule is dropped rather than match every user")
		return out, false
	}
	var sas []v1alpha1.ServiceAccountRef
	for k, sa := range r.ServiceAccounts {
		if sa.Namespace == "" || sa.Name == "" {
			c.add(fmt.Sprintf("%s.serviceAccounts[%d]", field, k), Converted, "needs both namespace and name; KubeGateway skips it, so it is left out")
			continue
		}
		sas = append(sas, v1alpha1.ServiceAccountRef{Namespace: sa.Namespace, Name: sa.Name})
	}
	if len(r.ServiceAccounts) > 0 && len(sas) == 0 && len(plainUsers) == 0 && !users.all {
		c.add(field+".serviceAccounts", NotCarried, "no service account entry is left; the rule is dropped rather than match every user")
		return out, false
	}
	switch {
	case users.all:
		// Any user: only the groups (if any) restrict the rule.
	default:
		out.Users, out.ServiceAccounts = plainUsers, sas
	}
	if !groups.all {
		out.UserGroups = groups.plain
	}
	if (len(out.Users) > 0 || len(out.ServiceAccounts) > 0) && len(out.UserGroups) > 0 {
		c.add(field, NotCarried, "users/serviceAccounts and userGroups together: KubeGateway requires one of each to match, Frontdoor's subject fields match any one; the rule is dropped")
		return out, false
	}
	return out, true
}

// resourcePart carries apiGroups, resources and resourceNames, or reports
// false when the rule cannot match a resource request (or not exactly).
func (c *converter) resourcePart(field string, r kgRule) (v1alpha1.DispatchPolicyRule, bool) {
	var out v1alpha1.DispatchPolicyRule
	if len(r.APIGroups) == 0 || len(r.Resources) == 0 {
		return out, false // KubeGateway matches no resource request then
	}
	var resources []string
	for _, res := range r.Resources {
		if res != "*" && strings.HasSuffix(res, "/*") && !strings.HasPrefix(res, "-") {
			c.add(field+".resources", Converted, "%q: KubeGateway does not allow resource/* and matches it literally, so never; left out", res)
			continue
		}
		resources = append(resources, res)
	}
	lists := []struct {
		name string
		in   []string
		dst  *[]string
	}{
		{"apiGroups", r.APIGroups, &out.APIGroups},
		{"resources", resources, &out.Resources},
		{"resourceNames", r.ResourceNames, &out.ResourceNames},
	}
	for _, l := range lists {
		if len(l.in) == 0 {
			if l.name == "resourceNames" {
				continue // any name
			}
			return out, false
		}
		v := c.read(field+"."+l.name, l.in)
		if v.negated != "" {
			c.add(field+"."+l.name, NotCarried, "-%s: Frontdoor has no negation, and %s have no closed set to spell the others out; the rule's resource part is dropped", v.negated, l.name)
			return out, false
		}
		*l.dst = v.list()
	}
	if len(out.ResourceNames) == 1 && out.ResourceNames[0] == "*" {
		out.ResourceNames = nil
	}
	return out, true
}

// nonResourceURLs: KubeGateway ignores negated entries here; a final "*"
// is a prefix match in both gateways.
func (c *converter) nonResourceURLs(field string, urls []string) []string {
	var out []string
	for _, u := range urls {
		if u == "*" {
			return []string{"*"}
		}
		if strings.HasPrefix(u, "-") {
			c.add(field, Converted, "%q: KubeGateway ignores negated nonResourceURLs; left out", u)
			continue
		}
		out = append(out, u)
	}
	return out
}
