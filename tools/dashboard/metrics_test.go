package main

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	promql "github.com/prometheus/prometheus/promql/parser"
)

// exported reads the metric names runtimeclassd exports from its sources:
// the Name of every prometheus ...Opts literal in daemon/ and
// cmd/runtimeclassd/, the build_info of a prometheus/common/version
// collector, and the prefixes of the Go and process collectors if they
// are registered. Reading the sources keeps this list from going stale.
func exported(t *testing.T) (names map[string]bool, prefixes []string) {
	t.Helper()
	names = map[string]bool{}
	var files []string
	for _, dir := range []string{"../../daemon", "../../cmd/runtimeclassd"} {
		m, _ := filepath.Glob(filepath.Join(dir, "*.go"))
		for _, f := range m {
			if !strings.HasSuffix(f, "_test.go") {
				files = append(files, f)
			}
		}
	}
	if len(files) == 0 {
		t.Fatal("no runtimeclassd sources found under ../../daemon")
	}
	fset := token.NewFileSet()
	for _, f := range files {
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.KeyValueExpr:
				if k, ok := n.Key.(*ast.Ident); ok && k.Name == "Name" {
					if lit, ok := n.Value.(*ast.BasicLit); ok && lit.Kind == token.STRING {
						if s, err := strconv.Unquote(lit.Value); err == nil && strings.HasPrefix(s, "runtimeclassd_") {
							names[s] = true
						}
					}
				}
			case *ast.CallExpr:
				sel, ok := n.Fun.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				switch sel.Sel.Name {
				case "NewGoCollector":
					prefixes = append(prefixes, "go_")
				case "NewProcessCollector":
					prefixes = append(prefixes, "process_")
				case "NewCollector": // prometheus/common/version
					if len(n.Args) >= 1 { // the namespace, then options
						if lit, ok := n.Args[0].(*ast.BasicLit); ok && lit.Kind == token.STRING {
							s, _ := strconv.Unquote(lit.Value)
							names[s+"_build_info"] = true
						}
					}
				}
			}
			return true
		})
	}
	if !names["runtimeclassd_handler_ready"] || !names["runtimeclassd_reconcile_duration_seconds"] {
		t.Fatalf("reading the metric names from the sources found only %v", keys(names))
	}
	return names, prefixes
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// grafanaVars are the dashboard's variables, with values that make a
// query plain PromQL.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$job", "runtimeclassd", "$instance", ".*")

// checkQuery parses a query and returns the metrics it names that are not
// exported (nor Prometheus' own up and ALERTS, nor in allowed).
func checkQuery(t *testing.T, q string, allowed map[string]bool) error {
	t.Helper()
	names, prefixes := exported(t)
	plain := grafanaVars.Replace(q)
	if v := regexp.MustCompile(`\$\{?\w+`).FindString(plain); v != "" {
		return fmt.Errorf("unknown variable %s in %q", v, q)
	}
	expr, err := promql.NewParser(promql.Options{}).ParseExpr(plain)
	if err != nil {
		return fmt.Errorf("%q does not parse: %w", q, err)
	}
	var bad []string
	promql.Inspect(expr, func(node promql.Node, _ []promql.Node) error {
		vs, ok := node.(*promql.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		if name == "" {
			bad = append(bad, "a selector without a metric name")
			return nil
		}
		base := name
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(name, suffix); ok && names[b] {
				base = b
			}
		}
		known := names[base] || base == "up" || base == "ALERTS" || allowed[base]
		for _, p := range prefixes {
			known = known || strings.HasPrefix(base, p)
		}
		if !known {
			bad = append(bad, name)
		}
		return nil
	})
	if len(bad) > 0 {
		return fmt.Errorf("%q names metrics runtimeclassd does not export: %v (exported: %v)", q, bad, keys(names))
	}
	return nil
}

// The checker itself must catch what it is there for.
func TestCheckQueryCatches(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ q, want string }{
		{`rate(runtimeclassd_reconcile_total{job="$job"}[$__rate_interval])`, ""},
		{`histogram_quantile(0.9, sum by (le) (rate(runtimeclassd_reconcile_duration_seconds_bucket[5m])))`, ""},
		{`sum(runtimeclassd_handlers_ready)`, "does not export"},
		{`sum(rate(runtimeclassd_reconcile_total[5m])`, "does not parse"},
		{`runtimeclassd_policy_valid{job="$cluster"}`, "unknown variable"},
		{`{job="runtimeclassd"}`, "without a metric name"},
	} {
		err := checkQuery(t, tc.q, nil)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: %v, want %q", tc.q, err, tc.want)
		}
	}
}
