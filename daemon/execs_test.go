package daemon

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runtimeclassd/runtimeclassd/ctrdconfig"
	"github.com/runtimeclassd/runtimeclassd/internal/testbin"
)

// countingContainerd puts a script in front of the real containerd binary
// of a major version that counts its executions in a file, and returns the
// script and a function that reads (and resets) the count.
func countingContainerd(t *testing.T, major int) (bin string, execs func() int) {
	t.Helper()
	real := testbin.Containerd(t, major)
	dir := t.TempDir()
	count := filepath.Join(dir, "count")
	bin = filepath.Join(dir, "containerd")
	script := "#!/bin/sh\necho >>" + count + "\nexec " + real + " \"$@\"\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin, func() int {
		b, _ := os.ReadFile(count)
		os.Remove(count)
		return bytes.Count(b, []byte("\n"))
	}
}

// TestPlanRunsContainerdOnce counts how often a plan runs the real
// containerd: once to validate the candidate when config.toml defines the
// default runtime or holds it in a managed block from an earlier apply;
// twice only on a file that needs the default runtime and was never
// managed (containerd is asked for it first); never when nothing changes.
// Every plan is still validated: on containerd 1.x a file that lost runc
// would fail validation (default_runtime_name not among the runtimes).
func TestPlanRunsContainerdOnce(t *testing.T) {
	t.Parallel()
	defaults := map[int]string{1: "v2-default-1.6.toml", 2: "v4-default-2.4.toml"}
	bare := map[int]string{1: "version = 2\n", 2: "version = 3\n"}
	for _, major := range []int{1, 2} {
		t.Run(string(rune('0'+major)), func(t *testing.T) {
			t.Parallel()
			bin, execs := countingContainerd(t, major)
			dir := t.TempDir()
			os.Chmod(dir, 0o755)
			cfg := DefaultConfig()
			cfg.ContainerdConfig = filepath.Join(dir, "etc", "config.toml")
			cfg.PolicyDir = filepath.Join(dir, "policy.d")
			cfg.StateDir = filepath.Join(dir, "state")
			cfg.ContainerdBin = bin
			for _, d := range []string{filepath.Dir(cfg.ContainerdConfig), cfg.PolicyDir} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			a := &Applier{Cfg: cfg, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Validator: &ctrdconfig.Validator{Binary: bin}}
			setPolicy := func(binary string) {
				body := "[handlers.alt]\nruntime_type = \"io.containerd.runc.v2\"\n[handlers.alt.options]\nBinaryName = \"" + binary + "\"\n"
				if err := os.WriteFile(filepath.Join(cfg.PolicyDir, "alt.toml"), []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			setConfig := func(b []byte) {
				if err := os.WriteFile(cfg.ContainerdConfig, b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			plan := func(what string, wantExecs int) *Plan {
				t.Helper()
				execs()
				p, err := a.Plan(context.Background(), PlanOptions{})
				if err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				if got := execs(); got != wantExecs {
					t.Errorf("%s: containerd ran %d times, want %d", what, got, wantExecs)
				}
				return p
			}

			def, err := os.ReadFile(filepath.Join("..", "ctrdconfig", "testdata", "configs", defaults[major]))
			if err != nil {
				t.Fatal(err)
			}
			setConfig(def)
			setPolicy("/usr/bin/runc")
			if p := plan("containerd's default config", 1); !p.Result.Changed || len(p.Result.Kept) != 0 {
				t.Errorf("default config: changed %v, kept %v", p.Result.Changed, p.Result.Kept)
			}

			setConfig([]byte(bare[major]))
			p := plan("a file without the default runtime, never managed", 2)
			if strings.Join(p.Result.Kept, ",") != "runc" {
				t.Fatalf("kept %v, want runc", p.Result.Kept)
			}
			setConfig(p.Result.Out)
			plan("the same inputs again", 0)
			setPolicy("/usr/sbin/runc")
			p = plan("a policy change on a managed file", 1)
			if !p.Result.Changed || strings.Join(p.Result.Kept, ",") != "runc" || strings.Join(p.Result.Unchanged, ",") != "runc" {
				t.Errorf("policy change: changed %v, kept %v, unchanged %v", p.Result.Changed, p.Result.Kept, p.Result.Unchanged)
			}
			if !p.OfferedSet()["runc"] {
				t.Errorf("the kept default runtime is not among the offered ones: %v", p.OfferedSet())
			}

			if err := os.Remove(cfg.ContainerdConfig); err != nil {
				t.Fatal(err)
			}
			// The version containerd writes, the defaults and the
			// candidate: the candidate's dump serves both its validation
			// and the proof that only the handlers differ.
			if p := plan("no config.toml", 3); !p.Result.Created || !bytes.Contains(p.Result.Out, []byte("handler=runc")) {
				t.Errorf("created %v:\n%s", p.Result.Created, p.Result.Out)
			}
		})
	}
}

// TestKeptDefaultIsWhatContainerdReads: the default runtime that a plan
// takes from its managed block is the one containerd reads from the file,
// so keeping it without asking containerd changes nothing.
func TestKeptDefaultIsWhatContainerdReads(t *testing.T) {
	t.Parallel()
	for _, major := range []int{1, 2} {
		v := &ctrdconfig.Validator{Binary: testbin.Containerd(t, major)}
		target := filepath.Join(t.TempDir(), "config.toml")
		src := []byte("version = 2\n")
		dump, err := v.Dump(context.Background(), target, src)
		if err != nil {
			t.Fatal(err)
		}
		def, err := ctrdconfig.DefaultRuntime(dump)
		if err != nil || def == nil {
			t.Fatalf("containerd %d.x: default runtime %v, %v", major, def, err)
		}
		alt := ctrdconfig.Runtime{Name: "alt", Fields: map[string]any{"runtime_type": "io.containerd.runc.v2"}}
		res, err := ctrdconfig.Patch(src, []ctrdconfig.Runtime{alt}, ctrdconfig.Options{DefaultRuntime: func() (*ctrdconfig.Runtime, error) { return def, nil }})
		if err != nil {
			t.Fatal(err)
		}
		kept, err := ctrdconfig.KeptDefault(res.Out)
		if err != nil || kept == nil {
			t.Fatalf("containerd %d.x: KeptDefault = %v, %v\n%s", major, kept, err, res.Out)
		}
		after, err := v.Dump(context.Background(), target, res.Out)
		if err != nil {
			t.Fatal(err)
		}
		read, err := ctrdconfig.DefaultRuntime(after)
		if err != nil || read == nil {
			t.Fatalf("containerd %d.x: default runtime after the apply %v, %v", major, read, err)
		}
		again, err := ctrdconfig.Patch(res.Out, []ctrdconfig.Runtime{alt}, ctrdconfig.Options{DefaultRuntime: func() (*ctrdconfig.Runtime, error) { return kept, nil }})
		if err != nil || again.Changed {
			t.Errorf("containerd %d.x: re-planning with the kept block changed the file (%v)", major, err)
		}
		viaDump, err := ctrdconfig.Patch(res.Out, []ctrdconfig.Runtime{alt}, ctrdconfig.Options{DefaultRuntime: func() (*ctrdconfig.Runtime, error) { return read, nil }})
		if err != nil || viaDump.Changed {
			t.Errorf("containerd %d.x: containerd's own answer for the managed file would rewrite the block (%v):\n%s", major, err, viaDump.Out)
		}
	}
}
