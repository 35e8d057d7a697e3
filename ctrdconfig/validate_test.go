package ctrdconfig

import (
	"context"
	"github.com/runtimeclassd/runtimeclassd/internal/testbin"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func containerdBin(t *testing.T, major int) string { t.Helper(); return testbin.Containerd(t, major) }

// TestRealContainerdAcceptsPatchedConfigs runs every corpus config, patched,
// through the containerd versions that read that config version, and checks
// that containerd sees each handler where the CRI plugin looks for it.
func TestRealContainerdAcceptsPatchedConfigs(t *testing.T) {
	t.Parallel()
	for _, major := range []int{1, 2} {
		bin := containerdBin(t, major)
		v := &Validator{Binary: bin}
		for _, name := range configs(t) {
			if major == 1 && (strings.HasPrefix(name, "v3") || strings.HasPrefix(name, "v4")) {
				continue // containerd 1.x can't read config versions 3 and 4
			}
			t.Run(filepath.Base(bin)+"-"+string(rune('0'+major))+"/"+name, func(t *testing.T) {
				t.Parallel()
				src := readConfig(t, name)
				target := filepath.Join(t.TempDir(), "config.toml")
				orig, err := v.Dump(context.Background(), target, src)
				if err != nil {
					t.Fatal(err)
				}
				def, err := DefaultRuntime(orig)
				if err != nil || def == nil {
					t.Fatalf("default runtime: %v, %v", def, err)
				}
				res, err := Patch(src, testRuntimes(), Options{DefaultRuntime: func() (*Runtime, error) { return def, nil }})
				if err != nil {
					t.Fatal(err)
				}
				var offered []Runtime
				for _, r := range testRuntimes() {
					if len(res.Conflicts) == 0 || res.Conflicts[0].Handler != r.Name {
						offered = append(offered, r)
					}
				}
				if err := v.Validate(context.Background(), target, res.Out, offered); err != nil {
					t.Fatalf("containerd %d.x: %v\n%s", major, err, res.Out)
				}
				dump, err := v.Dump(context.Background(), target, res.Out)
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(string(dump), "runtimes.runc") && strings.Contains(string(readConfig(t, name)), "runc") {
					t.Errorf("runc disappeared from containerd's effective config")
				}
			})
		}
	}
}

func TestRealContainerdRejectsBrokenCandidate(t *testing.T) {
	t.Parallel()
	for _, major := range []int{1, 2} {
		v := &Validator{Binary: containerdBin(t, major)}
		target := filepath.Join(t.TempDir(), "config.toml")
		err := v.Validate(context.Background(), target, []byte("version = 2\n[plugins\n"), nil)
		if err == nil || !strings.Contains(err.Error(), "containerd rejected the candidate config") {
			t.Errorf("containerd %d.x: err = %v", major, err)
		}
		// A config where the default runtime is gone: containerd's dump
		// accepts it, but the CRI plugin would not load.
		bad := "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd]\ndefault_runtime_name = \"kata\"\n"
		err = v.Validate(context.Background(), target, []byte(bad), nil)
		if err == nil || !strings.Contains(err.Error(), `default_runtime_name "kata"`) {
			t.Errorf("containerd %d.x: err = %v", major, err)
		}
		// A handler that doesn't end up where the CRI plugin reads it.
		err = v.Validate(context.Background(), target, []byte("version = 2\n"), testRuntimes()[:1])
		if err == nil || !strings.Contains(err.Error(), `runtime "kata" is not in containerd's effective config`) {
			t.Errorf("containerd %d.x: err = %v", major, err)
		}
		if _, err := os.Stat(target); !os.IsNotExist(err) {
			t.Errorf("validation left a file at the target: %v", err)
		}
	}
}

func TestRealDefaultVersion(t *testing.T) {
	t.Parallel()
	for major, want := range map[int]int{1: 2, 2: 4} {
		v := &Validator{Binary: containerdBin(t, major)}
		got, err := v.DefaultVersion(context.Background())
		if err != nil || got != want {
			t.Errorf("containerd %d.x default version = %d, %v; want %d", major, got, err, want)
		}
	}
}

// TestRealContainerd1LosesDefaultRuntimeWithoutKeep shows why Options.DefaultRuntime
// exists: containerd 1.6 replaces its built-in runtimes with the file's, so a
// file that names only kata has no runc, and the CRI plugin would not load.
// With it, runc is written out and survives.
func TestRealContainerd1LosesDefaultRuntimeWithoutKeep(t *testing.T) {
	t.Parallel()
	v := &Validator{Binary: containerdBin(t, 1)}
	target := filepath.Join(t.TempDir(), "config.toml")
	src := readConfig(t, "v2-version-only.toml")
	bare, err := Patch(src, testRuntimes()[:1], Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Validate(context.Background(), target, bare.Out, testRuntimes()[:1]); err == nil || !strings.Contains(err.Error(), `default_runtime_name "runc" is not among the runtimes`) {
		t.Fatalf("containerd 1.6 without Keep: err = %v; has its behaviour changed?", err)
	}
	orig, err := v.Dump(context.Background(), target, src)
	if err != nil {
		t.Fatal(err)
	}
	def, err := DefaultRuntime(orig)
	if err != nil || def == nil || def.Name != "runc" || def.Fields["runtime_type"] != "io.containerd.runc.v2" {
		t.Fatalf("DefaultRuntime = %+v, %v", def, err)
	}
	kept, err := Patch(src, testRuntimes()[:1], Options{DefaultRuntime: func() (*Runtime, error) { return def, nil }})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(kept.Kept, ",") != "runc" {
		t.Fatalf("Kept = %v", kept.Kept)
	}
	if err := v.Validate(context.Background(), target, kept.Out, append(testRuntimes()[:1], *def)); err != nil {
		t.Fatal(err)
	}
	back, err := Patch(kept.Out, nil, Options{DefaultRuntime: func() (*Runtime, error) { return def, nil }})
	if err != nil || string(back.Out) != string(src) {
		t.Fatalf("revert: %v\n%s", err, back.Out)
	}
}
