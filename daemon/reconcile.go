package daemon

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"time"

	"github.com/runtimeclassd/runtimeclassd/atomicfile"
	"github.com/runtimeclassd/runtimeclassd/policy"
)

// Restarter restarts containerd's unit. The systemd package adapts
// go-systemd to it.
type Restarter interface {
	RestartUnit(ctx context.Context, unit string) error
	UnitActive(ctx context.Context, unit string) (bool, error)
	StartLimitHit(ctx context.Context, unit string) (bool, error)
	ResetFailed(ctx context.Context, unit string) error
}

// Verifier checks that containerd came back serving the handlers.
type Verifier interface {
	Verify(ctx context.Context, handlers []string) error
}

// Reconciler runs one reconcile at a time: plan, write, restart, verify,
// and roll back when containerd does not come back healthy.
type Reconciler struct {
	Applier   *Applier
	Restarter Restarter // nil: write only, never restart
	Verifier  Verifier
	Log       *slog.Logger
	Metrics   *Metrics // may be nil
	// Now and Sleep are the clock; nil means the real one.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
	// Splay returns a random delay in [0, max); nil means math/rand.
	Splay func(max time.Duration) time.Duration

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
	Backup    string
}

// Status is a one-line summary for sd_notify STATUS= and logs.
func (r *Report) Status() string {
	switch r.Outcome {
	case OutcomeApplied, OutcomeUnchanged:
		var offered []string
		if r.Plan != nil {
			for _, o := range r.Plan.Offered {
				offered = append(offered, o.Name)
			}
		}
		slices.Sort(offered)
		s := fmt.Sprintf("%s; offering %d handlers %v", r.Outcome, len(offered), offered)
		if r.Plan != nil {
			for _, h := range r.Plan.Readiness {
				if !h.Ready {
					s += fmt.Sprintf("; %s withheld", h.Name)
				}
			}
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

func hashOf(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Reconcile brings config.toml in line with the policy and, when it
// changed, restarts containerd and verifies it, rolling back on failure.
func (r *Reconciler) Reconcile(ctx context.Context) *Report {
	return r.ReconcileWith(ctx, PlanOptions{})
}

// ReconcileWith is Reconcile with plan options (a revert, for one).
func (r *Reconciler) ReconcileWith(ctx context.Context, opts PlanOptions) *Report {
	start := r.now()
	rep := r.reconcile(ctx, opts)
	if r.Metrics != nil {
		r.Metrics.observe(rep, r.now().Sub(start))
	}
	command := opts.Command
	if command == "" {
		command = "run"
	}
	st := StateOf(command, rep.Plan, rep.Outcome, rep.Backup, r.now())
	if rep.Err != nil {
		st.Reason = rep.Err.Error()
	}
	r.saveState(st)
	if rep.Plan != nil && rep.Outcome != OutcomeRolledBack {
		r.writeLabels(rep.Plan)
	}
	return rep
}

func (r *Reconciler) reconcile(ctx context.Context, opts PlanOptions) *Report {
	cfg := r.Applier.Cfg
	unlock, err := Lock(ctx, cfg.StateDir)
	if err != nil {
		return &Report{Outcome: OutcomeError, Err: err}
	}
	defer unlock()

	plan, err := r.Applier.Plan(ctx, opts)
	if errors.Is(err, policy.ErrNoDir) {
		return &Report{Outcome: OutcomeUnchanged, Err: err}
	}
	if err != nil {
		return &Report{Outcome: Outcome(err), Err: err}
	}
	rep := &Report{Plan: plan, Outcome: OutcomeUnchanged}
	if !plan.Result.Changed {
		return rep
	}
	candidate := hashOf(plan.Result.Out)
	prev, _ := LoadState(cfg.StateDir)
	if prev != nil && slices.Contains(prev.BadCandidates, candidate) {
		rep.Outcome = OutcomeInvalid
		rep.Err = errors.New("this config was rolled back before (containerd did not come back healthy with it); waiting for the policy, config.toml or host checks to change")
		return rep
	}
	if plan.Result.Repaired != nil || len(plan.Result.Added) > 0 && prev != nil && anyWasOffered(prev, plan.Result.Added) {
		if r.Metrics != nil {
			r.Metrics.drift.Inc()
		}
		r.Log.Warn("config.toml drifted: a managed block was edited or removed by someone else; repairing", "repaired", plan.Result.Repaired, "readded", plan.Result.Added)
	}
	backup, err := r.Applier.Commit(plan)
	if err != nil {
		return &Report{Plan: plan, Outcome: OutcomeError, Err: err}
	}
	rep.Backup = backup
	r.LastWritten = hashOf(plan.Result.Out)
	r.Log.Info("config written", "path", cfg.ContainerdConfig, "added", plan.Result.Added, "updated", plan.Result.Updated,
		"removed", plan.Result.Removed, "repaired", plan.Result.Repaired, "backup", backup)
	rep.Outcome = OutcomeApplied
	if r.Restarter == nil {
		return rep
	}
	active, err := r.Restarter.UnitActive(ctx, cfg.ContainerdUnit)
	if err != nil {
		rep.Outcome, rep.Err = OutcomeError, fmt.Errorf("config written, but the state of %s is unknown: %w", cfg.ContainerdUnit, err)
		return rep
	}
	if !active {
		r.Log.Info("containerd is not running; config written, not starting it", "unit", cfg.ContainerdUnit)
		return rep
	}
	pending := &Pending{Candidate: hashOf(plan.Result.Out), Backup: backup, Existed: plan.Exists, Handlers: offeredNames(plan)}
	r.savePending(pending)
	if err := r.waitRestartBudget(ctx); err != nil {
		rep.Outcome, rep.Err = OutcomeError, err
		return rep
	}
	return r.finish(ctx, rep, pending)
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

func (r *Reconciler) restartAndVerify(ctx context.Context, handlers []string) error {
	cfg := r.Applier.Cfg
	r.lastRestart = r.now()
	r.mutateState(func(s *State) { s.LastRestart = r.lastRestart })
	err := r.Restarter.RestartUnit(ctx, cfg.ContainerdUnit)
	if r.Metrics != nil {
		r.Metrics.restart(err)
	}
	if err != nil {
		return err
	}
	vctx, cancel := context.WithTimeout(ctx, time.Duration(cfg.VerifyTimeout))
	defer cancel()
	return r.Verifier.Verify(vctx, handlers)
}

// rollback puts the backup back, restarts containerd and verifies it, and
// remembers the candidate as bad.
func (r *Reconciler) rollback(ctx context.Context, rep *Report, p *Pending, cause error) *Report {
	cfg := r.Applier.Cfg
	r.Log.Error("containerd did not come back healthy with the new config; rolling back", "err", cause)
	if err := r.restoreBackup(p); err != nil {
		rep.Outcome, rep.Err = OutcomeError, fmt.Errorf("%v; and restoring the backup failed: %w", cause, err)
		r.Log.Error("ROLLBACK FAILED: the node needs attention", "err", rep.Err)
		return rep
	}
	r.addBad(p.Candidate)
	if r.Metrics != nil {
		r.Metrics.rollbacks.Inc()
	}
	if hit, err := r.Restarter.StartLimitHit(ctx, cfg.ContainerdUnit); err == nil && hit {
		r.Log.Warn("containerd hit its start limit; resetting it before the rollback restart", "unit", cfg.ContainerdUnit)
		if err := r.Restarter.ResetFailed(ctx, cfg.ContainerdUnit); err != nil {
			r.Log.Error("resetting the start limit failed", "err", err)
		}
	}
	if err := r.sleep(ctx, r.lastRestart.Add(rollbackGap).Sub(r.now())); err != nil {
		rep.Outcome, rep.Err = OutcomeError, err
		return rep
	}
	if err := r.restartAndVerify(ctx, nil); err != nil {
		rep.Outcome, rep.Err = OutcomeError, fmt.Errorf("%v; and containerd is not healthy after the rollback either: %w", cause, err)
		r.Log.Error("ROLLBACK FAILED: the node needs attention", "err", rep.Err)
		return rep
	}
	r.savePending(nil)
	r.LastWritten = ""
	rep.Outcome, rep.Err = OutcomeRolledBack, fmt.Errorf("rolled back: %w", cause)
	r.Log.Warn("rolled back; containerd is healthy with the previous config", "cause", cause)
	return rep
}

func (r *Reconciler) restoreBackup(p *Pending) error {
	cfg := r.Applier.Cfg
	if !p.Existed {
		if err := os.Remove(cfg.ContainerdConfig); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	b, err := os.ReadFile(p.Backup)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(cfg.ContainerdConfig, b, 0o644)
}

// Recover finishes a reconcile that a crash or a stop interrupted between
// writing the config and verifying containerd: verify; if that fails,
// restart (containerd may still run the old config) and verify again; if
// that fails too, roll back.
func (r *Reconciler) Recover(ctx context.Context) *Report {
	cfg := r.Applier.Cfg
	st, err := LoadState(cfg.StateDir)
	if err != nil || st == nil || st.Pending == nil {
		return nil
	}
	p := st.Pending
	cur, err := os.ReadFile(cfg.ContainerdConfig)
	if err != nil || hashOf(cur) != p.Candidate {
		r.Log.Info("an interrupted apply was superseded; the config changed since", "path", cfg.ContainerdConfig)
		r.savePending(nil)
		return nil
	}
	r.Log.Warn("finishing an apply that was interrupted before containerd was verified")
	rep := &Report{Outcome: OutcomeApplied}
	vctx, cancel := context.WithTimeout(ctx, time.Duration(cfg.VerifyTimeout)/4)
	err = r.Verifier.Verify(vctx, p.Handlers)
	cancel()
	if err == nil {
		r.savePending(nil)
		return rep
	}
	if r.Restarter == nil {
		return nil
	}
	return r.finish(ctx, rep, p)
}

// Pending is a written config whose restart and verification have not
// finished; it survives a crash in the state file.
type Pending struct {
	Candidate string   `json:"candidate"`
	Backup    string   `json:"backup"`
	Existed   bool     `json:"existed"`
	Handlers  []string `json:"handlers"`
}

// maxBad bounds the remembered bad candidates.
const maxBad = 20

func (r *Reconciler) mutateState(f func(*State)) {
	st, err := LoadState(r.Applier.Cfg.StateDir)
	if err != nil || st == nil {
		st = &State{}
	}
	f(st)
	if err := SaveState(r.Applier.Cfg.StateDir, st); err != nil {
		r.Log.Warn("could not save state", "err", err)
	}
}

func (r *Reconciler) savePending(p *Pending) { r.mutateState(func(s *State) { s.Pending = p }) }

func (r *Reconciler) addBad(h string) {
	r.mutateState(func(s *State) {
		if !slices.Contains(s.BadCandidates, h) {
			s.BadCandidates = append(s.BadCandidates, h)
		}
		if n := len(s.BadCandidates); n > maxBad {
			s.BadCandidates = s.BadCandidates[n-maxBad:]
		}
	})
}

func (r *Reconciler) saveState(st *State) {
	if err := RecordOutcome(r.Applier.Cfg.StateDir, st); err != nil {
		r.Log.Warn("could not save state", "err", err)
	}
}

func (r *Reconciler) writeLabels(p *Plan) {
	if _, err := WriteLabels(r.Applier.Cfg.NFDFeatureFile, p); err != nil {
		r.Log.Warn("could not write node labels", "path", r.Applier.Cfg.NFDFeatureFile, "err", err)
	}
}

// ConfigIsOwnWrite reports whether config.toml holds exactly what this
// reconciler last wrote, so that the event its own write caused can be
// ignored.
func (r *Reconciler) ConfigIsOwnWrite() bool {
	if r.LastWritten == "" {
		return false
	}
	b, err := os.ReadFile(r.Applier.Cfg.ContainerdConfig)
	return err == nil && hashOf(b) == r.LastWritten
}
