package daemon

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/runtimeclassd/runtimeclassd/atomicfile"
	"github.com/runtimeclassd/runtimeclassd/ctrdconfig"
	"github.com/runtimeclassd/runtimeclassd/tomlpatch"
)

// Modes: where the managed handlers are written.
const (
	// ModePatch writes them as managed blocks in config.toml.
	ModePatch = "patch"
	// ModeDropIn writes them in one file that config.toml imports
	// (containerd 2.0 and later); config.toml changes at most by one
	// imports entry.
	ModeDropIn = "drop-in"
	// ModeAuto is drop-in on containerd 2.x, patch on 1.x.
	ModeAuto = "auto"
)

// errDropInOn1x explains why the drop-in mode is refused on containerd 1.x.
var errDropInOn1x = errors.New("mode drop-in needs containerd 2.0 or later: containerd 1.x replaces a whole plugin section with an imported file's (containerd #5837), so a drop-in that names one runtime would take every other CRI setting away; use mode = \"patch\" or \"auto\"")

// Mode is the mode the Applier writes in: the configured one, with auto
// resolved against the installed containerd (see mode).
func (a *Applier) Mode(ctx context.Context) (string, error) { return a.mode(ctx) }

// mode resolves the configured mode against the installed containerd: its
// default config's version is 3 or more from containerd 2.0 on. The answer
// is cached for the Applier's life.
func (a *Applier) mode(ctx context.Context) (string, error) {
	m := a.Cfg.Mode
	switch m {
	case "", ModePatch:
		return ModePatch, nil
	case ModeDropIn, ModeAuto:
	default:
		return "", &InvalidError{fmt.Errorf("mode %q must be %q, %q or %q", m, ModePatch, ModeDropIn, ModeAuto)}
	}
	if a.major == 0 {
		// A config of version 3 or more is containerd 2.x's: 1.x can't read
		// it. Otherwise ask the binary.
		if b, err := os.ReadFile(a.Cfg.ContainerdConfig); err == nil {
			if v, err := ctrdconfig.FileVersion(b); err == nil && v >= 3 {
				a.major = 2
			}
		}
	}
	if a.major == 0 {
		// The binary's Go build info names its module, .../v2 from 2.0 on:
		// read without running it.
		a.major = binaryMajor(a.Cfg.ContainerdBin)
	}
	if a.major == 0 {
		v, err := a.Validator.DefaultVersion(ctx)
		if err != nil {
			return "", fmt.Errorf("telling containerd's version, for mode %s: %w", m, err)
		}
		a.major = 1
		if v >= 3 {
			a.major = 2
		}
	}
	switch {
	case a.major >= 2:
		return ModeDropIn, nil
	case m == ModeAuto:
		return ModePatch, nil
	}
	return "", &InvalidError{errDropInOn1x}
}

// binaryMajor is containerd's major version from the main package path in
// the binary's Go build info (github.com/containerd/containerd/cmd/containerd
// for 1.x, .../containerd/v2/cmd/containerd for 2.x), or 0 when it can't
// tell: not found, not a Go binary, a wrapper script, another build.
func binaryMajor(bin string) int {
	path, err := exec.LookPath(bin)
	if err != nil {
		return 0
	}
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		return 0
	}
	rest, ok := strings.CutPrefix(bi.Path, "github.com/containerd/containerd/")
	if !ok || !strings.HasSuffix(rest, "cmd/containerd") {
		return 0
	}
	if v, ok := strings.CutPrefix(rest, "v"); ok {
		n, _, _ := strings.Cut(v, "/")
		major, err := strconv.Atoi(n)
		if err != nil || major < 2 {
			return 0
		}
		return major
	}
	if rest != "cmd/containerd" {
		return 0
	}
	return 1
}

// FilePlan is a second file a plan writes or removes: the drop-in.
type FilePlan struct {
	Path     string
	Original []byte
	Exists   bool
	// Out is the candidate; with Remove the file is deleted instead.
	Out    []byte
	Remove bool
	Result *ctrdconfig.Result
}

func (f *FilePlan) changed() bool {
	if f.Remove {
		return f.Exists
	}
	return !f.Exists || !bytes.Equal(f.Original, f.Out)
}

// planFile is one file an apply writes, in the order of writing.
type planFile struct {
	path   string
	orig   []byte
	exists bool
	out    []byte // nil with remove
	remove bool
}

// Changed reports whether the plan writes anything.
func (p *Plan) Changed() bool {
	return p.Result.Changed || p.DropIn != nil && p.DropIn.changed()
}

// files lists what the plan writes, in the order it must be written: the
// file that gains definitions first, so that a crash between the two writes
// leaves a handler defined twice, identically, never not at all. Entering
// or staying in drop-in mode, that is the drop-in; leaving it, config.toml.
func (p *Plan) files(configPath string) []planFile {
	var out []planFile
	cfg := planFile{path: configPath, orig: p.Original, exists: p.Exists, out: p.Result.Out}
	if p.Result.Changed {
		out = append(out, cfg)
	}
	d := p.DropIn
	if d == nil || !d.changed() {
		return out
	}
	df := planFile{path: d.Path, orig: d.Original, exists: d.Exists, out: d.Out, remove: d.Remove}
	if d.Remove {
		return append(out, df)
	}
	return append([]planFile{df}, out...)
}

// Written names the files the plan writes, in the order of writing: the
// drop-in, config.toml, or both ("removed PATH" for a drop-in it deletes).
func (p *Plan) Written(configPath string) []string {
	var out []string
	for _, f := range p.files(configPath) {
		if f.remove {
			out = append(out, "removed "+f.path)
		} else {
			out = append(out, f.path)
		}
	}
	return out
}

// managedFiles are the files whose bytes make up what containerd reads of
// runtimeclassd's: config.toml, and the drop-in when a path is set.
func (c Config) managedFiles() []string {
	return []string{c.ContainerdConfig, c.DropInPath()}
}

// DropInPath is the drop-in's path: drop_in, or by default
// conf.d/50-runtimeclassd.toml next to containerd's config.
func (c Config) DropInPath() string {
	if c.DropIn != "" {
		return c.DropIn
	}
	return filepath.Join(filepath.Dir(c.ContainerdConfig), "conf.d", "50-runtimeclassd.toml")
}

// filesHash sums the current bytes (or absence) of files, in order.
func filesHash(paths []string) (string, error) {
	h := sha256.New()
	for _, p := range paths {
		b, exists, err := readConfig(p)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s\x00%s\x00", p, hashOrAbsent(b, exists))
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// candidateHash sums what files will hold once the plan is written.
func (p *Plan) candidateHash(c Config) string {
	h := sha256.New()
	for _, path := range c.managedFiles() {
		var b []byte
		var exists bool
		switch {
		case path == c.ContainerdConfig:
			b, exists = p.Result.Out, p.Exists || p.Result.Changed
			if !p.Result.Changed {
				b = p.Original
			}
		case p.DropIn != nil:
			b, exists = p.DropIn.Out, !p.DropIn.Remove
		default:
			b, exists, _ = readConfig(path)
		}
		fmt.Fprintf(h, "%s\x00%s\x00", path, hashOrAbsent(b, exists))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// planDropIn finishes a plan in drop-in mode: config.toml loses any managed
// blocks and gets an imports entry for the drop-in (unless one covers it);
// the drop-in holds every handler, with config.toml's version; a handler
// that config.toml or another imported file defines is someone else's. With
// no handler to offer, the drop-in goes, and the imports entry with it if
// runtimeclassd added it.
func (a *Applier) planDropIn(ctx context.Context, p *Plan, want []ctrdconfig.Runtime, opts PlanOptions) error {
	cfg := a.Cfg
	version := 0
	if p.Exists {
		v, err := ctrdconfig.FileVersion(p.Original)
		if err != nil {
			return &InvalidError{fmt.Errorf("%s: %w", cfg.ContainerdConfig, err)}
		}
		version = v
	} else if version, err := a.Validator.DefaultVersion(ctx); err != nil {
		return fmt.Errorf("%s does not exist and its version can't be chosen: %w", cfg.ContainerdConfig, err)
	} else {
		p.newVersion = version
	}
	if version == 0 {
		version = p.newVersion
	}
	if version < 2 {
		return &InvalidError{fmt.Errorf("%s: mode drop-in needs a config of version 2 or later (this one is version %d)", cfg.ContainerdConfig, version)}
	}
	if err := dropInPathOK(cfg.DropInPath()); err != nil {
		return &InvalidError{err}
	}
	defs, err := ctrdconfig.ForeignDefs(cfg.ContainerdConfig, p.Original, cfg.DropInPath(), importTrusted)
	if err != nil {
		return &InvalidError{fmt.Errorf("%s: %w", cfg.ContainerdConfig, err)}
	}
	foreign := ctrdconfig.LastDefiners(defs)
	d, err := readFilePlan(cfg.DropInPath())
	if err != nil {
		return err
	}
	p.DropIn = d
	st, _ := LoadState(cfg.StateDir)
	// config.toml: no managed blocks; the imports entry if there is
	// anything to import.
	copts := ctrdconfig.Options{NewFileVersion: p.newVersion, Foreign: foreign, Path: cfg.ContainerdConfig}
	if len(want) > 0 && !opts.Revert {
		copts.Import = cfg.DropInPath()
	} else if st != nil && st.Import != nil {
		copts.Unimport = st.Import
	}
	if !p.Exists && copts.Import == "" {
		p.Result = &ctrdconfig.Result{}
	} else {
		res, err := ctrdconfig.Patch(p.Original, want, copts)
		if err != nil {
			return &InvalidError{fmt.Errorf("%s: %w", cfg.ContainerdConfig, err)}
		}
		// Patch checked ownership and placed the blocks; in this mode they go
		// to the drop-in, so config.toml keeps only the imports edit.
		if res, err = a.configWithoutBlocks(p.Original, res, copts); err != nil {
			return err
		}
		p.Result = res
	}
	// A handler in conflict whose block is already in the drop-in was
	// defined elsewhere after runtimeclassd wrote it: another drop-in that
	// merges over ours, or config.toml. Its block stays as it is (without
	// it, containerd would be left with the other file's keys alone, maybe
	// half a runtime) and it is not offered (see withoutConflicts).
	inDropIn := map[string]bool{}
	if d.Exists {
		inDropIn = managedHandlers(d.Original)
	}
	owned := want[:0:0]
	conflicted := map[string]string{} // handler: the file that defines it
	kept := 0
	for i, c := range p.Result.Conflicts {
		conflicted[c.Handler] = cmp.Or(c.File, cfg.ContainerdConfig)
		if inDropIn[c.Handler] {
			kept++
			if c.File != "" {
				p.Result.Conflicts[i].Overrides = defs[c.Handler]
			}
		}
		if a.Log != nil {
			a.Log.Warn("handler not applied", "handler", c.Handler, "reason", p.Result.Conflicts[i].String())
		}
	}
	for _, r := range want {
		if conflicted[r.Name] == "" {
			owned = append(owned, r)
		}
	}
	if len(owned) == 0 && kept == 0 {
		// Nothing to offer: config.toml imports nothing new (it keeps its
		// bytes unless it held runtimeclassd's blocks or imports entry).
		if copts.Import != "" {
			copts.Import = ""
			if st != nil && st.Import != nil {
				copts.Unimport = st.Import
			}
			if !p.Exists {
				p.Result = &ctrdconfig.Result{Conflicts: p.Result.Conflicts}
			} else {
				res, err := a.configWithoutBlocks(p.Original, p.Result, copts)
				if err != nil {
					return err
				}
				p.Result = res
			}
		}
		d.Remove, d.Out = true, nil
		return nil
	}
	src := d.Original
	if !d.Exists {
		src = ctrdconfig.DropInHeader(version, cfg.ContainerdConfig)
	}
	// The handlers in conflict as foreign: their blocks are kept as they
	// are, and none is added for them.
	dres, err := ctrdconfig.Patch(src, want, ctrdconfig.Options{Foreign: conflicted})
	if err != nil {
		return &InvalidError{fmt.Errorf("%s: %w", cfg.DropInPath(), err)}
	}
	d.Out, d.Result = dres.Out, dres
	p.Offered = owned
	return nil
}

// dropInPathOK refuses the drop-in mode when the drop-in would be written,
// and read by containerd, where someone other than root could change it:
// a directory on the way (conf.d, or the deepest existing one if it is
// missing) that root does not own or that others can write, a symlink
// placed by someone else, or an existing drop-in file that is not root's
// alone (it would keep its owner and mode when replaced).
func dropInPathOK(path string) error {
	target, err := atomicfile.CheckWritable(path)
	if err != nil {
		return fmt.Errorf("mode drop-in refused: %w", err)
	}
	fi, err := os.Lstat(target)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("mode drop-in refused: %w", err)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 {
		return fmt.Errorf("mode drop-in refused: drop-in %s is owned by uid %d, not root", target, st.Uid)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("mode drop-in refused: drop-in %s is group- or world-writable (mode %04o)", target, fi.Mode().Perm())
	}
	return nil
}

// configWithoutBlocks is config.toml in drop-in mode: every managed block
// removed (the handlers move to the drop-in), with the imports edit.
func (a *Applier) configWithoutBlocks(orig []byte, withBlocks *ctrdconfig.Result, copts ctrdconfig.Options) (*ctrdconfig.Result, error) {
	copts.Foreign = nil
	res, err := ctrdconfig.Patch(orig, nil, copts)
	if err != nil {
		return nil, &InvalidError{fmt.Errorf("%s: %w", a.Cfg.ContainerdConfig, err)}
	}
	res.Conflicts = withBlocks.Conflicts
	return res, nil
}

// planLeaveDropIn, in patch mode, takes runtimeclassd's drop-in away if it
// is there (the handlers are back in config.toml) and the imports entry
// runtimeclassd added for it.
func (a *Applier) leaveDropIn(p *Plan) (*ctrdconfig.ImportEntry, error) {
	cfg := a.Cfg
	d, err := readFilePlan(cfg.DropInPath())
	if err != nil || !d.Exists {
		return nil, err
	}
	if !bytes.HasPrefix(d.Original, []byte("# Generated by runtimeclassd")) {
		return nil, nil // not ours
	}
	d.Remove = true
	p.DropIn = d
	if st, _ := LoadState(cfg.StateDir); st != nil {
		return st.Import, nil
	}
	return nil, nil
}

func readFilePlan(path string) (*FilePlan, error) {
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		return &FilePlan{Path: path, Original: b, Exists: true}, nil
	case errors.Is(err, fs.ErrNotExist):
		return &FilePlan{Path: path}, nil
	}
	return nil, fmt.Errorf("reading %s: %w", path, err)
}

// writeFile writes or removes one file of a plan, if it still holds what
// the plan was made from.
func writeFile(f planFile) error {
	var err error
	switch {
	case f.remove:
		err = atomicfile.RemoveIf(f.path, f.orig)
	case f.exists:
		expect := f.orig
		if expect == nil {
			expect = []byte{}
		}
		err = atomicfile.ReplaceIf(f.path, f.out, 0o644, expect)
	default:
		if err = atomicfile.MkdirAll(filepath.Dir(f.path), 0o755); err == nil {
			err = atomicfile.ReplaceIf(f.path, f.out, 0o644, nil)
		}
	}
	if errors.Is(err, atomicfile.ErrChanged) {
		return fmt.Errorf("%s: %w", f.path, ErrConfigChanged)
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", f.path, err)
	}
	return nil
}

// diffFiles is the unified diff of every file the plan writes.
func (p *Plan) diffFiles(configPath string) string {
	var b strings.Builder
	b.WriteString(p.Result.Diff(p.Original, "a"+configPath, "b"+configPath))
	if d := p.DropIn; d != nil && d.changed() {
		switch {
		case d.Remove:
			b.WriteString(fmt.Sprintf("--- a%s\n+++ /dev/null\n(removed)\n", d.Path))
		case d.Exists:
			b.WriteString(d.Result.Diff(d.Original, "a"+d.Path, "b"+d.Path))
		default:
			b.WriteString(tomlpatch.Diff(nil, []tomlpatch.Edit{{Text: d.Out}}, "/dev/null", "b"+d.Path, 3))
		}
	}
	return b.String()
}

// dropinDumper is a Validator that can read a candidate config.toml with a
// candidate drop-in (ctrdconfig.Validator is one).
type dropinDumper interface {
	DumpWith(ctx context.Context, target string, candidate []byte, dropin string, dropinContent []byte) ([]byte, error)
}

// validateDropIn has containerd read the candidate pair and checks that
// it serves the offered handlers as written.
func (a *Applier) validateDropIn(ctx context.Context, p *Plan) error {
	cfg := p.Original
	if p.Result.Changed {
		cfg = p.Result.Out
	}
	var content []byte
	if !p.DropIn.Remove {
		content = p.DropIn.Out
	}
	var err error
	if d, ok := a.Validator.(dropinDumper); ok {
		var dump []byte
		if dump, err = d.DumpWith(ctx, a.Cfg.ContainerdConfig, cfg, a.Cfg.DropInPath(), content); err == nil {
			err = ctrdconfig.CheckDump(dump, p.Offered)
		}
	} else {
		err = a.Validator.Validate(ctx, a.Cfg.ContainerdConfig, cfg, p.Offered)
	}
	if err != nil {
		var ve *ctrdconfig.ValidationError
		if errors.As(err, &ve) {
			err = &InvalidError{err}
		}
		return fmt.Errorf("validating the new config with its drop-in: %w", err)
	}
	return nil
}

// withoutConflicts takes the handlers in conflict out of offers: one whose
// block runtimeclassd kept while another file defines it too (see
// planDropIn) is served by containerd, but with that file's keys merged
// in, not as the policy says.
func withoutConflicts(offers map[string]Offer, p *Plan) {
	if p == nil || p.Result == nil {
		return
	}
	for _, c := range p.Result.Conflicts {
		if o, ok := offers[c.Handler]; ok && o.Offered {
			offers[c.Handler] = Offer{Reason: c.String(), Smoke: o.Smoke}
		}
	}
}
