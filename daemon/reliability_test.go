package daemon

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/runtimeclassd/runtimeclassd/internal/crashpoint"
)

// These tests are the cases of the reliability issue, one each. Tests that
// set a crashpoint hook see every step of every test in the process, so they
// don't call t.Parallel: Go runs them before the parallel ones, alone.

// crashed is what a simulated crash panics with.
type crashed struct{ step string }

// untilCrash runs f with a hook that panics at step, as a crash there
// would stop the process, and reports whether the step was reached. The
// files are left as the crash leaves them (deferred unlocks still run).
func untilCrash(t *testing.T, step string, f func()) (reached bool) {
	t.Helper()
	remove := crashpoint.SetHook(func(s string) {
		if s == step {
			panic(crashed{s})
		}
	})
	defer remove()
	defer func() {
		if v := recover(); v != nil {
			if _, ok := v.(crashed); !ok {
				panic(v)
			}
			reached = true
		}
	}()
	f()
	return false
}

// restart makes a new reconciler on the same files and the same containerd,
// as a restarted daemon would be.
func (r *rig) restart() *Reconciler {
	rec := *r.rec
	rec.lastRestart, rec.LastWritten = time.Time{}, ""
	rec.Applier = &Applier{Cfg: r.rec.Applier.Cfg, Log: r.rec.Log, Validator: fakeValidator{}}
	return &rec
}

func (r *rig) labels() string {
	b, _ := os.ReadFile(r.cfg.NFDFeatureFile)
	return string(b)
}

func (r *rig) running() []byte { return r.sd.runs() }

const badKata = "[handlers.kata]\npreset = \"kata\"\nrequires = []\n"

// Case 1: after a rollback, the rollback's own write causes another
// reconcile, which finds the candidate on the bad list. Neither may claim
// the rolled-back handler in the labels or handler_ready.
func TestRolledBackHandlerIsNeverOffered(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.verifier.bad = "handler=kata"
	r.policy("kata.toml", badKata)
	if rep := r.rec.Reconcile(context.Background()); rep.Outcome != OutcomeRolledBack {
		t.Fatalf("first reconcile: %s %v", rep.Outcome, rep.Err)
	}
	for i, want := range []string{OutcomeRolledBack, OutcomeInvalid} {
		if i > 0 {
			if rep := r.rec.Reconcile(context.Background()); rep.Outcome != want {
				t.Fatalf("reconcile after the rollback: %s %v", rep.Outcome, rep.Err)
			}
		}
		if l := r.labels(); !strings.Contains(l, "handler.kata=false") {
			t.Fatalf("after %s the labels claim kata:\n%s", want, l)
		}
		if v := testutil.ToFloat64(r.rec.Metrics.ready.WithLabelValues("kata")); v != 0 {
			t.Fatalf("after %s handler_ready{kata} = %v", want, v)
		}
	}
	if bytes.Contains(r.config(), []byte("handler=kata")) {
		t.Fatal("the rolled-back block is in config.toml")
	}
}

// Case 1, the other way round: a handler is offered only once containerd
// serves it, not when it is written.
func TestOfferedOnlyWhenServed(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.sd.active = false // containerd down: the config is written, not served
	r.policy("kata.toml", kataPolicy)
	if rep := r.rec.Reconcile(context.Background()); rep.Outcome != OutcomeApplied || rep.Restarted {
		t.Fatalf("reconcile: %+v", rep)
	}
	if l := r.labels(); !strings.Contains(l, "handler.kata=false") {
		t.Fatalf("written but not served, the labels claim kata:\n%s", l)
	}
	st, _ := LoadState(r.cfg.StateDir)
	if len(st.Handlers) != 1 || st.Handlers[0].Offered || !strings.Contains(st.Handlers[0].Reason, "does not serve it") {
		t.Fatalf("state handlers %+v", st.Handlers)
	}
	// containerd is started by someone: the next resync sees it serve kata.
	r.sd.active = true
	r.sd.RestartUnit(context.Background(), "containerd.service")
	if rep := r.rec.Reconcile(context.Background()); rep.Outcome != OutcomeUnchanged || rep.Restarted {
		t.Fatalf("resync: %+v", rep)
	}
	if l := r.labels(); !strings.Contains(l, "handler.kata=true") {
		t.Fatalf("served now, but the labels say:\n%s", l)
	}
}

// Case 2: a fresh node without config.toml and without policy: nothing is
// written and nothing restarts; the file is created only for a handler.
func TestFreshNodeNothingToOffer(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	os.Remove(r.cfg.ContainerdConfig)
	rep := r.rec.Reconcile(context.Background())
	if rep.Outcome != OutcomeUnchanged || rep.Restarted || r.sd.restarts != 0 {
		t.Fatalf("no policy: %+v, restarts %d", rep, r.sd.restarts)
	}
	if _, err := os.Stat(r.cfg.ContainerdConfig); err == nil {
		t.Fatal("config.toml created with nothing to offer")
	}
	r.policy("kata.toml", kataPolicy)
	if rep := r.rec.Reconcile(context.Background()); rep.Outcome != OutcomeApplied || r.sd.restarts != 1 {
		t.Fatalf("with a handler: %+v, restarts %d", rep, r.sd.restarts)
	}
	if !bytes.Contains(r.config(), []byte("handler=kata")) {
		t.Fatalf("config:\n%s", r.config())
	}
}

// Case 3: an update keeps the handler names the old containerd already
// serves. An apply interrupted after its write is done only after a restart
// that came after the write.
func TestRecoverRestartsAfterAnUpdate(t *testing.T) {
	r := newRig(t)
	r.policy("kata.toml", kataPolicy)
	if rep := r.rec.Reconcile(context.Background()); rep.Outcome != OutcomeApplied {
		t.Fatalf("apply: %+v", rep)
	}
	r.clock.advance(time.Hour)
	r.policy("kata.toml", kataPolicy+"pod_annotations = [\"io.katacontainers.config.hypervisor.default_memory\"]\n")
	if !untilCrash(t, "apply: written recorded", func() { r.rec.Reconcile(context.Background()) }) {
		t.Fatal("the apply never recorded its write")
	}
	updated := r.config()
	if !bytes.Contains(updated, []byte("default_memory")) || bytes.Contains(r.running(), []byte("default_memory")) {
		t.Fatal("the crash should come after the write and before the restart")
	}
	restarts := r.sd.restarts
	r.clock.advance(time.Hour)
	rep := r.restart().Recover(context.Background())
	if rep == nil || rep.Outcome != OutcomeApplied || r.sd.restarts != restarts+1 {
		t.Fatalf("recover: %+v, restarts %d -> %d", rep, restarts, r.sd.restarts)
	}
	if !bytes.Equal(r.running(), updated) {
		t.Fatal("containerd does not run the updated config after the recovery")
	}
	// If containerd had restarted after the write, only a verification.
	r.policy("kata.toml", kataPolicy)
	r.clock.advance(time.Hour)
	untilCrash(t, "apply: written recorded", func() { r.rec.Reconcile(context.Background()) })
	r.clock.advance(time.Second)
	r.sd.RestartUnit(context.Background(), "containerd.service") // someone restarted it
	restarts = r.sd.restarts
	if rep := r.restart().Recover(context.Background()); rep == nil || rep.Outcome != OutcomeApplied || r.sd.restarts != restarts {
		t.Fatalf("recover after an outside restart: %+v, restarts %d -> %d", rep, restarts, r.sd.restarts)
	}
	if st, _ := LoadState(r.cfg.StateDir); st.Pending != nil {
		t.Fatalf("pending left: %+v", st.Pending)
	}
}

// Case 4: the intent is in the state file before config.toml changes, and
// a question left unanswered (systemd gone) writes nothing.
func TestIntentIsRecordedBeforeTheWrite(t *testing.T) {
	r := newRig(t)
	r.policy("kata.toml", kataPolicy)
	var pending *Pending
	remove := crashpoint.SetHook(func(s string) {
		if s == "write config.toml: renamed" {
			st, _ := LoadState(r.cfg.StateDir)
			if st != nil {
				pending = st.Pending
			}
		}
	})
	rep := r.rec.Reconcile(context.Background())
	remove()
	if rep.Outcome != OutcomeApplied {
		t.Fatalf("reconcile: %+v", rep)
	}
	if pending == nil || len(pending.Files) != 1 || pending.Files[0].Target != hashOf(r.config()) || pending.Files[0].Source != hashOf(r.orig) {
		t.Fatalf("at the rename the pending record was %+v", pending)
	}

	r2 := newRig(t)
	r2.policy("kata.toml", kataPolicy)
	r2.rec.Restarter = failingSystemd{r2.sd, nil}
	rep = r2.rec.Reconcile(context.Background())
	if rep.Outcome != OutcomeError || !strings.Contains(rep.Err.Error(), "nothing written") {
		t.Fatalf("without systemd: %+v", rep)
	}
	if !bytes.Equal(r2.config(), r2.orig) {
		t.Fatal("config written although the restart could not follow")
	}
	if st, _ := LoadState(r2.cfg.StateDir); st != nil && st.Pending != nil {
		t.Fatalf("pending left: %+v", st.Pending)
	}
}

// failingSystemd is systemd with its D-Bus socket gone, until healed.
type failingSystemd struct {
	*fakeContainerd
	healed *atomic.Bool
}

func (f failingSystemd) UnitActive(ctx context.Context, unit string) (bool, error) {
	if f.healed != nil && f.healed.Load() {
		return f.fakeContainerd.UnitActive(ctx, unit)
	}
	return false, errors.New("connecting to systemd over D-Bus: dial unix /run/dbus/system_bus_socket: no such file or directory")
}

// Case 5: a stop between restoring the backup and the rollback's restart.
// The next start must restart containerd onto the restored config, not
// leave it on the bad one.
func TestStopDuringRollbackIsFinishedAtStart(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.verifier.bad = "handler=kata"
	r.policy("kata.toml", badKata)
	ctx, cancel := context.WithCancel(context.Background())
	r.rec.Sleep = func(ctx context.Context, d time.Duration) error {
		if bytes.Equal(r.config(), r.orig) { // restored: the stop comes now
			cancel()
			return ctx.Err()
		}
		return r.clock.Sleep(ctx, d)
	}
	rep := r.rec.Reconcile(ctx)
	if rep.Outcome != OutcomeError || !bytes.Equal(r.config(), r.orig) || !bytes.Contains(r.running(), []byte("handler=kata")) {
		t.Fatalf("the stop should come after the restore, before the restart: %+v", rep)
	}
	rec := r.restart()
	rec.Sleep = r.clock.Sleep
	rep = rec.Recover(context.Background())
	if rep == nil || rep.Outcome != OutcomeRolledBack {
		t.Fatalf("recover: %+v", rep)
	}
	if !bytes.Equal(r.running(), r.orig) {
		t.Fatalf("containerd still runs the bad config:\n%s", r.running())
	}
	if st, _ := LoadState(r.cfg.StateDir); st.Pending != nil || len(st.BadCandidates) != 1 {
		t.Fatalf("state: %+v", st)
	}
}

// Case 6: someone else rewrites config.toml while containerd is verified
// on our candidate, which then fails. Their bytes stay; containerd is
// restarted onto them; a new plan is asked for.
func TestRollbackKeepsAnotherWritersEdit(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.verifier.bad = "handler=kata"
	r.policy("kata.toml", badKata)
	theirs := append(append([]byte{}, r.orig...), "# added by another tool\n"...)
	r.verifier.onVerify = func() {
		if bytes.Contains(r.config(), []byte("handler=kata")) {
			os.WriteFile(r.cfg.ContainerdConfig, theirs, 0o644)
		}
	}
	rep := r.rec.Reconcile(context.Background())
	if rep.Outcome != OutcomeRolledBack || !rep.Replan {
		t.Fatalf("reconcile: %+v", rep)
	}
	if !bytes.Equal(r.config(), theirs) {
		t.Fatalf("their bytes were lost:\n%s", r.config())
	}
	if !bytes.Equal(r.running(), theirs) {
		t.Fatal("containerd was not restarted onto their config")
	}
	if !strings.Contains(r.labels(), "handler.kata=false") {
		t.Fatalf("labels:\n%s", r.labels())
	}
}

// Case 7: a running daemon does not undo `runtimeclassd revert`, until the
// policy changes or `runtimeclassd apply` runs.
func TestDaemonKeepsARevert(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.policy("kata.toml", kataPolicy)
	r.rec.Reconcile(context.Background())
	r.clock.advance(time.Hour)
	if rep := r.rec.ReconcileWith(context.Background(), PlanOptions{Revert: true, Command: "revert"}); rep.Outcome != OutcomeApplied {
		t.Fatalf("revert: %+v", rep)
	}
	r.clock.advance(time.Hour)
	rep := r.rec.Reconcile(context.Background())
	if rep.Outcome != OutcomeHeld || !bytes.Equal(r.config(), r.orig) || !strings.Contains(rep.Err.Error(), "runtimeclassd apply") {
		t.Fatalf("the daemon undid the revert: %+v\n%s", rep, r.config())
	}
	if st, _ := LoadState(r.cfg.StateDir); st.Outcome != OutcomeHeld || st.Hold == nil {
		t.Fatalf("state: %+v", st)
	}
	// The policy changes: applied again.
	r.policy("kata.toml", kataPolicy+"pod_annotations = [\"io.katacontainers.config.hypervisor.default_memory\"]\n")
	if rep := r.rec.Reconcile(context.Background()); rep.Outcome != OutcomeApplied {
		t.Fatalf("after a policy change: %+v", rep)
	}
	// Reverted again, then `apply`: applied, and the hold is gone.
	r.clock.advance(time.Hour)
	r.rec.ReconcileWith(context.Background(), PlanOptions{Revert: true, Command: "revert"})
	r.clock.advance(time.Hour)
	if rep := r.rec.ReconcileWith(context.Background(), PlanOptions{Command: "apply"}); rep.Outcome != OutcomeApplied {
		t.Fatalf("apply after revert: %+v", rep)
	}
	if st, _ := LoadState(r.cfg.StateDir); st.Hold != nil {
		t.Fatalf("hold left after apply: %+v", st.Hold)
	}
}

// Case 8: READY=1 comes before a first reconcile that takes long (here a
// verification that waits), so that systemd's start timeout can't kill it.
func TestReadyBeforeASlowFirstReconcile(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.policy("kata.toml", kataPolicy)
	release := make(chan struct{})
	started := make(chan struct{})
	r.verifier.onVerify = func() {
		close(started)
		<-release
	}
	reports, _, n, _, ready := runService(t, r)
	select {
	case <-started:
	case <-time.After(waitBound):
		t.Fatal("the first reconcile never reached its verification")
	}
	if !n.has("READY=1") {
		t.Fatal("no READY=1 while the first reconcile is under way")
	}
	select {
	case <-ready:
		t.Fatal("/readyz ready before the first reconcile finished")
	default:
	}
	close(release)
	next(t, reports, OutcomeApplied)
	select {
	case <-ready:
	case <-time.After(waitBound):
		t.Fatal("not ready after the first reconcile")
	}
}

// Case 9: the state file and the labels are written under the lock, so that
// a concurrent apply can't interleave with them.
func TestStateAndLabelsWrittenUnderTheLock(t *testing.T) {
	r := newRig(t)
	r.policy("kata.toml", kataPolicy)
	var labelsWritten, lockFree bool
	remove := crashpoint.SetHook(func(s string) {
		if s != "write runtimeclassd: begin" {
			return
		}
		labelsWritten = true
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if unlock, err := Lock(ctx, r.cfg.StateDir); err == nil {
			lockFree = true
			unlock()
		}
	})
	r.rec.Reconcile(context.Background())
	remove()
	if !labelsWritten || lockFree {
		t.Fatalf("labels written: %v; the lock was free while they were: %v", labelsWritten, lockFree)
	}
}

// Case 10: config.toml is a symlink: an edit of the file it points to is
// seen at once, not at the next resync.
func TestSymlinkedConfigIsWatched(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.rec.Applier.Cfg.RestartMinInterval = 0
	real := filepath.Join(r.dir, "managed-elsewhere", "containerd.toml")
	os.MkdirAll(filepath.Dir(real), 0o755)
	os.WriteFile(real, r.orig, 0o644)
	os.Remove(r.cfg.ContainerdConfig)
	os.Symlink(real, r.cfg.ContainerdConfig)
	r.policy("kata.toml", kataPolicy)
	reports, own, _, _, _, _ := runServiceOwn(t, r)
	next(t, reports, OutcomeApplied)
	ownWriteIgnored(t, reports, own)
	os.WriteFile(real, r.orig, 0o644) // drift, written where the link points
	next(t, reports, OutcomeApplied)
	if b, _ := os.ReadFile(real); !bytes.Contains(b, []byte("handler=kata")) {
		t.Fatal("drift in the symlinked file not repaired")
	}
	if fi, _ := os.Lstat(r.cfg.ContainerdConfig); fi.Mode()&os.ModeSymlink == 0 {
		t.Fatal("the symlink was replaced")
	}
}

// Resource faults: a reconcile that fails because of the machine is
// retried with a growing backoff, never in a tight loop, and changes
// nothing.
func TestErrorsAreRetriedWithBackoff(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.policy("kata.toml", kataPolicy)
	healed := &atomic.Bool{}
	r.rec.Restarter = failingSystemd{r.sd, healed}
	delays := make(chan time.Duration, 100)
	fire := make(chan time.Time)
	svc, reports := newTestService(t, r)
	svc.After = func(d time.Duration) <-chan time.Time {
		delays <- d
		return fire
	}
	go svc.Run(svc.ctx)
	var got []time.Duration
	for i := 0; i < 6; i++ {
		next(t, reports, OutcomeError)
		select {
		case d := <-delays:
			got = append(got, d)
		case <-time.After(waitBound):
			t.Fatal("no retry scheduled after an error")
		}
		if v := testutil.ToFloat64(r.rec.Metrics.backoff); v != got[len(got)-1].Seconds() {
			t.Fatalf("retry_backoff_seconds = %v, want %v", v, got[len(got)-1].Seconds())
		}
		if i < 5 {
			fire <- time.Now()
		}
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 32 * time.Second}
	if !slices.Equal(got, want) {
		t.Fatalf("retry delays %v, want %v", got, want)
	}
	if !bytes.Equal(r.config(), r.orig) {
		t.Fatal("config changed by failed reconciles")
	}
	if v := testutil.ToFloat64(r.rec.Metrics.reconciles.WithLabelValues(OutcomeError)); v != 6 {
		t.Fatalf("reconcile_total{error} = %v, want 6 attempts", v)
	}
	// The fault goes away: the next retry applies, and the backoff resets.
	healed.Store(true)
	fire <- time.Now()
	next(t, reports, OutcomeApplied)
	if v := testutil.ToFloat64(r.rec.Metrics.backoff); v != 0 {
		t.Fatalf("retry_backoff_seconds = %v after a success", v)
	}
	if got := retryDelay(30, 5*time.Minute); got != 5*time.Minute {
		t.Fatalf("retryDelay(30) = %v, want the cap", got)
	}
}

// testService is a Service with its context, for tests that drive it.
type testService struct {
	*Service
	ctx context.Context
}

func newTestService(t *testing.T, r *rig) (*testService, chan *Report) {
	t.Helper()
	reports := make(chan *Report, 100)
	r.rec.Sleep, r.rec.Now = nil, nil
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	svc := &Service{Reconciler: r.rec, Notifier: &fakeNotifier{}, Log: r.rec.Log, Hup: make(chan os.Signal, 1),
		Ready: make(chan struct{}), Reconciled: reports}
	return &testService{svc, ctx}, reports
}

// Watcher faults: without inotify (instance limit reached), changes are
// polled for, and the metric says so.
func TestPollsWhenInotifyIsUnavailable(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.rec.Applier.Cfg.RestartMinInterval = 0
	svc, reports := newTestService(t, r)
	svc.NewWatcher = func() (*fsnotify.Watcher, error) { return nil, errors.New("too many open files") }
	polls := make(chan chan time.Time, 100)
	svc.After = func(time.Duration) <-chan time.Time {
		c := make(chan time.Time, 1)
		polls <- c
		return c
	}
	go svc.Run(svc.ctx)
	next(t, reports, OutcomeUnchanged)
	if v := testutil.ToFloat64(r.rec.Metrics.polling); v != 1 {
		t.Fatalf("watch_polling = %v", v)
	}
	r.policy("kata.toml", kataPolicy)
	poll := func() {
		select {
		case c := <-polls:
			c <- time.Now()
		case <-time.After(waitBound):
			t.Fatal("no poll scheduled")
		}
	}
	poll()
	next(t, reports, OutcomeApplied)
	if !bytes.Contains(r.config(), []byte("handler=kata")) {
		t.Fatal("a policy written while polling was not applied")
	}
}

// Watcher faults: an inotify queue overflow is a full resync.
func TestOverflowIsAResync(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	svc, reports := newTestService(t, r)
	watchers := make(chan *fsnotify.Watcher, 1)
	svc.NewWatcher = func() (*fsnotify.Watcher, error) {
		w, err := fsnotify.NewWatcher()
		watchers <- w
		return w, err
	}
	go svc.Run(svc.ctx)
	next(t, reports, OutcomeUnchanged)
	w := <-watchers
	w.Errors <- fsnotify.ErrEventOverflow
	next(t, reports, OutcomeUnchanged)
}

// Watcher faults: a thousand policy writes in one burst give one
// reconcile, one restart and the last policy. The burst ends with SIGHUP
// rather than a debounce timer running out, so a slow machine can't split
// it.
func TestABurstOfWritesIsOneRestart(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.rec.Applier.Cfg.RestartMinInterval = 0
	r.rec.Applier.Cfg.Debounce = Duration(time.Hour)
	reports, hup, _, _, _ := runService(t, r)
	next(t, reports, OutcomeUnchanged)
	for i := 0; i < 1000; i++ {
		body := kataPolicy
		if i%2 == 1 || i == 999 {
			body += "pod_annotations = [\"io.katacontainers.config.hypervisor.default_memory\"]\n"
		}
		tmp := filepath.Join(r.cfg.PolicyDir, ".kata.toml.tmp")
		os.WriteFile(tmp, []byte(body), 0o644)
		os.Rename(tmp, filepath.Join(r.cfg.PolicyDir, "kata.toml"))
	}
	hup <- os.Interrupt
	next(t, reports, OutcomeApplied)
	if r.sd.restarts != 1 || !bytes.Contains(r.config(), []byte("default_memory")) {
		t.Fatalf("restarts %d, config:\n%s", r.sd.restarts, r.config())
	}
	hup <- os.Interrupt
	next(t, reports, OutcomeUnchanged)
	if r.sd.restarts != 1 {
		t.Fatalf("restarts %d after the burst settled", r.sd.restarts)
	}
}
