package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/runtimeclassd/runtimeclassd/ctrdhealth"
	"github.com/runtimeclassd/runtimeclassd/internal/testbin"
	"github.com/runtimeclassd/runtimeclassd/internal/testimage"
)

// TestSmokeThroughTheCLI: apply writes a handler that runs (runc under
// another name) and one that passes every static check but can't start a
// sandbox (its runtime binary is /usr/bin/false). Once a real containerd
// runs the new config, the first is offered and the second is not, with
// the CRI's error in status; no sandbox is left.
func TestSmokeThroughTheCLI(t *testing.T) {
	t.Parallel()
	for _, major := range []int{1, 2} {
		t.Run(fmt.Sprint(major), func(t *testing.T) {
			t.Parallel()
			const image = "e2e.local/pause:1"
			cfg := fmt.Sprintf("version = 2\n[plugins.\"io.containerd.grpc.v1.cri\"]\nsandbox_image = %q\nrestrict_oom_score_adj = true\n", image)
			if major == 2 {
				cfg = fmt.Sprintf("version = 3\n[plugins.\"io.containerd.cri.v1.images\".pinned_images]\nsandbox = %q\n[plugins.\"io.containerd.cri.v1.runtime\"]\nrestrict_oom_score_adj = true\n", image)
			}
			n := newNode(t, major, []byte(cfg))
			for _, bin := range []string{"/usr/sbin/runc", "/usr/bin/false"} {
				b, err := os.ReadFile(bin)
				if err != nil {
					t.Fatal(err)
				}
				os.MkdirAll(filepath.Join(n.hostRoot, filepath.Dir(bin)), 0o755)
				os.WriteFile(filepath.Join(n.hostRoot, bin), b, 0o755)
			}
			n.policyFile("a.toml", "[handlers.runc-alt]\nruntime_type = \"io.containerd.runc.v2\"\n[handlers.runc-alt.options]\nBinaryName = \"/usr/sbin/runc\"\n"+
				"[handlers.broken]\nruntime_type = \"io.containerd.runc.v2\"\n[handlers.broken.options]\nBinaryName = \"/usr/bin/false\"\n")
			if code := n.run("apply", "--no-restart"); code != 0 {
				t.Fatalf("apply: exit %d\n%s", code, &n.stderr)
			}
			n.startContainerd()
			archive, err := testimage.Archive(testbin.Busybox(t), image)
			if err != nil {
				t.Fatal(err)
			}
			tar := filepath.Join(t.TempDir(), "pause.tar")
			os.WriteFile(tar, archive, 0o600)
			if out, err := exec.Command(testbin.Ctr(t, major), "--address", n.sock, "-n", "k8s.io", "images", "import", tar).CombinedOutput(); err != nil {
				t.Fatalf("ctr images import: %v\n%s", err, out)
			}
			waitServing(t, n)
			if l := n.labels(); !strings.Contains(l, "handler.runc-alt=true\n") || !strings.Contains(l, "handler.broken=false\n") {
				t.Fatalf("labels:\n%s", l)
			}
			n.run("status")
			if out := n.stdout.String(); !strings.Contains(out, "smoke test failed: RunPodSandbox with handler broken") {
				t.Fatalf("status does not give the CRI error:\n%s", out)
			}
			if !strings.Contains(string(n.read()), "handler=broken") {
				t.Fatal("the broken handler is not in config.toml")
			}
			// check --smoke runs the same test on demand, with timings; the
			// broken handler makes it exit 1.
			code := n.run("check", "--smoke")
			out := n.stdout.String()
			if code != 1 || !regexp.MustCompile(`(?m)^runc-alt\s+passed\s+[0-9.]+m?s\s`).MatchString(out) || !regexp.MustCompile(`(?m)^broken\s+failed\s+.*RunPodSandbox with handler broken`).MatchString(out) {
				t.Fatalf("check --smoke: exit %d\n%s\n%s", code, out, &n.stderr)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if left, err := (&ctrdhealth.Checker{Address: n.sock}).SmokeSandboxes(ctx); err != nil || left != 0 {
				t.Fatalf("%d smoke sandboxes left (%v)", left, err)
			}
		})
	}
}
