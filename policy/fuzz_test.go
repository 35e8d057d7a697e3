package policy_test

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode"

	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	"github.com/pelletier/go-toml/v2"
	"github.com/runtimeclassd/runtimeclassd/ctrdconfig"
	"github.com/runtimeclassd/runtimeclassd/policy"
)

var fuzzPrefixes = []string{"/usr", "/opt", "/etc"}

// FuzzPolicy: a policy file is either refused, with a message that can't
// fake a line of output, or every path containerd or the shim could execute
// or read, decoded the way containerd decodes it, is among the handler's
// Paths (which the host checks hold to the file rules) and is a clean
// absolute path under an allowed prefix; and the handler, written into
// containerd's config, reads back as written, on one printable line per
// value. The seeds are testdata/fuzz/FuzzPolicy (committed) and the examples.
func FuzzPolicy(f *testing.F) {
	examples, _ := filepath.Glob("../examples/policy.d/*.toml")
	for _, e := range examples {
		b, err := os.ReadFile(e)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, name := range policy.PresetNames() {
		f.Add([]byte("[handlers.h]\npreset = \"" + name + "\"\n"))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		hs, err := policy.Parse("p.toml", src, policy.Options{AllowedPrefixes: fuzzPrefixes})
		if err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				if i := strings.IndexFunc(line, func(r rune) bool { return !unicode.IsPrint(r) }); i >= 0 {
					t.Fatalf("refusal holds an unprintable character: %+q", line)
				}
			}
			return
		}
		for _, h := range hs {
			checkHandler(t, h)
		}
	})
}

func checkHandler(t *testing.T, h policy.Handler) {
	t.Helper()
	// The execution closure's own checks are there whatever the policy
	// said, and no annotation a pod may pass chooses part of it.
	parts := strings.Split(h.RuntimeType, ".")
	shim := strings.Join(parts[2:len(parts)-1], ".")
	base := filepath.Base(h.RuntimePath)
	if (strings.HasPrefix(shim, "kata") || strings.HasPrefix(base, "containerd-shim-kata")) && !slices.Contains(h.Requires, "kata-config") {
		t.Fatalf("%s: a Kata handler without the kata-config check: %v", h.Name, h.Requires)
	}
	if (shim == "runsc" || strings.HasPrefix(base, "containerd-shim-runsc")) && !slices.Contains(h.Requires, "runsc") {
		t.Fatalf("%s: a gVisor handler without the runsc check: %v", h.Name, h.Requires)
	}
	if h.Preset != "" {
		ph, err := policy.Parse("preset.toml", []byte("[handlers.h]\npreset = \""+h.Preset+"\"\n"), policy.Options{AllowedPrefixes: fuzzPrefixes})
		if err == nil {
			for _, r := range ph[0].Requires {
				if !slices.Contains(h.Requires, r) {
					t.Fatalf("%s: the preset's check %s was switched off: %v", h.Name, r, h.Requires)
				}
			}
		}
	}
	for _, a := range append(slices.Clone(h.PodAnnotations), h.ContainerAnnotations...) {
		l := strings.ToLower(a)
		if strings.HasPrefix(l, "io.katacontainers.config_path") || strings.HasPrefix(l, "io.katacontainers.pkg.oci.") || strings.HasPrefix(l, "dev.gvisor.flag.") ||
			strings.HasSuffix(l, "hypervisor.path") || strings.HasSuffix(l, "_path") && !strings.HasSuffix(l, ".guest_hook_path") || strings.HasSuffix(l, ".kernel") || strings.HasSuffix(l, ".image") {
			t.Fatalf("%s: annotation %s chooses part of the execution closure", h.Name, a)
		}
	}
	var listed []string
	for _, pv := range h.Paths() {
		listed = append(listed, pv.Path)
	}
	for _, p := range containerdPaths(t, h) {
		if !slices.Contains(listed, p) {
			t.Fatalf("handler %s: containerd or the shim may use %q, which Paths() leaves out of the host checks (paths: %v)", h.Name, p, listed)
		}
		if !allowed(p) {
			t.Fatalf("handler %s: path %q accepted, but it is not a clean absolute path under %v", h.Name, p, fuzzPrefixes)
		}
	}
	if isRunc(h.RuntimeType) {
		// containerd 1.x (go-toml v1) finds only the exact, lowercase,
		// uppercase and lowerCamel spellings; written canonically, 1.x and
		// 2.x read the same options.
		known := reflect.TypeOf(runcoptions.Options{})
		for k := range h.Options {
			if f, ok := known.FieldByName(k); !ok || !f.IsExported() {
				t.Fatalf("handler %s: runc option %q is not written in containerd's spelling", h.Name, k)
			}
		}
	}
	rt := ctrdconfig.Runtime{Name: h.Name, Fields: h.Fields(), Options: h.Options}
	res, err := ctrdconfig.Patch([]byte("version = 2\n"), []ctrdconfig.Runtime{rt}, ctrdconfig.Options{})
	if err != nil {
		t.Fatalf("handler %s accepted but not writable: %v", h.Name, err)
	}
	// The patched file has the shape of a config dump: it must read back
	// as written, key by key and option by option.
	if err := ctrdconfig.CheckDump(res.Out, []ctrdconfig.Runtime{rt}); err != nil {
		t.Fatalf("handler %s does not read back as written: %v\n%s", h.Name, err, res.Out)
	}
	for _, line := range strings.Split(string(res.Out), "\n") {
		if i := strings.IndexFunc(line, func(r rune) bool { return !unicode.IsPrint(r) && r != '\t' }); i >= 0 {
			t.Fatalf("written config holds an unprintable character: %+q", line)
		}
	}
}

func isRunc(rt string) bool { return rt == "io.containerd.runc.v2" || rt == "io.containerd.runc.v1" }

// containerdPaths decodes a handler's options the way containerd 2.x does
// (internal/cri/config.GenerateRuntimeOptions: the options table marshalled
// to TOML and unmarshalled into the runtime type's struct, field names
// matched without regard to case), and returns every file path it or the
// shim would use: the runtime's own, runc's BinaryName, Root and CRIU
// directories, ConfigPath for other shims, and for those, since containerd
// hands them the whole table, every string that looks like a path.
func containerdPaths(t *testing.T, h policy.Handler) []string {
	t.Helper()
	var out []string
	add := func(p string) {
		if p != "" {
			out = append(out, p)
		}
	}
	add(h.RuntimePath)
	add(h.BaseRuntimeSpec)
	if len(h.Options) == 0 {
		return out
	}
	b, err := toml.Marshal(h.Options)
	if err != nil {
		t.Fatalf("options do not marshal: %v", err)
	}
	if isRunc(h.RuntimeType) {
		var o runcoptions.Options
		if err := toml.Unmarshal(b, &o); err != nil {
			t.Fatalf("containerd could not decode runc options %s: %v", b, err)
		}
		add(o.BinaryName)
		add(o.Root)
		add(o.CriuImagePath)
		add(o.CriuWorkPath)
		return out
	}
	var o struct {
		TypeUrl    string
		ConfigPath string
	}
	if err := toml.Unmarshal(b, &o); err != nil {
		t.Fatalf("containerd could not decode options %s: %v", b, err)
	}
	add(o.ConfigPath)
	var walk func(key string, v any)
	walk = func(key string, v any) {
		switch x := v.(type) {
		case string:
			k := strings.ToLower(key)
			if strings.HasPrefix(x, "/") || strings.Contains(k, "path") || strings.Contains(k, "bin") || strings.Contains(k, "dir") || strings.Contains(k, "file") {
				add(x)
			}
		case []any:
			for _, e := range x {
				walk(key, e)
			}
		case map[string]any:
			for k, e := range x {
				walk(k, e)
			}
		}
	}
	walk("", h.Options)
	return out
}

func allowed(p string) bool {
	if !filepath.IsAbs(p) || filepath.Clean(p) != p {
		return false
	}
	for _, pre := range fuzzPrefixes {
		if p == pre || strings.HasPrefix(p, pre+"/") {
			return true
		}
	}
	return false
}
