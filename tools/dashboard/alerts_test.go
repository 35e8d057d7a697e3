package main

import (
	"log/slog"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	promql "github.com/prometheus/prometheus/promql/parser"
)

// proposed are metrics the alert rules use that runtimeclassd does not
// export yet; each says what it will be. The test fails once one is
// exported, so that it leaves this list.
var proposed = map[string]string{}

// The alert rules shipped in the package (packaging/prometheus-alerts.yml):
// each waits (for:), links to its section of docs/RUNBOOK.md, has a
// promtool unit test in packaging/prometheus-alerts_test.yml, and queries
// only metrics runtimeclassd exports (or the proposed ones above).
func TestAlertRules(t *testing.T) {
	t.Parallel()
	groups, errs := rulefmt.ParseFile("../../packaging/prometheus-alerts.yml", false, model.UTF8Validation, promql.NewParser(promql.Options{}), slog.New(slog.DiscardHandler))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	runbook, err := os.ReadFile("../../docs/RUNBOOK.md")
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^#+ (.+)$`).FindAllStringSubmatch(string(runbook), -1) {
		// GitHub's anchor for a heading: lower case, spaces to dashes,
		// punctuation dropped.
		a := strings.ToLower(strings.ReplaceAll(m[1], " ", "-"))
		anchors[regexp.MustCompile(`[^a-z0-9_-]`).ReplaceAllString(a, "")] = true
	}
	tests, err := os.ReadFile("../../packaging/prometheus-alerts_test.yml")
	if err != nil {
		t.Fatal(err)
	}
	names, _ := exported(t)
	for name := range proposed {
		if names[name] {
			t.Errorf("%s is exported now: take it off the proposed list", name)
		}
	}
	allowed := map[string]bool{}
	for name := range proposed {
		allowed[name] = true
	}
	alerts := 0
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			alerts++
			if time.Duration(r.For) <= 0 {
				t.Errorf("%s has no for: clause", r.Alert)
			}
			if r.Labels["severity"] == "" {
				t.Errorf("%s has no severity label", r.Alert)
			}
			for _, a := range []string{"summary", "description", "runbook_url"} {
				if r.Annotations[a] == "" {
					t.Errorf("%s has no %s annotation", r.Alert, a)
				}
			}
			u, err := url.Parse(r.Annotations["runbook_url"])
			if err != nil || !strings.HasSuffix(u.Path, "/docs/RUNBOOK.md") || !anchors[u.Fragment] {
				t.Errorf("%s: runbook_url %q is not a section of docs/RUNBOOK.md", r.Alert, r.Annotations["runbook_url"])
			}
			if !regexp.MustCompile(`(?m)^\s+alertname: ` + r.Alert + `$`).Match(tests) {
				t.Errorf("%s has no promtool test in packaging/prometheus-alerts_test.yml", r.Alert)
			}
			if err := checkQuery(t, r.Expr, allowed); err != nil {
				t.Errorf("%s: %v", r.Alert, err)
			}
		}
	}
	if alerts < 8 {
		t.Errorf("only %d alerts", alerts)
	}
}
