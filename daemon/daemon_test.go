package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/runtimeclassd/runtimeclassd/ctrdconfig"
)

// fakeValidator accepts every candidate whose handlers are where they
// belong (the real check on a dump is tested in ctrdconfig).
type fakeValidator struct {
	// major is containerd's major version it claims (0: 1.x).
	major int
}

func (fakeValidator) Validate(_ context.Context, _ string, candidate []byte, want []ctrdconfig.Runtime) error {
	return nil
}
func (fakeValidator) Dump(_ context.Context, _ string, candidate []byte) ([]byte, error) {
	return []byte("version = 2\n"), nil
}
func (f fakeValidator) DefaultVersion(context.Context) (int, error) {
	if f.major >= 2 {
		return 3, nil
	}
	return 2, nil
}

// fakeContainerd is containerd under systemd, faked for unit tests: a
// restart makes it run the config on disk at that moment, and it serves
// the runtimes that config defines (plus runc), unless the config contains
// bad, which makes its CRI plugin fail. The real thing is tested in
// ctrdhealth, systemd and the e2e nodes.
type fakeContainerd struct {
	mu           sync.Mutex
	config       string // config.toml's path
	dropin       string // a drop-in it imports, if set
	running      []byte // the config it runs; nil when down
	startedAt    time.Time
	restarts     int
	active       bool
	restartErr   func(n int) error
	limitHit     bool
	resetCalls   int
	restartTimes []time.Time
	now          func() time.Time
	bad          string
	calls        [][]string // Verify calls
	// onVerify, if set, runs at the start of each Verify.
	onVerify func()
}

func (f *fakeContainerd) RestartUnit(ctx context.Context, unit string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.restarts++
	f.restartTimes = append(f.restartTimes, f.now())
	if f.restartErr != nil {
		if err := f.restartErr(f.restarts); err != nil {
			f.running = nil
			return err
		}
	}
	b, _ := os.ReadFile(f.config)
	f.running = append([]byte{}, b...)
	if f.dropin != "" {
		d, _ := os.ReadFile(f.dropin)
		f.running = append(f.running, d...)
	}
	f.startedAt = f.now()
	return nil
}

func (f *fakeContainerd) UnitActive(context.Context, string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.active, nil
}

func (f *fakeContainerd) StartLimitHit(context.Context, string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.limitHit, nil
}

func (f *fakeContainerd) ResetFailed(context.Context, string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.resetCalls++
	f.limitHit = false
	return nil
}

func (f *fakeContainerd) StartedAt(context.Context, string) (time.Time, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.startedAt, nil
}

var runtimeHeader = regexp.MustCompile(`\.runtimes\.("?)([A-Za-z0-9_-]+)("?)\]`)

// served is what the running config defines, or an error like containerd's.
func (f *fakeContainerd) served() ([]string, error) {
	if f.running == nil {
		return nil, errors.New("containerd is not serving: connection refused")
	}
	if f.bad != "" && bytes.Contains(f.running, []byte(f.bad)) {
		return nil, errors.New("CRI plugin failed to load: fake")
	}
	names := []string{"runc"}
	for _, m := range runtimeHeader.FindAllSubmatch(f.running, -1) {
		if n := string(m[2]); !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	return names, nil
}

func (f *fakeContainerd) Verify(_ context.Context, handlers []string) error {
	if f.onVerify != nil {
		f.onVerify()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, handlers)
	served, err := f.served()
	if err != nil {
		return err
	}
	for _, h := range handlers {
		if !slices.Contains(served, h) {
			return fmt.Errorf("CRI does not serve the handlers %s", h)
		}
	}
	return nil
}

func (f *fakeContainerd) Served(context.Context) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.served()
}

// fakeClock advances only when slept on.
type fakeClock struct {
	mu    sync.Mutex
	t     time.Time
	slept []time.Duration
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Sleep(_ context.Context, d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.slept = append(c.slept, d)
	c.t = c.t.Add(d)
	return nil
}
func (c *fakeClock) advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

type rig struct {
	t        *testing.T
	dir      string
	cfg      Config
	sd       *fakeContainerd // as systemd
	verifier *fakeContainerd // as containerd's API: the same fake
	clock    *fakeClock
	rec      *Reconciler
	orig     []byte
}

const handwritten = `version = 2
# keep me
[plugins."io.containerd.grpc.v1.cri".containerd]
  default_runtime_name = "runc"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
`

func newRig(t *testing.T) *rig {
	t.Helper()
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.ContainerdConfig = filepath.Join(dir, "etc/containerd/config.toml")
	cfg.PolicyDir = filepath.Join(dir, "policy.d")
	cfg.StateDir = filepath.Join(dir, "state")
	cfg.NFDFeatureFile = filepath.Join(dir, "features.d/runtimeclassd")
	cfg.Debounce = Duration(50 * time.Millisecond)
	// The fake validator, not the installed binary, is containerd here.
	cfg.ContainerdBin = filepath.Join(dir, "no-such-containerd")
	os.MkdirAll(filepath.Dir(cfg.ContainerdConfig), 0o755)
	os.MkdirAll(cfg.PolicyDir, 0o755)
	os.WriteFile(cfg.ContainerdConfig, []byte(handwritten), 0o644)
	clock := &fakeClock{t: time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)}
	sd := &fakeContainerd{active: true, now: clock.Now, config: cfg.ContainerdConfig,
		running: []byte(handwritten), startedAt: clock.t.Add(-time.Hour)}
	v := sd
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	rec := &Reconciler{
		Applier:   &Applier{Cfg: cfg, Log: log, Validator: fakeValidator{}},
		Restarter: sd, Verifier: v, Log: log, Metrics: NewMetrics("test"),
		Now: clock.Now, Sleep: clock.Sleep,
	}
	return &rig{t: t, dir: dir, cfg: cfg, sd: sd, verifier: v, clock: clock, rec: rec, orig: []byte(handwritten)}
}

func (r *rig) policy(name, body string) {
	r.t.Helper()
	if err := os.WriteFile(filepath.Join(r.cfg.PolicyDir, name), []byte(body), 0o644); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) config() []byte {
	b, _ := os.ReadFile(r.cfg.ContainerdConfig)
	return b
}

const kataPolicy = "[handlers.kata]\npreset = \"kata\"\nrequires = []\n"

func TestReconcileAppliesRestartsAndVerifies(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.policy("kata.toml", kataPolicy)
	rep := r.rec.Reconcile(context.Background())
	if rep.Outcome != OutcomeApplied || !rep.Restarted || r.sd.restarts != 1 {
		t.Fatalf("report %+v, restarts %d", rep, r.sd.restarts)
	}
	if !bytes.Contains(r.config(), []byte("handler=kata")) || !bytes.Contains(r.config(), []byte("# keep me")) {
		t.Fatalf("config:\n%s", r.config())
	}
	if got := r.verifier.calls; len(got) != 1 || strings.Join(got[0], ",") != "kata" {
		t.Fatalf("verified %v", got)
	}
	// Same inputs: nothing written, no restart.
	rep = r.rec.Reconcile(context.Background())
	if rep.Outcome != OutcomeUnchanged || rep.Restarted || r.sd.restarts != 1 {
		t.Fatalf("second reconcile %+v, restarts %d", rep, r.sd.restarts)
	}
	if !r.rec.ConfigIsOwnWrite() {
		t.Error("own write not recognised")
	}
	m := r.rec.Metrics
	if testutil.ToFloat64(m.reconciles.WithLabelValues(OutcomeApplied)) != 1 || testutil.ToFloat64(m.reconciles.WithLabelValues(OutcomeUnchanged)) != 1 ||
		testutil.ToFloat64(m.restarts.WithLabelValues("success")) != 1 || testutil.ToFloat64(m.ready.WithLabelValues("kata")) != 1 {
		t.Fatal("metrics do not match")
	}
	st, _ := LoadState(r.cfg.StateDir)
	if st.Pending != nil || st.LastSuccess.IsZero() {
		t.Fatalf("state %+v", st)
	}
	labels, _ := os.ReadFile(r.cfg.NFDFeatureFile)
	if !strings.Contains(string(labels), "runtimeclassd.io/handler.kata=true") {
		t.Fatalf("labels %s", labels)
	}
}

func TestReconcileRollsBackAndRemembersBadCandidate(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.verifier.bad = "handler=broken"
	r.policy("broken.toml", "[handlers.broken]\nruntime_type = \"io.containerd.runc.v2\"\nbase_runtime_spec = \"/etc/spec.json\"\n")
	rep := r.rec.Reconcile(context.Background())
	if rep.Outcome != OutcomeRolledBack || r.sd.restarts != 2 {
		t.Fatalf("report %+v (err %v), restarts %d", rep, rep.Err, r.sd.restarts)
	}
	if !bytes.Equal(r.config(), r.orig) {
		t.Fatalf("not rolled back:\n%s", r.config())
	}
	if gap := r.sd.restartTimes[1].Sub(r.sd.restartTimes[0]); gap < rollbackGap {
		t.Errorf("rollback restart %v after the failed one", gap)
	}
	// Same inputs again: not retried, no restart.
	rep = r.rec.Reconcile(context.Background())
	if rep.Outcome != OutcomeInvalid || r.sd.restarts != 2 || !strings.Contains(rep.Err.Error(), "rolled back before") {
		t.Fatalf("retry: %+v (err %v), restarts %d", rep, rep.Err, r.sd.restarts)
	}
	if testutil.ToFloat64(r.rec.Metrics.rollbacks) != 1 {
		t.Error("rollbacks_total")
	}
	// New inputs: tried again.
	r.verifier.bad = ""
	r.policy("broken.toml", "[handlers.broken]\nruntime_type = \"io.containerd.runc.v2\"\n")
	r.clock.advance(time.Hour)
	if rep = r.rec.Reconcile(context.Background()); rep.Outcome != OutcomeApplied || r.sd.restarts != 3 {
		t.Fatalf("after a fix: %+v, restarts %d", rep, r.sd.restarts)
	}
}

func TestRollbackResetsStartLimit(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.sd.restartErr = func(n int) error {
		if n == 1 {
			r.sd.limitHit = true
			return errors.New(`job result "failed", unit result start-limit-hit`)
		}
		return nil
	}
	r.policy("kata.toml", kataPolicy)
	rep := r.rec.Reconcile(context.Background())
	if rep.Outcome != OutcomeRolledBack || r.sd.resetCalls != 1 || r.sd.restarts != 2 {
		t.Fatalf("report %+v, resets %d, restarts %d", rep, r.sd.resetCalls, r.sd.restarts)
	}
	if testutil.ToFloat64(r.rec.Metrics.restarts.WithLabelValues("failure")) != 1 {
		t.Error("restart failure not counted")
	}
}

func TestRestartBudgetAndSplay(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.rec.Applier.Cfg.RestartSplay = Duration(10 * time.Second)
	r.rec.Splay = func(max time.Duration) time.Duration { return max / 2 }
	r.policy("kata.toml", kataPolicy)
	r.rec.Reconcile(context.Background())
	r.clock.advance(5 * time.Second)
	r.policy("gvisor.toml", "[handlers.gvisor]\nruntime_type = \"io.containerd.runsc.v1\"\n")
	r.rec.Reconcile(context.Background())
	if r.sd.restarts != 2 {
		t.Fatalf("restarts %d", r.sd.restarts)
	}
	gap := r.sd.restartTimes[1].Sub(r.sd.restartTimes[0])
	if gap < 60*time.Second {
		t.Fatalf("second restart %v after the first; want at least restart_min_interval", gap)
	}
	if got := r.clock.slept; len(got) != 3 || got[0] != 5*time.Second || got[1] != 55*time.Second || got[2] != 5*time.Second {
		t.Fatalf("slept %v, want [5s (splay) 55s (budget) 5s (splay)]", got)
	}
}

func TestInactiveUnitIsNotStarted(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.sd.active = false
	r.policy("kata.toml", kataPolicy)
	rep := r.rec.Reconcile(context.Background())
	if rep.Outcome != OutcomeApplied || rep.Restarted || r.sd.restarts != 0 || !bytes.Contains(r.config(), []byte("handler=kata")) {
		t.Fatalf("report %+v, restarts %d", rep, r.sd.restarts)
	}
}

func TestInvalidInputTouchesNothing(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.policy("bad.toml", "[handlers.kata]\npreset = \"kata\"\npod_annotations = [\"*\"]\n")
	rep := r.rec.Reconcile(context.Background())
	if rep.Outcome != OutcomeInvalid || r.sd.restarts != 0 || !bytes.Equal(r.config(), r.orig) {
		t.Fatalf("report %+v", rep)
	}
	if testutil.ToFloat64(r.rec.Metrics.policyValid) != 0 {
		t.Error("policy_valid should be 0")
	}
}

func TestMissingPolicyDirLeavesConfigAlone(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.policy("kata.toml", kataPolicy)
	r.rec.Reconcile(context.Background())
	applied := r.config()
	os.RemoveAll(r.cfg.PolicyDir)
	rep := r.rec.Reconcile(context.Background())
	if rep.Outcome != OutcomeUnchanged || !bytes.Equal(r.config(), applied) {
		t.Fatalf("a missing policy dir changed the config: %+v", rep)
	}
}

func TestRecoverFinishesInterruptedApply(t *testing.T) {
	t.Parallel()
	// Crash after writing a bad config, before verifying it.
	r := newRig(t)
	r.verifier.bad = "handler=kata"
	r.policy("kata.toml", kataPolicy)
	r.rec.Restarter = nil // "crash": write without restarting
	r.rec.Reconcile(context.Background())
	backups, _ := filepath.Glob(filepath.Join(r.cfg.StateDir, "backups", "*"))
	written := r.config()
	r.rec.savePending(&Pending{Files: []PendingFile{{Path: r.cfg.ContainerdConfig, Target: hashOf(written), Source: hashOf(r.orig), Backup: backups[0], Existed: true}},
		Handlers: []string{"kata"}, At: r.clock.Now()})

	r2 := newRig(t)
	r2.rec.Applier.Cfg = r.cfg
	r2.verifier.config, r2.verifier.bad = r.cfg.ContainerdConfig, "handler=kata"
	rep := r2.rec.Recover(context.Background())
	if rep == nil || rep.Outcome != OutcomeRolledBack || !bytes.Equal(r.config(), r.orig) {
		t.Fatalf("recover: %+v\n%s", rep, r.config())
	}
	if st, _ := LoadState(r.cfg.StateDir); st.Pending != nil || len(st.BadCandidates) != 1 {
		t.Fatalf("state after recovery: %+v", st)
	}
	// Nothing pending: nothing to do.
	if rep := r2.rec.Recover(context.Background()); rep != nil {
		t.Fatalf("second recover: %+v", rep)
	}
}

// blockingVerifier waits until its context ends, as a verification does when
// the daemon is stopped in the middle of it.
type blockingVerifier struct{ started chan struct{} }

func (b *blockingVerifier) Verify(ctx context.Context, _ []string) error {
	close(b.started)
	<-ctx.Done()
	return ctx.Err()
}

func (b *blockingVerifier) Served(ctx context.Context) ([]string, error) { return nil, ctx.Err() }

// TestStopDuringVerifyLeavesPendingApply: a stop in the middle of the
// verification is not a failed verification: no rollback, the written
// config stays, and the pending apply is left for Recover.
func TestStopDuringVerifyLeavesPendingApply(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	bv := &blockingVerifier{started: make(chan struct{})}
	r.rec.Verifier = bv
	r.policy("kata.toml", kataPolicy)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-bv.started; cancel() }()
	rep := r.rec.Reconcile(ctx)
	if rep.Outcome != OutcomeError || !strings.Contains(rep.Err.Error(), "finishing at the next start") {
		t.Fatalf("report %+v", rep)
	}
	if r.sd.restarts != 1 || !bytes.Contains(r.config(), []byte("handler=kata")) {
		t.Fatalf("rolled back on a stop: restarts %d\n%s", r.sd.restarts, r.config())
	}
	st, _ := LoadState(r.cfg.StateDir)
	if st.Pending == nil || len(st.BadCandidates) != 0 {
		t.Fatalf("state %+v", st)
	}
	// The next start finishes it.
	r.rec.Verifier = r.verifier
	if rep := r.rec.Recover(context.Background()); rep == nil || rep.Outcome != OutcomeApplied {
		t.Fatalf("recover: %+v", rep)
	}
	if st, _ := LoadState(r.cfg.StateDir); st.Pending != nil {
		t.Fatal("pending not cleared")
	}
}

// TestRevertClearsLabels: after a revert nothing is offered, so the node
// labels must go too, or RuntimeClasses keep selecting this node.
func TestRevertClearsLabels(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.policy("kata.toml", kataPolicy)
	r.rec.Reconcile(context.Background())
	if labels, _ := os.ReadFile(r.cfg.NFDFeatureFile); !strings.Contains(string(labels), "handler.kata=true") {
		t.Fatalf("labels after apply:\n%s", labels)
	}
	r.clock.advance(time.Hour)
	rep := r.rec.ReconcileWith(context.Background(), PlanOptions{Revert: true, Command: "revert"})
	if rep.Outcome != OutcomeApplied || !bytes.Equal(r.config(), r.orig) {
		t.Fatalf("revert: %+v", rep)
	}
	if labels, _ := os.ReadFile(r.cfg.NFDFeatureFile); strings.Contains(string(labels), "handler.") {
		t.Fatalf("labels after revert still name handlers:\n%s", labels)
	}
	if st, _ := LoadState(r.cfg.StateDir); st.Command != "revert" {
		t.Fatalf("state command %q", st.Command)
	}
}

// The live write path refuses a plan that containerd did not validate,
// whoever asked for it: the guard used to sit only in Applier.Write, which
// nothing called.
func TestReconcileNeverWritesUnvalidated(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.policy("kata.toml", kataPolicy)
	rep := r.rec.ReconcileWith(context.Background(), PlanOptions{NoValidate: true, Command: "apply"})
	if rep.Outcome != OutcomeError || rep.Err == nil || !strings.Contains(rep.Err.Error(), "has not validated") {
		t.Fatalf("%+v (%v)", rep, rep.Err)
	}
	if !bytes.Equal(r.config(), r.orig) || r.sd.restarts != 0 {
		t.Errorf("written or restarted:\n%s", r.config())
	}
	if rep := r.rec.Reconcile(context.Background()); rep.Outcome != OutcomeApplied {
		t.Fatalf("validated: %+v (%v)", rep, rep.Err)
	}
}

// TestStateWritesPerReconcile counts the writes of state.json in one
// applied reconcile with a restart, and in a resync that finds nothing to
// do. Issue 20 asks for at most three per applied reconcile (a journal
// loaded once); today's figure is the bound, so that it can only go down.
func TestStateWritesPerReconcile(t *testing.T) {
	r := newRig(t)
	r.policy("kata.toml", kataPolicy)
	before := stateWrites.Load()
	if rep := r.rec.Reconcile(context.Background()); rep.Outcome != OutcomeApplied || !rep.Restarted {
		t.Fatalf("%+v (%v)", rep, rep.Err)
	}
	applied := stateWrites.Load() - before
	// The first resync records its outcome (unchanged, after applied);
	// the next finds nothing to write.
	r.rec.Reconcile(context.Background())
	before = stateWrites.Load()
	if rep := r.rec.Reconcile(context.Background()); rep.Outcome != OutcomeUnchanged {
		t.Fatalf("%+v (%v)", rep, rep.Err)
	}
	idle := stateWrites.Load() - before
	t.Logf("state.json writes: %d in an applied reconcile with a restart, %d in a resync with nothing to do", applied, idle)
	if applied > 5 || idle != 0 {
		t.Errorf("state.json written %d times applying, %d times idle; want at most 5 (today's) and 0", applied, idle)
	}
}
