package daemon

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/runtimeclassd/runtimeclassd/atomicfile"
	"github.com/runtimeclassd/runtimeclassd/ctrdconfig"
	"github.com/runtimeclassd/runtimeclassd/policy"
	"github.com/runtimeclassd/runtimeclassd/shimcheck"
	"github.com/runtimeclassd/runtimeclassd/tomlpatch"
)

// Validator checks a candidate config with containerd.
type Validator interface {
	Validate(ctx context.Context, target string, candidate []byte, want []ctrdconfig.Runtime) error
	Dump(ctx context.Context, target string, candidate []byte) ([]byte, error)
	DefaultVersion(ctx context.Context) (int, error)
}

// checker is a Validator that also hands back the dump it validated
// (ctrdconfig.Validator is one), so that a plan that needs containerd's
// effective config of the candidate doesn't run containerd twice for it.
type checker interface {
	Check(ctx context.Context, target string, candidate []byte, want []ctrdconfig.Runtime) ([]byte, error)
}

// Applier plans and writes config changes.
type Applier struct {
	Cfg       Config
	Log       *slog.Logger
	Validator Validator
	// Host decides which handlers the host can run; nil offers every
	// handler.
	Host HostChecker
	// Now is the clock for backup names; nil means time.Now.
	Now func() time.Time

	// The last effective config containerd gave for a current config, by
	// the hash of that config's bytes: the daemon plans on the same
	// config.toml again and again.
	dumpFor [sha256.Size]byte
	dump    []byte
	// major is the installed containerd's major version, once asked.
	major int
}

// Plan is a candidate config and how it was made.
type Plan struct {
	// Policy is nil for a revert.
	Policy *policy.Policy
	// Original is the config as read; Exists is false if there was none.
	Original []byte
	Exists   bool
	Result   *ctrdconfig.Result
	// Offered are the runtimes the candidate has managed blocks for.
	Offered []ctrdconfig.Runtime
	// Readiness is the host check of each policy handler; unready ones are
	// withheld from the config.
	Readiness []shimcheck.Result
	// Mode is ModePatch or ModeDropIn.
	Mode string
	// DropIn is the drop-in's side of the plan: written in drop-in mode,
	// removed when leaving it; nil when it is not touched.
	DropIn *FilePlan

	unvalidated bool
	newVersion  int
}

// OfferedSet returns the names of the offered runtimes.
func (p *Plan) OfferedSet() map[string]bool {
	m := map[string]bool{}
	for _, r := range p.Offered {
		m[r.Name] = true
	}
	return m
}

// Diff is a unified diff from the original to the candidate, of every file
// the plan writes.
func (p *Plan) Diff(name string) string { return p.diffFiles(name) }

// InvalidError is a reconcile that failed because of its inputs (the
// policy, config.toml, or containerd's verdict on the candidate), not
// because of the machine.
type InvalidError struct{ Err error }

func (e *InvalidError) Error() string { return e.Err.Error() }
func (e *InvalidError) Unwrap() error { return e.Err }

// Outcome classifies a reconcile error as OutcomeInvalid or OutcomeError.
func Outcome(err error) string {
	var ie *InvalidError
	if errors.As(err, &ie) {
		return OutcomeInvalid
	}
	return OutcomeError
}

// ErrConfigChanged means config.toml changed while a plan was made.
var ErrConfigChanged = errors.New("changed by someone else while the new config was prepared; their bytes were kept")

// PlanOptions say what to plan.
type PlanOptions struct {
	// Revert plans the removal of every managed block instead of applying
	// the policy.
	Revert bool
	// NoValidate skips containerd's check of the candidate, and with it the
	// default-runtime lookup. Such a plan is only for showing: the
	// reconciler's write step refuses it.
	NoValidate bool
	// Command names what asked, for the state file ("run" if empty).
	Command string
}

// Plan loads the policy (unless reverting), patches the config and validates
// the result with containerd. It writes nothing.
func (a *Applier) Plan(ctx context.Context, opts PlanOptions) (*Plan, error) {
	revert := opts.Revert
	p := &Plan{}
	if !revert {
		pol, err := policy.Load(a.Cfg.PolicyDir, policy.Options{AllowedPrefixes: a.Cfg.AllowedPathPrefixes})
		if err != nil {
			return nil, &InvalidError{fmt.Errorf("loading policy: %w", err)}
		}
		p.Policy = pol
	}
	if err := EmbeddedContainerd(a.Cfg); err != nil {
		return nil, &InvalidError{err}
	}
	// config.toml is replaced by a rename in its directory: refuse, before
	// anything is written or backed up, a config.toml (or the file its
	// symlink leads to) where someone other than root could redirect it,
	// or that someone else owns or can write (a replacement keeps its
	// owner and mode; they could add a handler of their own, or markers).
	if _, err := atomicfile.CheckRootOnly(a.Cfg.ContainerdConfig); err != nil {
		return nil, &InvalidError{fmt.Errorf("containerd config: %w", err)}
	}
	src, err := os.ReadFile(a.Cfg.ContainerdConfig)
	if err == nil {
		if berr := ctrdconfig.CheckBOM(src); berr != nil {
			return nil, &InvalidError{fmt.Errorf("%s: %w", a.Cfg.ContainerdConfig, berr)}
		}
	}
	switch {
	case err == nil:
		p.Original, p.Exists = src, true
	case errors.Is(err, fs.ErrNotExist):
	default:
		return nil, fmt.Errorf("reading containerd config: %w", err)
	}
	var want []ctrdconfig.Runtime
	if p.Policy != nil {
		if a.Host != nil {
			p.Readiness = CheckHandlers(a.Host, p.Policy)
			CheckCgroupDriver(a.Cfg, p.Policy, p.Readiness)
		}
		var inherited map[string]map[string]any
		if !opts.NoValidate {
			inherited = a.inheritCgroupDriver(ctx, p, p.Policy)
		}
		for i := range p.Policy.Handlers {
			h := &p.Policy.Handlers[i]
			if p.Readiness != nil && !p.Readiness[i].Ready {
				a.Log.Info("handler withheld: the host can't run it", "handler", h.Name, "reason", p.Readiness[i].Reason())
				continue
			}
			options := h.Options
			if o, ok := inherited[h.Name]; ok {
				options = o
			}
			want = append(want, ctrdconfig.Runtime{Name: h.Name, Fields: h.Fields(), Options: options})
		}
	}
	p.Mode = ModePatch
	if !opts.NoValidate || a.Cfg.Mode == ModeDropIn {
		if p.Mode, err = a.mode(ctx); err != nil {
			return nil, err
		}
	}
	if p.Mode == ModeDropIn {
		if err := a.planDropIn(ctx, p, want, opts); err != nil {
			return nil, err
		}
		p.unvalidated = opts.NoValidate
		if p.Changed() && !opts.NoValidate {
			if err := a.validateDropIn(ctx, p); err != nil {
				return nil, err
			}
		}
		return p, nil
	}
	unimport, err := a.leaveDropIn(p)
	if err != nil {
		return nil, err
	}
	if !p.Exists && (revert || len(want) == 0) {
		// Nothing to offer: a missing config.toml stays missing, so that a
		// fresh node with no policy is not restarted for nothing.
		p.Result = &ctrdconfig.Result{}
		return p, nil
	}
	newVersion := 0
	if !p.Exists {
		if opts.NoValidate {
			return nil, fmt.Errorf("%s does not exist, and without containerd its version can't be chosen", a.Cfg.ContainerdConfig)
		}
		if newVersion, err = a.Validator.DefaultVersion(ctx); err != nil {
			return nil, fmt.Errorf("%s does not exist and its version can't be chosen: %w", a.Cfg.ContainerdConfig, err)
		}
	}
	var def *ctrdconfig.Runtime
	patchOpts := ctrdconfig.Options{NewFileVersion: newVersion, Unimport: unimport, Path: a.Cfg.ContainerdConfig}
	// A handler that a file config.toml imports defines too is someone
	// else's: on 2.x containerd merges that file's keys into the table
	// runtimeclassd would write (a BinaryName of its own, say), on 1.x its
	// CRI section replaces config.toml's. runtimeclassd's own drop-in,
	// being left, is not another file.
	var defs map[string][]ctrdconfig.ForeignDef
	if len(want) > 0 {
		if defs, err = ctrdconfig.ForeignDefs(a.Cfg.ContainerdConfig, p.Original, a.Cfg.DropInPath(), importTrusted); err != nil {
			return nil, &InvalidError{fmt.Errorf("%s: %w", a.Cfg.ContainerdConfig, err)}
		}
		patchOpts.Foreign = ctrdconfig.LastDefiners(defs)
	}
	var dumpErr error // from containerd, as opposed to from the inputs
	if !opts.NoValidate {
		patchOpts.DefaultRuntime = func() (*ctrdconfig.Runtime, error) {
			def, dumpErr = a.defaultRuntime(ctx, p.Original)
			return def, dumpErr
		}
	}
	res, err := ctrdconfig.Patch(p.Original, want, patchOpts)
	if err != nil {
		var ve *ctrdconfig.ValidationError
		if dumpErr == nil || errors.As(err, &ve) {
			err = &InvalidError{err}
		}
		return nil, fmt.Errorf("%s: %w", a.Cfg.ContainerdConfig, err)
	}
	p.Result = res
	conflicted := map[string]bool{}
	var managed map[string]bool // read only if another file defines a handler
	for i, c := range res.Conflicts {
		conflicted[c.Handler] = true
		if c.File != "" && managed == nil {
			managed = managedHandlers(p.Original)
		}
		if c.File != "" && managed[c.Handler] {
			// Written by runtimeclassd before the other file defined it: the
			// block stays (without it containerd would have the other
			// file's keys alone), and the handler is not offered.
			res.Conflicts[i].Overrides = defs[c.Handler]
			c = res.Conflicts[i]
		}
		a.Log.Warn("handler not applied", "handler", c.Handler, "reason", c.String())
	}
	for _, r := range want {
		if !conflicted[r.Name] {
			p.Offered = append(p.Offered, r)
		}
	}
	if def != nil && slices.Contains(res.Kept, def.Name) {
		p.Offered = append(p.Offered, *def)
	}
	p.unvalidated = opts.NoValidate
	if p.DropIn != nil && !opts.NoValidate {
		// Leaving drop-in mode: what containerd reads is config.toml
		// without the drop-in.
		if err := a.validateDropIn(ctx, p); err != nil {
			return nil, err
		}
		return p, nil
	}
	if res.Changed && !opts.NoValidate {
		dump, err := a.validate(ctx, res.Out, p.Offered)
		if err != nil {
			var ve *ctrdconfig.ValidationError
			if errors.As(err, &ve) {
				err = &InvalidError{err}
			}
			return nil, fmt.Errorf("validating the new config: %w", err)
		}
		if res.Created {
			if err := a.sameBehaviour(ctx, res.Out, dump, p.Offered); err != nil {
				return nil, fmt.Errorf("creating %s: %w", a.Cfg.ContainerdConfig, err)
			}
		}
	}
	return p, nil
}

// importTrusted is ForeignDefs' check of what config.toml imports, in
// either mode: containerd merges every imported file into its effective
// config, so a file someone other than root can change (or add, to a
// glob's directory) could define a handler's binary or take over one
// runtimeclassd wrote. Each imported file must be root's alone, where only
// root can change it; each glob's directory too (or, missing, the
// deepest existing one on its way).
func importTrusted(path string, dir bool) error {
	var err error
	if dir {
		_, err = atomicfile.CheckWritable(filepath.Join(path, "*"))
	} else {
		_, err = atomicfile.CheckRootOnly(path)
	}
	if err != nil {
		return fmt.Errorf("imports %s, which someone other than root could change: %w", path, err)
	}
	return nil
}

// managedHandlers names the handlers that have a managed block in a
// config's bytes (none if they don't parse: Patch has said why).
func managedHandlers(src []byte) map[string]bool {
	out := map[string]bool{}
	doc, err := tomlpatch.Parse(src)
	if err != nil {
		return out
	}
	blocks, _ := ctrdconfig.Blocks(doc)
	for _, b := range blocks {
		out[b.Handler] = true
	}
	return out
}

// validate has containerd check the candidate, and returns the dump it
// checked when the Validator can give it (nil otherwise).
func (a *Applier) validate(ctx context.Context, candidate []byte, want []ctrdconfig.Runtime) ([]byte, error) {
	if c, ok := a.Validator.(checker); ok {
		return c.Check(ctx, a.Cfg.ContainerdConfig, candidate, want)
	}
	return nil, a.Validator.Validate(ctx, a.Cfg.ContainerdConfig, candidate, want)
}

// sameBehaviour proves that a config.toml created where there was none
// changes nothing in containerd's effective config but the handlers: its
// dump and the dump of an empty file (containerd's defaults) must agree on
// everything else. cand is the candidate's dump if validation gave it.
// The defaults are the current config's dump (there is no file), which
// the default-runtime lookup has mostly read already.
func (a *Applier) sameBehaviour(ctx context.Context, candidate, cand []byte, managed []ctrdconfig.Runtime) error {
	base, err := a.currentDump(ctx, nil)
	if err != nil {
		return fmt.Errorf("reading containerd's defaults: %w", err)
	}
	if cand == nil {
		if cand, err = a.Validator.Dump(ctx, a.Cfg.ContainerdConfig, candidate); err != nil {
			return err
		}
	}
	var names []string
	for _, r := range managed {
		names = append(names, r.Name)
	}
	diffs, err := ctrdconfig.DiffDumps(base, cand, names)
	if err != nil {
		return err
	}
	if len(diffs) > 0 {
		return &InvalidError{fmt.Errorf("the new file would change containerd's settings beyond the handlers: %s", strings.Join(diffs, "; "))}
	}
	return nil
}

// currentDump is containerd's effective config for the current config's
// bytes, cached by them.
func (a *Applier) currentDump(ctx context.Context, current []byte) ([]byte, error) {
	sum := sha256.Sum256(current)
	if a.dump != nil && a.dumpFor == sum {
		return a.dump, nil
	}
	dump, err := a.Validator.Dump(ctx, a.Cfg.ContainerdConfig, current)
	if err != nil {
		return nil, err
	}
	a.dumpFor, a.dump = sum, dump
	return dump, nil
}

// defaultRuntime returns containerd's default runtime for the current
// config (see ctrdconfig.Options.DefaultRuntime): the intact managed block
// that holds it if there is one (no containerd run), else containerd's
// answer from a dump, cached by the config's bytes.
func (a *Applier) defaultRuntime(ctx context.Context, current []byte) (*ctrdconfig.Runtime, error) {
	if r, err := ctrdconfig.KeptDefault(current); err != nil || r != nil {
		return r, err
	}
	dump, err := a.currentDump(ctx, current)
	if err != nil {
		return nil, fmt.Errorf("reading containerd's effective config: %w", err)
	}
	return ctrdconfig.DefaultRuntime(dump)
}

// Backup keeps a copy of each file the plan replaces in the state dir, and
// returns their paths by file ("" for a file that did not exist).
func (a *Applier) Backup(p *Plan) (map[string]string, error) {
	out := map[string]string{}
	for _, f := range p.files(a.Cfg.ContainerdConfig) {
		if !f.exists {
			continue
		}
		backup, err := a.backup(f.path, f.orig)
		if err != nil {
			return nil, fmt.Errorf("backing up %s: %w", f.path, err)
		}
		out[f.path] = backup
	}
	return out, nil
}

// backup writes a timestamped copy of the config into the state dir and
// keeps the newest Cfg.Backups copies.
func (a *Applier) backup(path string, b []byte) (string, error) {
	dir := filepath.Join(a.Cfg.StateDir, "backups")
	if err := StateDirOK(a.Cfg.StateDir); err != nil {
		return "", err
	}
	if err := atomicfile.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("backups: %w", err)
	}
	now := time.Now
	if a.Now != nil {
		now = a.Now
	}
	base := filepath.Base(path)
	name := filepath.Join(dir, base+"."+now().UTC().Format("20060102T150405.000000000Z"))
	if err := atomicfile.WriteFile(name, b, 0o600); err != nil {
		return "", err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return name, err
	}
	var olds []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), base+".") && !strings.HasPrefix(e.Name(), ".") {
			olds = append(olds, e.Name())
		}
	}
	sort.Strings(olds) // timestamps sort in time order
	keep := max(a.Cfg.Backups, 1)
	for len(olds) > keep {
		if err := os.Remove(filepath.Join(dir, olds[0])); err != nil {
			return name, err
		}
		olds = olds[1:]
	}
	return name, nil
}

// Lock takes the state dir's lock, so that one apply, revert or daemon
// reconcile runs at a time. It blocks until the lock is free or ctx ends.
func Lock(ctx context.Context, stateDir string) (unlock func(), err error) {
	if err := StateDirOK(stateDir); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(stateDir, "lock"), os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("state dir %s: %w", stateDir, err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", f.Name(), err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for the lock on %s: %w", f.Name(), ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// PolicyHash is the hash of the policy as it is now, or "" if it can't be
// read.
func (a *Applier) PolicyHash() string {
	pol, err := policy.Load(a.Cfg.PolicyDir, policy.Options{AllowedPrefixes: a.Cfg.AllowedPathPrefixes})
	if err != nil {
		return ""
	}
	return pol.Hash()
}
