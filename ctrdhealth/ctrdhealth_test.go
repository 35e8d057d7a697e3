package ctrdhealth

import (
	"context"
	"errors"
	"fmt"
	"github.com/runtimeclassd/runtimeclassd/internal/testbin"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startContainerd runs a real containerd with its state in a temp dir and
// extra runtime stanzas, and returns its socket.
func startContainerd(t *testing.T, major int, runtimes string) string {
	t.Helper()
	version, path := 2, `"io.containerd.grpc.v1.cri"`
	if major == 2 {
		version, path = 3, `"io.containerd.cri.v1.runtime"`
	}
	cfg := fmt.Sprintf("version = %d\n[plugins.%s.containerd.runtimes.runc]\nruntime_type = \"io.containerd.runc.v2\"\n%s",
		version, path, strings.ReplaceAll(runtimes, "@CRI@", path))
	file := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return testbin.StartContainerd(t, major, file)
}

func TestVerifyRealContainerd(t *testing.T) {
	t.Parallel()
	for _, major := range []int{1, 2} {
		t.Run(fmt.Sprint(major), func(t *testing.T) {
			t.Parallel()
			sock := startContainerd(t, major, "[plugins.@CRI@.containerd.runtimes.kata]\nruntime_type = \"io.containerd.kata.v2\"\n")
			c := &Checker{Address: sock}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			start := time.Now()
			if err := c.Verify(ctx, []string{"runc", "kata"}); err != nil {
				t.Fatalf("Verify: %v", err)
			}
			t.Logf("containerd %d.x healthy with runc and kata after %v", major, time.Since(start))
			st, err := c.Probe(ctx)
			if err != nil || !st.Serving || !st.CRIReady || strings.Join(st.Handlers, ",") != "kata,runc" {
				t.Fatalf("Probe = %+v, %v", st, err)
			}
			// A ready CRI without a handler is a final answer: no waiting
			// for the deadline.
			err = c.Verify(ctx, []string{"runc", "gvisor"})
			if !errors.Is(err, ErrHandlersMissing) || !strings.Contains(err.Error(), "CRI does not serve the handlers gvisor (it serves kata, runc)") {
				t.Fatalf("Verify with a missing handler: %v", err)
			}
			if ctx.Err() != nil {
				t.Fatal("Verify with a missing handler waited for the deadline")
			}
		})
	}
}

func TestVerifyFailsFastWhenCRIFailsToLoad(t *testing.T) {
	t.Parallel()
	spec := filepath.Join(t.TempDir(), "spec.json")
	os.WriteFile(spec, []byte("not json"), 0o644)
	for _, major := range []int{1, 2} {
		t.Run(fmt.Sprint(major), func(t *testing.T) {
			t.Parallel()
			sock := startContainerd(t, major, fmt.Sprintf("[plugins.@CRI@.containerd.runtimes.bad]\nruntime_type = \"io.containerd.runc.v2\"\nbase_runtime_spec = %q\n", spec))
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			start := time.Now()
			err := (&Checker{Address: sock}).Verify(ctx, []string{"runc", "bad"})
			if !errors.Is(err, ErrCRIFailed) {
				t.Fatalf("Verify = %v, want ErrCRIFailed", err)
			}
			if time.Since(start) > 15*time.Second {
				t.Errorf("took %v to see the CRI failure", time.Since(start))
			}
			t.Logf("containerd %d.x: %v", major, err)
		})
	}
}

func TestVerifyTimesOutWithoutContainerd(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := (&Checker{Address: filepath.Join(t.TempDir(), "none.sock")}).Verify(ctx, []string{"runc"})
	if err == nil || !strings.Contains(err.Error(), "containerd is not serving") {
		t.Fatalf("Verify = %v", err)
	}
}
