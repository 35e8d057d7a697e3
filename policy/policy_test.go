package policy

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// writePolicy writes files into a fresh policy dir and returns it.
func writePolicy(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "policy.d")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoadExamples(t *testing.T) {
	t.Parallel()
	p, err := Load("../examples/policy.d", Options{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, h := range p.Handlers {
		names = append(names, h.Name)
	}
	if strings.Join(names, ",") != "crun,gvisor,kata" {
		t.Fatalf("handlers = %v", names)
	}
	kata := p.Handlers[2]
	if kata.RuntimeType != "io.containerd.kata.v2" || kata.PrivilegedWithoutHostDevices == nil || !*kata.PrivilegedWithoutHostDevices ||
		!reflect.DeepEqual(kata.Requires, []string{"kvm", "vhost-vsock", "kata-config"}) || !strings.HasSuffix(kata.Source, "10-kata.toml") {
		t.Fatalf("kata = %+v", kata)
	}
	crun := p.Handlers[0]
	if crun.Options["BinaryName"] != "/usr/bin/crun" || crun.Options["SystemdCgroup"] != true {
		t.Fatalf("crun options = %v (preset and policy options must merge)", crun.Options)
	}
}

func TestPresetFieldsAreOverridable(t *testing.T) {
	t.Parallel()
	hs, err := Parse("p.toml", []byte(`
[handlers.kata-fast]
preset = "kata"
runtime_type = "io.containerd.kata-fast.v2"
privileged_without_host_devices = false
requires = ["kvm"]
[handlers.kata-fast.options]
ConfigPath = "/opt/kata/share/defaults/kata-containers/configuration-fast.toml"
`), Options{SkipOwnership: true})
	if err != nil {
		t.Fatal(err)
	}
	h := hs[0]
	// requires only adds to the preset's checks.
	if h.RuntimeType != "io.containerd.kata-fast.v2" || *h.PrivilegedWithoutHostDevices || !reflect.DeepEqual(h.Requires, []string{"kvm", "vhost-vsock", "kata-config"}) || h.Preset != "kata" {
		t.Fatalf("%+v", h)
	}
	f := h.Fields()
	if f["privileged_without_host_devices"] != false || f["runtime_type"] != "io.containerd.kata-fast.v2" {
		t.Fatalf("fields %v", f)
	}
	if got := h.Paths(); len(got) != 1 || got[0].Key != "options.ConfigPath" {
		t.Fatalf("paths %v", got)
	}
}

// TestBadPolicies: every bad policy is refused, and the message names the
// file and, where the problem is in the file, its line and column.
func TestBadPolicies(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		body string
		want []string
	}{
		{"syntax error", "[handlers.kata\n", []string{"bad.toml:1:"}},
		{"unknown top-level key", "[handlerz.kata]\nruntime_type = \"io.containerd.kata.v2\"\n", []string{"bad.toml:1:", "unknown key handlerz"}},
		{"unknown handler key", "[handlers.kata]\nruntime_type = \"io.containerd.kata.v2\"\nruntime_engine = \"/usr/bin/x\"\n", []string{"bad.toml:3:1", "unknown key handlers.kata.runtime_engine"}},
		{"wrong type", "[handlers.kata]\nruntime_type = 2\n", []string{"bad.toml:2:", "runtime_type"}},
		{"name not DNS-1123", "[handlers.Kata_1]\nruntime_type = \"io.containerd.kata.v2\"\n", []string{"bad.toml:1:11", "DNS-1123"}},
		{"name too long", "[handlers." + strings.Repeat("a", 64) + "]\nruntime_type = \"io.containerd.kata.v2\"\n", []string{"bad.toml:1:", "DNS-1123"}},
		{"missing runtime_type", "[handlers.kata]\nprivileged_without_host_devices = true\n", []string{"bad.toml:1:11", "runtime_type is required"}},
		{"bad runtime_type", "[handlers.kata]\nruntime_type = \"kata\"\n", []string{"bad.toml:2:1", "io.containerd.NAME.vN"}},
		{"runtime_type injection", "[handlers.kata]\nruntime_type = \"io.containerd.kata.v2\\\"\\nx = 1\"\n", []string{"bad.toml:2:1", "io.containerd.NAME.vN"}},
		{"unknown preset", "[handlers.kata]\npreset = \"katta\"\n", []string{"bad.toml:2:1", `unknown preset "katta"`, "kata-clh"}},
		{"relative path", "[handlers.x]\nruntime_type = \"io.containerd.x.v1\"\nruntime_path = \"bin/shim\"\n", []string{"bad.toml:3:1", "must be absolute"}},
		{"dot-dot path", "[handlers.x]\nruntime_type = \"io.containerd.x.v1\"\nruntime_path = \"/usr/../tmp/shim\"\n", []string{"bad.toml:3:1", "must be clean"}},
		{"path outside prefixes", "[handlers.x]\nruntime_type = \"io.containerd.x.v1\"\nbase_runtime_spec = \"/tmp/spec.json\"\n", []string{"bad.toml:3:1", "not under an allowed prefix"}},
		{"prefix lookalike", "[handlers.x]\nruntime_type = \"io.containerd.x.v1\"\nruntime_path = \"/usrlocal/shim\"\n", []string{"not under an allowed prefix"}},
		{"option path outside", "[handlers.x]\nruntime_type = \"io.containerd.runc.v2\"\n[handlers.x.options]\nBinaryName = \"/home/eve/runc\"\n", []string{"bad.toml:4:1", "handlers.x.options.BinaryName", "not under an allowed prefix"}},
		{"option binary by name", "[handlers.x]\nruntime_type = \"io.containerd.runc.v2\"\noptions = { BinaryName = \"crun\" }\n", []string{"bad.toml:3:", "must be absolute"}},
		{"wildcard annotation", "[handlers.kata]\npreset = \"kata\"\npod_annotations = [\"io.katacontainers.*\"]\n", []string{"bad.toml:3:1", "wildcard", "io.katacontainers.*"}},
		{"bare star", "[handlers.kata]\npreset = \"kata\"\ncontainer_annotations = [\"*\"]\n", []string{"bad.toml:3:1", "wildcard"}},
		{"bad annotation", "[handlers.kata]\npreset = \"kata\"\npod_annotations = [\"has space\"]\n", []string{"not a valid annotation key"}},
		{"unknown requires", "[handlers.kata]\npreset = \"kata\"\nrequires = [\"kvm\", \"sgx\"]\n", []string{"bad.toml:3:1", `unknown check "sgx"`}},
		{"requires path relative", "[handlers.kata]\npreset = \"kata\"\nrequires = [\"path:dev/kvm\"]\n", []string{"must be absolute"}},
		{"date option", "[handlers.x]\nruntime_type = \"io.containerd.x.v1\"\n[handlers.x.options]\nWhen = 1979-05-27\n", []string{"bad.toml:4:1", "not supported in options"}},
		{"snapshotter injection", "[handlers.x]\nruntime_type = \"io.containerd.x.v1\"\nsnapshotter = \"a\\\"]\\n[x]\"\n", []string{"bad.toml:3:1", "not a plain name"}},
		{"handlers not a table", "handlers = 1\n", []string{"bad.toml:1:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := writePolicy(t, map[string]string{"bad.toml": tt.body, "00-good.toml": "[handlers.good]\npreset = \"gvisor\"\n"})
			p, err := Load(dir, Options{})
			if err == nil {
				t.Fatalf("accepted: %+v", p.Handlers)
			}
			for _, w := range tt.want {
				w = strings.ReplaceAll(w, "bad.toml", filepath.Join(dir, "bad.toml"))
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestFileSafety(t *testing.T) {
	t.Parallel()
	good := "[handlers.kata]\npreset = \"kata\"\n"
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string)
		want  string
	}{
		{"group-writable file", func(t *testing.T, dir string) { chmod(t, filepath.Join(dir, "p.toml"), 0o664) }, "group- or world-writable"},
		{"world-writable file", func(t *testing.T, dir string) { chmod(t, filepath.Join(dir, "p.toml"), 0o646) }, "group- or world-writable"},
		{"non-root file", func(t *testing.T, dir string) { chown(t, filepath.Join(dir, "p.toml"), 1000) }, "owned by uid 1000"},
		{"world-writable dir", func(t *testing.T, dir string) { chmod(t, dir, 0o777) }, "group- or world-writable"},
		{"non-root dir", func(t *testing.T, dir string) { chown(t, dir, 1000) }, "owned by uid 1000"},
		{"symlink to unsafe target", func(t *testing.T, dir string) {
			target := filepath.Join(t.TempDir(), "evil.toml")
			if err := os.WriteFile(target, []byte(good), 0o666); err != nil {
				t.Fatal(err)
			}
			chmod(t, target, 0o666)
			if err := os.Symlink(target, filepath.Join(dir, "link.toml")); err != nil {
				t.Fatal(err)
			}
		}, "group- or world-writable"},
		{"symlink to a directory", func(t *testing.T, dir string) {
			if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("sub", filepath.Join(dir, "dir.toml")); err != nil {
				t.Fatal(err)
			}
		}, "not a regular file"},
		{"too large", func(t *testing.T, dir string) {
			big := good + "# " + strings.Repeat("x", MaxFileSize) + "\n"
			if err := os.WriteFile(filepath.Join(dir, "p.toml"), []byte(big), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "larger than 1048576 bytes"},
		{"fifo", func(t *testing.T, dir string) {
			if err := mkfifo(filepath.Join(dir, "fifo.toml")); err != nil {
				t.Skip(err)
			}
		}, "not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := writePolicy(t, map[string]string{"p.toml": good})
			tt.setup(t, dir)
			_, err := Load(dir, Options{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestSafeSymlinkIsFollowed(t *testing.T) {
	t.Parallel()
	// A Kubernetes ConfigMap volume: files are symlinks through ..data.
	dir := writePolicy(t, nil)
	ts := filepath.Join(dir, "..2026_11_28_10_00_00.000")
	if err := os.Mkdir(ts, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ts, "kata.toml"), []byte("[handlers.kata]\npreset = \"kata\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Base(ts), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("..data/kata.toml", filepath.Join(dir, "kata.toml")); err != nil {
		t.Fatal(err)
	}
	p, err := Load(dir, Options{})
	if err != nil || len(p.Handlers) != 1 || p.Handlers[0].Name != "kata" {
		t.Fatalf("Load = %+v, %v", p, err)
	}
}

func TestOnlyTomlFilesInOrder(t *testing.T) {
	t.Parallel()
	dir := writePolicy(t, map[string]string{
		"20-b.toml":        "[handlers.b]\npreset = \"crun\"\n",
		"10-a.toml":        "[handlers.a]\npreset = \"gvisor\"\n",
		"README":           "not a policy",
		"30-c.toml.dpkg-d": "[handlers.c]\nbroken",
		".10-a.toml.swp":   "\x00\x01",
		"40-d.TOML":        "ignored: case matters",
	})
	p, err := Load(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Files) != 2 || !strings.HasSuffix(p.Files[0], "10-a.toml") || !strings.HasSuffix(p.Files[1], "20-b.toml") {
		t.Fatalf("files = %v", p.Files)
	}
}

func TestCrossFileConflicts(t *testing.T) {
	t.Parallel()
	same := "[handlers.kata]\npreset = \"kata\"\n"
	dir := writePolicy(t, map[string]string{"10-a.toml": same, "20-b.toml": same})
	if p, err := Load(dir, Options{}); err != nil || len(p.Handlers) != 1 || !strings.HasSuffix(p.Handlers[0].Source, "10-a.toml") {
		t.Fatalf("identical definitions: %+v, %v", p, err)
	}
	dir = writePolicy(t, map[string]string{"10-a.toml": same, "20-b.toml": "[handlers.kata]\npreset = \"kata-clh\"\n"})
	_, err := Load(dir, Options{})
	if err == nil || !strings.Contains(err.Error(), "10-a.toml") || !strings.Contains(err.Error(), "20-b.toml") {
		t.Fatalf("err = %v, want both files named", err)
	}
}

func TestMissingDir(t *testing.T) {
	t.Parallel()
	_, err := Load(filepath.Join(t.TempDir(), "nope"), Options{})
	if !errors.Is(err, ErrNoDir) {
		t.Fatalf("err = %v", err)
	}
}

func TestAllowedPrefixesConfigurable(t *testing.T) {
	t.Parallel()
	body := []byte("[handlers.x]\nruntime_type = \"io.containerd.x.v1\"\nruntime_path = \"/srv/shims/x\"\n")
	if _, err := Parse("p.toml", body, Options{}); err == nil {
		t.Fatal("/srv accepted by default")
	}
	if _, err := Parse("p.toml", body, Options{AllowedPrefixes: []string{"/srv/shims/"}}); err != nil {
		t.Fatal(err)
	}
}

func TestEveryPresetIsValid(t *testing.T) {
	t.Parallel()
	for _, name := range PresetNames() {
		hs, err := Parse("p.toml", []byte("[handlers.h]\npreset = \""+name+"\"\n"), Options{})
		if err != nil || len(hs) != 1 {
			t.Errorf("preset %s: %v", name, err)
		}
	}
}

func chmod(t *testing.T, p string, m os.FileMode) {
	t.Helper()
	if err := os.Chmod(p, m); err != nil {
		t.Fatal(err)
	}
}

func chown(t *testing.T, p string, uid int) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("needs root to chown")
	}
	if err := os.Lchown(p, uid, uid); err != nil {
		t.Fatal(err)
	}
}

// TestOptionsAsContainerdReadsThem: containerd matches option names without
// regard to case (go-toml v1 in 1.x tries four spellings, go-toml v2 in 2.x
// folds any casing), so every spelling of a path option gets the path
// rules, known runc keys are written in containerd's spelling, and one
// option set under two spellings is refused (issue 7, hole 1).
func TestOptionsAsContainerdReadsThem(t *testing.T) {
	t.Parallel()
	runc := "[handlers.x]\nruntime_type = \"io.containerd.runc.v2\"\n[handlers.x.options]\n"
	kata := "[handlers.x]\nruntime_type = \"io.containerd.kata.v2\"\n[handlers.x.options]\n"
	bad := []struct {
		name, body string
		want       []string
	}{
		{"lowercase binaryname", runc + "binaryname = \"/tmp/evil/runc\"\n", []string{"p.toml:4:1", "handlers.x.options.binaryname", `path "/tmp/evil/runc" is not under an allowed prefix`}},
		{"uppercase BINARYNAME", runc + "BINARYNAME = \"/tmp/evil/runc\"\n", []string{"p.toml:4:1", "not under an allowed prefix"}},
		{"lowerCamel binaryName", runc + "binaryName = \"/tmp/evil/runc\"\n", []string{"p.toml:4:1", "not under an allowed prefix"}},
		{"any casing (containerd 2.x)", runc + "bInArYnAmE = \"/tmp/evil/runc\"\n", []string{"p.toml:4:1", "not under an allowed prefix"}},
		{"relative binary", runc + "binaryname = \"runc\"\n", []string{"p.toml:4:1", "must be absolute"}},
		{"root lowercase", runc + "root = \"/home/eve/runc\"\n", []string{"p.toml:4:1", "options.root", "not under an allowed prefix"}},
		{"criu work path", runc + "criuworkpath = \"/tmp/criu\"\n", []string{"p.toml:4:1", "not under an allowed prefix"}},
		{"kata configpath", kata + "configpath = \"/home/x/kata.toml\"\n", []string{"p.toml:4:1", "options.configpath", "not under an allowed prefix"}},
		{"kata CONFIGPATH", kata + "CONFIGPATH = \"/home/x/kata.toml\"\n", []string{"p.toml:4:1", "not under an allowed prefix"}},
		{"two spellings", runc + "BinaryName = \"/usr/bin/crun\"\nbinaryname = \"/usr/bin/runc\"\n", []string{"p.toml:5:1", "binaryname is also set as BinaryName", "both are BinaryName to it"}},
		{"two spellings of an unknown shim's key", kata + "Foo = 1\nfoo = 2\n", []string{"p.toml:5:1", "foo is also set as Foo"}},
		{"unknown runc key", runc + "BinaryNam = \"/usr/bin/crun\"\n", []string{"p.toml:4:1", "unknown option BinaryNam for the runc shim; did you mean BinaryName?", "known: NoPivotRoot"}},
		{"deprecated CriuPath", runc + "CriuPath = \"/usr/sbin/criu\"\n", []string{"p.toml:4:1", "CriuPath is deprecated"}},
		{"TaskApiAddress", runc + "taskapiaddress = \"ttrpc+unix:///tmp/x\"\n", []string{"p.toml:4:1", "set by containerd's clients"}},
		{"ConfigBody", kata + "ConfigBody = \"x\"\n", []string{"p.toml:4:1", "containerd fills ConfigBody itself"}},
		{"bool as a string", runc + "SystemdCgroup = \"true\"\n", []string{"p.toml:4:1", "SystemdCgroup must be true or false"}},
		{"negative uid", runc + "IoUid = -1\n", []string{"p.toml:4:1", "IoUid must be an integer from 0 to 4294967295"}},
		{"uid too large", runc + "IoGid = 4294967296\n", []string{"p.toml:4:1", "IoGid must be an integer"}},
		{"Kelvin sign", runc + "\"NoNew\u212Aeyring\" = true\n", []string{"p.toml:4:1", `"NoNew\u212aeyring" must be letters, digits`}},
		{"dotted option key", kata + "\"a.b\" = 1\n", []string{"p.toml:4:1", `"a.b" must be letters`}},
		{"unknown shim binary", kata + "binary_name = \"/tmp/evil\"\n", []string{"p.toml:4:1", "options.binary_name", "not under an allowed prefix"}},
		{"unknown shim relative binary", kata + "shim_bin = \"evil\"\n", []string{"p.toml:4:1", "must be absolute"}},
		{"unknown shim nested path", kata + "[handlers.x.options.runsc_config]\ndebug-log = \"/tmp/runsc/\"\n", []string{"p.toml:5:1", "options.runsc_config.debug-log", "must be clean"}},
		{"unknown shim absolute value", kata + "Anything = \"/tmp/x\"\n", []string{"p.toml:4:1", "not under an allowed prefix"}},
		{"unknown shim path in a list", kata + "args = [\"--log\", \"/var/tmp/x\"]\n", []string{"p.toml:4:1", "not under an allowed prefix"}},
		{"nan", kata + "Weight = nan\n", []string{"p.toml:4:1", "NaN is not a finite number"}},
		{"inf", kata + "Weight = -inf\n", []string{"p.toml:4:1", "-Inf is not a finite number"}},
		{"inf in a list", kata + "Weights = [1.0, inf]\n", []string{"p.toml:4:1", "+Inf is not a finite number"}},
		{"newline in a value", kata + "Note = \"a\\n# runtimeclassd:end handler=x\"\n", []string{"p.toml:4:1", "U+000A"}},
		{"bidi override in a value", kata + "Note = \"abc\\u202Edef\"\n", []string{"p.toml:4:1", "U+202E"}},
		{"line separator in a value", kata + "Note = \"a\\u2028b\"\n", []string{"p.toml:4:1", "U+2028"}},
		{"NUL in a path", "[handlers.x]\nruntime_type = \"io.containerd.x.v1\"\nruntime_path = \"/usr/bin/x\\u0000y\"\n", []string{"p.toml:3:1", "U+0000"}},
		{"deep nesting", kata + "a = [[[[[1]]]]]\n", []string{"p.toml:4:1", "nested more than 4 levels"}},
		{"huge list", kata + "a = [" + strings.Repeat("1,", 300) + "1]\n", []string{"p.toml:4:1", "list of 301 values"}},
		{"huge string", kata + "a = \"" + strings.Repeat("x", 5000) + "\"\n", []string{"p.toml:4:1", "string of 5000 bytes"}},
		{"non-canonical handler key", "[handlers.x]\nRUNTIME_TYPE = \"io.containerd.x.v1\"\n", []string{"p.toml:2:1", "write runtime_type"}},
		{"a handler key twice under two spellings", "[handlers.x]\nruntime_type = \"io.containerd.x.v1\"\nruntime_path = \"/usr/bin/x\"\nRuntime_Path = \"/usr/bin/y\"\n", []string{"p.toml:4:1", "write runtime_path"}},
		{"trailing dot", "[handlers.x]\nruntime_type = \"io.containerd.x.v1\"\nruntime_path = \"/usr/bin/.\"\n", []string{"p.toml:3:1", "must be clean"}},
		{"double slash", "[handlers.x]\nruntime_type = \"io.containerd.x.v1\"\nruntime_path = \"/usr//bin/x\"\n", []string{"p.toml:3:1", "must be clean"}},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			hs, err := Parse("p.toml", []byte(tt.body), Options{})
			if err == nil {
				t.Fatalf("accepted: %+v", hs)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, err)
				}
			}
		})
	}

	good := []struct {
		name, body string
		opts       map[string]any
		paths      []PathValue
	}{
		{"lowercase runc keys are written in containerd's spelling", runc + "binaryname = \"/usr/bin/crun\"\nsystemdcgroup = true\nIOUID = 1000\n",
			map[string]any{"BinaryName": "/usr/bin/crun", "SystemdCgroup": true, "IoUid": int64(1000)}, []PathValue{{"options.BinaryName", "/usr/bin/crun"}}},
		{"a policy key replaces the preset's under any spelling", "[handlers.x]\npreset = \"crun\"\n[handlers.x.options]\nbinaryname = \"/usr/local/bin/crun\"\n",
			map[string]any{"BinaryName": "/usr/local/bin/crun"}, []PathValue{{"options.BinaryName", "/usr/local/bin/crun"}}},
		{"kata's configpath is containerd's ConfigPath", "[handlers.x]\npreset = \"kata-qemu\"\n[handlers.x.options]\nconfigpath = \"/etc/kata/q.toml\"\n",
			map[string]any{"ConfigPath": "/etc/kata/q.toml"}, []PathValue{{"options.ConfigPath", "/etc/kata/q.toml"}}},
		{"an unknown shim's paths, nested", "[handlers.x]\nruntime_type = \"io.containerd.runsc.v1\"\n[handlers.x.options]\nTypeUrl = \"io.containerd.runsc.v1.options\"\nbinary_name = \"/usr/bin/runsc\"\n[handlers.x.options.runsc_config]\nplatform = \"ptrace\"\ndebug-log = \"/etc/runsc/log\"\n",
			map[string]any{"TypeUrl": "io.containerd.runsc.v1.options", "binary_name": "/usr/bin/runsc", "runsc_config": map[string]any{"platform": "ptrace", "debug-log": "/etc/runsc/log"}},
			[]PathValue{{"options.binary_name", "/usr/bin/runsc"}, {"options.runsc_config.debug-log", "/etc/runsc/log"}}},
	}
	for _, tt := range good {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			hs, err := Parse("p.toml", []byte(tt.body), Options{})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(hs[0].Options, tt.opts) {
				t.Errorf("options = %#v, want %#v", hs[0].Options, tt.opts)
			}
			if got := hs[0].Paths(); !reflect.DeepEqual(got, tt.paths) {
				t.Errorf("paths = %v, want %v", got, tt.paths)
			}
		})
	}
}

// TestSymlinkedPolicyFileHops: a symlinked policy file is trusted only if
// every directory on the way to it is root's alone, hop by hop.
func TestSymlinkedPolicyFileHops(t *testing.T) {
	t.Parallel()
	if os.Getuid() != 0 {
		t.Skip("needs root")
	}
	good := "[handlers.kata]\npreset = \"kata\"\n"
	dir := writePolicy(t, nil)
	base := filepath.Dir(dir)
	for _, d := range []string{"safe", "ww"} {
		os.Mkdir(filepath.Join(base, d), 0o755)
	}
	os.Chmod(filepath.Join(base, "ww"), 0o777)
	os.WriteFile(filepath.Join(base, "safe", "real.toml"), []byte(good), 0o644)
	os.Symlink("../safe/real.toml", filepath.Join(base, "ww", "hop.toml"))
	os.Symlink("../ww/hop.toml", filepath.Join(dir, "a.toml"))
	_, err := Load(dir, Options{})
	if err == nil || !strings.Contains(err.Error(), "a.toml: directory "+filepath.Join(base, "ww")+" is group- or world-writable") {
		t.Fatalf("err = %v", err)
	}
	os.Chmod(filepath.Join(base, "ww"), 0o755)
	if p, err := Load(dir, Options{}); err != nil || len(p.Handlers) != 1 {
		t.Fatalf("safe chain: %+v, %v", p, err)
	}
}

// The checks a runtime type or a preset brings can't be switched off: a
// policy's requires only add (issue 17: requires = [] made Kata ready on a
// node without /dev/kvm, and a Kata handler without a preset skipped the
// check of what Kata's configuration makes it run).
func TestRequiresOnlyAdd(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ body, want string }{
		{"preset = \"kata\"\nrequires = []\n", "kvm vhost-vsock kata-config"},
		{"preset = \"kata-clh\"\nrequires = [\"path:/etc/flag\"]\n", "kvm vhost-vsock kata-config path:/etc/flag"},
		{"preset = \"nvidia\"\nrequires = []\n", "nvidia"},
		{"preset = \"gvisor\"\nrequires = []\n", "runsc"},
		{"runtime_type = \"io.containerd.kata.v2\"\n", "kata-config"},
		{"runtime_type = \"io.containerd.kata-fc.v2\"\nrequires = []\n", "kata-config"},
		{"runtime_type = \"io.containerd.x.v2\"\nruntime_path = \"/opt/kata/bin/containerd-shim-kata-v2\"\n", "kata-config"},
		{"runtime_type = \"io.containerd.runsc.v1\"\nrequires = []\n", "runsc"},
		{"runtime_type = \"io.containerd.runc.v2\"\nrequires = []\n", ""},
	} {
		hs, err := Parse("p.toml", []byte("[handlers.x]\n"+c.body), Options{SkipOwnership: true})
		if err != nil {
			t.Fatalf("%q: %v", c.body, err)
		}
		if got := strings.Join(hs[0].Requires, " "); got != c.want {
			t.Errorf("%q: requires %q, want %q", c.body, got, c.want)
		}
	}
}

// A policy directory that is a symlink to a root-owned directory is read
// (it was refused as "not a directory"); reached through a directory
// others can write, it is refused, and the message says so.
func TestSymlinkedPolicyDir(t *testing.T) {
	t.Parallel()
	if os.Getuid() != 0 {
		t.Skip("needs root: policy files must be root-owned")
	}
	// Under /run, not the test's temp dir: /tmp is world-writable, and a
	// symlinked policy dir is followed from /.
	base, err := os.MkdirTemp("/run", "rcd-policy-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	os.Chmod(base, 0o755)
	real := filepath.Join(base, "real")
	os.Mkdir(real, 0o755)
	os.WriteFile(filepath.Join(real, "a.toml"), []byte("[handlers.x]\npreset = \"crun\"\n"), 0o644)
	link := filepath.Join(base, "policy.d")
	os.Symlink("real", link)
	p, err := Load(link, Options{})
	if err != nil || len(p.Handlers) != 1 {
		t.Fatalf("Load through a symlinked policy dir: %v, %+v", err, p)
	}
	os.Chmod(base, 0o777)
	_, err = Load(link, Options{})
	if err == nil || !strings.Contains(err.Error(), "the policy directory "+link+" is a symlink") || !strings.Contains(err.Error(), base+" is group- or world-writable") {
		t.Fatalf("error %v", err)
	}
}
