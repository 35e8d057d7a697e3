package ctrdconfig

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"
	"github.com/runtimeclassd/runtimeclassd/tomlpatch"
)

func testRuntimes() []Runtime {
	return []Runtime{
		{Name: "kata", Fields: map[string]any{
			"runtime_type":                    "io.containerd.kata.v2",
			"privileged_without_host_devices": true,
			"pod_annotations":                 []string{"io.katacontainers.config.hypervisor.default_memory"},
		}, Options: map[string]any{"ConfigPath": "/opt/kata/share/defaults/kata-containers/configuration.toml"}},
		{Name: "gvisor", Fields: map[string]any{"runtime_type": "io.containerd.runsc.v1"},
			Options: map[string]any{"TypeUrl": "io.containerd.runsc.v1.options"}},
		{Name: "crun", Fields: map[string]any{"runtime_type": "io.containerd.runc.v2"},
			Options: map[string]any{"BinaryName": "/usr/bin/crun", "SystemdCgroup": true}},
	}
}

func readConfig(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "configs", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// configs lists every corpus file but the ones Patch must refuse.
func configs(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join("testdata", "configs"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if e.Name() != "v2-inline.toml" {
			out = append(out, e.Name())
		}
	}
	return out
}

// TestPatchProperties checks, on every corpus file, the four properties that
// make patching safe: the output parses, only managed blocks differ,
// patching again changes nothing, and removing the blocks gives back the
// input byte for byte.
func TestPatchProperties(t *testing.T) {
	t.Parallel()
	for _, name := range configs(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			src := readConfig(t, name)
			res, err := Patch(src, testRuntimes(), Options{})
			if err != nil {
				t.Fatalf("Patch: %v", err)
			}
			var v map[string]any
			if err := toml.Unmarshal(res.Out, &v); err != nil {
				t.Fatalf("output doesn't parse: %v\n%s", err, res.Out)
			}
			wantAdded := 3 - len(res.Conflicts)
			if len(res.Added) != wantAdded || !res.Changed {
				t.Fatalf("added %v (conflicts %v), want %d added", res.Added, res.Conflicts, wantAdded)
			}
			again, err := Patch(res.Out, testRuntimes(), Options{})
			if err != nil {
				t.Fatalf("second Patch: %v", err)
			}
			if again.Changed || !bytes.Equal(again.Out, res.Out) {
				t.Fatalf("second Patch changed the file:\n%s", tomlpatch.Diff(res.Out, nil, "a", "b", 3))
			}
			if len(again.Unchanged) != wantAdded {
				t.Fatalf("second Patch: unchanged %v, want %d", again.Unchanged, wantAdded)
			}
			back, err := Patch(res.Out, nil, Options{})
			if err != nil {
				t.Fatalf("revert: %v", err)
			}
			if !bytes.Equal(back.Out, src) {
				t.Fatalf("revert did not restore the input:\n--- want\n%q\n--- got\n%q", src, back.Out)
			}
			// Outside the blocks, the output is the input.
			doc, err := tomlpatch.Parse(res.Out)
			if err != nil {
				t.Fatal(err)
			}
			blocks, err := Blocks(doc)
			if err != nil {
				t.Fatal(err)
			}
			if len(blocks) != wantAdded {
				t.Fatalf("found %d blocks, want %d", len(blocks), wantAdded)
			}
			for _, b := range blocks {
				if !b.Intact {
					t.Errorf("block %s: hash does not match its content", b.Handler)
				}
			}
		})
	}
}

func TestPatchPlacesNextToSiblingsInTheirStyle(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file string
		// before and after are the lines right around the inserted blocks.
		before, after string
		header        string
	}{
		{"v2-handwritten.toml", "        # BinaryName = \"/usr/local/bin/runc\"\n\n",
			"  # Registry mirrors live here.\n",
			`    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.crun]`},
		{"v4-default-2.4.toml", "            SystemdCgroup = false\n\n",
			"    [plugins.'io.containerd.cri.v1.runtime'.cni]",
			`        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.crun]`},
		{"v3-quoted.toml", "  runtime_type = 'io.containerd.runc.v2'\n\n",
			"[plugins.'io.containerd.cri.v1.images']",
			`[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.crun]`},
		{"v2-crlf-tabs.toml", "\t\t\t\t\tSystemdCgroup = true\r\n\r\n",
			"\t[plugins.\"io.containerd.internal.v1.opt\"]",
			"\t\t\t[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.crun]\r"},
		{"v2-dotted.toml", "runtimes.runc.options.SystemdCgroup = true\n\n",
			`[plugins."io.containerd.grpc.v1.cri".cni]`,
			`[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.crun]`},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			res, err := Patch(readConfig(t, tt.file), testRuntimes(), Options{})
			if err != nil {
				t.Fatal(err)
			}
			out := string(res.Out)
			first := strings.Index(out, "# runtimeclassd:begin")
			last := strings.LastIndex(out, "# runtimeclassd:end")
			if first < 0 || last < 0 {
				t.Fatalf("no blocks in:\n%s", out)
			}
			lineStart := strings.LastIndex(out[:first], "\n") + 1
			if !strings.HasSuffix(out[:lineStart], tt.before) {
				t.Errorf("blocks are not right after %q:\n%s", tt.before, out[:lineStart])
			}
			lineEnd := last + strings.Index(out[last:], "\n") + 1
			if !strings.HasPrefix(out[lineEnd:], tt.after) {
				t.Errorf("blocks are not right before %q:\n%s", tt.after, out[lineEnd:])
			}
			if !strings.Contains(out, tt.header+"\n") {
				t.Errorf("header %q not found in:\n%s", tt.header, out[lineStart:lineEnd])
			}
			if strings.HasSuffix(tt.file, "crlf-tabs.toml") && strings.Count(out, "\n") != strings.Count(out, "\r\n") {
				t.Errorf("a line of the CRLF file lost its CR:\n%q", out)
			}
		})
	}
}

func TestPatchVersionPaths(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file   string
		prefix string
	}{
		{"empty.toml", "[plugins.cri.containerd.runtimes.kata]"},
		{"v1-legacy.toml", "[plugins.cri.containerd.runtimes.kata]"},
		{"v2-version-only.toml", `[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.kata]`},
		{"v4-imports-dropin.toml", `[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.kata]`},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			res, err := Patch(readConfig(t, tt.file), testRuntimes()[:1], Options{})
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(res.Out), tt.prefix) {
				t.Errorf("want %s in:\n%s", tt.prefix, res.Out)
			}
		})
	}
}

func TestPatchNewFileGetsVersion(t *testing.T) {
	t.Parallel()
	res, err := Patch(nil, testRuntimes()[:1], Options{NewFileVersion: 3})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Created || !strings.HasPrefix(string(res.Out), "version = 3\n") {
		t.Fatalf("new file:\n%s", res.Out)
	}
	if !strings.Contains(string(res.Out), `[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.kata]`) {
		t.Fatalf("wrong path:\n%s", res.Out)
	}
	if d := res.Diff(nil, "a", "b"); !strings.HasPrefix(d, "--- /dev/null\n+++ b\n@@ -0,0 +1,") {
		t.Fatalf("diff of a new file:\n%s", d)
	}
}

func TestPatchLeavesUnmanagedHandlerAlone(t *testing.T) {
	t.Parallel()
	src := readConfig(t, "v2-unmanaged-kata.toml")
	res, err := Patch(src, testRuntimes(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Conflicts) != 1 || res.Conflicts[0].Handler != "kata" || res.Conflicts[0].Line != 10 {
		t.Fatalf("conflicts = %+v, want kata at line 10", res.Conflicts)
	}
	if !strings.Contains(res.Conflicts[0].String(), "not managed by runtimeclassd") {
		t.Errorf("conflict message: %s", res.Conflicts[0])
	}
	if strings.Contains(string(res.Out), "handler=kata") {
		t.Fatal("a managed kata block was written over the unmanaged one")
	}
	if !bytes.Contains(res.Out, src[bytes.Index(src, []byte("  # Installed by kata-deploy")):]) {
		t.Fatal("the unmanaged kata section was changed")
	}
}

func TestPatchRefusesInlineRuntimesTable(t *testing.T) {
	t.Parallel()
	_, err := Patch(readConfig(t, "v2-inline.toml"), testRuntimes(), Options{})
	var ne *tomlpatch.ErrNotExtensible
	if !errors.As(err, &ne) {
		t.Fatalf("err = %v, want ErrNotExtensible", err)
	}
	for _, want := range []string{"line 5", "inline table", "runtimes"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestPatchUpdatesRemovesAndRepairs(t *testing.T) {
	t.Parallel()
	src := readConfig(t, "v2-handwritten.toml")
	first, err := Patch(src, testRuntimes(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Update kata, drop gvisor, keep crun.
	rts := testRuntimes()
	rts[0].Fields["privileged_without_host_devices"] = false
	res, err := Patch(first.Out, []Runtime{rts[0], rts[2]}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(res.Updated, ",") != "kata" || strings.Join(res.Removed, ",") != "gvisor" || strings.Join(res.Unchanged, ",") != "crun" {
		t.Fatalf("updated %v removed %v unchanged %v", res.Updated, res.Removed, res.Unchanged)
	}
	// Someone edits inside the crun block: drift, put back.
	edited := bytes.Replace(res.Out, []byte(`BinaryName = "/usr/bin/crun"`), []byte(`BinaryName = "/tmp/evil"`), 1)
	fixed, err := Patch(edited, []Runtime{rts[0], rts[2]}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(fixed.Repaired, ",") != "crun" || !bytes.Equal(fixed.Out, res.Out) {
		t.Fatalf("repaired %v; out equal to before the edit: %v", fixed.Repaired, bytes.Equal(fixed.Out, res.Out))
	}
	// And everything goes away.
	back, err := Patch(fixed.Out, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back.Out, src) {
		t.Fatal("revert after update, removal and repair did not restore the input")
	}
}

func TestBlocksRejectsDamage(t *testing.T) {
	t.Parallel()
	good, err := Patch(readConfig(t, "v2-handwritten.toml"), testRuntimes()[:2], Options{})
	if err != nil {
		t.Fatal(err)
	}
	out := string(good.Out)
	endKata := "        # runtimeclassd:end handler=kata\n"
	beginKata := out[strings.Index(out, "    # runtimeclassd:begin handler=kata"):]
	beginKata = beginKata[:strings.Index(beginKata, "\n")+1]
	tests := []struct {
		name, in, want string
	}{
		{"missing end", strings.Replace(out, strings.TrimLeft(endKata, " "), "", 1), "has no end marker"},
		{"missing begin", strings.Replace(out, beginKata, "", 1), "without a begin marker"},
		{"key after end", strings.Replace(out, "# runtimeclassd:end handler=kata\n", "# runtimeclassd:end handler=kata\nstray = 1\n", 1), "key stray follows"},
		{"duplicate block", out + beginKata + "    # runtimeclassd:end handler=kata\n", "second runtimeclassd block"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Patch([]byte(tt.in), testRuntimes(), Options{})
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "line ") {
				t.Fatalf("err = %v, want it to say %q with a line", err, tt.want)
			}
		})
	}
}

func TestPatchRejectsBadConfigs(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, in, want string }{
		{"syntax", "version = 2\n[plugins\n", "line 2"},
		{"duplicate key", "version = 2\nroot = \"/a\"\nroot = \"/b\"\n", "line 3"},
		{"bad version", "version = 7\n", "unsupported config version 7"},
		{"plugins is a value", "version = 2\nplugins = 1\n", "can't be extended"},
		{"runtimes in array", "version = 2\n[[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes]]\nx = 1\n", "array of tables"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Patch([]byte(tt.in), testRuntimes(), Options{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestFormatValue(t *testing.T) {
	t.Parallel()
	for in, want := range map[any]string{
		"a\"b\\c\n": `"a\"b\\c\n"`,
		true:        "true",
		int64(-3):   "-3",
		1.0:         "1.0",
		2.5:         "2.5",
	} {
		if got := FormatValue(in); got != want {
			t.Errorf("FormatValue(%#v) = %s, want %s", in, got, want)
		}
	}
	if got := FormatValue([]any{"x", int64(1)}); got != `["x", 1]` {
		t.Errorf("array: %s", got)
	}
	if got := FormatValue(map[string]any{"b": 1, "a key": "v"}); got != `{"a key" = "v", b = 1}` {
		t.Errorf("inline table: %s", got)
	}
}

// TestAddAfterBlockFollowedByHeader: a block whose end marker sits right
// above the next header (as Patch itself leaves it) must not be mistaken
// for that header's comment; the next block goes after the end marker.
func TestAddAfterBlockFollowedByHeader(t *testing.T) {
	t.Parallel()
	for _, file := range configs(t) {
		src := readConfig(t, file)
		first, err := Patch(src, testRuntimes()[:1], Options{})
		if err != nil {
			t.Fatal(err)
		}
		for _, more := range [][]Runtime{testRuntimes()[:2], testRuntimes()} {
			res, err := Patch(first.Out, more, Options{})
			if err != nil {
				t.Fatalf("%s: adding after an existing block: %v", file, err)
			}
			back, err := Patch(res.Out, nil, Options{})
			if err != nil || string(back.Out) != string(src) {
				t.Fatalf("%s: revert: %v", file, err)
			}
		}
	}
}

// A policy handler named like containerd's default runtime, on a config
// that doesn't define it, would become the runtime of every pod without a
// RuntimeClass: it is a conflict, and nothing is written for it.
func TestPatchRefusesTheDefaultRuntimeName(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ src, name string }{
		{"version = 2\n", "runc"},
		{"version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd]\n  default_runtime_name = \"crun\"\n", "crun"},
	} {
		res, err := Patch([]byte(c.src), []Runtime{{Name: c.name, Fields: map[string]any{"runtime_type": "io.containerd.runc.v2"}}}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Conflicts) != 1 || res.Conflicts[0].Default != c.name || !strings.Contains(res.Conflicts[0].String(), "every pod that names no RuntimeClass") {
			t.Fatalf("%s: conflicts %+v", c.name, res.Conflicts)
		}
		if string(res.Out) != c.src {
			t.Errorf("%s: config changed:\n%s", c.name, res.Out)
		}
	}
}
