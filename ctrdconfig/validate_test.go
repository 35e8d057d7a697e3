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

// TestRealContainerdDroppedKeysAreRefused: containerd 1.6 silently drops
// runtime keys it doesn't know; the policy would say one thing and
// containerd do another. The candidate is refused, naming the key and the
// containerd version; containerd 2.x keeps them, and the same candidate
// passes (issue 7, hole 3).
func TestRealContainerdDroppedKeysAreRefused(t *testing.T) {
	t.Parallel()
	for key, value := range map[string]any{
		"snapshotter": "native", "sandboxer": "podsandbox", "io_type": "fifo",
		"privileged_without_host_devices_all_devices_allowed": true,
	} {
		t.Run(key, func(t *testing.T) {
			t.Parallel()
			rt := Runtime{Name: "x", Fields: map[string]any{"runtime_type": "io.containerd.runc.v2", key: value},
				Options: map[string]any{"BinaryName": "/usr/bin/runc", "SystemdCgroup": true}}
			src := readConfig(t, "v2-version-only.toml")
			runc := &Runtime{Name: "runc", Fields: map[string]any{"runtime_type": "io.containerd.runc.v2"}}
			res, err := Patch(src, []Runtime{rt}, Options{DefaultRuntime: func() (*Runtime, error) { return runc, nil }})
			if err != nil {
				t.Fatal(err)
			}
			target := filepath.Join(t.TempDir(), "config.toml")
			want := []Runtime{rt, *runc}
			err = (&Validator{Binary: containerdBin(t, 1)}).Validate(context.Background(), target, res.Out, want)
			for _, w := range []string{target + " (candidate), as containerd 1.6", `runtime "x": key ` + key + ` = ` + FormatValue(value) + ` was written but containerd dropped it`} {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("containerd 1.6: err = %v, want %q", err, w)
				}
			}
			if err := (&Validator{Binary: containerdBin(t, 2)}).Validate(context.Background(), target, res.Out, want); err != nil {
				t.Errorf("containerd 2.x: %v", err)
			}
		})
	}
}

// TestCheckDumpComparesEveryKeyAndOption: what containerd reads back must be
// what was written, key by key and option by option.
func TestCheckDumpComparesEveryKeyAndOption(t *testing.T) {
	t.Parallel()
	rt := Runtime{Name: "x", Fields: map[string]any{"runtime_type": "io.containerd.kata.v2", "pod_annotations": []string{"a"}},
		Options: map[string]any{"ConfigPath": "/etc/k.toml", "N": int64(2), "T": map[string]any{"L": []any{1.5, "s"}}}}
	dump := func(body string) []byte {
		return []byte("version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.x]\n" + body)
	}
	same := "runtime_type = \"io.containerd.kata.v2\"\npod_annotations = [\"a\"]\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.x.options]\nConfigPath = \"/etc/k.toml\"\nN = 2\nT = {L = [1.5, \"s\"]}\n"
	if err := CheckDump(dump(same), []Runtime{rt}); err != nil {
		t.Fatalf("identical: %v", err)
	}
	for body, want := range map[string]string{
		strings.Replace(same, "N = 2", "N = 3", 1):                                  `key options.N = 2 was written but containerd reads 3`,
		strings.Replace(same, "N = 2\n", "", 1):                                     `key options.N = 2 was written but containerd dropped it`,
		strings.Replace(same, `"s"]`, `"t"]`, 1):                                    `key options.T = {L = [1.5, "s"]} was written but containerd reads {L = [1.5, "t"]}`,
		strings.Replace(same, `pod_annotations = ["a"]`, `pod_annotations = []`, 1): `key pod_annotations = ["a"] was written but containerd reads []`,
		strings.Replace(same, "kata.v2", "runc.v2", 1):                              `key runtime_type = "io.containerd.kata.v2" was written but containerd reads "io.containerd.runc.v2"`,
		"runtime_type = \"io.containerd.kata.v2\"\npod_annotations = [\"a\"]\n":     `its options table was written but containerd dropped it`,
	} {
		err := CheckDump(dump(body), []Runtime{rt})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want %q", err, want)
		}
	}
}

// TestCheckDumpRefusesKeysNotWritten: a key or option of the handler that
// runtimeclassd didn't write, merged in by another file, refuses the
// candidate, unless containerd holds its zero value or its own default
// there; the real dumps of 1.6 and 2.4.2 for a handler with one key pass.
func TestCheckDumpRefusesKeysNotWritten(t *testing.T) {
	t.Parallel()
	rt := Runtime{Name: "x", Fields: map[string]any{"runtime_type": "io.containerd.runc.v2"}}
	dump := func(body string) []byte {
		return []byte("version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.x]\nruntime_type = \"io.containerd.runc.v2\"\n" + body)
	}
	for _, body := range []string{
		"base_runtime_spec = \"\"\ncni_max_conf_num = 0\npod_annotations = []\nprivileged_without_host_devices = false\nsandboxer = \"podsandbox\"\nsandbox_mode = \"podsandbox\"\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.x.options]\nBinaryName = \"\"\nSystemdCgroup = false\n",
	} {
		if err := CheckDump(dump(body), []Runtime{rt}); err != nil {
			t.Errorf("zero values and defaults: %v", err)
		}
	}
	for body, want := range map[string]string{
		"[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.x.options]\nBinaryName = \"/opt/eve/runc\"\n": `runtime "x": containerd's effective config has options.BinaryName = "/opt/eve/runc", which runtimeclassd did not write`,
		"base_runtime_spec = \"/etc/eve.json\"\n":       `has base_runtime_spec = "/etc/eve.json", which runtimeclassd did not write`,
		"pod_annotations = [\"io.katacontainers.*\"]\n": `has pod_annotations = ["io.katacontainers.*"]`,
		"privileged_without_host_devices = true\n":      `has privileged_without_host_devices = true`,
		"sandboxer = \"shim\"\n":                        `has sandboxer = "shim"`,
	} {
		err := CheckDump(dump(body), []Runtime{rt})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want %q", err, want)
		}
	}
	// The real thing: what containerd 1.6 and 2.4.2 fill in for a handler
	// with runtime_type alone passes.
	for _, major := range []int{1, 2} {
		src := "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.x]\nruntime_type = \"io.containerd.runc.v2\"\n" +
			"[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]\nruntime_type = \"io.containerd.runc.v2\"\n"
		if major == 2 {
			src = "version = 3\n[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.x]\nruntime_type = \"io.containerd.runc.v2\"\n"
		}
		target := filepath.Join(t.TempDir(), "config.toml")
		if err := (&Validator{Binary: containerdBin(t, major)}).Validate(context.Background(), target, []byte(src), []Runtime{rt}); err != nil {
			t.Errorf("containerd %d.x: %v", major, err)
		}
	}
}
