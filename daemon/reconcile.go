package daemon

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/runtimeclassd/runtimeclassd/atomicfile"
	"github.com/runtimeclassd/runtimeclassd/ctrdconfig"
	"github.com/runtimeclassd/runtimeclassd/internal/crashpoint"
	"github.com/runtimeclassd/runtimeclassd/policy"
)

// Restarter restarts containerd's unit. The systemd package adapts
// go-systemd to it.
type Restarter interface {
	RestartUnit(ctx context.Context, unit string) error
	UnitActive(ctx context.Context, unit string) (bool, error)
	StartLimitHit(ctx context.Context, unit string) (bool, error)
	ResetFailed(ctx context.Context, unit string) error
	// StartedAt is when the unit's main process last started; zero if it
	// is not running.
	StartedAt(ctx context.Context, unit string) (time.Time, error)
}

// Verifier asks containerd, through its API, what it really serves.
type Verifier interface {
	// Verify waits until containerd serves every handler, or ctx ends.
	Verify(ctx context.Context, handlers []string) error
	// Served returns the handlers containerd's CRI serves now.
	Served(ctx context.Context) ([]string, error)
}

// Fleet coordinates containerd restarts across a cluster's nodes through
// the Kubernetes API (kube.Fleet is one): a budget of restart slots, and a
// record of the policies that failed somewhere.
type Fleet interface {
	// Acquire blocks until this node may restart containerd, or ctx ends;
	// release gives the slot back.
	Acquire(ctx context.Context) (release func(), err error)
	// Ready, called immediately before each restart while a slot is held,
	// returns nil once the slot is surely still this node's; it waits while
	// the slot can't be confirmed (the API server is down), and fails if
	// another node took it over (or ctx ended).
	Ready(ctx context.Context) error
	// Failed records that a policy (its hash) was rolled back on this node.
	Failed(ctx context.Context, policy, reason string) error
	// Held says whether a policy failed on some node: which, and why.
	Held(ctx context.Context, policy string) (node, reason string, held bool, err error)
}

// NodeLabels publishes on the node's Node object which handlers it offers:
// the labels the NFD feature file carries (kube.Labeler, adapted, is one).
// It must not block on the network.
type NodeLabels interface {
	SetHandlers(offered map[string]bool)
}

// HeldError is a policy that is not applied because it failed on another
// node: it waits for a new policy or `runtimeclassd fleet clear`.
type HeldError struct {
	Policy, Node, Reason string
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("failed on %s (%s); not applied here until the policy changes or `runtimeclassd fleet clear %s` runs", e.Node, e.Reason, shortHash(e.Policy))
}

func shortHash(h string) string { return h[:min(len(h), 12)] }

// Reconciler runs one reconcile at a time: plan, write, restart, verify,
// and roll back when containerd does not come back healthy.
//
// Every step that changes the node is recorded in the state file before it
// is taken (Pending), so that a crash anywhere leaves either nothing to do or
// a record that Recover finishes: config.toml is always exactly the old or
// the new bytes, and containerd is never left on a config that was not
// verified.
type Reconciler struct {
	Applier   *Applier
	Restarter Restarter // nil: write only, never restart
	Verifier  Verifier
	// Smoker runs the sandbox smoke tests; nil offers a handler once
	// containerd serves it.
	Smoker  Smoker
	Log     *slog.Logger
	Metrics *Metrics // may be nil
	// Now and Sleep are the clock; nil means the real one.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
	// Splay returns a random delay in [0, max); nil means math/rand.
	Splay func(max time.Duration) time.Duration
	// Busy, if set, is told what the reconcile is doing and until when it
	// may take (the watchdog uses it).
	Busy func(step string, until time.Time)
	// Fleet, if set, is asked for a restart slot before config.toml is
	// written for a restart, and told of rollbacks; a policy that failed on
	// another node is held.
	Fleet Fleet
	// OnAPIUnreachable is what to do when the fleet's failure record can't
	// be read: "wait" (retry later; the default) or "proceed".
	OnAPIUnreachable string
	// NodeLabels, if set, is given the handlers offered after each
	// reconcile, as the NFD feature file is.
	NodeLabels NodeLabels

	// release gives back the restart slot held, if any: from the restart
	// until the handlers are verified and smoke-tested.
	release func()

	lastRestart time.Time
	// LastWritten is the hash of the config this reconciler last wrote, so
	// that the watcher can ignore its own writes.
	LastWritten string
}

// rollbackGap is the least time between a failed restart and the rollback
// restart: with it, a reconcile causes at most two starts in a few seconds,
// well under systemd's default limit of five in ten.
const rollbackGap = time.Second

// Report is the outcome of one reconcile.
type Report struct {
	Outcome string
	Err     error
	// Restarted is whether containerd was restarted (the rollback's restart
	// included).
	Restarted bool
	Plan      *Plan
	// Policy is the policy the reconcile read, nil if it could not be read.
	Policy *policy.Policy
	Backup string
	// Offered is what the node offers after the reconcile: handlers with a
	// managed block in config.toml that the running containerd serves and
	// that passed their smoke test. Nil when it was not computed (the
	// labels are then left as they were).
	Offered map[string]bool
	// Offers say why each policy handler is offered or not.
	Offers map[string]Offer
	// Replan asks for another reconcile at once: someone else changed
	// config.toml while this one ran.
	Replan bool
	// unwritten is a plan not carried out (a held policy): what it found
	// of other tools' definitions (conflicts) still holds for the offers.
	unwritten *Plan
}

// Status is a one-line summary for sd_notify STATUS= and logs.
func (r *Report) Status() string {
	switch r.Outcome {
	case OutcomeApplied, OutcomeUnchanged:
		var offered, not []string
		if r.Policy != nil {
			for _, h := range r.Policy.Handlers {
				if r.Offered[h.Name] {
					offered = append(offered, h.Name)
				} else {
					not = append(not, h.Name)
				}
			}
		}
		s := fmt.Sprintf("%s; offering %d handlers %v", r.Outcome, len(offered), offered)
		for _, n := range not {
			s += fmt.Sprintf("; %s not offered", n)
		}
		return s
	}
	if r.Err != nil {
		return r.Outcome + ": " + r.Err.Error()
	}
	return r.Outcome
}

func (r *Reconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Reconciler) sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	r.busy("waiting", r.now().Add(d))
	if r.Sleep != nil {
		return r.Sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *Reconciler) busy(step string, until time.Time) {
	if r.Busy != nil {
		r.Busy(step, until)
	}
}

func hashOf(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Reconcile brings config.toml in line with the policy and, when it
// changed, restarts containerd and verifies it, rolling back on failure.
func (r *Reconciler) Reconcile(ctx context.Context) *Report {
	return r.ReconcileWith(ctx, PlanOptions{})
}

// ReconcileWith is Reconcile with plan options (a revert, for one). The
// state file and the labels are written under the same lock as the config,
// so that a concurrent apply cannot interleave with them.
func (r *Reconciler) ReconcileWith(ctx context.Context, opts PlanOptions) *Report {
	start := r.now()
	unlock, err := Lock(ctx, r.Applier.Cfg.StateDir)
	if err != nil {
		rep := &Report{Outcome: OutcomeError, Err: err}
		r.observe(rep, start)
		return rep
	}
	defer unlock()
	rep := r.reconcile(ctx, opts)
	command := opts.Command
	if command == "" {
		command = "run"
	}
	if rep.Policy != nil && ctx.Err() == nil {
		rep.Offers = r.offers(ctx, rep.Policy)
		withoutConflicts(rep.Offers, cmp.Or(rep.Plan, rep.unwritten))
		rep.Offered = map[string]bool{}
		for name, o := range rep.Offers {
			rep.Offered[name] = o.Offered
		}
	}
	st := StateOf(command, rep.Plan, rep.Outcome, rep.Backup, r.now())
	st.Handlers = handlerStates(rep.Policy, rep.Plan, rep.Offers)
	if rep.Err != nil {
		st.Reason = rep.Err.Error()
	}
	if rep.Policy != nil && !opts.Revert {
		st.AppliedPolicy = rep.Policy.Hash()
	}
	if opts.Revert {
		st.Hold = &Hold{At: r.now().UTC(), Policy: r.Applier.PolicyHash()}
		if rep.Outcome == OutcomeApplied || rep.Outcome == OutcomeUnchanged {
			rep.Offered = map[string]bool{} // no policy handler is offered after a revert
		}
	}
	r.saveState(st)
	if rep.Offered != nil {
		r.writeLabels(rep.Policy, rep.Offered)
	}
	r.releaseSlot()
	r.observe(rep, start)
	return rep
}

// releaseSlot gives the fleet's restart slot back, if one is held.
func (r *Reconciler) releaseSlot() {
	if r.release == nil {
		return
	}
	r.release()
	r.release = nil
	r.Log.Info("restart slot released")
	if r.Metrics != nil {
		r.Metrics.slotHeld.Set(0)
	}
}

// runsAlready reports whether this node's last successful apply carried
// out the policy pol, with no revert since: a write for it repairs drift
// (a removed or edited block), it rolls out nothing new, so the fleet's
// failure record doesn't hold it back.
func (r *Reconciler) runsAlready(pol string) bool {
	st, _ := LoadState(r.Applier.Cfg.StateDir)
	return st != nil && st.AppliedPolicy == pol
}

// fleetGate asks the fleet whether this node may go on writing a policy:
// not if the policy failed on another node (a Held report), and, before a
// restart, not without a restart slot. Having waited for a slot, it plans
// again (the inputs may have changed meanwhile) and looks at the record
// again (the policy may have failed elsewhere meanwhile): then it returns
// that reconcile's report. A nil report means go on.
func (r *Reconciler) fleetGate(ctx context.Context, plan *Plan, restart bool, opts PlanOptions) *Report {
	pol := plan.Policy.Hash()
	var node, reason string
	var held bool
	var err error
	if !r.runsAlready(pol) {
		node, reason, held, err = r.Fleet.Held(ctx, pol)
	}
	var unreachable interface{ Unreachable() bool }
	switch {
	case err != nil && r.OnAPIUnreachable == "proceed" && errors.As(err, &unreachable) && unreachable.Unreachable():
		r.Log.Warn("the fleet's failure record can't be read; going on (on_api_unreachable = \"proceed\")", "err", err)
	case err != nil && errors.As(err, &unreachable) && unreachable.Unreachable():
		return &Report{Plan: plan, Policy: plan.Policy, Outcome: OutcomeError,
			Err: fmt.Errorf("nothing written: the fleet's failure record can't be read (on_api_unreachable = \"wait\"): %w", err)}
	case err != nil:
		// An answer, or this node's own misconfiguration: never a reason
		// to go on, whatever on_api_unreachable says.
		return &Report{Plan: plan, Policy: plan.Policy, Outcome: OutcomeError,
			Err: fmt.Errorf("nothing written: the fleet's failure record can't be read: %w", err)}
	case held:
		return &Report{Policy: plan.Policy, Outcome: OutcomeHeld, Err: &HeldError{Policy: pol, Node: node, Reason: reason}, unwritten: plan}
	}
	if !restart || r.release != nil {
		return nil
	}
	r.busy("waiting for a restart slot", r.now().Add(100*365*24*time.Hour))
	r.Log.Info("asking the fleet for a restart slot", "policy", shortHash(pol))
	if err := r.takeSlot(ctx); err != nil {
		return &Report{Plan: plan, Policy: plan.Policy, Outcome: OutcomeError, Err: fmt.Errorf("nothing written: waiting for a restart slot: %w", err)}
	}
	r.Log.Info("restart slot taken; planning again")
	crashpoint.Hit("fleet: slot taken")
	return r.reconcile(ctx, opts)
}

func (r *Reconciler) observe(rep *Report, start time.Time) {
	if r.Metrics != nil {
		r.Metrics.observe(rep, r.now().Sub(start))
	}
}

func (r *Reconciler) reconcile(ctx context.Context, opts PlanOptions) *Report {
	cfg := r.Applier.Cfg
	r.busy("planning", r.now().Add(time.Minute))
	prev, _ := LoadState(cfg.StateDir)
	plan, err := r.Applier.Plan(ctx, opts)
	if errors.Is(err, policy.ErrNoDir) {
		return &Report{Outcome: OutcomeUnchanged, Err: err}
	}
	if err != nil {
		return &Report{Outcome: Outcome(err), Err: err}
	}
	rep := &Report{Plan: plan, Policy: plan.Policy, Outcome: OutcomeUnchanged}
	if h := holdOf(prev); h != nil && !opts.Revert && opts.Command != "apply" {
		if plan.Policy.Hash() == h.Policy {
			rep.Plan, rep.Outcome = nil, OutcomeHeld
			rep.Err = fmt.Errorf("reverted by `runtimeclassd revert` at %s; not re-applying until the policy changes or `runtimeclassd apply` runs", h.At.Local().Format(time.DateTime))
			return rep
		}
		r.Log.Info("the policy changed since `runtimeclassd revert`; applying it again")
		r.mutateState(func(s *State) { s.Hold = nil })
	}
	if !plan.Changed() {
		return rep
	}
	candidate := plan.candidateHash(cfg)
	if prev != nil && slices.Contains(prev.BadCandidates, candidate) {
		rep.Outcome = OutcomeInvalid
		rep.Err = errors.New("this config was rolled back before (containerd did not come back healthy with it); waiting for the policy, config.toml or host checks to change")
		return rep
	}
	changes := plan.Result
	if plan.DropIn != nil && plan.DropIn.Result != nil {
		changes = plan.DropIn.Result
	}
	if changes.Repaired != nil || len(changes.Added) > 0 && prev != nil && anyWasOffered(prev, changes.Added) {
		if r.Metrics != nil {
			r.Metrics.drift.Inc()
		}
		r.Log.Warn("a managed block was edited or removed by someone else; repairing", "repaired", changes.Repaired, "readded", changes.Added)
	}
	// Whether a restart follows decides whether the write needs a pending
	// record; ask before writing, so that no question left unanswered can
	// leave a written config that nobody restarts.
	restart := false
	if r.Restarter != nil {
		active, err := r.Restarter.UnitActive(ctx, cfg.ContainerdUnit)
		if err != nil {
			return &Report{Plan: plan, Policy: plan.Policy, Outcome: OutcomeError, Err: fmt.Errorf("nothing written: the state of %s is unknown (with --no-restart, the config is written without asking): %w", cfg.ContainerdUnit, err)}
		}
		restart = active
		if !active {
			r.Log.Info("containerd is not running; writing the config, not starting it", "unit", cfg.ContainerdUnit)
		}
	}
	if r.Fleet != nil && plan.Policy != nil {
		if rep := r.fleetGate(ctx, plan, restart, opts); rep != nil {
			return rep
		}
	}
	// The live write's own guard: whatever asked for the plan, one that
	// containerd did not validate is never written.
	if plan.unvalidated {
		return &Report{Plan: plan, Policy: plan.Policy, Outcome: OutcomeError, Err: errors.New("nothing written: refusing to write a config that containerd has not validated")}
	}
	backups, err := r.Applier.Backup(plan)
	if err != nil {
		return &Report{Plan: plan, Policy: plan.Policy, Outcome: OutcomeError, Err: err}
	}
	rep.Backup = backups[cfg.ContainerdConfig]
	files := plan.files(cfg.ContainerdConfig)
	pfs := make([]PendingFile, len(files))
	for i, f := range files {
		target := ""
		if !f.remove {
			target = hashOf(f.out)
		}
		pfs[i] = PendingFile{Path: f.path, Source: hashOrAbsent(f.orig, f.exists), Target: target, Backup: backups[f.path], Existed: f.exists}
	}
	var pending *Pending
	if restart {
		pending = &Pending{Files: pfs, Handlers: offeredNames(plan), At: r.now(),
			Import: plan.Result.ImportAdded, Unimport: plan.Result.ImportRemoved}
		if plan.Policy != nil {
			pending.Policy = plan.Policy.Hash()
		}
		if err := r.savePending(pending); err != nil {
			return &Report{Plan: plan, Policy: plan.Policy, Outcome: OutcomeError, Err: fmt.Errorf("nothing written: recording the apply: %w", err)}
		}
		crashpoint.Hit("apply: intent recorded")
	}
	if err := r.writeAll(files); err != nil {
		if pending != nil {
			r.clearPendingIf(pending)
		}
		rep.Outcome, rep.Err = OutcomeError, err
		rep.Replan = errors.Is(err, ErrConfigChanged)
		return rep
	}
	r.recordImport(plan.Result.ImportAdded, plan.Result.ImportRemoved)
	r.LastWritten, _ = filesHash(cfg.managedFiles())
	r.Log.Info("config written", "mode", plan.Mode, "files", len(files), "added", changes.Added, "updated", changes.Updated,
		"removed", changes.Removed, "repaired", changes.Repaired, "backup", rep.Backup)
	rep.Outcome = OutcomeApplied
	if pending == nil {
		return rep
	}
	pending.WrittenAt = r.now()
	if err := r.savePending(pending); err != nil {
		r.Log.Warn("could not record the write time; the next start restarts containerd to be sure", "err", err)
	}
	crashpoint.Hit("apply: written recorded")
	if err := r.waitRestartBudget(ctx); err != nil {
		rep.Outcome, rep.Err = OutcomeError, fmt.Errorf("%w; finishing at the next start", err)
		return rep
	}
	return r.finish(ctx, rep, pending)
}

// writeAll writes the files of a plan in order. If one fails, the ones
// already written are put back as they were (if nobody changed them
// since), so that a failed apply leaves every file as it found it.
func (r *Reconciler) writeAll(files []planFile) error {
	for i, f := range files {
		err := writeFile(f)
		if err == nil {
			continue
		}
		for j := i - 1; j >= 0; j-- {
			w := files[j]
			undo := planFile{path: w.path, orig: w.out, exists: !w.remove, out: w.orig, remove: !w.exists}
			if uerr := writeFile(undo); uerr != nil {
				r.Log.Error("could not undo a partial write", "file", w.path, "err", uerr)
			}
		}
		return err
	}
	return nil
}

// recordImport keeps the imports entry runtimeclassd added to config.toml
// (or forgets the one it removed) in the state file.
func (r *Reconciler) recordImport(added *ctrdconfig.ImportEntry, removed bool) {
	if added == nil && !removed {
		return
	}
	r.mutateState(func(s *State) {
		if removed {
			s.Import = nil
		}
		if added != nil {
			s.Import = added
		}
	})
}

// finish restarts containerd and verifies it serves the pending apply's
// handlers, rolling back if it does not. A stop in the middle is not
// containerd's fault: the pending apply stays in the state file and
// Recover finishes it at the next start.
func (r *Reconciler) finish(ctx context.Context, rep *Report, p *Pending) *Report {
	err := r.restartAndVerify(ctx, p.Handlers)
	rep.Restarted = true
	switch {
	case err == nil:
		r.savePending(nil)
		crashpoint.Hit("apply: done")
		r.Log.Info("containerd restarted and verified", "handlers", p.Handlers)
		return rep
	case ctx.Err() != nil:
		rep.Outcome, rep.Err = OutcomeError, fmt.Errorf("interrupted before containerd was verified; finishing at the next start: %w", ctx.Err())
		return rep
	}
	return r.rollback(ctx, rep, p, err)
}

func offeredNames(p *Plan) []string {
	var names []string
	for _, o := range p.Offered {
		names = append(names, o.Name)
	}
	slices.Sort(names)
	return names
}

func anyWasOffered(prev *State, names []string) bool {
	for _, h := range prev.Handlers {
		if h.Offered && slices.Contains(names, h.Name) {
			return true
		}
	}
	return false
}

// waitRestartBudget waits until restart_min_interval has passed since the
// last restart, then a random splay of up to restart_splay.
func (r *Reconciler) waitRestartBudget(ctx context.Context) error {
	cfg := r.Applier.Cfg
	if r.lastRestart.IsZero() {
		// Another process (the daemon, or an earlier apply) may have
		// restarted containerd: the budget is the node's, not ours.
		if st, err := LoadState(cfg.StateDir); err == nil && st != nil {
			r.lastRestart = st.LastRestart
		}
	}
	if !r.lastRestart.IsZero() {
		if wait := r.lastRestart.Add(time.Duration(cfg.RestartMinInterval)).Sub(r.now()); wait > 0 {
			r.Log.Info("waiting for the restart budget", "wait", wait.Round(time.Millisecond))
			if err := r.sleep(ctx, wait); err != nil {
				return fmt.Errorf("waiting to restart containerd: %w", err)
			}
		}
	}
	if max := time.Duration(cfg.RestartSplay); max > 0 {
		d := time.Duration(rand.Int64N(int64(max)))
		if r.Splay != nil {
			d = r.Splay(max)
		}
		r.Log.Info("splay before restarting containerd", "delay", d.Round(time.Millisecond))
		if err := r.sleep(ctx, d); err != nil {
			return fmt.Errorf("waiting to restart containerd: %w", err)
		}
	}
	return nil
}

// slotReady makes sure, immediately before a restart, that the restart
// slot held is still this node's: after an API outage longer than the
// lease, or renewals throttled away, another node may have taken it, and
// restarting then would make K+1. It waits while the slot can't be
// confirmed; a slot lost is given up and another one waited for. A
// restart with a fleet and no slot held (the rollback Recover finishes
// after a crash) takes one first: no restart of containerd goes
// uncounted. Without a fleet there is nothing to check.
func (r *Reconciler) slotReady(ctx context.Context) error {
	if r.Fleet == nil {
		return nil
	}
	if r.release == nil {
		r.busy("waiting for a restart slot", r.now().Add(100*365*24*time.Hour))
		r.Log.Info("asking the fleet for a restart slot")
		if err := r.takeSlot(ctx); err != nil {
			return fmt.Errorf("waiting for a restart slot: %w", err)
		}
	}
	for {
		r.busy("confirming the restart slot", r.now().Add(100*365*24*time.Hour))
		err := r.Fleet.Ready(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("confirming the restart slot before restarting containerd: %w", err)
		}
		r.Log.Warn("the restart slot was lost before the restart; not restarting on it, waiting for another", "err", err)
		r.releaseSlot()
		r.busy("waiting for a restart slot", r.now().Add(100*365*24*time.Hour))
		if err := r.takeSlot(ctx); err != nil {
			return fmt.Errorf("the restart slot was lost before the restart, and waiting for another: %w", err)
		}
	}
}

// takeSlot waits for a restart slot and holds it (r.release gives it
// back), or returns why not (ctx ended).
func (r *Reconciler) takeSlot(ctx context.Context) error {
	release, err := r.Fleet.Acquire(ctx)
	if err != nil {
		return err
	}
	r.release = release
	if r.Metrics != nil {
		r.Metrics.slotHeld.Set(1)
	}
	return nil
}

func (r *Reconciler) restartAndVerify(ctx context.Context, handlers []string) error {
	cfg := r.Applier.Cfg
	r.lastRestart = r.now()
	r.mutateState(func(s *State) { s.LastRestart = r.lastRestart })
	crashpoint.Hit("restart: requested")
	if err := r.slotReady(ctx); err != nil {
		return err
	}
	r.busy("restarting containerd", r.now().Add(2*time.Minute))
	err := r.Restarter.RestartUnit(ctx, cfg.ContainerdUnit)
	if r.Metrics != nil {
		r.Metrics.restart(err)
	}
	if err != nil {
		return err
	}
	crashpoint.Hit("restart: done")
	vctx, cancel := context.WithTimeout(ctx, time.Duration(cfg.VerifyTimeout))
	defer cancel()
	r.busy("verifying containerd", r.now().Add(time.Duration(cfg.VerifyTimeout)+time.Second))
	err = r.Verifier.Verify(vctx, handlers)
	if err == nil {
		crashpoint.Hit("verify: ok")
	}
	return err
}

// rollback puts the files that containerd last ran well back, restarts
// containerd and verifies it, and remembers the candidate as bad. The intent
// is recorded first, so that a stop anywhere in it is finished at the next
// start. If someone else changed a file while containerd was being
// verified, their bytes stay: containerd is restarted onto them and a new
// plan is asked for.
func (r *Reconciler) rollback(ctx context.Context, rep *Report, p *Pending, cause error) *Report {
	r.Log.Error("containerd did not come back healthy with the new config; rolling back", "err", cause)
	candidate, _ := filesHash(r.Applier.Cfg.managedFiles())
	// The rollback undoes the writes in the reverse order: what the apply
	// wrote is its source, what was there before its target.
	rb := &Pending{Rollback: true, At: r.now(), Import: p.Import, Unimport: p.Unimport, Policy: p.Policy}
	for i := len(p.Files) - 1; i >= 0; i-- {
		f := p.Files[i]
		rb.Files = append(rb.Files, PendingFile{Path: f.Path, Source: f.Target, Target: f.Source, Backup: f.Backup, Existed: f.Existed})
	}
	r.mutateState(func(s *State) {
		s.Pending = rb
		s.BadCandidates = addBad(s.BadCandidates, candidate)
	})
	crashpoint.Hit("rollback: intent recorded")
	if r.Metrics != nil {
		r.Metrics.rollbacks.Inc()
	}
	rep = r.finishRollback(ctx, rep, rb, cause)
	r.recordFailure(ctx, rb.Policy, cause)
	return rep
}

// recordFailure tells the fleet that a policy was rolled back here, so that
// other nodes hold it. The node is already back on its old config; an API
// server that can't be reached only costs the warning.
func (r *Reconciler) recordFailure(ctx context.Context, pol string, cause error) {
	if r.Fleet == nil || pol == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	if err := r.Fleet.Failed(ctx, pol, cause.Error()); err != nil {
		r.Log.Warn("could not record the rolled-back policy for the fleet; other nodes may still try it", "policy", shortHash(pol), "err", err)
		return
	}
	r.Log.Warn("recorded the policy as failed for the fleet: other nodes hold it", "policy", shortHash(pol))
}

// finishRollback restores each file that still holds the bad candidate,
// then makes sure containerd runs what the files hold and is healthy:
// restarted onto them, unless it already started after the restore.
func (r *Reconciler) finishRollback(ctx context.Context, rep *Report, rb *Pending, cause error) *Report {
	cfg := r.Applier.Cfg
	for i := range rb.Files {
		f := &rb.Files[i]
		cur, exists, err := readConfig(f.Path)
		if err != nil {
			return r.rollbackFailed(rep, cause, err)
		}
		switch hashOrAbsent(cur, exists) {
		case f.Target:
			// Restored already: a crash came after the restore.
		case f.Source:
			err := r.restore(f, cur)
			switch {
			case errors.Is(err, atomicfile.ErrChanged):
				rep.Replan = true
				r.Log.Warn("a file was changed by someone else while containerd was verified; keeping their bytes and restarting containerd onto them", "path", f.Path)
			case err != nil:
				return r.rollbackFailed(rep, cause, fmt.Errorf("restoring %s: %w", f.Path, err))
			default:
				crashpoint.Hit("rollback: restored")
			}
			rb.WrittenAt = time.Time{}
		default:
			rep.Replan = true
			rb.WrittenAt = time.Time{}
			r.Log.Warn("a file was changed by someone else during the apply; keeping their bytes and restarting containerd onto them", "path", f.Path)
		}
		now, exists, err := readConfig(f.Path)
		if err != nil {
			return r.rollbackFailed(rep, cause, err)
		}
		if h := hashOrAbsent(now, exists); h != f.Target {
			f.Target, rb.WrittenAt = h, time.Time{}
		}
	}
	if rb.WrittenAt.IsZero() {
		rb.WrittenAt = r.now()
		r.savePending(rb)
		crashpoint.Hit("rollback: written recorded")
	}
	if rb.Import != nil || rb.Unimport {
		// The apply's imports edit is undone with its file.
		st, _ := LoadState(cfg.StateDir)
		if st != nil && rb.Import != nil && st.Import != nil && *st.Import == *rb.Import {
			r.recordImport(nil, true)
		}
	}
	r.LastWritten, _ = filesHash(cfg.managedFiles())
	if r.restartedSince(ctx, rb) {
		// A crash came after the rollback's restart: only verify.
		vctx, cancel := context.WithTimeout(ctx, time.Duration(cfg.VerifyTimeout))
		err := r.Verifier.Verify(vctx, nil)
		cancel()
		if err == nil {
			r.savePending(nil)
			rep.Outcome, rep.Err = OutcomeRolledBack, fmt.Errorf("rolled back: %w", cause)
			return rep
		}
	}
	if hit, err := r.Restarter.StartLimitHit(ctx, cfg.ContainerdUnit); err == nil && hit {
		r.Log.Warn("containerd hit its start limit; resetting it before the rollback restart", "unit", cfg.ContainerdUnit)
		if err := r.Restarter.ResetFailed(ctx, cfg.ContainerdUnit); err != nil {
			r.Log.Error("resetting the start limit failed", "err", err)
		}
	}
	if r.lastRestart.IsZero() {
		if st, err := LoadState(cfg.StateDir); err == nil && st != nil {
			r.lastRestart = st.LastRestart
		}
	}
	if err := r.sleep(ctx, r.lastRestart.Add(rollbackGap).Sub(r.now())); err != nil {
		rep.Outcome, rep.Err = OutcomeError, fmt.Errorf("%v; interrupted during the rollback, finishing it at the next start: %w", cause, err)
		return rep
	}
	rep.Restarted = true
	if err := r.restartAndVerify(ctx, nil); err != nil {
		if ctx.Err() != nil {
			rep.Outcome, rep.Err = OutcomeError, fmt.Errorf("%v; interrupted during the rollback, finishing it at the next start: %w", cause, ctx.Err())
			return rep
		}
		r.savePending(nil)
		return r.rollbackFailed(rep, cause, fmt.Errorf("containerd is not healthy after the rollback either: %w", err))
	}
	r.savePending(nil)
	crashpoint.Hit("rollback: done")
	rep.Outcome, rep.Err = OutcomeRolledBack, fmt.Errorf("rolled back: %w", cause)
	r.Log.Warn("rolled back; containerd is healthy with the previous config", "cause", cause)
	return rep
}

func (r *Reconciler) rollbackFailed(rep *Report, cause, err error) *Report {
	rep.Outcome, rep.Err = OutcomeError, fmt.Errorf("%v; and the rollback failed: %w", cause, err)
	r.Log.Error("ROLLBACK FAILED: the node needs attention", "err", rep.Err)
	return rep
}

// restore puts a file's backup back (or removes the file, if there was
// none) if it still holds cur, the bad candidate; anything else written
// meanwhile is kept (ErrChanged).
func (r *Reconciler) restore(f *PendingFile, cur []byte) error {
	if !f.Existed {
		return atomicfile.RemoveIf(f.Path, cur)
	}
	b, err := os.ReadFile(f.Backup)
	if err != nil {
		return err
	}
	if hashOf(b) != f.Target {
		return fmt.Errorf("backup %s does not hold the file it was made from", f.Backup)
	}
	return atomicfile.ReplaceIf(f.Path, b, 0o644, cur)
}

// readConfig reads a file; a missing file is (nil, false, nil).
func readConfig(path string) ([]byte, bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return b, true, nil
}

// hashOrAbsent is the hash of a file's bytes, or "" for no file.
func hashOrAbsent(b []byte, exists bool) string {
	if !exists {
		return ""
	}
	return hashOf(b)
}

// Recover finishes what a crash or a stop interrupted, from the state
// file's pending record:
//   - an apply whose writes never happened (or happened only in part) is
//     forgotten, and the reconcile that follows plans it again;
//   - an apply that was written is done only once containerd has started
//     after the write and serves its handlers: otherwise containerd is
//     restarted and verified, and rolled back on failure;
//   - a rollback is finished: the backups are restored where they were not,
//     and containerd is restarted onto them and verified;
//   - if someone else has written a file since, their bytes are kept; a
//     containerd that may be running an unverified config is restarted
//     onto them.
func (r *Reconciler) Recover(ctx context.Context) *Report {
	cfg := r.Applier.Cfg
	unlock, err := Lock(ctx, cfg.StateDir)
	if err != nil {
		return &Report{Outcome: OutcomeError, Err: err}
	}
	defer unlock()
	defer r.releaseLeftovers(ctx)
	r.removeTemps()
	if r.Smoker != nil {
		if n, err := r.Smoker.RemoveLeftovers(ctx); err != nil {
			r.Log.Warn("could not look for smoke-test sandboxes left by an earlier run", "err", err)
		} else if n > 0 {
			r.Log.Info("removed smoke-test sandboxes left by an earlier run", "count", n)
		}
	}
	st, err := LoadState(cfg.StateDir)
	if err != nil || st == nil || st.Pending == nil {
		return nil
	}
	p := st.Pending
	if r.Restarter == nil {
		r.Log.Warn("an interrupted apply needs a containerd restart, and this process does not restart containerd")
		return nil
	}
	rep := &Report{Outcome: OutcomeApplied}
	if p.Rollback {
		r.Log.Warn("finishing a rollback that was interrupted")
		if r.Metrics != nil {
			r.Metrics.rollbacks.Inc()
		}
		rep.Outcome = OutcomeRolledBack
		cause := errors.New("an earlier apply failed verification")
		rep = r.finishRollback(ctx, rep, p, cause)
		r.recordFailure(ctx, p.Policy, cause)
		return rep
	}
	atTarget, atSource, other := 0, 0, 0
	for _, f := range p.Files {
		cur, exists, err := readConfig(f.Path)
		if err != nil {
			return &Report{Outcome: OutcomeError, Err: err}
		}
		switch hashOrAbsent(cur, exists) {
		case f.Target:
			atTarget++
		case f.Source:
			atSource++
		default:
			other++
		}
	}
	switch {
	case other > 0:
		r.Log.Warn("an interrupted apply was superseded: a file it wrote was changed by someone else since")
		return r.recoverSuperseded(ctx, rep, p)
	case atTarget < len(p.Files):
		r.Log.Info("an interrupted apply never finished writing; planning it again", "written", atTarget, "files", len(p.Files))
		r.savePending(nil)
		return nil
	}
	r.recordImport(p.Import, p.Unimport)
	r.LastWritten, _ = filesHash(cfg.managedFiles())
	if r.restartedSince(ctx, p) {
		r.Log.Warn("finishing an apply that was interrupted: containerd restarted after the write; verifying it")
		vctx, cancel := context.WithTimeout(ctx, time.Duration(cfg.VerifyTimeout))
		err := r.Verifier.Verify(vctx, p.Handlers)
		cancel()
		if err == nil {
			r.savePending(nil)
			return rep
		}
		if ctx.Err() != nil {
			return &Report{Outcome: OutcomeError, Err: ctx.Err()}
		}
		return r.rollback(ctx, rep, p, err)
	}
	r.Log.Warn("finishing an apply that was interrupted: containerd has not restarted since the write")
	if r.Fleet != nil && r.release == nil {
		// Held until the first reconcile has smoke-tested the handlers.
		r.Log.Info("asking the fleet for a restart slot")
		if err := r.takeSlot(ctx); err != nil {
			return &Report{Outcome: OutcomeError, Err: fmt.Errorf("waiting for a restart slot to finish an interrupted apply: %w", err)}
		}
	}
	if err := r.waitRestartBudget(ctx); err != nil {
		return &Report{Outcome: OutcomeError, Err: err}
	}
	return r.finish(ctx, rep, p)
}

// leftoverReleaser is a Fleet that can free the restart slots an earlier
// run of this node's daemon held and never released (kube.Fleet is one).
type leftoverReleaser interface {
	ReleaseLeftovers(ctx context.Context) (int, error)
}

// releaseLeftovers frees, once Recover is done, the fleet's restart slots
// that a killed run of this daemon held, unless Recover took one itself
// (it then holds it until the first reconcile has smoke-tested the
// handlers). Without it, a daemon killed mid-apply and restarted by
// systemd finishes in a second while the other nodes wait out its slot's
// lease (fleet_lease_duration, 30 s by default), which the e2e measured.
// Bounded, so that an unreachable API server delays the start by a few
// seconds at most; the slot then expires by itself.
func (r *Reconciler) releaseLeftovers(ctx context.Context) {
	lr, ok := r.Fleet.(leftoverReleaser)
	if !ok || r.release != nil || ctx.Err() != nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := lr.ReleaseLeftovers(ctx); err != nil {
		r.Log.Warn("could not free a restart slot an earlier run of this daemon held; it expires by itself", "err", err)
	}
}

// removeTemps deletes what writes killed before their rename left behind:
// next to the managed files, the state file, the labels and in the
// backups. Every writer of these holds the state lock, as the caller does.
func (r *Reconciler) removeTemps() {
	cfg := r.Applier.Cfg
	var removed []string
	for _, p := range append(cfg.managedFiles(), StateFile(cfg.StateDir), cfg.NFDFeatureFile) {
		if p == "" {
			continue
		}
		got, err := atomicfile.RemoveTemps(p)
		if err != nil {
			r.Log.Warn("could not remove temporary files of an interrupted write", "file", p, "err", err)
		}
		removed = append(removed, got...)
	}
	dir := filepath.Join(cfg.StateDir, "backups")
	var entries []os.DirEntry
	if _, err := os.Lstat(dir); err == nil {
		// Delete nothing in a backups directory root does not control
		// alone (a symlink to elsewhere, a user's): not runtimeclassd's.
		if _, err := atomicfile.TrustedDir(dir); err != nil {
			r.Log.Warn("could not remove temporary files of an interrupted write", "dir", dir, "err", err)
		} else {
			entries, _ = os.ReadDir(dir)
		}
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") && e.Type().IsRegular() {
			if err := os.Remove(filepath.Join(dir, e.Name())); err == nil {
				removed = append(removed, filepath.Join(dir, e.Name()))
			}
		}
	}
	if len(removed) > 0 {
		r.Log.Info("removed temporary files of an interrupted write", "files", removed)
	}
}

// recoverSuperseded handles a pending apply whose files were replaced by
// someone else. If containerd started after our write, it may be running
// our unverified candidate: it is verified, and restarted onto the files
// on disk if it is not healthy.
func (r *Reconciler) recoverSuperseded(ctx context.Context, rep *Report, p *Pending) *Report {
	cfg := r.Applier.Cfg
	defer r.savePending(nil)
	if !r.restartedSince(ctx, p) {
		return nil
	}
	vctx, cancel := context.WithTimeout(ctx, time.Duration(cfg.VerifyTimeout))
	err := r.Verifier.Verify(vctx, nil)
	cancel()
	if err == nil {
		return nil
	}
	r.Log.Warn("containerd is not healthy; restarting it onto the config on disk", "err", err)
	rep.Restarted = true
	if err := r.restartAndVerify(ctx, nil); err != nil {
		rep.Outcome, rep.Err = OutcomeError, fmt.Errorf("containerd is not healthy on the config someone else wrote: %w", err)
		return rep
	}
	rep.Outcome = OutcomeUnchanged
	return rep
}

// restartedSince reports whether containerd's main process started after
// the pending write. Unknown means no: restarting once more is safe,
// skipping a needed restart is not.
func (r *Reconciler) restartedSince(ctx context.Context, p *Pending) bool {
	if p.WrittenAt.IsZero() {
		return false
	}
	started, err := r.Restarter.StartedAt(ctx, r.Applier.Cfg.ContainerdUnit)
	if err != nil {
		r.Log.Warn("could not tell when containerd started; restarting it to be sure", "err", err)
		return false
	}
	return started.After(p.WrittenAt)
}

// Pending is a step that changes the node and has not finished: recorded
// before it is taken, cleared when containerd is verified on its result.
type Pending struct {
	// Files are the files the step writes, in the order of writing.
	Files []PendingFile `json:"files"`
	// Handlers are the handlers containerd must serve once they are
	// written.
	Handlers []string `json:"handlers,omitempty"`
	// Rollback is true when the step restores what an apply replaced.
	Rollback bool `json:"rollback,omitempty"`
	// Import is the imports entry the apply adds to config.toml; Unimport
	// is true when it removes runtimeclassd's entry.
	Import   *ctrdconfig.ImportEntry `json:"import,omitempty"`
	Unimport bool                    `json:"unimport,omitempty"`
	// At is when the step was recorded, before its writes; WrittenAt when
	// they were seen done (zero if a crash came first).
	At        time.Time `json:"at"`
	WrittenAt time.Time `json:"written_at,omitzero"`
	// Policy is the hash of the policy the apply wrote, recorded for the
	// fleet if it is rolled back.
	Policy string `json:"policy,omitempty"`
}

// PendingFile is one file of a pending step: the hash it must end up with
// ("" for no file), the one it had, and its backup.
type PendingFile struct {
	Path    string `json:"path"`
	Source  string `json:"source"`
	Target  string `json:"target"`
	Backup  string `json:"backup,omitempty"`
	Existed bool   `json:"existed"`
}

// maxBad bounds the remembered bad candidates.
const maxBad = 20

func addBad(list []string, h string) []string {
	if !slices.Contains(list, h) {
		list = append(list, h)
	}
	if n := len(list); n > maxBad {
		list = list[n-maxBad:]
	}
	return list
}

func (r *Reconciler) mutateState(f func(*State)) error {
	st, err := LoadState(r.Applier.Cfg.StateDir)
	if err != nil || st == nil {
		st = &State{}
	}
	f(st)
	if err := SaveState(r.Applier.Cfg.StateDir, st); err != nil {
		r.Log.Warn("could not save state", "err", err)
		return err
	}
	return nil
}

func (r *Reconciler) savePending(p *Pending) error {
	return r.mutateState(func(s *State) { s.Pending = p })
}

// clearPendingIf drops p from the state file if it is still the pending
// record (a write that failed before it happened).
func (r *Reconciler) clearPendingIf(p *Pending) {
	r.mutateState(func(s *State) {
		if s.Pending != nil && s.Pending.At.Equal(p.At) && !s.Pending.Rollback {
			s.Pending = nil
		}
	})
}

func (r *Reconciler) saveState(st *State) {
	if err := RecordOutcome(r.Applier.Cfg.StateDir, st); err != nil {
		r.Log.Warn("could not save state", "err", err)
	}
}

func (r *Reconciler) writeLabels(p *policy.Policy, offered map[string]bool) {
	if r.NodeLabels != nil {
		handlers := map[string]bool{}
		if p != nil {
			for _, h := range p.Handlers {
				handlers[h.Name] = offered[h.Name]
			}
		}
		r.NodeLabels.SetHandlers(handlers)
	}
	if _, err := WriteLabels(r.Applier.Cfg.NFDFeatureFile, p, offered, time.Now(), LabelValidity(time.Duration(r.Applier.Cfg.ResyncInterval))); err != nil {
		r.Log.Warn("could not write node labels", "path", r.Applier.Cfg.NFDFeatureFile, "err", err)
	}
}

// ConfigIsOwnWrite reports whether the managed files (config.toml and the
// drop-in) hold exactly what this reconciler last wrote, so that the events
// its own writes caused can be ignored.
func (r *Reconciler) ConfigIsOwnWrite() bool {
	if r.LastWritten == "" {
		return false
	}
	h, err := filesHash(r.Applier.Cfg.managedFiles())
	return err == nil && h == r.LastWritten
}
