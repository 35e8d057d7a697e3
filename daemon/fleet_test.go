package daemon

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fakeFleet is the fleet's budget and failure record, faked for unit tests
// of the daemon's order; kube's own tests and the cluster e2e run the real
// ones against a real API server.
type fakeFleet struct {
	mu     sync.Mutex
	events []string
	failed map[string]string // policy hash -> node
	reason map[string]string
	// gate, if set, is waited on by Acquire (closed: a slot is free).
	gate chan struct{}
	// waiting is closed when Acquire first starts waiting.
	waiting  chan struct{}
	waitOnce sync.Once
	heldErr  error
	// onAcquired runs once a slot is taken.
	onAcquired func()
	// ready are what Ready returns, one per call (nil once used up); a
	// non-nil one is logged as "lost".
	ready []error
}

func newFakeFleet() *fakeFleet {
	return &fakeFleet{failed: map[string]string{}, reason: map[string]string{}, waiting: make(chan struct{})}
}

func (f *fakeFleet) log(e string) { f.mu.Lock(); f.events = append(f.events, e); f.mu.Unlock() }

func (f *fakeFleet) Events() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.events, " ")
}

func (f *fakeFleet) Acquire(ctx context.Context) (func(), error) {
	f.log("acquire")
	f.waitOnce.Do(func() { close(f.waiting) })
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if f.onAcquired != nil {
		f.onAcquired()
	}
	return func() { f.log("release") }, nil
}

func (f *fakeFleet) Ready(context.Context) error {
	f.mu.Lock()
	var err error
	if len(f.ready) > 0 {
		err, f.ready = f.ready[0], f.ready[1:]
	}
	f.mu.Unlock()
	if err != nil {
		f.log("lost")
	}
	return err
}

func (f *fakeFleet) Failed(_ context.Context, pol, reason string) error {
	f.log("failed")
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failed[pol], f.reason[pol] = "this-node", reason
	return nil
}

func (f *fakeFleet) Held(_ context.Context, pol string) (string, string, bool, error) {
	f.log("held?")
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.heldErr != nil {
		return "", "", false, f.heldErr
	}
	node, ok := f.failed[pol]
	return node, f.reason[pol], ok, nil
}

// restartsOf wraps the rig's containerd so that restarts show in the
// fleet's event log, in order.
type loggedRestarter struct {
	*fakeContainerd
	fleet *fakeFleet
}

func (l loggedRestarter) RestartUnit(ctx context.Context, unit string) error {
	l.fleet.log("restart")
	return l.fakeContainerd.RestartUnit(ctx, unit)
}

type fakeLabels struct {
	mu   sync.Mutex
	sets []map[string]bool
}

func (f *fakeLabels) SetHandlers(m map[string]bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sets = append(f.sets, m)
}

func fleetRig(t *testing.T) (*rig, *fakeFleet) {
	r := newRig(t)
	f := newFakeFleet()
	r.rec.Fleet = f
	r.rec.Restarter = loggedRestarter{r.sd, f}
	return r, f
}

func policyHash(t *testing.T, r *rig) string {
	t.Helper()
	p, err := r.rec.Applier.Plan(context.Background(), PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p.Policy.Hash()
}

// A node takes a slot before it writes anything for a restart, plans again
// once it has one (here the policy changed while it waited), and holds the
// slot until the handlers are verified and labelled.
func TestFleetSlotBeforeTheWrite(t *testing.T) {
	t.Parallel()
	r, f := fleetRig(t)
	f.gate = make(chan struct{})
	labels := &fakeLabels{}
	r.rec.NodeLabels = labels
	r.policy("a.toml", "[handlers.crun]\nruntime_type = \"io.containerd.runc.v2\"\n")
	done := make(chan *Report)
	go func() { done <- r.rec.Reconcile(context.Background()) }()
	<-f.waiting
	if !bytes.Equal(r.config(), r.orig) || r.sd.restarts != 0 {
		t.Fatalf("written or restarted while waiting for a slot:\n%s", r.config())
	}
	if testutil.ToFloat64(r.rec.Metrics.slotHeld) != 0 {
		t.Error("slot_held while waiting")
	}
	r.policy("a.toml", "[handlers.kata]\npreset = \"kata\"\nrequires = []\n")
	close(f.gate)
	rep := <-done
	if rep.Outcome != OutcomeApplied || !bytes.Contains(r.config(), []byte("handler=kata")) || bytes.Contains(r.config(), []byte("handler=crun")) {
		t.Fatalf("%+v (%v): the policy read after the wait is not the one written:\n%s", rep, rep.Err, r.config())
	}
	if got, want := f.Events(), "held? acquire held? restart release"; got != want {
		t.Errorf("events %q, want %q", got, want)
	}
	if len(labels.sets) != 1 || !labels.sets[0]["kata"] || len(labels.sets[0]) != 1 {
		t.Errorf("node labels %v", labels.sets)
	}
	if testutil.ToFloat64(r.rec.Metrics.slotHeld) != 0 {
		t.Error("slot_held after the release")
	}
	// Nothing to do: no request to the fleet at all.
	f.mu.Lock()
	f.events = nil
	f.mu.Unlock()
	if rep := r.rec.Reconcile(context.Background()); rep.Outcome != OutcomeUnchanged || f.Events() != "" {
		t.Fatalf("resync: %+v, fleet asked %q", rep, f.Events())
	}
}

// A policy that failed on another node is not applied: held, with the node
// and reason in the report and the state, config.toml untouched, no slot
// asked for; a new policy goes through.
func TestFleetHoldsAFailedPolicy(t *testing.T) {
	t.Parallel()
	r, f := fleetRig(t)
	r.policy("kata.toml", kataPolicy)
	h := policyHash(t, r)
	f.failed[h], f.reason[h] = "node-1", "containerd did not serve kata after the restart"
	rep := r.rec.Reconcile(context.Background())
	var held *HeldError
	if rep.Outcome != OutcomeHeld || !errors.As(rep.Err, &held) || held.Node != "node-1" || !bytes.Equal(r.config(), r.orig) || r.sd.restarts != 0 {
		t.Fatalf("%+v (%v), restarts %d", rep, rep.Err, r.sd.restarts)
	}
	if s := rep.Status(); !strings.HasPrefix(s, "held: failed on node-1 (containerd did not serve kata") || !strings.Contains(s, "fleet clear "+h[:12]) {
		t.Errorf("status %q", s)
	}
	if st, _ := LoadState(r.cfg.StateDir); st.Outcome != OutcomeHeld || !strings.Contains(st.Reason, "node-1") {
		t.Errorf("state %+v", st)
	}
	if testutil.ToFloat64(r.rec.Metrics.policyHeld) != 1 {
		t.Error("policy_held is not 1")
	}
	if strings.Contains(f.Events(), "acquire") {
		t.Errorf("a slot was asked for a held policy: %s", f.Events())
	}
	r.policy("kata.toml", kataPolicy+"[handlers.crun]\nruntime_type = \"io.containerd.runc.v2\"\n")
	if rep := r.rec.Reconcile(context.Background()); rep.Outcome != OutcomeApplied || testutil.ToFloat64(r.rec.Metrics.policyHeld) != 0 {
		t.Fatalf("new policy: %+v (%v)", rep, rep.Err)
	}
}

// The record is read again once the slot is taken: a policy that failed on
// another node while this one waited is not applied, and the slot goes
// back.
func TestFleetLooksAgainAfterTheWait(t *testing.T) {
	t.Parallel()
	r, f := fleetRig(t)
	r.policy("kata.toml", kataPolicy)
	h := policyHash(t, r)
	f.onAcquired = func() {
		f.mu.Lock()
		f.failed[h], f.reason[h] = "node-0", "rolled back"
		f.mu.Unlock()
	}
	rep := r.rec.Reconcile(context.Background())
	if rep.Outcome != OutcomeHeld || !bytes.Equal(r.config(), r.orig) || r.sd.restarts != 0 {
		t.Fatalf("%+v (%v)", rep, rep.Err)
	}
	if got, want := f.Events(), "held? acquire held? release"; got != want {
		t.Errorf("events %q, want %q", got, want)
	}
}

// A rollback records the policy's hash as failed, after the node is back
// on its old config; the slot is held through the rollback.
func TestFleetRecordsARollback(t *testing.T) {
	t.Parallel()
	r, f := fleetRig(t)
	r.verifier.bad = "handler=broken"
	r.policy("broken.toml", "[handlers.broken]\nruntime_type = \"io.containerd.runc.v2\"\n")
	h := policyHash(t, r)
	rep := r.rec.Reconcile(context.Background())
	if rep.Outcome != OutcomeRolledBack || !bytes.Equal(r.config(), r.orig) {
		t.Fatalf("%+v (%v)", rep, rep.Err)
	}
	if got, want := f.Events(), "held? acquire held? restart restart failed release"; got != want {
		t.Errorf("events %q, want %q", got, want)
	}
	if !strings.Contains(f.reason[h], "CRI plugin failed to load") {
		t.Errorf("recorded %v", f.reason)
	}
}

// unreachable is an error the fleet marks as the API server being
// unreachable (kube.Fleet does so for network errors, 5xx and 429).
type unreachable struct{ error }

func (unreachable) Unreachable() bool { return true }

// An unreadable failure record: with on_api_unreachable = "wait" nothing
// is written and the reconcile is retried; with "proceed" it goes on, but
// only when the API server is unreachable: an error of the node's own
// configuration (a token file that can't be read, a wrong CA) or an answer
// never lets it go on.
func TestFleetRecordUnreachable(t *testing.T) {
	t.Parallel()
	r, f := fleetRig(t)
	f.heldErr = unreachable{errors.New("dial tcp 127.0.0.1:6443: connect: connection refused")}
	r.policy("kata.toml", kataPolicy)
	rep := r.rec.Reconcile(context.Background())
	if rep.Outcome != OutcomeError || !strings.Contains(rep.Err.Error(), "nothing written") || !bytes.Equal(r.config(), r.orig) {
		t.Fatalf("wait: %+v (%v)", rep, rep.Err)
	}
	r.rec.OnAPIUnreachable = "proceed"
	f.heldErr = errors.New("this node's API configuration: reading the token file: open /var/run/token: no such file or directory")
	rep = r.rec.Reconcile(context.Background())
	if rep.Outcome != OutcomeError || !strings.Contains(rep.Err.Error(), "reading the token file") || !bytes.Equal(r.config(), r.orig) {
		t.Fatalf("proceed, misconfigured: %+v (%v)", rep, rep.Err)
	}
	f.heldErr = unreachable{errors.New("dial tcp 127.0.0.1:6443: connect: connection refused")}
	if rep := r.rec.Reconcile(context.Background()); rep.Outcome != OutcomeApplied {
		t.Fatalf("proceed: %+v (%v)", rep, rep.Err)
	}
}

// A containerd that isn't running is written without a slot: no restart
// follows. The held check still applies.
func TestFleetNoSlotWithoutARestart(t *testing.T) {
	t.Parallel()
	r, f := fleetRig(t)
	r.sd.active = false
	r.policy("kata.toml", kataPolicy)
	if rep := r.rec.Reconcile(context.Background()); rep.Outcome != OutcomeApplied || f.Events() != "held?" {
		t.Fatalf("%+v (%v), fleet %q", rep, rep.Err, f.Events())
	}
}

// Node labels follow the truth: after a revert no handler is true (the
// Labeler turns our labels that are not in the set to false).
func TestNodeLabelsFollowOffers(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	labels := &fakeLabels{}
	r.rec.NodeLabels = labels
	r.policy("kata.toml", kataPolicy)
	r.rec.Reconcile(context.Background())
	r.rec.ReconcileWith(context.Background(), PlanOptions{Revert: true, Command: "revert"})
	if len(labels.sets) != 2 || !labels.sets[0]["kata"] || labels.sets[1]["kata"] {
		t.Fatalf("label sets %v", labels.sets)
	}
}

// leftoverFleet is a fakeFleet that can free the slots an earlier run held.
type leftoverFleet struct{ *fakeFleet }

func (f leftoverFleet) ReleaseLeftovers(context.Context) (int, error) {
	f.log("leftovers")
	return 1, nil
}

// A daemon that starts (Recover) frees the slots a killed run of it held,
// so that the fleet does not wait out their lease; not while this process
// holds a slot itself.
func TestFleetRecoverFreesLeftoverSlots(t *testing.T) {
	t.Parallel()
	r, f := fleetRig(t)
	r.rec.Fleet = leftoverFleet{f}
	if rep := r.rec.Recover(context.Background()); rep != nil && rep.Err != nil {
		t.Fatal(rep.Err)
	}
	if got := f.Events(); got != "leftovers" {
		t.Errorf("events %q, want the leftovers freed", got)
	}
	f.mu.Lock()
	f.events = nil
	f.mu.Unlock()
	r.rec.release = func() { f.log("release") }
	r.rec.Recover(context.Background())
	if got := f.Events(); got != "" {
		t.Errorf("events %q with a slot held by this process, want none", got)
	}
}

// A policy this node applied, recorded as failed on another node since, is
// still this node's: a block removed from config.toml (drift) is repaired,
// through a slot, not held. A revert ends that: the same policy is then
// new again, and held.
func TestFleetRepairsTheRunningPolicy(t *testing.T) {
	t.Parallel()
	r, f := fleetRig(t)
	r.policy("kata.toml", kataPolicy)
	ctx := context.Background()
	if rep := r.rec.Reconcile(ctx); rep.Outcome != OutcomeApplied {
		t.Fatalf("apply: %+v (%v)", rep, rep.Err)
	}
	applied := r.config()
	h := policyHash(t, r)
	f.failed[h], f.reason[h] = "node-1", "CRI plugin failed to load"
	if err := os.WriteFile(r.cfg.ContainerdConfig, r.orig, 0o644); err != nil { // someone drops our blocks
		t.Fatal(err)
	}
	rep := r.rec.Reconcile(ctx)
	if rep.Outcome != OutcomeApplied || !bytes.Equal(r.config(), applied) || r.sd.restarts != 2 {
		t.Fatalf("repair of the running policy: %+v (%v), restarts %d", rep, rep.Err, r.sd.restarts)
	}
	if n := strings.Count(f.Events(), "acquire"); n != 2 {
		t.Errorf("the repair restarted containerd without a slot: %s", f.Events())
	}
	opts := PlanOptions{Revert: true, Command: "revert"}
	if rep := r.rec.ReconcileWith(ctx, opts); rep.Outcome != OutcomeApplied {
		t.Fatalf("revert: %+v (%v)", rep, rep.Err)
	}
	if rep := r.rec.ReconcileWith(ctx, PlanOptions{Command: "apply"}); rep.Outcome != OutcomeHeld {
		t.Fatalf("after a revert the policy is new again, and held: %+v (%v)", rep, rep.Err)
	}
}

// A slot lost between taking it and the restart (an API outage longer
// than the lease let another node take it over) is not restarted on: the
// node gives it up, waits for another, and restarts once, on that one.
func TestFleetSlotLostBeforeTheRestart(t *testing.T) {
	t.Parallel()
	r, f := fleetRig(t)
	f.ready = []error{errors.New("restart slot lost: slot taken over: b now holds runtimeclassd-slot-0")}
	r.policy("a.toml", "[handlers.crun]\nruntime_type = \"io.containerd.runc.v2\"\n")
	rep := r.rec.Reconcile(context.Background())
	if rep.Outcome != OutcomeApplied {
		t.Fatalf("%+v (%v)", rep, rep.Err)
	}
	if got, want := f.Events(), "held? acquire held? lost release acquire restart release"; got != want {
		t.Errorf("events %q, want %q", got, want)
	}
	if r.sd.restarts != 1 {
		t.Errorf("%d restarts, want 1", r.sd.restarts)
	}
}

// A rollback that Recover finishes after a crash restarts containerd
// through a slot too (it used to restart without one: K+1).
func TestFleetRecoverRollbackTakesASlot(t *testing.T) {
	t.Parallel()
	r, f := fleetRig(t)
	r.policy("kata.toml", kataPolicy)
	ctx := context.Background()
	if rep := r.rec.Reconcile(ctx); rep.Outcome != OutcomeApplied {
		t.Fatalf("apply: %+v (%v)", rep, rep.Err)
	}
	applied := r.config()
	// A crash in the middle of a rollback, after the restore.
	if err := os.WriteFile(r.cfg.ContainerdConfig, r.orig, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := r.rec.savePending(&Pending{Rollback: true, At: r.rec.now(),
		Files: []PendingFile{{Path: r.cfg.ContainerdConfig, Source: hashOf(applied), Target: hashOf(r.orig), Existed: true}}}); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	f.events = nil
	f.mu.Unlock()
	restarts := r.sd.restarts
	r.rec.Recover(ctx)
	if r.sd.restarts != restarts+1 {
		t.Fatalf("the rollback restarted containerd %d times, want 1", r.sd.restarts-restarts)
	}
	ev := f.Events()
	if a, s := strings.Index(ev, "acquire"), strings.Index(ev, "restart"); a < 0 || a > s {
		t.Errorf("events %q: the rollback restarted containerd without a slot", ev)
	}
}
