// Package policy reads runtimeclassd's drop-in policy files and decides
// what containerd may be told to run.
//
// Load reads every *.toml file of a directory in lexical order, decodes it
// strictly (an unknown key is an error with its file, line and column),
// fills handlers from presets, and enforces the security rules: files owned
// by root and not group- or world-writable, reached only through such
// directories, at most 1 MiB each; keys spelled exactly as documented;
// DNS-1123 handler names, runtime types of the form io.containerd.NAME.vN;
// options read the way containerd reads them (any casing), with every value
// that names a file held to the path rules: clean absolute paths under
// allowed prefixes; printable strings, finite numbers, bounded sizes; no
// wildcard annotations; and no handler defined differently in two files. A
// Policy that Load returns has passed every rule; on any violation Load
// returns every error it found and no Policy. See docs/SECURITY.md.
package policy

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"syscall"

	"github.com/pelletier/go-toml/v2"
	"github.com/runtimeclassd/runtimeclassd/internal/safepath"
)

// MaxFileSize is the largest policy file Load reads.
const MaxFileSize = 1 << 20

// DefaultAllowedPrefixes are where path values may point by default.
var DefaultAllowedPrefixes = []string{"/usr", "/opt", "/etc", "/bin", "/sbin"}

// Handler is one runtime handler, with its preset applied.
type Handler struct {
	// Name is the RuntimeClass handler name.
	Name string
	// Source is the file that defines the handler.
	Source string
	Preset string

	RuntimeType                                   string
	RuntimePath                                   string
	PodAnnotations                                []string
	ContainerAnnotations                          []string
	PrivilegedWithoutHostDevices                  *bool
	PrivilegedWithoutHostDevicesAllDevicesAllowed *bool
	BaseRuntimeSpec                               string
	Snapshotter                                   string
	Sandboxer                                     string
	IOType                                        string
	Options                                       map[string]any
	// Requires names the host checks the handler needs.
	Requires []string
	// Smoke is how the handler's sandbox smoke test runs: SmokeHost (the
	// default), SmokePod or SmokeOff.
	Smoke string
	// RuntimeClass is extra scheduling for its RuntimeClass manifest.
	RuntimeClass *RuntimeClass
	// Required says every node this policy reaches must offer the handler,
	// even one whose host checks fail (the HandlerNotReady alert fires
	// for it); otherwise a node that can't run it is expected not to.
	Required bool
}

// Fields returns the handler's containerd runtime keys that are set.
func (h *Handler) Fields() map[string]any {
	m := map[string]any{"runtime_type": h.RuntimeType}
	set := func(k, v string) {
		if v != "" {
			m[k] = v
		}
	}
	set("runtime_path", h.RuntimePath)
	set("base_runtime_spec", h.BaseRuntimeSpec)
	set("snapshotter", h.Snapshotter)
	set("sandboxer", h.Sandboxer)
	set("io_type", h.IOType)
	if h.PodAnnotations != nil {
		m["pod_annotations"] = h.PodAnnotations
	}
	if h.ContainerAnnotations != nil {
		m["container_annotations"] = h.ContainerAnnotations
	}
	if h.PrivilegedWithoutHostDevices != nil {
		m["privileged_without_host_devices"] = *h.PrivilegedWithoutHostDevices
	}
	if h.PrivilegedWithoutHostDevicesAllDevicesAllowed != nil {
		m["privileged_without_host_devices_all_devices_allowed"] = *h.PrivilegedWithoutHostDevicesAllDevicesAllowed
	}
	return m
}

// PathValue is a path a handler names, with the key that names it.
type PathValue struct {
	Key  string // for example "options.BinaryName"
	Path string
}

// Paths returns every path value of the handler, in a stable order: the
// runtime's own path keys, and every option that containerd or the shim
// reads as a file (see optionPaths).
func (h *Handler) Paths() []PathValue {
	var out []PathValue
	for _, kv := range [][2]string{{"runtime_path", h.RuntimePath}, {"base_runtime_spec", h.BaseRuntimeSpec}} {
		if kv[1] != "" {
			out = append(out, PathValue{Key: kv[0], Path: kv[1]})
		}
	}
	return append(out, optionPaths(h.RuntimeType, h.Options)...)
}

// Policy is the validated union of all policy files.
type Policy struct {
	// Handlers sorted by name.
	Handlers []Handler
	// Files that were read, in order.
	Files []string
}

// Options tune Load. The zero value uses the defaults.
type Options struct {
	// AllowedPrefixes for path values; nil means DefaultAllowedPrefixes.
	AllowedPrefixes []string
	// SkipOwnership skips the owner and mode checks of files and of the
	// directory (for linting files that are not installed yet).
	SkipOwnership bool
}

func (o Options) prefixes() []string {
	if o.AllowedPrefixes == nil {
		return DefaultAllowedPrefixes
	}
	return o.AllowedPrefixes
}

// ErrNoDir means the policy directory does not exist. It is not an error
// for the daemon, which waits for it.
var ErrNoDir = errors.New("policy directory does not exist")

// Load reads and validates every policy file of dir. A missing directory
// gives ErrNoDir.
func Load(dir string, opts Options) (*Policy, error) {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", dir, ErrNoDir)
	}
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s: not a directory", dir)
	}
	if !opts.SkipOwnership {
		if err := checkOwnership(dir, fi); err != nil {
			return nil, err
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var files []string
	for _, e := range entries {
		if PolicyFileName(e.Name()) {
			files = append(files, filepath.Join(dir, e.Name()))
		}
	}
	return LoadFiles(files, opts)
}

// PolicyFileName reports whether a directory entry is a policy file: it
// ends in .toml and is not hidden (editor swap files, Kubernetes ConfigMap
// internals such as ..data).
func PolicyFileName(name string) bool {
	return strings.HasSuffix(name, ".toml") && !strings.HasPrefix(name, ".")
}

// LoadFiles reads and validates the given files, in the given order.
func LoadFiles(files []string, opts Options) (*Policy, error) {
	var errs []error
	p := &Policy{Files: files}
	seen := map[string]*Handler{}
	for _, f := range files {
		hs, err := loadFile(f, opts)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for i := range hs {
			h := &hs[i]
			if prev, ok := seen[h.Name]; ok {
				if !sameHandler(prev, h) {
					errs = append(errs, fmt.Errorf("%s: handler %q is also defined, differently, in %s; define it in one file", h.Source, h.Name, prev.Source))
				}
				continue
			}
			seen[h.Name] = h
			p.Handlers = append(p.Handlers, *h)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	sort.Slice(p.Handlers, func(i, j int) bool { return p.Handlers[i].Name < p.Handlers[j].Name })
	return p, nil
}

func sameHandler(a, b *Handler) bool {
	x, y := *a, *b
	x.Source, y.Source = "", ""
	return reflect.DeepEqual(x, y)
}

func checkOwnership(path string, fi fs.FileInfo) error {
	if err := safepath.RootOwned(path, fi); err != nil {
		return fmt.Errorf("%w; only root may write policy", err)
	}
	return nil
}

// fileSpec is the schema of one policy file.
type fileSpec struct {
	Handlers map[string]*handlerSpec `toml:"handlers"`
}

type handlerSpec struct {
	Preset                                        string         `toml:"preset"`
	RuntimeType                                   *string        `toml:"runtime_type"`
	RuntimePath                                   *string        `toml:"runtime_path"`
	PodAnnotations                                []string       `toml:"pod_annotations"`
	ContainerAnnotations                          []string       `toml:"container_annotations"`
	PrivilegedWithoutHostDevices                  *bool          `toml:"privileged_without_host_devices"`
	PrivilegedWithoutHostDevicesAllDevicesAllowed *bool          `toml:"privileged_without_host_devices_all_devices_allowed"`
	BaseRuntimeSpec                               *string        `toml:"base_runtime_spec"`
	Snapshotter                                   *string        `toml:"snapshotter"`
	Sandboxer                                     *string        `toml:"sandboxer"`
	IOType                                        *string        `toml:"io_type"`
	Options                                       map[string]any `toml:"options"`
	Requires                                      []string       `toml:"requires"`
	Smoke                                         *string        `toml:"smoke"`
	Required                                      *bool          `toml:"required"`
	RuntimeClass                                  *RuntimeClass  `toml:"runtimeclass"`
}

func loadFile(path string, opts Options) ([]Handler, error) {
	src, err := readSafe(path, opts)
	if err != nil {
		return nil, err
	}
	return parse(path, src, opts)
}

// readSafe opens path (following symlinks), checks the opened file itself,
// so that nothing can be swapped in between, and reads at most MaxFileSize
// bytes. A symlink is followed hop by hop from the file's directory, and
// every directory on the way must be root's alone, as the policy dir is.
func readSafe(path string, opts Options) ([]byte, error) {
	if name := filepath.Base(path); printable(name) != name {
		return nil, fmt.Errorf("%s: a policy file name must not contain control, format or separator characters", printable(path))
	}
	open := path
	if !opts.SkipOwnership {
		abs, err := filepath.Abs(path)
		if err != nil {
			return nil, err
		}
		dir := filepath.Dir(abs)
		if fi, err := os.Lstat(dir); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
			// The policy directory is a symlink (a ConfigMap volume, a
			// directory kept elsewhere): it is followed from the root,
			// and every directory on the way must be root's alone.
			real, err := safepath.Resolve("/", "/", dir)
			if err != nil {
				return nil, fmt.Errorf("%s: the policy directory %s is a symlink: %w", path, dir, err)
			}
			dir = real
		}
		resolved, err := safepath.Resolve("/", dir, filepath.Base(abs))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		open = resolved
	}
	// O_NONBLOCK: a FIFO named *.toml must not hang the reader; the check
	// below refuses it. Regular files ignore the flag. O_NOFOLLOW: the
	// resolved path must still be what was checked.
	flags := os.O_RDONLY | syscall.O_NONBLOCK
	if open != path {
		flags |= syscall.O_NOFOLLOW
	}
	f, err := os.OpenFile(open, flags, 0)
	if errors.Is(err, syscall.ELOOP) {
		return nil, fmt.Errorf("%s: %s was replaced by a symlink while it was checked", path, open)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file (%s)", path, fi.Mode().Type())
	}
	if !opts.SkipOwnership {
		if err := checkOwnership(path, fi); err != nil {
			return nil, err
		}
	}
	src, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(src) > MaxFileSize {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, MaxFileSize)
	}
	return src, nil
}

// Parse decodes and validates one policy file's contents. name is used in
// error messages.
func Parse(name string, src []byte, opts Options) ([]Handler, error) {
	return parse(name, src, opts)
}

func parse(name string, src []byte, opts Options) ([]Handler, error) {
	name = printable(name)
	var spec fileSpec
	dec := toml.NewDecoder(strings.NewReader(string(src)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&spec); err != nil {
		return nil, decodeError(name, err)
	}
	pos, keys := positions(src)
	at := func(p position) string {
		if p.line > 0 {
			return fmt.Sprintf("%s:%d:%d", name, p.line, p.col)
		}
		return name
	}
	type located struct {
		pos position
		err error
	}
	var errs []located
	for _, k := range keys {
		if msg := checkSpelling(k.path); msg != "" {
			errs = append(errs, located{k.pos, fmt.Errorf("%s: %s: %s", at(k.pos), keyPath(k.path), msg)})
		}
	}
	var out []Handler
	for _, n := range slices.Sorted(maps.Keys(spec.Handlers)) {
		s := spec.Handlers[n]
		if s == nil {
			continue
		}
		h, herrs := resolve(n, s, opts)
		for _, e := range herrs {
			key := append([]string{"handlers", n}, e.key...)
			p, _ := pos.find(key)
			errs = append(errs, located{p, fmt.Errorf("%s: %s: %s", at(p), keyPath(key), e.msg)})
		}
		if len(herrs) == 0 {
			h.Source = name
			out = append(out, h)
		}
	}
	if len(errs) > 0 {
		sort.SliceStable(errs, func(i, j int) bool {
			a, b := errs[i].pos, errs[j].pos
			return a.line < b.line || a.line == b.line && a.col < b.col
		})
		all := make([]error, len(errs))
		for i, e := range errs {
			all[i] = e.err
		}
		return nil, errors.Join(all...)
	}
	return out, nil
}

// handlerKeys are the keys of a handler table, spelled as they must be.
var handlerKeys = func() []string {
	var keys []string
	t := reflect.TypeOf(handlerSpec{})
	for i := 0; i < t.NumField(); i++ {
		keys = append(keys, t.Field(i).Tag.Get("toml"))
	}
	return keys
}()

// checkSpelling refuses a policy key that the decoder matched to a schema
// key without regard to case (go-toml does): `RUNTIME_PATH` next to
// `runtime_path` would set one field twice, and which one wins is the
// decoder's secret. Keys are written exactly as documented.
func checkSpelling(path []string) string {
	want := func(got, canon string) string {
		if got != canon && strings.EqualFold(got, canon) {
			return fmt.Sprintf("write %s: keys are spelled exactly as documented", canon)
		}
		return ""
	}
	if msg := want(path[0], "handlers"); msg != "" || len(path) < 3 {
		return msg
	}
	for _, k := range handlerKeys {
		if msg := want(path[2], k); msg != "" {
			return msg
		}
	}
	return ""
}

func decodeError(name string, err error) error {
	var sme *toml.StrictMissingError
	if errors.As(err, &sme) {
		var errs []error
		for _, e := range sme.Errors {
			row, col := e.Position()
			errs = append(errs, fmt.Errorf("%s:%d:%d: unknown key %s", name, row, col, keyPath(e.Key())))
		}
		return errors.Join(errs...)
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		row, col := de.Position()
		msg := printable(de.Error())
		if k := de.Key(); len(k) > 0 {
			msg = keyPath(k) + ": " + msg
		}
		return fmt.Errorf("%s:%d:%d: %s", name, row, col, msg)
	}
	return fmt.Errorf("%s: %s", name, printable(err.Error()))
}

type fieldErr struct {
	key []string
	msg string
}

// resolve applies the preset and checks every rule for one handler.
func resolve(name string, s *handlerSpec, opts Options) (Handler, []fieldErr) {
	var errs []fieldErr
	fail := func(msg string, key ...string) { errs = append(errs, fieldErr{key: key, msg: msg}) }

	if len(name) > 63 || !isDNSLabel(name) {
		fail("handler name must be a DNS-1123 label (lowercase letters, digits and '-', at most 63 characters)")
	}
	h := Handler{Name: name}
	if s.Preset != "" {
		p, ok := presets[s.Preset]
		if !ok {
			fail(fmt.Sprintf("unknown preset %q (known: %s)", s.Preset, strings.Join(PresetNames(), ", ")), "preset")
			return h, errs
		}
		h = p.handler()
		h.Name = name
		h.Preset = s.Preset
	}
	str := func(dst *string, v *string) {
		if v != nil {
			*dst = *v
		}
	}
	str(&h.RuntimeType, s.RuntimeType)
	str(&h.RuntimePath, s.RuntimePath)
	str(&h.BaseRuntimeSpec, s.BaseRuntimeSpec)
	str(&h.Snapshotter, s.Snapshotter)
	str(&h.Sandboxer, s.Sandboxer)
	str(&h.IOType, s.IOType)
	if s.PodAnnotations != nil {
		h.PodAnnotations = s.PodAnnotations
	}
	if s.ContainerAnnotations != nil {
		h.ContainerAnnotations = s.ContainerAnnotations
	}
	if s.PrivilegedWithoutHostDevices != nil {
		h.PrivilegedWithoutHostDevices = s.PrivilegedWithoutHostDevices
	}
	if s.PrivilegedWithoutHostDevicesAllDevicesAllowed != nil {
		h.PrivilegedWithoutHostDevicesAllDevicesAllowed = s.PrivilegedWithoutHostDevicesAllDevicesAllowed
	}
	// A policy's requires only add to the preset's: a check that a preset
	// or the runtime type brings can't be switched off (requires = [] once
	// made a Kata handler ready on a node without /dev/kvm).
	for _, r := range s.Requires {
		if !slices.Contains(h.Requires, r) {
			h.Requires = append(h.Requires, r)
		}
	}
	if s.Smoke != nil {
		h.Smoke = *s.Smoke
	}
	if h.Smoke == "" {
		h.Smoke = SmokeHost
	}
	if s.RuntimeClass != nil {
		h.RuntimeClass = s.RuntimeClass
	}
	if s.Required != nil {
		h.Required = *s.Required
	}
	for _, e := range checkScheduling(h.Smoke, h.RuntimeClass) {
		fail(e.msg, e.key...)
	}
	// Options are read the way containerd reads them for this runtime
	// type; known keys are kept in containerd's spelling, and a policy
	// key replaces a preset key that is the same option to containerd.
	var written map[string]string
	if len(s.Options) > 0 {
		errs = append(errs, checkOptions(h.RuntimeType, s.Options)...)
		var own map[string]any
		own, written = canonicalOptions(h.RuntimeType, s.Options)
		h.Options = mergeOptions(h.Options, own)
	}

	switch {
	case h.RuntimeType == "":
		fail("runtime_type is required (or set a preset)", "runtime_type")
	case !isRuntimeType(h.RuntimeType):
		fail(fmt.Sprintf("runtime_type %q must look like io.containerd.NAME.vN", h.RuntimeType), "runtime_type")
	}
	for _, kv := range []struct {
		key string
		v   string
	}{{"snapshotter", h.Snapshotter}, {"sandboxer", h.Sandboxer}, {"io_type", h.IOType}} {
		if kv.v != "" && !isPlainWord(kv.v) {
			fail(fmt.Sprintf("%q is not a plain name", kv.v), kv.key)
		}
	}
	for _, list := range []struct {
		key string
		v   []string
	}{{"pod_annotations", h.PodAnnotations}, {"container_annotations", h.ContainerAnnotations}} {
		for _, a := range list.v {
			switch {
			case strings.Contains(a, "*"):
				fail(fmt.Sprintf("wildcard %q would let any pod set every matching annotation; list the annotations one by one", a), list.key)
			case !isAnnotation(a):
				fail(fmt.Sprintf("%q is not a valid annotation key", a), list.key)
			default:
				if msg := checkClosureAnnotation(a); msg != "" {
					fail(msg, list.key)
				}
			}
		}
	}
	for _, pv := range h.Paths() {
		if msg := checkPath(pv.Path, opts.prefixes()); msg != "" {
			key := strings.Split(pv.Key, ".")
			if len(key) > 1 && key[0] == "options" && written[key[1]] != "" {
				key[1] = written[key[1]] // where the policy wrote it
			}
			fail(msg, key...)
		}
	}
	for _, list := range []struct {
		key string
		v   []string
	}{{"pod_annotations", h.PodAnnotations}, {"container_annotations", h.ContainerAnnotations}, {"requires", h.Requires}} {
		if len(list.v) > maxList {
			fail(fmt.Sprintf("list of %d values; at most %d", len(list.v), maxList), list.key)
		}
	}
	for _, r := range h.Requires {
		if msg := checkRequire(r, opts.prefixes()); msg != "" {
			fail(msg, "requires")
		}
	}
	for _, r := range impliedChecks(&h) {
		if !slices.Contains(h.Requires, r) {
			h.Requires = append(h.Requires, r)
		}
	}
	return h, errs
}

// impliedChecks are the host checks that follow from what a handler runs,
// whatever its preset and requires say: Kata's shim reads its
// configuration, which names the hypervisor, kernel and image it runs
// (kata-config); gVisor's shim runs runsc from its path unless its
// configuration names a binary (runsc). They are security checks: the
// files they look at are in the handler's execution closure
// (docs/SECURITY.md), so no policy may leave them out.
func impliedChecks(h *Handler) []string {
	name := shimName(h.RuntimeType)
	base := filepath.Base(h.RuntimePath)
	switch {
	case strings.HasPrefix(name, "kata") || strings.HasPrefix(base, "containerd-shim-kata"):
		return []string{"kata-config"}
	case name == "runsc" || strings.HasPrefix(base, "containerd-shim-runsc"):
		return []string{"runsc"}
	}
	return nil
}

// shimName is the NAME of io.containerd.NAME.vN ("" if it isn't one).
func shimName(runtimeType string) string {
	parts := strings.Split(runtimeType, ".")
	if len(parts) < 4 || parts[0] != "io" || parts[1] != "containerd" {
		return ""
	}
	return strings.Join(parts[2:len(parts)-1], ".")
}

// checkPath applies the path rules: printable, absolute, clean, under a
// prefix.
func checkPath(p string, prefixes []string) string {
	if msg := checkString(p); msg != "" {
		return msg
	}
	if !filepath.IsAbs(p) {
		return fmt.Sprintf("path %q must be absolute", p)
	}
	if filepath.Clean(p) != p || slices.Contains(strings.Split(p, "/"), "..") {
		return fmt.Sprintf("path %q must be clean (no '..', '.', '//' or trailing '/'); write %q", p, filepath.Clean(p))
	}
	for _, pre := range prefixes {
		if p == pre || strings.HasPrefix(p, strings.TrimSuffix(pre, "/")+"/") {
			return ""
		}
	}
	return fmt.Sprintf("path %q is not under an allowed prefix (%s)", p, strings.Join(prefixes, ", "))
}

// KnownChecks are the host checks a handler may require, besides
// "path:/ABSOLUTE/PATH".
var KnownChecks = []string{"kvm", "vhost-vsock", "kata-config", "runsc", "nvidia"}

func checkRequire(r string, prefixes []string) string {
	if p, ok := strings.CutPrefix(r, "path:"); ok {
		if msg := checkPath(p, prefixes); msg != "" {
			return fmt.Sprintf("%q: %s", r, msg)
		}
		return ""
	}
	if slices.Contains(KnownChecks, r) {
		return ""
	}
	return fmt.Sprintf("unknown check %q (known: %s, path:/ABSOLUTE/PATH)", r, strings.Join(KnownChecks, ", "))
}
