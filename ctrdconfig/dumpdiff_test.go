package ctrdconfig

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runtimeclassd/runtimeclassd/internal/testbin"
	"github.com/runtimeclassd/runtimeclassd/tomlpatch"
)

// TestDiffDumpsRealContainerd: a file with only runtimes changes nothing
// else in containerd's effective config; one that also sets a CRI key does,
// and the key is named.
func TestDiffDumpsRealContainerd(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		major   int
		version int
	}{{1, 2}, {2, 3}, {2, 4}} {
		t.Run(fmt.Sprintf("containerd%d-v%d", c.major, c.version), func(t *testing.T) {
			t.Parallel()
			v := &Validator{Binary: testbin.Containerd(t, c.major)}
			target := filepath.Join(t.TempDir(), "config.toml")
			ctx := context.Background()
			base, err := v.Dump(ctx, target, nil)
			if err != nil {
				t.Fatal(err)
			}
			path, _ := RuntimesPath(c.version)
			parent := tomlpatch.FormatPath(path)
			only := fmt.Sprintf("version = %d\n[%s.kata]\nruntime_type = \"io.containerd.kata.v2\"\n[%s.runc]\nruntime_type = \"io.containerd.runc.v2\"\n", c.version, parent, parent)
			cand, err := v.Dump(ctx, target, []byte(only))
			if err != nil {
				t.Fatal(err)
			}
			diffs, err := DiffDumps(base, cand, []string{"kata", "runc"})
			if err != nil || len(diffs) != 0 {
				t.Fatalf("runtimes only: %v %v", diffs, err)
			}
			more := only + fmt.Sprintf("[%s]\ndefault_runtime_name = \"kata\"\n", tomlpatch.FormatPath(path[:len(path)-1]))
			cand, err = v.Dump(ctx, target, []byte(more))
			if err != nil {
				t.Fatal(err)
			}
			diffs, _ = DiffDumps(base, cand, []string{"kata", "runc"})
			if len(diffs) != 1 || !strings.Contains(diffs[0], "default_runtime_name: runc -> kata") {
				t.Fatalf("diffs %v", diffs)
			}
		})
	}
}
