package ctrdconfig

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
	"github.com/runtimeclassd/runtimeclassd/tomlpatch"
)

// Validator checks a candidate config with the containerd binary that will
// read it: `containerd --config FILE config dump` parses, migrates and
// prints the effective config without starting anything.
type Validator struct {
	// Binary is the containerd executable.
	Binary string
	// Timeout bounds each containerd invocation; 0 means 30 s.
	Timeout time.Duration
}

// ValidationError is a candidate that containerd rejected or that doesn't
// have the runtimes it should.
type ValidationError struct {
	Msg    string
	Stderr string
}

func (e *ValidationError) Error() string {
	if e.Stderr == "" {
		return e.Msg
	}
	return e.Msg + ": " + e.Stderr
}

// Validate writes candidate next to target (so that relative imports resolve
// the same way), runs containerd's config dump on it, and checks that every
// runtime in want is in the dump at the CRI runtimes path with every key and
// option as written, and that the default runtime still exists. If target's
// directory isn't writable, the candidate is checked from a temporary
// directory instead. A failed check names the candidate and the containerd
// version that read it.
func (v *Validator) Validate(ctx context.Context, target string, candidate []byte, want []Runtime) error {
	_, err := v.Check(ctx, target, candidate, want)
	return err
}

// Check is Validate, and it returns the dump that it checked, so that a
// caller that needs containerd's effective config of the candidate too
// doesn't run containerd a second time for it.
func (v *Validator) Check(ctx context.Context, target string, candidate []byte, want []Runtime) ([]byte, error) {
	dump, err := v.Dump(ctx, target, candidate)
	if err != nil {
		return nil, err
	}
	if err := CheckDump(dump, want); err != nil {
		var ve *ValidationError
		if errors.As(err, &ve) {
			ve.Msg = fmt.Sprintf("%s (candidate), as %s reads it: %s", target, v.version(ctx), ve.Msg)
		}
		return nil, err
	}
	return dump, nil
}

// version names the containerd binary and its version, from `containerd
// --version` ("containerd github.com/containerd/containerd 1.6.20 ...").
func (v *Validator) version(ctx context.Context) string {
	out, _, err := v.run(ctx, "--version")
	if f := strings.Fields(string(out)); err == nil && len(f) >= 3 {
		return fmt.Sprintf("containerd %s (%s)", f[2], v.Binary)
	}
	return fmt.Sprintf("containerd %s (version unknown)", v.Binary)
}

// Dump returns containerd's effective config for candidate.
func (v *Validator) Dump(ctx context.Context, target string, candidate []byte) ([]byte, error) {
	f, err := os.CreateTemp(filepath.Dir(target), "."+filepath.Base(target)+".validate-*")
	if err != nil {
		f, err = os.CreateTemp("", "runtimeclassd-validate-*.toml")
		if err != nil {
			return nil, fmt.Errorf("writing candidate for validation: %w", err)
		}
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(candidate); err != nil {
		f.Close()
		return nil, fmt.Errorf("writing candidate for validation: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("writing candidate for validation: %w", err)
	}
	stdout, stderr, err := v.run(ctx, "--config", f.Name(), "config", "dump")
	if err != nil {
		msg := strings.ReplaceAll(cleanStderr(stderr), f.Name(), target+" (candidate)")
		return nil, &ValidationError{Msg: fmt.Sprintf("containerd rejected the candidate config (%v)", err), Stderr: msg}
	}
	return stdout, nil
}

func (v *Validator) run(ctx context.Context, args ...string) (stdout, stderr []byte, err error) {
	timeout := v.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, v.Binary, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	err = cmd.Run()
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
		return nil, nil, fmt.Errorf("containerd binary %s not found: %w", v.Binary, err)
	}
	return out.Bytes(), errb.Bytes(), err
}

// cleanStderr keeps containerd's messages and drops its warnings about
// migrating old config versions, which are expected.
func cleanStderr(b []byte) string {
	var keep []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if l == "" || strings.Contains(l, "Configuration migrated from version") {
			continue
		}
		keep = append(keep, strings.TrimSpace(l))
	}
	return strings.Join(keep, "; ")
}

// CheckDump checks containerd's effective config for the runtimes in want:
// each must be where the CRI plugin reads runtimes, and every key and
// option written for it must be there with the value written. A key that
// this containerd doesn't know is dropped from its effective config
// (containerd 1.6 drops snapshotter, sandboxer, io_type and
// privileged_without_host_devices_all_devices_allowed): the handler would
// not run as the policy says, so the candidate is refused.
func CheckDump(dump []byte, want []Runtime) error {
	var cfg map[string]any
	if err := toml.Unmarshal(dump, &cfg); err != nil {
		return &ValidationError{Msg: fmt.Sprintf("reading containerd's config dump: %v", err)}
	}
	version := 1
	if v, ok := cfg["version"].(int64); ok {
		version = int(v)
	}
	path, err := RuntimesPath(version)
	if err != nil {
		return &ValidationError{Msg: "containerd's config dump: " + err.Error()}
	}
	runtimes, _ := lookupTable(cfg, path).(map[string]any)
	var missing []string
	for _, r := range want {
		got, ok := runtimes[r.Name].(map[string]any)
		if !ok {
			missing = append(missing, fmt.Sprintf("runtime %q is not in containerd's effective config at %s", r.Name, strings.Join(path, ".")))
			continue
		}
		missing = append(missing, compareRuntime(r, got)...)
		missing = append(missing, unwritten(r, got)...)
	}
	ctrd, _ := lookupTable(cfg, path[:len(path)-1]).(map[string]any)
	if def, _ := ctrd["default_runtime_name"].(string); def != "" {
		if _, ok := runtimes[def]; !ok {
			missing = append(missing, fmt.Sprintf("default_runtime_name %q is not among the runtimes; the CRI plugin would fail to load", def))
		}
	}
	if len(missing) > 0 {
		return &ValidationError{Msg: strings.Join(missing, "; ")}
	}
	return nil
}

// compareRuntime lists every key and option of r that containerd's view of
// the runtime, got, lacks or holds differently.
func compareRuntime(r Runtime, got map[string]any) []string {
	var bad []string
	check := func(key string, want any, m map[string]any, name string) {
		have, ok := m[name]
		switch {
		case !ok:
			bad = append(bad, fmt.Sprintf("runtime %q: key %s = %s was written but containerd dropped it (it does not know the key)", r.Name, key, spell(want)))
		case !reflect.DeepEqual(normalize(want), normalize(have)):
			bad = append(bad, fmt.Sprintf("runtime %q: key %s = %s was written but containerd reads %s", r.Name, key, spell(want), spell(have)))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(r.Fields)) {
		check(k, r.Fields[k], got, k)
	}
	if len(r.Options) > 0 {
		opts, ok := got["options"].(map[string]any)
		if !ok {
			return append(bad, fmt.Sprintf("runtime %q: its options table was written but containerd dropped it", r.Name))
		}
		for _, k := range slices.Sorted(maps.Keys(r.Options)) {
			check("options."+k, r.Options[k], opts, k)
		}
	}
	return bad
}

// containerdDefaults are the keys of a runtime that containerd fills with
// a value other than its type's zero value when a config leaves them out:
// 1.7's sandbox_mode and 2.x's sandboxer.
var containerdDefaults = map[string]any{
	"sandbox_mode": "podsandbox",
	"sandboxer":    "podsandbox",
}

// unwritten lists the keys and options of containerd's view of r, got,
// that runtimeclassd did not write and that hold something other than
// containerd's own default: another file (one that config.toml imports,
// or one of those imports' imports) merged them into the handler, so it
// would not run as the policy says. Such a handler is not runtimeclassd's
// to offer, whoever wrote the keys.
func unwritten(r Runtime, got map[string]any) []string {
	var bad []string
	for _, k := range slices.Sorted(maps.Keys(got)) {
		v := got[k]
		if k == "options" {
			opts, _ := v.(map[string]any)
			for _, o := range slices.Sorted(maps.Keys(opts)) {
				if _, ok := r.Options[o]; !ok && !isZero(opts[o]) {
					bad = append(bad, fmt.Sprintf("runtime %q: containerd's effective config has options.%s = %s, which runtimeclassd did not write (another file config.toml reads sets it); the handler would not run as the policy says", r.Name, o, spell(opts[o])))
				}
			}
			continue
		}
		if _, ok := r.Fields[k]; ok || isZero(v) || reflect.DeepEqual(containerdDefaults[k], v) {
			continue
		}
		bad = append(bad, fmt.Sprintf("runtime %q: containerd's effective config has %s = %s, which runtimeclassd did not write (another file config.toml reads sets it); the handler would not run as the policy says", r.Name, k, spell(v)))
	}
	return bad
}

// normalize gives a written value and a value read back from TOML one
// representation: integers as int64, lists as []any.
func normalize(v any) any {
	switch x := v.(type) {
	case int:
		return int64(x)
	case int32:
		return int64(x)
	case uint32:
		return int64(x)
	case float32:
		return float64(x)
	case []string:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = e
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalize(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = normalize(e)
		}
		return out
	}
	return v
}

// spell spells a value for a message, as TOML where it can.
func spell(v any) string {
	if n := normalize(v); formattable(n) {
		return FormatValue(n)
	}
	return fmt.Sprintf("%v", v)
}

// formattable reports whether FormatValue can spell a normalized value.
func formattable(v any) bool {
	switch x := v.(type) {
	case string, bool, int64, float64:
		return true
	case []any:
		for _, e := range x {
			if !formattable(e) {
				return false
			}
		}
		return true
	case map[string]any:
		for _, e := range x {
			if !formattable(e) {
				return false
			}
		}
		return true
	}
	return false
}

func lookupTable(m map[string]any, path []string) any {
	var cur any = m
	for _, p := range path {
		t, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = t[p]
	}
	return cur
}

// DefaultVersion returns the config version that the containerd binary
// writes by default (`containerd config default`).
func (v *Validator) DefaultVersion(ctx context.Context) (int, error) {
	stdout, stderr, err := v.run(ctx, "config", "default")
	if err != nil {
		return 0, fmt.Errorf("running %s config default: %w (%s)", v.Binary, err, cleanStderr(stderr))
	}
	var cfg struct {
		Version int `toml:"version"`
	}
	if err := toml.Unmarshal(stdout, &cfg); err != nil {
		return 0, fmt.Errorf("reading %s config default: %w", v.Binary, err)
	}
	if _, err := RuntimesPath(cfg.Version); err != nil {
		return 0, fmt.Errorf("%s config default: %w", v.Binary, err)
	}
	return cfg.Version, nil
}

// DefaultRuntime returns containerd's default CRI runtime from a config
// dump: the runtime default_runtime_name names, with the keys and options
// that are set (empty strings, false, zero and empty lists are dropped, as
// they are containerd's zero values anyway). It returns nil if the dump has
// none.
func DefaultRuntime(dump []byte) (*Runtime, error) {
	var cfg map[string]any
	if err := toml.Unmarshal(dump, &cfg); err != nil {
		return nil, fmt.Errorf("reading containerd's config dump: %w", err)
	}
	version := 1
	if v, ok := cfg["version"].(int64); ok {
		version = int(v)
	}
	path, err := RuntimesPath(version)
	if err != nil {
		return nil, err
	}
	ctrd, _ := lookupTable(cfg, path[:len(path)-1]).(map[string]any)
	name, _ := ctrd["default_runtime_name"].(string)
	runtimes, _ := ctrd["runtimes"].(map[string]any)
	stanza, ok := runtimes[name].(map[string]any)
	if name == "" || !ok {
		return nil, nil
	}
	return runtimeOf(name, stanza), nil
}

// KeptDefault returns the runtime held by src's intact managed block for
// containerd's default runtime (the file's default_runtime_name, or runc),
// or nil if src has no such block.
//
// Such a block is one that Patch wrote from containerd's own answer (see
// Options.DefaultRuntime) and that nobody edited since: it is what
// containerd reads for its default runtime (containerd 1.x takes the
// file's runtimes table as it is; 2.x lays the file's keys over its
// built-in ones, and the block holds all of them). Keeping it as it is
// keeps the default runtime without running containerd to ask again, so
// that a plan on a file that runtimeclassd already manages runs containerd
// once, to validate the candidate.
func KeptDefault(src []byte) (*Runtime, error) {
	if !bytes.Contains(src, []byte(markerPrefix+beginWord+" ")) {
		return nil, nil
	}
	doc, err := tomlpatch.Parse(src)
	if err != nil {
		return nil, fmt.Errorf("parsing config: %w", err)
	}
	version, err := Version(doc)
	if err != nil {
		return nil, err
	}
	parent, err := RuntimesPath(version)
	if err != nil {
		return nil, err
	}
	name := defaultRuntimeName(doc, parent)
	blocks, err := Blocks(doc)
	if err != nil {
		return nil, err
	}
	for _, b := range blocks {
		if b.Handler != name || !b.Intact {
			continue
		}
		// A block is whole tables with full header paths: it parses on
		// its own.
		var m map[string]any
		if err := toml.Unmarshal(src[b.Start:b.End], &m); err != nil {
			return nil, fmt.Errorf("line %d: reading the managed block for %q: %w", b.Line, name, err)
		}
		stanza, ok := lookupTable(m, append(slices.Clone(parent), name)).(map[string]any)
		if !ok {
			return nil, nil
		}
		return runtimeOf(name, stanza), nil
	}
	return nil, nil
}

// runtimeOf turns a runtime's table, as TOML decodes it, into a Runtime,
// without the keys and options that hold zero values.
func runtimeOf(name string, stanza map[string]any) *Runtime {
	r := &Runtime{Name: name, Fields: map[string]any{}, Options: map[string]any{}}
	for k, v := range stanza {
		if k == "options" {
			opts, _ := v.(map[string]any)
			for ok, ov := range opts {
				if !isZero(ov) {
					r.Options[ok] = ov
				}
			}
			continue
		}
		if !isZero(v) {
			r.Fields[k] = v
		}
	}
	return r
}

// isZero reports whether a value read from TOML is its type's zero value:
// "", false, 0, an empty list or an empty table.
func isZero(v any) bool {
	switch x := v.(type) {
	case string:
		return x == ""
	case bool:
		return !x
	case int64:
		return x == 0
	case float64:
		return x == 0
	case []any:
		return len(x) == 0
	case map[string]any:
		return len(x) == 0
	}
	return v == nil
}

// DefaultRuntimeInFile returns containerd's default runtime as config
// bytes define it themselves, without running containerd: the runtime
// default_runtime_name names (runc unless it says otherwise), with its
// keys and options, if the file has a table for it and imports no file
// that exists (an imported file could change it); nil otherwise.
// configPath is where the bytes live, for relative imports.
func DefaultRuntimeInFile(configPath string, src []byte) (*Runtime, error) {
	doc, err := tomlpatch.Parse(src)
	if err != nil {
		return nil, fmt.Errorf("parsing config: %w", err)
	}
	if imports, _ := doc.TopLevelStringArray("imports"); imports != nil && len(imports.Values) > 0 {
		files, err := ImportedFiles(configPath, imports.Values)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			if _, err := os.Lstat(f); err == nil {
				return nil, nil
			}
		}
	}
	version, err := Version(doc)
	if err != nil {
		return nil, err
	}
	parent, err := RuntimesPath(version)
	if err != nil {
		return nil, err
	}
	name := defaultRuntimeName(doc, parent)
	stanza, ok := doc.Get(append(slices.Clone(parent), name)...).(map[string]any)
	if !ok {
		return nil, nil
	}
	return runtimeOf(name, stanza), nil
}
