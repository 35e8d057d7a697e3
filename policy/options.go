package policy

import (
	"fmt"
	"maps"
	"math"
	"path"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// How containerd reads a handler's options, and so which of them name
// files that containerd or the shim will execute or read:
//
// containerd turns the options table into a Go struct chosen by
// runtime_type: runc's options for io.containerd.runc.v1/v2, and a generic
// {TypeUrl, ConfigPath} for every other runtime (containerd 1.7 and 2.x
// also hand such a shim the whole table as ConfigBody when ConfigPath is
// empty). Field names are matched without regard to case: containerd 1.x
// (go-toml v1, Tree.Unmarshal) tries the field name, its lowercase, its
// uppercase and its lowerCamel form; containerd 2.x (go-toml v2) folds any
// casing. So `binaryname` is runc's BinaryName to containerd, and must get
// the path rules.
//
// For runc, the options are a known schema: keys are accepted under any
// casing and written in containerd's spelling; unknown keys are refused.
// For other shims, any key that names a path or binary, and any string that
// looks like an absolute path, is a path.

// pathKind is how a shim uses an option's value.
type pathKind int

const (
	notPath pathKind = iota
	execPath
	filePath
	dirPath
)

// optionSpec is one option key containerd decodes.
type optionSpec struct {
	name string // containerd's spelling: the Go field name
	typ  string // bool, string or uint32
	kind pathKind
	// refuse, if set, is why the key is refused.
	refuse string
}

// runcOptions are containerd's runc options (containerd/api
// types/runc/options.Options in 2.x, runtime/v2/runc/options in 1.x).
var runcOptions = []optionSpec{
	{name: "NoPivotRoot", typ: "bool"},
	{name: "NoNewKeyring", typ: "bool"},
	{name: "ShimCgroup", typ: "string"}, // a cgroup path, not a file
	{name: "IoUid", typ: "uint32"},
	{name: "IoGid", typ: "uint32"},
	{name: "BinaryName", typ: "string", kind: execPath},
	{name: "Root", typ: "string", kind: dirPath},
	{name: "SystemdCgroup", typ: "bool"},
	{name: "CriuImagePath", typ: "string", kind: dirPath},
	{name: "CriuWorkPath", typ: "string", kind: dirPath},
	{name: "CriuPath", refuse: "CriuPath is deprecated: containerd 2.x drops it and runc ignores --criu; put criu on containerd's PATH"},
	{name: "TaskApiAddress", refuse: "TaskApiAddress is deprecated and set by containerd's clients, not by a runtime's config"},
	{name: "TaskApiVersion", refuse: "TaskApiVersion is deprecated and set by containerd's clients, not by a runtime's config"},
}

// genericOptions are the options containerd itself decodes for every
// runtime other than runc (runtimeoptions.Options); the shim may read any
// other key from ConfigBody.
var genericOptions = []optionSpec{
	{name: "TypeUrl", typ: "string"},
	{name: "ConfigPath", typ: "string", kind: filePath},
	{name: "ConfigBody", refuse: "containerd fills ConfigBody itself, from the other options, when ConfigPath is empty"},
}

// isRunc reports whether containerd decodes runtimeType's options as runc's.
func isRunc(runtimeType string) bool {
	return runtimeType == "io.containerd.runc.v2" || runtimeType == "io.containerd.runc.v1"
}

func schemaOf(runtimeType string) []optionSpec {
	if isRunc(runtimeType) {
		return runcOptions
	}
	return genericOptions
}

// specOf finds key in a schema the way containerd 2.x does (any casing, a
// superset of containerd 1.x's four spellings). Keys that reach containerd
// are ASCII (bareKey), where case folding has no surprises.
func specOf(schema []optionSpec, key string) (optionSpec, bool) {
	for _, s := range schema {
		if strings.EqualFold(s.name, key) {
			return s, true
		}
	}
	return optionSpec{}, false
}

// Limits on option values: containerd has none, but nothing legitimate
// comes near them, and the config must stay readable.
const (
	maxOptionKeys = 64
	maxString     = 4096
	maxList       = 256
	maxDepth      = 4
)

// pathWords mark a key of an unknown shim as naming a file or binary.
var pathWords = []string{"path", "bin", "root", "dir", "file", "exec", "cmd", "command", "sock"}

func pathish(key string) bool {
	k := strings.NewReplacer("_", "", "-", "").Replace(strings.ToLower(key))
	for _, w := range pathWords {
		if strings.Contains(k, w) {
			return true
		}
	}
	return false
}

// checkOptions checks a policy's own options table for a runtime type, with
// the keys as written. It returns the problems by key path under options.
func checkOptions(runtimeType string, opts map[string]any) []fieldErr {
	var errs []fieldErr
	if len(opts) > maxOptionKeys {
		errs = append(errs, fieldErr{key: []string{"options"}, msg: fmt.Sprintf("%d options; at most %d", len(opts), maxOptionKeys)})
	}
	schema := schemaOf(runtimeType)
	seen := map[string]string{} // canonical (or lowercase) -> key as written
	for _, k := range slices.Sorted(maps.Keys(opts)) {
		key := []string{"options", k}
		if !isBareKey(k) {
			errs = append(errs, fieldErr{key: key, msg: fmt.Sprintf("option key %s must be letters, digits, '_' and '-' only (at most 64)", quoteKey(k))})
			continue
		}
		spec, known := specOf(schema, k)
		canon := strings.ToLower(k)
		if known {
			canon = spec.name
		}
		if prev, dup := seen[canon]; dup {
			errs = append(errs, fieldErr{key: key, msg: fmt.Sprintf("option %s is also set as %s: containerd matches option names without regard to case, so both are %s to it; set it once", k, prev, canonOr(known, spec.name, k))})
			continue
		}
		seen[canon] = k
		v := opts[k]
		switch {
		case known && spec.refuse != "":
			errs = append(errs, fieldErr{key: key, msg: spec.refuse})
			continue
		case !known && isRunc(runtimeType):
			errs = append(errs, fieldErr{key: key, msg: fmt.Sprintf("unknown option %s for the runc shim%s (known: %s)", k, didYouMean(k), knownNames(runcOptions))})
			continue
		case known:
			if msg := checkType(spec, v); msg != "" {
				errs = append(errs, fieldErr{key: key, msg: msg})
				continue
			}
		}
		verrs := checkValue(v, 1)
		for _, e := range verrs {
			errs = append(errs, fieldErr{key: append(key, e.key...), msg: e.msg})
		}
		if known && len(verrs) == 0 {
			if msg := checkCgroupPath(spec, v); msg != "" {
				errs = append(errs, fieldErr{key: key, msg: msg})
			}
		}
	}
	return errs
}

func canonOr(known bool, canon, k string) string {
	if known {
		return canon
	}
	return strings.ToLower(k)
}

func knownNames(schema []optionSpec) string {
	var names []string
	for _, s := range schema {
		if s.refuse == "" {
			names = append(names, s.name)
		}
	}
	return strings.Join(names, ", ")
}

// didYouMean suggests a runc option one edit away from k, ignoring case.
func didYouMean(k string) string {
	for _, s := range runcOptions {
		if s.refuse == "" && editDistance(strings.ToLower(k), strings.ToLower(s.name)) <= 2 {
			return "; did you mean " + s.name + "?"
		}
	}
	return ""
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// checkType checks a known option's value against containerd's field type:
// a mismatch is accepted by `config dump` but fails every pod at start.
func checkType(spec optionSpec, v any) string {
	switch spec.typ {
	case "bool":
		if _, ok := v.(bool); !ok {
			return fmt.Sprintf("%s must be true or false (containerd decodes it into a boolean)", spec.name)
		}
	case "string":
		if _, ok := v.(string); !ok {
			return fmt.Sprintf("%s must be a string", spec.name)
		}
	case "uint32":
		if n, ok := v.(int64); !ok || n < 0 || n > math.MaxUint32 {
			return fmt.Sprintf("%s must be an integer from 0 to %d (containerd decodes it into a uint32)", spec.name, uint32(math.MaxUint32))
		}
	}
	return ""
}

// checkValue checks an option value: printable strings of sane length,
// finite numbers, short lists, shallow nesting, bare keys, and the types
// TOML and containerd share.
func checkValue(v any, depth int) []fieldErr {
	one := func(f string, a ...any) []fieldErr { return []fieldErr{{msg: fmt.Sprintf(f, a...)}} }
	if depth > maxDepth {
		return one("nested more than %d levels deep", maxDepth)
	}
	switch x := v.(type) {
	case string:
		if msg := checkString(x); msg != "" {
			return one("%s", msg)
		}
	case bool, int64:
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return one("%v is not a finite number: containerd's config cannot hold it (use a finite number)", x)
		}
	case []any:
		if len(x) > maxList {
			return one("list of %d values; at most %d", len(x), maxList)
		}
		for _, e := range x {
			if errs := checkValue(e, depth+1); errs != nil {
				return errs
			}
		}
	case map[string]any:
		if len(x) > maxOptionKeys {
			return one("table of %d keys; at most %d", len(x), maxOptionKeys)
		}
		var errs []fieldErr
		seen := map[string]string{}
		for _, k := range slices.Sorted(maps.Keys(x)) {
			if !isBareKey(k) {
				errs = append(errs, fieldErr{key: []string{k}, msg: fmt.Sprintf("option key %s must be letters, digits, '_' and '-' only (at most 64)", quoteKey(k))})
				continue
			}
			if prev, dup := seen[strings.ToLower(k)]; dup {
				errs = append(errs, fieldErr{key: []string{k}, msg: fmt.Sprintf("%s is also set as %s; a shim may read both as one key: set it once", k, prev)})
				continue
			}
			seen[strings.ToLower(k)] = k
			for _, e := range checkValue(x[k], depth+1) {
				errs = append(errs, fieldErr{key: append([]string{k}, e.key...), msg: e.msg})
			}
		}
		return errs
	default:
		return one("value of type %T is not supported in options (use strings, booleans, numbers, arrays or tables)", v)
	}
	return nil
}

// checkString refuses strings that could disguise what they say: invalid
// UTF-8, control characters (newlines included), format characters such
// as bidirectional overrides, line and paragraph separators; and strings
// longer than any path or name needs.
func checkString(s string) string {
	if len(s) > maxString {
		return fmt.Sprintf("string of %d bytes; at most %d", len(s), maxString)
	}
	if !utf8.ValidString(s) {
		return fmt.Sprintf("%q is not valid UTF-8", s)
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return fmt.Sprintf("%q contains %U, a control, format or separator character; they can make text read differently than it is", s, r)
		}
	}
	return ""
}

// canonicalOptions returns opts with known keys in containerd's spelling.
func canonicalOptions(runtimeType string, opts map[string]any) (map[string]any, map[string]string) {
	out := make(map[string]any, len(opts))
	written := make(map[string]string, len(opts)) // canonical -> as written
	schema := schemaOf(runtimeType)
	for _, k := range slices.Sorted(maps.Keys(opts)) {
		v := opts[k]
		c := k
		if spec, ok := specOf(schema, k); ok {
			c = spec.name
		}
		out[c] = v
		written[c] = k
	}
	return out, written
}

// mergeOptions lays a policy's options over a preset's: a policy key
// replaces a preset key that containerd reads as the same option.
func mergeOptions(preset, own map[string]any) map[string]any {
	merged := map[string]any{}
	for k, v := range preset {
		merged[k] = v
	}
	for k, v := range own {
		for pk := range merged {
			if strings.EqualFold(pk, k) {
				delete(merged, pk)
			}
		}
		merged[k] = v
	}
	return merged
}

// optionPaths returns the option values that name host paths, by key
// path, in a stable order.
func optionPaths(runtimeType string, opts map[string]any) []PathValue {
	var out []PathValue
	if isRunc(runtimeType) {
		for _, s := range runcOptions {
			if v, ok := opts[s.name].(string); ok && v != "" && s.kind != notPath {
				out = append(out, PathValue{Key: "options." + s.name, Path: v})
			}
		}
		return out
	}
	var walk func(prefix string, key string, v any)
	walk = func(prefix, key string, v any) {
		switch x := v.(type) {
		case string:
			if x != "" && (pathish(key) || strings.HasPrefix(x, "/")) {
				out = append(out, PathValue{Key: prefix, Path: x})
			}
		case []any:
			for _, e := range x {
				walk(prefix, key, e)
			}
		case map[string]any:
			for _, k := range slices.Sorted(maps.Keys(x)) {
				walk(prefix+"."+k, k, x[k])
			}
		}
	}
	walk("options", "", opts)
	return out
}

// quoteKey spells a key for a message: bare when it may be, else quoted
// with every unprintable character escaped.
func quoteKey(k string) string {
	if isBareKey(k) {
		return k
	}
	return fmt.Sprintf("%+q", k)
}

// keyPath spells a dotted key path for a message.
func keyPath(parts []string) string {
	out := make([]string, len(parts))
	for i, p := range parts {
		out[i] = quoteKey(p)
	}
	return strings.Join(out, ".")
}

// printable escapes the unprintable characters of a message part (a file
// name, a parser's message), so that no error can fake a line of output.
func printable(s string) string {
	if !slices.ContainsFunc([]rune(s), func(r rune) bool { return !unicode.IsPrint(r) }) && utf8.ValidString(s) {
		return s
	}
	q := fmt.Sprintf("%+q", s)
	return q[1 : len(q)-1]
}

// checkCgroupPath: the shim moves itself into ShimCgroup, a path under the
// cgroup root; a '..' would take it (and a write to cgroup.procs) out of
// the cgroup hierarchy.
func checkCgroupPath(spec optionSpec, v any) string {
	s, ok := v.(string)
	if spec.name != "ShimCgroup" || !ok || s == "" {
		return ""
	}
	if !strings.HasPrefix(s, "/") || path.Clean(s) != s || slices.Contains(strings.Split(s, "/"), "..") {
		return fmt.Sprintf("ShimCgroup %q must be a clean absolute cgroup path (no '..', '.', '//' or trailing '/')", s)
	}
	return ""
}
