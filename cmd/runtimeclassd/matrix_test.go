package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runtimeclassd/runtimeclassd/ctrdconfig"
	"github.com/runtimeclassd/runtimeclassd/internal/testbin"
)

// TestVersionMatrix: on every containerd release production runs (1.6,
// 1.7, 2.0, 2.1, 2.2, 2.3, 2.4), through the real CLI, on that release's
// own `containerd config default`, in every mode it supports (patch; and
// drop-in on 2.x): apply is validated by that same binary, a second apply
// writes nothing, containerd's effective config (`config dump`) differs
// only in the handlers, and revert gives config.toml back byte for byte.
func TestVersionMatrix(t *testing.T) {
	t.Parallel()
	for _, rel := range testbin.Matrix(t) {
		def, err := exec.Command(rel.Bin, "config", "default").Output()
		if err != nil {
			t.Fatalf("%s config default: %v", rel.Bin, err)
		}
		major := 1
		if strings.HasPrefix(rel.Version, "2.") {
			major = 2
		}
		modes := []string{"patch"}
		if major == 2 {
			modes = append(modes, "drop-in")
		}
		for _, mode := range modes {
			t.Run(rel.Version+"/"+mode, func(t *testing.T) {
				t.Parallel()
				n := newNode(t, major, def)
				n.bin = rel.Bin
				n.policyFile("10-kata.toml", kataPolicy)
				n.policyFile("20-crun.toml", "[handlers.crun]\nruntime_type = \"io.containerd.runc.v2\"\n[handlers.crun.options]\nBinaryName = \"/usr/bin/crun\"\n")
				dropIn := filepath.Join(filepath.Dir(n.config), "conf.d", "50-runtimeclassd.toml")
				if code := n.run("apply", "--no-restart", "--mode", mode); code != 0 {
					t.Fatalf("apply: exit %d\n%s%s", code, &n.stdout, &n.stderr)
				}
				written := n.read()
				where := written
				if mode == "drop-in" {
					if where, err = os.ReadFile(dropIn); err != nil {
						t.Fatalf("the drop-in: %v", err)
					}
				}
				for _, h := range []string{"kata", "crun"} {
					if !bytes.Contains(where, []byte("runtimeclassd:begin handler="+h)) {
						t.Fatalf("%s not written (%s mode):\n%s", h, mode, where)
					}
				}
				v := &ctrdconfig.Validator{Binary: rel.Bin}
				before, err := v.Dump(context.Background(), n.config, def)
				if err != nil {
					t.Fatal(err)
				}
				after, err := v.Dump(context.Background(), n.config, written)
				if err != nil {
					t.Fatal(err)
				}
				if err := ctrdconfig.CheckDump(after, nil); err != nil {
					t.Error(err)
				}
				diffs, err := ctrdconfig.DiffDumps(before, after, []string{"kata", "crun"})
				if err != nil {
					t.Fatal(err)
				}
				if len(diffs) > 0 {
					t.Errorf("containerd's effective config changed beyond the handlers: %s", strings.Join(diffs, "; "))
				}
				if !bytes.Contains(after, []byte("runtimes.kata")) || !bytes.Contains(after, []byte("runtimes.crun")) {
					t.Errorf("containerd's effective config lacks the handlers:\n%s", after)
				}

				if code := n.run("apply", "--no-restart", "--mode", mode); code != 0 || !strings.Contains(n.stderr.String(), "up to date") {
					t.Errorf("a second apply: exit %d\n%s%s", code, &n.stdout, &n.stderr)
				}
				if !bytes.Equal(n.read(), written) {
					t.Errorf("a second apply changed config.toml")
				}

				if code := n.run("revert", "--no-restart", "--mode", mode); code != 0 {
					t.Fatalf("revert: exit %d\n%s%s", code, &n.stdout, &n.stderr)
				}
				if !bytes.Equal(n.read(), def) {
					t.Errorf("revert did not give config.toml back byte for byte")
				}
				if _, err := os.Stat(dropIn); err == nil {
					t.Errorf("revert left the drop-in")
				}
				t.Logf("containerd %s, %s mode: validated by it, idempotent, effective config changed only by the handlers, reverted byte for byte", rel.Version, mode)
			})
		}
	}
}
