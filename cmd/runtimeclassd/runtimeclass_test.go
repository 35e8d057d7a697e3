package main

import (
	"strings"
	"testing"

	nodev1 "k8s.io/api/node/v1"
	"sigs.k8s.io/yaml"
)

// TestRuntimeClassManifests decodes the output strictly into the real
// node.k8s.io/v1 RuntimeClass: our label and the policy's node_selector in
// scheduling, its tolerations, the overhead (the policy's, or Kata's
// default for Kata only).
func TestRuntimeClassManifests(t *testing.T) {
	t.Parallel()
	n := newNode(t, 1, nil)
	n.policyFile("a.toml", kataPolicy)
	n.policyFile("b.toml", "[handlers.gvisor]\npreset = \"gvisor\"\n")
	n.policyFile("c.toml", `[handlers.crun]
preset = "crun"
[handlers.crun.runtimeclass]
node_selector = { "node-role.example.com/untrusted" = "true" }
overhead = { memory = "16Mi" }
[[handlers.crun.runtimeclass.tolerations]]
key = "untrusted"
operator = "Equal"
value = "true"
effect = "NoSchedule"
`)
	if code := n.run("runtimeclass"); code != 0 {
		t.Fatalf("exit %d\n%s", code, &n.stderr)
	}
	docs := strings.Split(n.stdout.String(), "\n---\n")
	if len(docs) != 3 {
		t.Fatalf("want 3 manifests:\n%s", &n.stdout)
	}
	got := map[string]nodev1.RuntimeClass{}
	for _, d := range docs {
		var rc nodev1.RuntimeClass
		if err := yaml.UnmarshalStrict([]byte(d), &rc); err != nil {
			t.Fatalf("not a RuntimeClass: %v\n%s", err, d)
		}
		if rc.APIVersion != "node.k8s.io/v1" || rc.Kind != "RuntimeClass" || rc.Name != rc.Handler {
			t.Fatalf("%+v", rc)
		}
		got[rc.Name] = rc
	}
	crun := got["crun"]
	if sel := crun.Scheduling.NodeSelector; sel["runtimeclassd.io/handler.crun"] != "true" || sel["node-role.example.com/untrusted"] != "true" || len(sel) != 2 {
		t.Errorf("crun's node selector: %v", sel)
	}
	if tol := crun.Scheduling.Tolerations; len(tol) != 1 || tol[0].Key != "untrusted" || tol[0].Operator != "Equal" || tol[0].Value != "true" || tol[0].Effect != "NoSchedule" {
		t.Errorf("crun's tolerations: %+v", tol)
	}
	if m := crun.Overhead.PodFixed["memory"]; m.String() != "16Mi" || len(crun.Overhead.PodFixed) != 1 {
		t.Errorf("crun's overhead: %v", crun.Overhead)
	}
	if got["gvisor"].Overhead != nil || got["gvisor"].Scheduling.Tolerations != nil {
		t.Errorf("gvisor: %+v", got["gvisor"])
	}
	if k := got["kata"].Overhead; k == nil || k.PodFixed.Memory().String() != "160Mi" || k.PodFixed.Cpu().String() != "250m" {
		t.Errorf("kata's overhead: %+v", k)
	}
}

// A typo in the runtimeclass table is refused with its file, line and
// column.
func TestRuntimeClassTypo(t *testing.T) {
	t.Parallel()
	n := newNode(t, 1, nil)
	n.policyFile("c.toml", "[handlers.crun]\npreset = \"crun\"\n[handlers.crun.runtimeclass]\nnode_selectr = { a = \"b\" }\n")
	if code := n.run("runtimeclass"); code != 1 || !strings.Contains(n.stderr.String(), "c.toml:4:1: unknown key handlers.crun.runtimeclass.node_selectr") {
		t.Fatalf("exit %d\n%s", code, &n.stderr)
	}
}
