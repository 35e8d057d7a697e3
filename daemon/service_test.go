package daemon

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

type fakeNotifier struct {
	mu     sync.Mutex
	states []string
}

func (n *fakeNotifier) Notify(s string) (bool, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.states = append(n.states, s)
	return true, nil
}
func (n *fakeNotifier) WatchdogInterval() time.Duration { return 20 * time.Millisecond }

func (n *fakeNotifier) has(s string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, x := range n.states {
		if x == s {
			return true
		}
	}
	return false
}

// runService starts the service and returns its reports.
func runService(t *testing.T, r *rig) (reports chan *Report, hup chan os.Signal, n *fakeNotifier, stop func(), ready chan struct{}) {
	t.Helper()
	reports, _, hup, n, stop, ready = runServiceOwn(t, r)
	return reports, hup, n, stop, ready
}

// runServiceOwn is runService that also returns the own-write channel.
func runServiceOwn(t *testing.T, r *rig) (reports chan *Report, own chan struct{}, hup chan os.Signal, n *fakeNotifier, stop func(), ready chan struct{}) {
	t.Helper()
	reports = make(chan *Report, 100)
	own = make(chan struct{}, 100)
	hup = make(chan os.Signal, 1)
	n = &fakeNotifier{}
	r.rec.Sleep = nil // real time for the watcher tests
	r.rec.Now = nil
	ready = make(chan struct{})
	svc := &Service{Reconciler: r.rec, Notifier: n, Log: r.rec.Log, Hup: hup, Ready: ready, Reconciled: reports, OwnWrite: own}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	stop = func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
	t.Cleanup(func() {
		select {
		case <-ctx.Done():
		default:
			stop()
		}
	})
	return reports, own, hup, n, stop, ready
}

// waitBound bounds every wait for an event: long, because a test that
// waits on events fails only when the event never comes, and a slow or
// loaded machine must not make it fail.
const waitBound = 60 * time.Second

func next(t *testing.T, reports chan *Report, want string) *Report {
	t.Helper()
	select {
	case rep := <-reports:
		if rep.Outcome != want {
			t.Fatalf("outcome %s (err %v), want %s", rep.Outcome, rep.Err, want)
		}
		return rep
	case <-time.After(waitBound):
		t.Fatalf("no reconcile within %v (want %s)", waitBound, want)
	}
	return nil
}

// ownWriteIgnored waits until the service has seen the events of its own
// write and ignored them; a reconcile before that fails the test. Every
// write of config.toml sends events, so one of the two always comes.
func ownWriteIgnored(t *testing.T, reports chan *Report, own chan struct{}) {
	t.Helper()
	select {
	case rep := <-reports:
		t.Fatalf("our own write caused a reconcile: %s (err %v)", rep.Outcome, rep.Err)
	case <-own:
	case <-time.After(waitBound):
		t.Fatalf("the events of our own write were not seen within %v", waitBound)
	}
}

func TestServiceWatchesAndRepairsDrift(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.rec.Applier.Cfg.RestartMinInterval = 0
	reports, own, hup, n, stop, ready := runServiceOwn(t, r)
	next(t, reports, OutcomeUnchanged) // start: empty policy
	select {
	case <-ready:
	case <-time.After(waitBound):
		t.Fatal("not ready after the first reconcile")
	}
	if !n.has("READY=1") {
		t.Fatal("no READY=1 after the first reconcile")
	}

	// A policy dropped in.
	r.policy("kata.toml", kataPolicy)
	next(t, reports, OutcomeApplied)
	// Our own write must not cause another reconcile.
	ownWriteIgnored(t, reports, own)

	// An editor that saves by writing a temp file and renaming it over.
	tmp := filepath.Join(r.cfg.PolicyDir, ".kata.toml.swp")
	os.WriteFile(tmp, []byte(kataPolicy+"pod_annotations = [\"io.katacontainers.config.hypervisor.default_memory\"]\n"), 0o644)
	os.Rename(tmp, filepath.Join(r.cfg.PolicyDir, "kata.toml"))
	next(t, reports, OutcomeApplied)
	ownWriteIgnored(t, reports, own)

	// Drift: another tool rewrites config.toml without our block.
	os.WriteFile(r.cfg.ContainerdConfig, r.orig, 0o644)
	next(t, reports, OutcomeApplied)
	if !bytes.Contains(r.config(), []byte("handler=kata")) {
		t.Fatal("drift not repaired")
	}
	if testutil.ToFloat64(r.rec.Metrics.drift) != 1 {
		t.Errorf("config_drift_total = %v", testutil.ToFloat64(r.rec.Metrics.drift))
	}

	// Deleted and recreated.
	os.Remove(filepath.Join(r.cfg.PolicyDir, "kata.toml"))
	next(t, reports, OutcomeApplied)
	if bytes.Contains(r.config(), []byte("handler=kata")) {
		t.Fatal("handler not removed with its policy file")
	}
	r.policy("kata.toml", kataPolicy)
	next(t, reports, OutcomeApplied)

	// SIGHUP: a resync (nothing to change).
	hup <- os.Interrupt
	next(t, reports, OutcomeUnchanged)

	stop()
	if !n.has("STOPPING=1") || !n.has("WATCHDOG=1") {
		t.Fatalf("notifications: %v", n.states)
	}
}

func TestServiceConfigMapSwap(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.rec.Applier.Cfg.RestartMinInterval = 0
	// A ConfigMap volume: kata.toml -> ..data/kata.toml, ..data -> ..2026_1
	d := r.cfg.PolicyDir
	os.Mkdir(filepath.Join(d, "..2026_1"), 0o755)
	os.WriteFile(filepath.Join(d, "..2026_1", "kata.toml"), []byte(kataPolicy), 0o644)
	os.Symlink("..2026_1", filepath.Join(d, "..data"))
	os.Symlink("..data/kata.toml", filepath.Join(d, "kata.toml"))
	reports, _, _, _, _ := runService(t, r)
	next(t, reports, OutcomeApplied)
	// The kubelet's update: a new timestamped dir, then ..data swapped by
	// a rename of a temp symlink.
	os.Mkdir(filepath.Join(d, "..2026_2"), 0o755)
	os.WriteFile(filepath.Join(d, "..2026_2", "kata.toml"), []byte("[handlers.kata-clh]\npreset = \"kata-clh\"\nrequires = []\n"), 0o644)
	os.Symlink("..2026_2", filepath.Join(d, "..data_tmp"))
	os.Rename(filepath.Join(d, "..data_tmp"), filepath.Join(d, "..data"))
	os.RemoveAll(filepath.Join(d, "..2026_1"))
	next(t, reports, OutcomeApplied)
	if c := r.config(); !bytes.Contains(c, []byte("handler=kata-clh")) || bytes.Contains(c, []byte("handler=kata ")) {
		t.Fatalf("config after the swap:\n%s", c)
	}
}

func TestServiceWaitsForPolicyDir(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	os.RemoveAll(r.cfg.PolicyDir)
	r.rec.Applier.Cfg.PolicyDir = filepath.Join(r.dir, "later", "policy.d")
	reports, _, _, _, _ := runService(t, r)
	next(t, reports, OutcomeUnchanged)
	os.MkdirAll(r.rec.Applier.Cfg.PolicyDir, 0o755)
	os.WriteFile(filepath.Join(r.rec.Applier.Cfg.PolicyDir, "kata.toml"), []byte(kataPolicy), 0o644)
	// Bounded: a missed event would otherwise be hidden by the 5-minute
	// resync.
	deadline := time.After(waitBound)
	for applied := false; !applied; {
		select {
		case rep := <-reports:
			if rep.Outcome != OutcomeApplied && rep.Outcome != OutcomeUnchanged {
				t.Fatalf("outcome %s: %v", rep.Outcome, rep.Err)
			}
			applied = rep.Outcome == OutcomeApplied
		case <-deadline:
			t.Fatalf("the policy in a directory created after start was not applied within %v", waitBound)
		}
	}
	if !bytes.Contains(r.config(), []byte("handler=kata")) {
		t.Fatal("policy in a late directory not applied")
	}
}

// TestServiceAfterReconcile: the memory policy's hook runs once after each
// reconcile is reported (the first, and one a policy change causes).
func TestServiceAfterReconcile(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.rec.Sleep, r.rec.Now = nil, nil
	reports := make(chan *Report, 10)
	calls := make(chan struct{}, 10)
	svc := &Service{Reconciler: r.rec, Notifier: &fakeNotifier{}, Log: r.rec.Log, Hup: make(chan os.Signal, 1), Ready: make(chan struct{}),
		Reconciled: reports, AfterReconcile: func() { calls <- struct{}{} }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	defer func() { cancel(); <-done }()
	next(t, reports, OutcomeUnchanged)
	r.policy("kata.toml", kataPolicy)
	next(t, reports, OutcomeApplied)
	if n := len(calls); n != 2 {
		t.Errorf("AfterReconcile ran %d times for 2 reconciles", n)
	}
}
