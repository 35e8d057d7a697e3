package main

import (
	"bytes"
	"encoding/json"
	"os"
	"regexp"
	"testing"
)

func generated(t *testing.T) []byte {
	t.Helper()
	d, err := Dashboard()
	if err != nil {
		t.Fatal(err)
	}
	out, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(out, '\n')
}

// The JSON in the package is what this code generates.
func TestCheckedInDashboardIsCurrent(t *testing.T) {
	t.Parallel()
	in, err := os.ReadFile("../../packaging/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(in, generated(t)) {
		t.Fatal("packaging/grafana-dashboard.json is stale: run `make dashboard`")
	}
}

// Every panel has queries; every query parses as PromQL and names only
// metrics runtimeclassd exports; every variable's query names one too.
func TestDashboardQueries(t *testing.T) {
	t.Parallel()
	var d struct {
		Panels []struct {
			Type, Title string
			Targets     []struct{ Expr string }
		}
		Templating struct {
			List []struct {
				Name  string
				Type  string
				Query any
			}
		}
	}
	if err := json.Unmarshal(generated(t), &d); err != nil {
		t.Fatal(err)
	}
	panels := 0
	for _, p := range d.Panels {
		if p.Type == "row" {
			continue
		}
		panels++
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			if err := checkQuery(t, q.Expr, nil); err != nil {
				t.Errorf("panel %q: %v", p.Title, err)
			}
		}
	}
	if panels < 10 {
		t.Errorf("only %d panels", panels)
	}
	labelValues := regexp.MustCompile(`^label_values\((.+), \w+\)$`)
	for _, v := range d.Templating.List {
		q, _ := v.Query.(string)
		if v.Type != "query" {
			continue
		}
		m := labelValues.FindStringSubmatch(q)
		if m == nil {
			t.Errorf("variable %s: query %q is not label_values(SELECTOR, LABEL)", v.Name, q)
			continue
		}
		if err := checkQuery(t, m[1], nil); err != nil {
			t.Errorf("variable %s: %v", v.Name, err)
		}
	}
}
