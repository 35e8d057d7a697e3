package ctrdconfig

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"
	"github.com/runtimeclassd/runtimeclassd/internal/testbin"
)

func TestImportsCover(t *testing.T) {
	t.Parallel()
	const cfg, f = "/etc/containerd/config.toml", "/etc/containerd/conf.d/50-runtimeclassd.toml"
	for _, c := range []struct {
		imports []string
		want    bool
	}{
		{nil, false},
		{[]string{"/etc/containerd/conf.d/*.toml"}, true},
		{[]string{"conf.d/*.toml"}, true}, // relative to config.toml's directory
		{[]string{"/etc/containerd/conf.d/50-runtimeclassd.toml"}, true},
		{[]string{"/etc/containerd/conf.d/./50-runtimeclassd.toml"}, true},
		{[]string{"/etc/containerd/conf.d/*.conf"}, false},
		{[]string{"/etc/containerd/other.toml", "conf.d/5*"}, true},
	} {
		if got := ImportsCover(cfg, c.imports, f); got != c.want {
			t.Errorf("ImportsCover(%q) = %v, want %v", c.imports, got, c.want)
		}
	}
}

// TestDumpWithRealContainerd: a candidate drop-in is seen by containerd
// 2.4.2 through the config's glob import, next to another tool's drop-in,
// without being written where it belongs; the other tool's handler is
// reported as theirs.
func TestDumpWithRealContainerd(t *testing.T) {
	t.Parallel()
	v := &Validator{Binary: testbin.Containerd(t, 2)}
	dir := t.TempDir()
	confd := filepath.Join(dir, "conf.d")
	os.Mkdir(confd, 0o755)
	target := filepath.Join(dir, "config.toml")
	cfg := "version = 3\nimports = ['" + confd + "/*.toml']\n"
	os.WriteFile(target, []byte(cfg), 0o644)
	os.WriteFile(filepath.Join(confd, "10-gpu.toml"), []byte("version = 3\n[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.gpu]\nruntime_type = 'io.containerd.runc.v2'\n[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.gpu.options]\nBinaryName = '/usr/bin/nvidia-container-runtime'\n"), 0o644)
	dropin := filepath.Join(confd, "50-runtimeclassd.toml")
	content := append(DropInHeader(3, target), "[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.crun]\nruntime_type = 'io.containerd.runc.v2'\n"...)
	dump, err := v.DumpWith(context.Background(), target, []byte(cfg), dropin, content)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	toml.Unmarshal(dump, &m)
	rts, _ := lookupTable(m, []string{"plugins", "io.containerd.cri.v1.runtime", "containerd", "runtimes"}).(map[string]any)
	for _, h := range []string{"runc", "gpu", "crun"} {
		if _, ok := rts[h]; !ok {
			t.Errorf("the dump lacks %s", h)
		}
	}
	if _, err := os.Stat(dropin); err == nil {
		t.Fatal("DumpWith wrote the drop-in where it belongs")
	}
	foreign, err := ForeignRuntimes(target, []byte(cfg), dropin)
	if err != nil || len(foreign) != 1 || !strings.HasSuffix(foreign["gpu"], "10-gpu.toml") {
		t.Fatalf("foreign %v %v", foreign, err)
	}
	defs, err := ForeignDefs(target, []byte(cfg), dropin, nil)
	if d := defs["gpu"]; err != nil || len(d) != 1 || fmt.Sprint(d[0].Keys) != "[options.BinaryName runtime_type]" {
		t.Fatalf("foreign definitions %v %v", defs, err)
	}
	// Without the candidate: crun is gone.
	dump, _ = v.DumpWith(context.Background(), target, []byte(cfg), dropin, nil)
	m = nil
	toml.Unmarshal(dump, &m)
	rts, _ = lookupTable(m, []string{"plugins", "io.containerd.cri.v1.runtime", "containerd", "runtimes"}).(map[string]any)
	if _, ok := rts["crun"]; ok {
		t.Fatal("an absent candidate still shows")
	}
}

// Patch adds the drop-in's imports entry where none covers it, and removing
// the blocks and the entry gives back the original bytes.
func TestPatchImportsRoundTrip(t *testing.T) {
	t.Parallel()
	const cfg, dropin = "/etc/containerd/config.toml", "/etc/containerd/conf.d/50-runtimeclassd.toml"
	for name, c := range map[string]struct {
		src   string
		added bool
	}{
		"2.4.2 default (glob covers it)": {"version = 3\nimports = ['/etc/containerd/conf.d/*.toml']\n[plugins]\n", false},
		"empty imports":                  {"version = 3\nimports = []\n[plugins]\n", true},
		"other imports":                  {"version = 3\nimports = [\n  '/etc/containerd/gpu.toml', # nvidia\n]\n[plugins]\n", true},
		"no imports key":                 {"version = 3\n# hand-written\n[plugins.'io.containerd.cri.v1.runtime']\n  enable_selinux = false\n", true},
		"no tables":                      {"version = 3\n", true},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			res, err := Patch([]byte(c.src), nil, Options{Import: dropin, Path: cfg})
			if err != nil {
				t.Fatal(err)
			}
			if (res.ImportAdded != nil) != c.added || res.Changed != c.added {
				t.Fatalf("added %+v changed %v\n%s", res.ImportAdded, res.Changed, res.Out)
			}
			imports, err := Imports(res.Out)
			if err != nil || !ImportsCover(cfg, imports, dropin) {
				t.Fatalf("imports %q %v\n%s", imports, err, res.Out)
			}
			if !c.added {
				return
			}
			back, err := Patch(res.Out, nil, Options{Unimport: res.ImportAdded, Path: cfg})
			if err != nil || !back.ImportRemoved || string(back.Out) != c.src {
				t.Fatalf("unimport: %v %v\n%q\nwant\n%q", err, back, back.Out, c.src)
			}
		})
	}
}

// A handler another imported file defines is a conflict, named with it.
func TestPatchForeignConflict(t *testing.T) {
	t.Parallel()
	res, err := Patch([]byte("version = 3\n"), []Runtime{{Name: "gpu", Fields: map[string]any{"runtime_type": "io.containerd.runc.v2"}}},
		Options{Foreign: map[string]string{"gpu": "/etc/containerd/conf.d/99-nvidia.toml"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Conflicts) != 1 || !strings.Contains(res.Conflicts[0].String(), "99-nvidia.toml") || res.Changed {
		t.Fatalf("%+v", res)
	}
}
