package authz

import (
	"net/url"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apiserver/pkg/authentication/user"
)

func TestPlanHeaders(t *testing.T) {
	id, err := newIdentity(&user.DefaultInfo{
		Name:   "jane",
		UID:    "42",
		Groups: []string{"dev", "ops"},
		Extra: map[string][]string{
			"authentication.kubernetes.io/credential-id": {"X509SHA256=ab"},
			"scopes.example.com":                         {"a", "b"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	wantSet := []Header{
		{Name: "Impersonate-User", Value: "jane"},
		{Name: "Impersonate-Uid", Value: "42"},
		{Name: "Impersonate-Group", Value: "dev"},
		{Name: "Impersonate-Group", Value: "ops"},
		{Name: "Impersonate-Extra-authentication.kubernetes.io%2fcredential-id", Value: "X509SHA256=ab"},
		{Name: "Impersonate-Extra-scopes.example.com", Value: "a"},
		{Name: "Impersonate-Extra-scopes.example.com", Value: "b"},
		{Name: "x-frontdoor-rule", Value: "r1"},
	}
	tests := []struct {
		name       string
		client     map[string]string
		wantRemove []string
	}{
		{
			name:       "no client headers",
			wantRemove: []string{"authorization"},
		},
		{
			// Every client identity header is removed, also those whose
			// names we add again: ours are added after the removal.
			name: "client impersonation is removed",
			client: map[string]string{
				"authorization":     "Bearer secret",
				"impersonate-user":  "admin",
				"impersonate-group": "masters",
				"impersonate-uid":   "0",
				"impersonate-extra-authentication.kubernetes.io%2fcredential-id":   "forged",
				"impersonate-extra-scopes":                                         "x",
				"impersonate-extra-authentication%2ekubernetes.io%2fcredential-id": "x", // decodes to our key
				"impersonate-extra-reason":                                         "y",
				"impersonate-somethingelse":                                        "z",
				"x-remote-user":                                                    "root",
				"x-remote-group":                                                   "root",
				"x-remote-extra-foo":                                               "bar",
				"x-remote-uid":                                                     "0",
				"x-remote-other":                                                   "dropped too: any X-Remote-*",
				"accept":                                                           "application/json",
				"user-agent":                                                       "kubectl",
			},
			wantRemove: []string{
				"authorization",
				"impersonate-extra-authentication%2ekubernetes.io%2fcredential-id",
				"impersonate-extra-authentication.kubernetes.io%2fcredential-id",
				"impersonate-extra-reason",
				"impersonate-extra-scopes",
				"impersonate-group",
				"impersonate-somethingelse",
				"impersonate-uid",
				"impersonate-user",
				"x-remote-extra-foo",
				"x-remote-group",
				"x-remote-other",
				"x-remote-uid",
				"x-remote-user",
			},
		},
		{
			name: "mixed case names",
			client: map[string]string{
				"Authorization":            "Bearer secret",
				"Impersonate-User":         "admin",
				"IMPERSONATE-EXTRA-Reason": "y",
				"Impersonate-Extra-Authentication.kubernetes.io%2Fcredential-id": "forged",
				"Impersonate-Group": "masters",
				"X-Remote-User":     "root",
			},
			wantRemove: []string{
				"authorization", "impersonate-extra-authentication.kubernetes.io%2fcredential-id",
				"impersonate-extra-reason", "impersonate-group", "impersonate-user", "x-remote-user",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, remove := planHeaders(id, forwardImpersonation, "r1", tt.client)
			if diff := cmp.Diff(wantSet, set); diff != "" {
				t.Errorf("set (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantRemove, remove); diff != "" {
				t.Errorf("remove (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPlanHeadersDoesNotShareBacking(t *testing.T) {
	id, err := newIdentity(&user.DefaultInfo{Name: "jane"})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := planHeaders(id, forwardImpersonation, "r1", nil)
	b, _ := planHeaders(id, forwardImpersonation, "r2", nil)
	if a[len(a)-1].Value != "r1" || b[len(b)-1].Value != "r2" || len(id.headers[forwardImpersonation]) != 1 {
		t.Errorf("plans share state: %v %v %v", a, b, id.headers)
	}
}

func TestEscapeExtraKey(t *testing.T) {
	for key, want := range map[string]string{
		"authentication.kubernetes.io/credential-id": "authentication.kubernetes.io%2fcredential-id",
		"scopes":              "scopes",
		"a%b":                 "a%25b",
		"with space":          "with%20space",
		"colon:and=equals":    "colon%3aand%3dequals",
		"ünï":                 "%c3%bcn%c3%af",
		"token!#$&'*+-.^_`|~": "token!#$&'*+-.^_`|~",
	} {
		got := escapeExtraKey(key)
		if got != want {
			t.Errorf("escapeExtraKey(%q) = %q, want %q", key, got, want)
		}
		// kube-apiserver lowercases the header name and PathUnescapes it.
		if back, err := url.PathUnescape(got); err != nil || back != key {
			t.Errorf("PathUnescape(%q) = %q, %v; want %q", got, back, err, key)
		}
	}
}

func TestNewIdentityRejectsUnrepresentable(t *testing.T) {
	for name, u := range map[string]*user.DefaultInfo{
		"empty name":           {Name: ""},
		"leading space":        {Name: " admin"},
		"trailing space":       {Name: "admin "},
		"newline in group":     {Name: "jane", Groups: []string{"a\nb"}},
		"tab in uid":           {Name: "jane", UID: "1\t2"},
		"DEL in extra value":   {Name: "jane", Extra: map[string][]string{"k": {"v\x7f"}}},
		"NUL in name":          {Name: "ja\x00ne"},
		"CR in extra value":    {Name: "jane", Extra: map[string][]string{"k": {"ok", "\r"}}},
		"space-only group end": {Name: "jane", Groups: []string{"dev "}},
	} {
		if _, err := newIdentity(u); err == nil {
			t.Errorf("%s: newIdentity accepted %+v", name, u)
		}
	}
	if _, err := newIdentity(&user.DefaultInfo{Name: "jäne", Groups: []string{"a b", ""}}); err != nil {
		t.Errorf("UTF-8 and inner spaces must be accepted: %v", err)
	}
}
