// Package archtest holds the test that keeps imports pointing one way:
// cmd -> daemon -> leaves, where a leaf imports none of our packages except
// that ctrdconfig may use tomlpatch.
package archtest

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/runtimeclassd/runtimeclassd/"

// allowed lists, for each of our packages, which of our packages it may
// import (directly or not).
var allowed = map[string][]string{
	"tomlpatch":  nil,
	"policy":     nil,
	"shimcheck":  nil,
	"atomicfile": nil,
	"kube":       nil,
	"ctrdconfig": {"tomlpatch"},
	"daemon":     {"tomlpatch", "policy", "shimcheck", "atomicfile", "ctrdconfig"},
}

func TestImportsPointOneWay(t *testing.T) {
	t.Parallel()
	for pkg, ok := range allowed {
		out, err := exec.Command("go", "list", "-deps", module+pkg).Output()
		if err != nil {
			t.Fatalf("go list %s: %v", pkg, err)
		}
		for _, dep := range strings.Fields(string(out)) {
			ours, found := strings.CutPrefix(dep, module)
			if !found || ours == pkg || strings.HasPrefix(ours, "internal/") {
				continue
			}
			permitted := false
			for _, a := range ok {
				permitted = permitted || a == ours
			}
			if !permitted {
				t.Errorf("%s imports %s", pkg, ours)
			}
		}
	}
}
