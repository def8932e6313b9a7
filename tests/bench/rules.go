package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/kubefrontdoor/frontdoor/api/v1alpha1"
	"github.com/kubefrontdoor/frontdoor/tests/sandbox"
	"github.com/kubefrontdoor/frontdoor/translator"
	"github.com/kubefrontdoor/frontdoor/translator/translatortest"
)

// RulesResult is translation of N dispatch rules.
type RulesResult struct {
	Rules    int     `json:"rules"`
	Clusters int     `json:"upstream_clusters"`
	Policies int     `json:"policies"`
	MedianMs float64 `json:"median_ms"`
	AllocMiB float64 `json:"alloc_mib_per_translation"`
}

// RulesLoadResult is the running gateway given N dispatch rules.
type RulesLoadResult struct {
	Rules int `json:"rules"`
	// AppliedMs is from writing the file until Envoy has the last policy's
	// cluster (includes the 1 s directory poll).
	AppliedMs      float64 `json:"applied_ms"`
	FrontdoorRSSMB float64 `json:"frontdoor_rss_mib"`
	EnvoyRSSMB     float64 `json:"envoy_rss_mib"`
	// Before are the RSS figures just before the rules were written.
	FrontdoorRSSBeforeMB float64 `json:"frontdoor_rss_before_mib"`
	EnvoyRSSBeforeMB     float64 `json:"envoy_rss_before_mib"`
	Error                string  `json:"error,omitempty"`
}

// rulesClusters builds UpstreamClusters holding n dispatch rules over the
// given servers, named <prefix>-NNN, checking their servers only every
// minute (they exist to be measured, not to carry traffic). The rules are
// shaped as the translator's benchmark shapes them
// (translatortest.DispatchRuleClusters).
func rulesClusters(prefix string, n int, servers []string) []*v1alpha1.UpstreamCluster {
	tmpl := &v1alpha1.UpstreamCluster{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "UpstreamCluster"},
		ObjectMeta: metav1.ObjectMeta{Generation: 1},
	}
	for _, s := range servers {
		tmpl.Spec.Servers = append(tmpl.Spec.Servers, v1alpha1.Server{Endpoint: s})
	}
	tmpl.Spec.ClientConfig.SecretRef = v1alpha1.SecretReference{Namespace: sandbox.SecretNamespace, Name: "upstream"}
	tmpl.Spec.SecureServing.SecretRef = v1alpha1.SecretReference{Namespace: sandbox.SecretNamespace, Name: "serving"}
	tmpl.Spec.SecureServing.ClientCASecretRef = &v1alpha1.SecretReference{Namespace: sandbox.SecretNamespace, Name: "client-ca"}
	tmpl.Spec.HealthCheck.Interval = &metav1.Duration{Duration: time.Minute}
	return translatortest.DispatchRuleClusters(tmpl, prefix, n)
}

// measureRuleTranslation times translator.Translate, in this process, for
// n dispatch rules.
func measureRuleTranslation(s *sandbox.Sandbox, sizes []int) ([]RulesResult, error) {
	secrets, err := loadSecrets(filepath.Join(s.Dir, "config"))
	if err != nil {
		return nil, err
	}
	var out []RulesResult
	for _, n := range sizes {
		in := translator.Inputs{
			Options:          translator.Options{ListenerAddress: "127.0.0.1", ListenerPort: 6443},
			Secrets:          secrets,
			UpstreamClusters: rulesClusters("rules", n, s.ReplicaURLs),
		}
		t := timeTranslation(in, max(1, min(20, 20000/n)))
		o := t.out
		got, policies := 0, 0
		for _, c := range o.Policy.Clusters {
			policies += len(c.Dispatch)
			for _, d := range c.Dispatch {
				got += len(d.Rules)
			}
		}
		if got != n {
			return nil, fmt.Errorf("%d dispatch rules translated, want %d (statuses: %+v)", got, n, o.Statuses)
		}
		out = append(out, RulesResult{
			Rules: n, Clusters: len(in.UpstreamClusters), Policies: policies,
			MedianMs: t.medianMs, AllocMiB: t.allocMiB,
		})
	}
	return out, nil
}

// measureRulesLoad gives the running gateway n dispatch rules (a file in
// its config directory), waits until Envoy has the last policy's cluster,
// reads frontdoor's and Envoy's RSS, and removes the rules again.
func measureRulesLoad(ctx context.Context, s *sandbox.Sandbox, n int, frontdoorPID, envoyPID int) RulesLoadResult {
	res := RulesLoadResult{Rules: n}
	fail := func(err error) RulesLoadResult { res.Error = err.Error(); return res }
	mib := func(pid int) float64 { r, _ := rss(pid); return float64(r) / (1 << 20) }
	res.FrontdoorRSSBeforeMB, res.EnvoyRSSBeforeMB = mib(frontdoorPID), mib(envoyPID)

	ucs := rulesClusters("bench-rules", n, s.ReplicaURLs)
	var docs []string
	for _, uc := range ucs {
		b, err := yaml.Marshal(uc)
		if err != nil {
			return fail(err)
		}
		docs = append(docs, string(b))
	}
	path := filepath.Join(s.Dir, "config", "upstreamcluster-bench-rules.yaml")
	last := ucs[len(ucs)-1]
	lastCluster := last.Name + "/" + last.Spec.DispatchPolicies[len(last.Spec.DispatchPolicies)-1].Name
	has := func() bool {
		text, err := s.EnvoyAdmin(ctx, "/config_dump?resource=dynamic_active_clusters&name_regex="+lastCluster)
		return err == nil && strings.Contains(text, `"`+lastCluster+`"`)
	}
	start := time.Now()
	if err := os.WriteFile(path, []byte(strings.Join(docs, "---\n")), 0o644); err != nil {
		return fail(err)
	}
	defer func() {
		_ = os.Remove(path)
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && has(); {
			time.Sleep(200 * time.Millisecond)
		}
	}()
	for !has() {
		if time.Since(start) > 2*time.Minute || ctx.Err() != nil {
			return fail(fmt.Errorf("the Envoy did not get cluster %s within 2 minutes", lastCluster))
		}
		time.Sleep(50 * time.Millisecond)
	}
	res.AppliedMs = ms(time.Since(start))
	time.Sleep(2 * time.Second) // let both settle (GC, late xDS acks)
	res.FrontdoorRSSMB, res.EnvoyRSSMB = mib(frontdoorPID), mib(envoyPID)
	return res
}
