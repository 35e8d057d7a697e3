package ctrdhealth

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/runtimeclassd/runtimeclassd/internal/testbin"
	"github.com/runtimeclassd/runtimeclassd/internal/testimage"
)

const smokeImage = "e2e.local/pause:1"

// startSmokeContainerd runs a real containerd whose sandbox image is
// smokeImage (imported from a local archive, unless noImage) and whose CRI
// has a runc handler and one whose runtime binary is /usr/bin/false.
func startSmokeContainerd(t *testing.T, major int, noImage bool) string {
	t.Helper()
	// A runtime that starts sandboxes and refuses every other container, as
	// gVisor did through the runc shim before its wrapper was fixed.
	wrapper := filepath.Join(t.TempDir(), "sandboxes-only")
	os.WriteFile(wrapper, []byte(`#!/bin/sh
prev=
for a in "$@"; do
  if [ "$prev" = --bundle ]; then bundle=$a; fi
  if [ "$a" = create ]; then create=1; fi
  prev=$a
done
if [ -n "$create" ] && grep -q '"io.kubernetes.cri.container-type":"container"' "$bundle/config.json"; then
  echo "this runtime runs no containers" >&2
  exit 1
fi
exec /usr/sbin/runc "$@"
`), 0o755)
	cri, images := `"io.containerd.grpc.v1.cri"`, `"io.containerd.grpc.v1.cri"`
	version, pin := 2, fmt.Sprintf("[plugins.%s]\nsandbox_image = %q\nrestrict_oom_score_adj = true\n", cri, smokeImage)
	if major == 2 {
		cri, images = `"io.containerd.cri.v1.runtime"`, `"io.containerd.cri.v1.images"`
		version, pin = 3, fmt.Sprintf("[plugins.%s.pinned_images]\nsandbox = %q\n[plugins.%s]\nrestrict_oom_score_adj = true\n", images, smokeImage, cri)
	}
	cfg := fmt.Sprintf("version = %d\n%s[plugins.%s.containerd.runtimes.runc]\nruntime_type = \"io.containerd.runc.v2\"\n"+
		"[plugins.%s.containerd.runtimes.broken]\nruntime_type = \"io.containerd.runc.v2\"\n[plugins.%s.containerd.runtimes.broken.options]\nBinaryName = \"/usr/bin/false\"\n"+
		"[plugins.%s.containerd.runtimes.nocontainers]\nruntime_type = \"io.containerd.runc.v2\"\n[plugins.%s.containerd.runtimes.nocontainers.options]\nBinaryName = %q\n",
		version, pin, cri, cri, cri, cri, cri, wrapper)
	file := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	sock := testbin.StartContainerd(t, major, file)
	waitServing(t, sock)
	if !noImage {
		archive, err := testimage.Archive(testbin.Busybox(t), smokeImage)
		if err != nil {
			t.Fatal(err)
		}
		tar := filepath.Join(t.TempDir(), "pause.tar")
		os.WriteFile(tar, archive, 0o600)
		if out, err := exec.Command(testbin.Ctr(t, major), "--address", sock, "-n", "k8s.io", "images", "import", tar).CombinedOutput(); err != nil {
			t.Fatalf("ctr images import: %v\n%s", err, out)
		}
	}
	return sock
}

func waitServing(t *testing.T, sock string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := (&Checker{Address: sock}).Verify(ctx, []string{"runc"}); err != nil {
		t.Fatal(err)
	}
}

// TestSmokeRealContainerd runs real sandboxes through real containerd 1.6
// and 2.4.2 with runc: the runc handler passes, the handler whose binary is
// /usr/bin/false fails with the CRI's error, and no sandbox is left.
func TestSmokeRealContainerd(t *testing.T) {
	t.Parallel()
	for _, major := range []int{1, 2} {
		t.Run(fmt.Sprint(major), func(t *testing.T) {
			t.Parallel()
			sock := startSmokeContainerd(t, major, false)
			c := &Checker{Address: sock}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			opts := SmokeOptions{}
			if major == 2 {
				opts.Image = smokeImage // 2.x doesn't report it; the daemon reads it from the config dump
			}
			ok := c.Smoke(ctx, "runc", opts)
			if ok.Result != SmokePassed {
				t.Fatalf("runc: %+v", ok)
			}
			t.Logf("containerd %d.x: a runc pod ran in %v (sandbox %v, container %v, stop %v, remove %v)", major, ok.Took, ok.Run, ok.Container, ok.Stop, ok.Remove)
			bad := c.Smoke(ctx, "broken", opts)
			if bad.Result != SmokeFailed || !strings.Contains(bad.Detail, "RunPodSandbox with handler broken") {
				t.Fatalf("broken: %+v", bad)
			}
			t.Logf("containerd %d.x: broken handler: %s", major, bad.Detail)
			// Sandboxes run, containers don't: a sandbox alone would pass.
			nc := c.Smoke(ctx, "nocontainers", opts)
			if nc.Result != SmokeFailed || !strings.Contains(nc.Detail, "a container in it did not start") || !strings.Contains(nc.Detail, "sandboxes-only") {
				t.Fatalf("nocontainers: %+v", nc)
			}
			if n, err := c.SmokeSandboxes(ctx); err != nil || n != 0 {
				t.Fatalf("%d smoke sandboxes left (%v)", n, err)
			}
		})
	}
}

// TestSmokeSkipsWithoutImage: no sandbox image and no pull allowed: the
// test says so and runs nothing.
func TestSmokeSkipsWithoutImage(t *testing.T) {
	t.Parallel()
	sock := startSmokeContainerd(t, 1, true)
	res := (&Checker{Address: sock}).Smoke(context.Background(), "runc", SmokeOptions{})
	if res.Result != SmokeSkipped || !strings.Contains(res.Detail, smokeImage+" is not on this node") {
		t.Fatalf("%+v", res)
	}
}

// TestSmokePendingWithoutCNI: a pod-network test with no CNI configured is
// pending, not failed.
func TestSmokePendingWithoutCNI(t *testing.T) {
	t.Parallel()
	sock := startSmokeContainerd(t, 1, false)
	res := (&Checker{Address: sock}).Smoke(context.Background(), "runc", SmokeOptions{PodNetwork: true})
	if res.Result != SmokePending || !strings.Contains(res.Detail, "pod network is not ready") {
		t.Fatalf("%+v", res)
	}
}
