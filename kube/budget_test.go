package kube

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const ns = "runtimeclassd-fleet"

func newTestBudget(t *testing.T, f *fakeAPI, clk Clock, node string, k int, mod ...func(*BudgetConfig)) *Budget {
	t.Helper()
	cfg := BudgetConfig{Namespace: ns, Node: node, Slots: k, Clock: clk, Rand: func() float64 { return 0.5 },
		LeaseDuration: 30 * time.Second, RenewInterval: 10 * time.Second, PollInterval: 5 * time.Second}
	for _, m := range mod {
		m(&cfg)
	}
	b, err := NewBudget(f.client(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// acquireAsync runs Acquire in a goroutine.
type pending struct {
	done atomic.Bool
	slot *Slot
	err  error
	ch   chan struct{}
}

func acquireAsync(ctx context.Context, b *Budget) *pending {
	p := &pending{ch: make(chan struct{})}
	go func() {
		p.slot, p.err = b.Acquire(ctx)
		p.done.Store(true)
		close(p.ch)
	}()
	return p
}

func mustAcquire(t *testing.T, ctx context.Context, b *Budget) *Slot {
	t.Helper()
	s, err := b.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Release(context.Background()) })
	return s
}

// TestBudgetSlots: K nodes hold the K slots; the next one waits, says so
// in its own Lease, and gets the slot a holder releases at its next look.
func TestBudgetSlots(t *testing.T) {
	t.Parallel()
	f := newFakeAPI(t)
	clk := newFakeClock()
	ctx := t.Context()
	a := mustAcquire(t, ctx, newTestBudget(t, f, clk, "a", 2))
	mustAcquire(t, ctx, newTestBudget(t, f, clk, "b", 2))
	if got := f.holders(ns); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("holders %v", got)
	}
	var waits []string
	var mu sync.Mutex
	c := newTestBudget(t, f, clk, "c", 2, func(cfg *BudgetConfig) {
		cfg.OnWait = func(w bool, reason string) {
			mu.Lock()
			defer mu.Unlock()
			waits = append(waits, map[bool]string{true: "wait: ", false: "go: "}[w]+reason)
		}
	})
	p := acquireAsync(ctx, c)
	clk.waitWaiters(t, 3) // a's and b's renewals, c's next look
	if w, reason := c.Waiting(); !w || reason != "all restart slots are held (2)" {
		t.Errorf("Waiting() = %v, %q", w, reason)
	}
	m := f.lease(ns, nodeLeaseName("c"))
	if m == nil || m.Metadata.Labels[StateLabel] != StateWaiting || m.holder() != "c" {
		t.Fatalf("c's own Lease: %+v", m)
	}
	if err := a.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Release(ctx); err != nil {
		t.Errorf("a second Release: %v", err)
	}
	clk.tick(t, 5*time.Second, p.done.Load)
	<-p.ch
	if p.err != nil {
		t.Fatal(p.err)
	}
	defer p.slot.Release(ctx)
	if got := f.holders(ns); !slices.Equal(got, []string{"b", "c"}) {
		t.Errorf("holders %v, want b and c", got)
	}
	if m := f.lease(ns, nodeLeaseName("c")); m.Metadata.Labels[StateLabel] != StateIdle {
		t.Errorf("c's own Lease after acquiring: %v", m.Metadata.Labels)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"wait: all restart slots are held (2)", "go: "}; !slices.Equal(waits, want) {
		t.Errorf("OnWait calls %q, want %q", waits, want)
	}
}

// TestBudgetRace: another node's write lands between this node's read and
// its write: the write fails on the resourceVersion (or AlreadyExists), and
// this node waits instead of believing it holds the slot.
func TestBudgetRace(t *testing.T) {
	t.Parallel()
	for _, existing := range []bool{false, true} {
		name := map[bool]string{false: "create", true: "take over a free slot"}[existing]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFakeAPI(t)
			clk := newFakeClock()
			if existing {
				f.leases[ns+"/"+SlotName(0)] = &lease{Metadata: objectMeta{Name: SlotName(0), Namespace: ns, ResourceVersion: "100",
					Labels: map[string]string{RoleLabel: RoleSlot}}, Spec: leaseSpec{LeaseDurationSeconds: ptr(int32(30))}}
			}
			raced := false
			f.beforeWrite = func(f *fakeAPI, method, key string) {
				if key != ns+"/"+SlotName(0) || raced {
					return
				}
				raced = true
				f.leases[key] = &lease{Metadata: objectMeta{Name: SlotName(0), Namespace: ns, ResourceVersion: f.nextRV(),
					Labels: map[string]string{RoleLabel: RoleSlot}}, Spec: leaseSpec{HolderIdentity: ptr("other"),
					LeaseDurationSeconds: ptr(int32(30)), RenewTime: mt(clk.Now())}}
			}
			ctx, cancel := context.WithCancel(t.Context())
			b := newTestBudget(t, f, clk, "a", 1)
			p := acquireAsync(ctx, b)
			clk.waitWaiters(t, 1)
			if p.done.Load() {
				t.Fatalf("acquired a slot another node won: %v", p.err)
			}
			if got := f.holders(ns); !slices.Equal(got, []string{"other"}) {
				t.Errorf("holders %v", got)
			}
			cancel()
			<-p.ch
			if !errors.Is(p.err, ErrGaveUp) {
				t.Errorf("Acquire after cancel: %v", p.err)
			}
		})
	}
}

// TestBudgetExpiry: a holder that died (no renewal, no release) loses its
// slot once the waiting node has seen the same version for a whole lease
// duration on its own clock, however old or new the holder's times read.
func TestBudgetExpiry(t *testing.T) {
	t.Parallel()
	for _, renewedAt := range []time.Duration{0, -time.Hour, time.Hour} {
		t.Run("holder clock "+renewedAt.String(), func(t *testing.T) {
			t.Parallel()
			f := newFakeAPI(t)
			clk := newFakeClock()
			f.leases[ns+"/"+SlotName(0)] = &lease{Metadata: objectMeta{Name: SlotName(0), Namespace: ns, ResourceVersion: "7",
				Labels: map[string]string{RoleLabel: RoleSlot}}, Spec: leaseSpec{HolderIdentity: ptr("dead"),
				LeaseDurationSeconds: ptr(int32(30)), RenewTime: mt(clk.Now().Add(renewedAt)), LeaseTransitions: ptr(int32(4))}}
			start := clk.Now()
			p := acquireAsync(t.Context(), newTestBudget(t, f, clk, "b", 1))
			clk.waitWaiters(t, 1)
			for !p.done.Load() {
				clk.tick(t, 5*time.Second, p.done.Load)
				if clk.Now().Sub(start) > 5*time.Minute {
					t.Fatal("the dead holder's slot was never taken over")
				}
			}
			<-p.ch
			if p.err != nil {
				t.Fatal(p.err)
			}
			defer p.slot.Release(context.Background())
			l := f.lease(ns, SlotName(0))
			if took := l.Spec.AcquireTime.Sub(start); took != 30*time.Second {
				t.Errorf("taken over %v after the holder's last write, want 30s", took)
			}
			if l.holder() != "b" || l.transitions() != 5 {
				t.Errorf("holder %q, transitions %d", l.holder(), l.transitions())
			}
		})
	}
}

// TestBudgetRenewal: a live holder renews every RenewInterval, so a waiting
// node never takes its slot, even when the holder's clock is an hour
// behind; a holder stopped without Release (its context ended) renews no
// more.
func TestBudgetRenewal(t *testing.T) {
	t.Parallel()
	f := newFakeAPI(t)
	clk := newFakeClock()
	ctxA, crash := context.WithCancel(t.Context())
	a := newTestBudget(t, f, skewed{clk, -time.Hour}, "a", 1)
	slot, err := a.Acquire(ctxA)
	if err != nil {
		t.Fatal(err)
	}
	p := acquireAsync(t.Context(), newTestBudget(t, f, clk, "b", 1))
	clk.waitWaiters(t, 2)
	for range 24 { // two minutes: four lease durations
		clk.tick(t, 5*time.Second, p.done.Load)
	}
	if p.done.Load() {
		t.Fatalf("b took a slot that a renews: %v", p.err)
	}
	if got := f.holders(ns); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("holders %v", got)
	}
	if n := f.count("PUT", leasesPath(ns)+"/"+SlotName(0)); n < 11 {
		t.Errorf("%d renewals in two minutes, want 12", n)
	}
	crash()
	<-slot.done
	clk.forget(10 * time.Second) // the stopped renewal's timer
	renewals := f.count("PUT", leasesPath(ns)+"/"+SlotName(0))
	start := clk.Now()
	for !p.done.Load() {
		clk.tick(t, 5*time.Second, p.done.Load)
		if clk.Now().Sub(start) > 5*time.Minute {
			t.Fatal("never taken over")
		}
	}
	<-p.ch
	defer p.slot.Release(context.Background())
	if took := clk.Now().Sub(start); took < 30*time.Second || took > 45*time.Second {
		t.Errorf("taken over %v after the holder stopped, want 30 s to 45 s", took)
	}
	if n := f.count("PUT", leasesPath(ns)+"/"+SlotName(0)) - renewals; n != 1 {
		t.Errorf("%d writes of the slot after the holder stopped, want 1 (the takeover)", n)
	}
	// The old holder finds out when it releases: it doesn't free b's slot.
	if err := slot.Release(context.Background()); err != nil {
		t.Errorf("Release of a slot taken over: %v", err)
	}
	if got := f.holders(ns); !slices.Equal(got, []string{"b"}) {
		t.Errorf("holders %v, want b", got)
	}
}

// TestBudgetLost: a holder whose slot was taken over sees it at its next
// renewal, stops renewing and leaves the new holder alone.
func TestBudgetLost(t *testing.T) {
	t.Parallel()
	f := newFakeAPI(t)
	clk := newFakeClock()
	s := mustAcquire(t, t.Context(), newTestBudget(t, f, clk, "a", 1))
	f.mu.Lock()
	l := f.leases[ns+"/"+SlotName(0)]
	l.Spec.HolderIdentity, l.Metadata.ResourceVersion = ptr("usurper"), f.nextRV()
	f.mu.Unlock()
	clk.waitWaiters(t, 1)
	clk.Advance(10 * time.Second)
	<-s.done
	if err := s.Lost(); err == nil || !strings.Contains(err.Error(), "usurper") {
		t.Errorf("Lost() = %v", err)
	}
	if err := s.Release(context.Background()); err != nil {
		t.Error(err)
	}
	if got := f.holders(ns); !slices.Equal(got, []string{"usurper"}) {
		t.Errorf("holders %v", got)
	}
}

// TestBudgetOwnStaleHold: a node that crashed holding a slot takes it back
// at once when it starts again.
func TestBudgetOwnStaleHold(t *testing.T) {
	t.Parallel()
	f := newFakeAPI(t)
	clk := newFakeClock()
	f.leases[ns+"/"+SlotName(0)] = &lease{Metadata: objectMeta{Name: SlotName(0), Namespace: ns, ResourceVersion: "3",
		Labels: map[string]string{RoleLabel: RoleSlot}}, Spec: leaseSpec{HolderIdentity: ptr("a"), LeaseDurationSeconds: ptr(int32(30))}}
	s := mustAcquire(t, t.Context(), newTestBudget(t, f, clk, "a", 1))
	if s.Name != SlotName(0) {
		t.Errorf("slot %q", s.Name)
	}

	// With free slots beside it, the node still takes the one it holds,
	// never a second one (each look starts at a random free slot).
	f = newFakeAPI(t)
	f.leases[ns+"/"+SlotName(2)] = &lease{Metadata: objectMeta{Name: SlotName(2), Namespace: ns, ResourceVersion: "3",
		Labels: map[string]string{RoleLabel: RoleSlot}}, Spec: leaseSpec{HolderIdentity: ptr("a"), LeaseDurationSeconds: ptr(int32(30))}}
	for i := range 10 {
		if s := mustAcquire(t, t.Context(), newTestBudget(t, f, clk, "a", 3)); s.Name != SlotName(2) {
			t.Fatalf("look %d: took %q while holding %q", i, s.Name, SlotName(2))
		}
		if got := f.holders(ns); !slices.Equal(got, []string{"a"}) {
			t.Fatalf("look %d: holders %v, want a once", i, got)
		}
	}
}

// TestBudgetReleaseLeftovers: a node whose earlier run was killed holding
// a slot, and that needs none now, frees it at once instead of leaving the
// fleet to wait out its lease; other nodes' slots stay theirs.
func TestBudgetReleaseLeftovers(t *testing.T) {
	t.Parallel()
	f := newFakeAPI(t)
	clk := newFakeClock()
	ctx := t.Context()
	for i, h := range []string{"a", "b", "a"} {
		f.leases[ns+"/"+SlotName(i)] = &lease{Metadata: objectMeta{Name: SlotName(i), Namespace: ns, ResourceVersion: "3",
			Labels: map[string]string{RoleLabel: RoleSlot}}, Spec: leaseSpec{HolderIdentity: ptr(h), LeaseDurationSeconds: ptr(int32(30))}}
	}
	n, err := newTestBudget(t, f, clk, "a", 3).ReleaseLeftovers(ctx)
	if err != nil || n != 2 {
		t.Fatalf("ReleaseLeftovers: %d, %v; want 2 slots freed", n, err)
	}
	if got := f.holders(ns); !slices.Equal(got, []string{"b"}) {
		t.Errorf("holders %v, want b only", got)
	}
	// Another node gets a freed slot at its first look, without waiting
	// out a's lease.
	if s := mustAcquire(t, ctx, newTestBudget(t, f, clk, "c", 3)); s.Name == SlotName(1) {
		t.Errorf("c took b's slot")
	}
}

// TestBudgetUnreachable: with the API server down, "wait" waits (and says
// why) until the context ends; "proceed" proceeds without a slot once the
// API server has been unreachable for ProceedAfter.
func TestBudgetUnreachable(t *testing.T) {
	t.Parallel()
	for _, policy := range []string{Wait, Proceed} {
		t.Run(policy, func(t *testing.T) {
			t.Parallel()
			f := newFakeAPI(t)
			f.fail = func(*http.Request) int { return http.StatusServiceUnavailable }
			clk := newFakeClock()
			b := newTestBudget(t, f, clk, "a", 1, func(c *BudgetConfig) { c.OnUnreachable = policy })
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			p := acquireAsync(ctx, b)
			clk.waitWaiters(t, 1)
			if w, reason := b.Waiting(); !w || !strings.Contains(reason, "unreachable") {
				t.Errorf("Waiting() = %v, %q", w, reason)
			}
			start := clk.Now()
			for !p.done.Load() && clk.Now().Sub(start) < 10*time.Minute {
				clk.tick(t, time.Second, p.done.Load)
			}
			switch policy {
			case Wait:
				if p.done.Load() {
					t.Fatalf("Acquire returned with the API server down: %v", p.err)
				}
				cancel()
				<-p.ch
				if !errors.Is(p.err, ErrGaveUp) {
					t.Errorf("err %v", p.err)
				}
			case Proceed:
				<-p.ch
				if p.err != nil || !p.slot.Unaccounted() {
					t.Fatalf("slot %+v, err %v", p.slot, p.err)
				}
				if d := clk.Now().Sub(start); d < 30*time.Second || d > 40*time.Second {
					t.Errorf("proceeded after %v unreachable, want 30 s (ProceedAfter = the lease duration)", d)
				}
				if err := p.slot.Release(ctx); err != nil {
					t.Error(err)
				}
			}
		})
	}
}

// TestBudgetSpreads: nodes that look at once start at different slots.
func TestBudgetSpreads(t *testing.T) {
	t.Parallel()
	f := newFakeAPI(t)
	clk := newFakeClock()
	for i, r := range []float64{0, 0.5, 0.99} {
		b := newTestBudget(t, f, clk, string(rune('a'+i)), 3, func(c *BudgetConfig) { c.Rand = func() float64 { return r } })
		mustAcquire(t, t.Context(), b)
	}
	if n := f.count("POST", leasesPath(ns)); n != 3 {
		t.Errorf("%d creates for 3 nodes and 3 slots, want 3 (no collision)", n)
	}
}

// TestBudgetReleaseRetries: a release the API server throttles is retried,
// so the slot doesn't sit idle for a lease.
func TestBudgetReleaseRetries(t *testing.T) {
	t.Parallel()
	f := newFakeAPI(t)
	clk := newFakeClock()
	s := mustAcquire(t, t.Context(), newTestBudget(t, f, clk, "a", 1))
	clk.waitWaiters(t, 1) // the renewal's timer
	var throttled atomic.Int32
	f.fail = func(r *http.Request) int {
		if r.Method == http.MethodPut && throttled.Add(1) <= 2 {
			return http.StatusTooManyRequests
		}
		return 0
	}
	done := make(chan error, 1)
	go func() { done <- s.Release(context.Background()) }()
	<-s.done
	clk.forget(10 * time.Second)
	for range 2 {
		clk.Advance(clk.waitWaiters(t, 1)[0])
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := f.holders(ns); len(got) != 0 {
		t.Errorf("holders after a throttled release: %v", got)
	}
	if n := throttled.Load(); n != 3 {
		t.Errorf("%d release attempts, want 3", n)
	}
}

// TestBudgetThrottled: a waiting node that the API server throttles looks
// less often (up to 8 poll intervals), and as often as before once it is
// answered again.
func TestBudgetThrottled(t *testing.T) {
	t.Parallel()
	f := newFakeAPI(t)
	clk := newFakeClock()
	mustAcquire(t, t.Context(), newTestBudget(t, f, clk, "a", 1))
	clk.waitWaiters(t, 1)
	clk.forget(10 * time.Second) // a's renewals: not this test's concern
	var throttle atomic.Bool
	throttle.Store(true)
	f.fail = func(r *http.Request) int {
		if throttle.Load() && r.Method == http.MethodGet {
			return http.StatusTooManyRequests
		}
		return 0
	}
	b := newTestBudget(t, f, clk, "b", 1)
	p := acquireAsync(t.Context(), b)
	var waits []time.Duration
	for i := range 6 {
		ds := clk.waitWaiters(t, 1)
		waits = append(waits, ds[0])
		if i == 3 {
			throttle.Store(false)
		}
		clk.tick(t, ds[0], p.done.Load)
	}
	want := []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second, 40 * time.Second, 20 * time.Second, 10 * time.Second}
	if !equalDurations(waits, want) {
		t.Errorf("waits %v, want %v", waits, want)
	}
}

// TestBudgetOutageLongerThanLease: an API outage longer than the lease,
// while a holds the slot and b waits for it. b's failed looks don't
// count as a's silence, and a retries its renewal every second or two, so
// when the API server is back b does not take a's slot (it used to, at
// its first look); a's slot is not Ready while no renewal got through,
// and is again after one did.
func TestBudgetOutageLongerThanLease(t *testing.T) {
	t.Parallel()
	for _, outage := range []time.Duration{31 * time.Second, 45 * time.Second, 2 * time.Minute, 10 * time.Minute} {
		t.Run(outage.String(), func(t *testing.T) {
			t.Parallel()
			f := newFakeAPI(t)
			clk := newFakeClock()
			a := mustAcquire(t, t.Context(), newTestBudget(t, f, clk, "a", 1))
			p := acquireAsync(t.Context(), newTestBudget(t, f, clk, "b", 1))
			clk.waitWaiters(t, 2)
			clk.tick(t, 5*time.Second, p.done.Load) // b has looked once
			var down atomic.Bool
			f.fail = func(*http.Request) int {
				if down.Load() {
					return http.StatusServiceUnavailable
				}
				return 0
			}
			down.Store(true)
			start := clk.Now()
			for clk.Now().Sub(start) < outage {
				clk.tick(t, time.Second, p.done.Load)
			}
			ctx, cancel := context.WithTimeout(t.Context(), time.Millisecond)
			err := a.Ready(ctx)
			cancel()
			if err == nil || !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Ready after an outage of %v without a renewal: %v, want it to wait", outage, err)
			}
			down.Store(false)
			back := clk.Now()
			for clk.Now().Sub(back) < 2*time.Minute {
				clk.tick(t, time.Second, p.done.Load)
				if p.done.Load() {
					t.Fatalf("b took a's slot %v after an outage of %v: %v", clk.Now().Sub(back), outage, p.err)
				}
			}
			if err := a.Ready(t.Context()); err != nil {
				t.Errorf("Ready once renewals get through: %v", err)
			}
			if got := f.holders(ns); !slices.Equal(got, []string{"a"}) {
				t.Errorf("holders %v, want a", got)
			}
			// And b does get it once a is gone: a dead holder's slot is
			// still taken over, a lease after b could first see it.
			if err := a.Release(context.Background()); err != nil {
				t.Fatal(err)
			}
			clk.forget(10 * time.Second) // a's stopped renewal's timer
			for !p.done.Load() {
				clk.tick(t, time.Second, p.done.Load)
			}
			<-p.ch
			if p.err != nil {
				t.Fatal(p.err)
			}
			p.slot.Release(context.Background())
		})
	}
}

// TestBudgetReadyLost: a slot taken over is not Ready.
func TestBudgetReadyLost(t *testing.T) {
	t.Parallel()
	f := newFakeAPI(t)
	clk := newFakeClock()
	s := mustAcquire(t, t.Context(), newTestBudget(t, f, clk, "a", 1))
	if err := s.Ready(t.Context()); err != nil {
		t.Fatalf("Ready at once: %v", err)
	}
	f.mu.Lock()
	l := f.leases[ns+"/"+SlotName(0)]
	l.Spec.HolderIdentity, l.Metadata.ResourceVersion = ptr("usurper"), f.nextRV()
	f.mu.Unlock()
	clk.waitWaiters(t, 1)
	clk.Advance(10 * time.Second)
	<-s.done // the renewal found out, and stopped
	if err := s.Ready(t.Context()); !errors.Is(err, ErrSlotLost) || !strings.Contains(err.Error(), "usurper") {
		t.Errorf("Ready = %v, want ErrSlotLost naming usurper", err)
	}
}

// TestBudgetMisconfiguredNeverProceeds: a token file that is missing, or
// a CA that doesn't sign the server's certificate, is this node's own
// error, not the API server being unreachable: with on_api_unreachable =
// "proceed" the node still waits (it used to proceed without a slot, so
// every node with that configuration restarted at once), and says why.
func TestBudgetMisconfiguredNeverProceeds(t *testing.T) {
	t.Parallel()
	f := newFakeAPI(t)
	other := newTestCA(t)
	for name, cfg := range map[string]*Config{
		"missing token file": {Path: "test", Server: f.srv.URL, CA: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.srv.Certificate().Raw}),
			TokenFile: filepath.Join(t.TempDir(), "token")},
		"wrong CA": {Path: "test", Server: f.srv.URL, CA: other.pem, Token: "t0ken"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c, err := NewClient(cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.Close)
			clk := newFakeClock()
			b, err := NewBudget(c, BudgetConfig{Namespace: ns, Node: "a", Slots: 1, Clock: clk, Rand: func() float64 { return 0.5 },
				LeaseDuration: 30 * time.Second, PollInterval: 5 * time.Second, OnUnreachable: Proceed})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			p := acquireAsync(ctx, b)
			clk.waitWaiters(t, 1)
			start := clk.Now()
			for !p.done.Load() && clk.Now().Sub(start) < 10*time.Minute {
				clk.tick(t, 5*time.Second, p.done.Load)
			}
			if p.done.Load() {
				t.Fatalf("Acquire returned: slot %+v, err %v", p.slot, p.err)
			}
			if w, reason := b.Waiting(); !w || !strings.Contains(reason, "can't be used as configured") {
				t.Errorf("Waiting() = %v, %q", w, reason)
			}
			cancel()
			<-p.ch
		})
	}
}

// TestBudgetMissingNamespace: a fleet namespace that doesn't exist (the
// API server lists nothing in it, and refuses every create with 404) is
// said as such, after one list and one create a look (it used to be
// "all restart slots are held", at 12 requests a look).
func TestBudgetMissingNamespace(t *testing.T) {
	t.Parallel()
	f := newFakeAPI(t)
	f.fail = func(r *http.Request) int {
		if r.Method == http.MethodPost {
			return http.StatusNotFound
		}
		return 0
	}
	clk := newFakeClock()
	b := newTestBudget(t, f, clk, "a", 3)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	p := acquireAsync(ctx, b)
	clk.waitWaiters(t, 1)
	if w, reason := b.Waiting(); !w || !strings.Contains(reason, `the fleet's namespace "`+ns+`" does not exist`) {
		t.Errorf("Waiting() = %v, %q", w, reason)
	}
	if n := f.total(); n != 2 {
		t.Errorf("%d requests for one look, want 2 (a list and a create)", n)
	}
	cancel()
	<-p.ch
}

// TestBudgetKeepsOthersMetadata: what this package writes back on a
// replace keeps the metadata it doesn't model (finalizers, owner
// references) and other tools' labels and annotations, on slots and on
// the node's own Lease (whole-object PUTs used to drop them).
func TestBudgetKeepsOthersMetadata(t *testing.T) {
	t.Parallel()
	in := []byte(`{"name":"runtimeclassd-slot-0","namespace":"x","resourceVersion":"7","labels":{"runtimeclassd.io/role":"slot","team":"infra"},"finalizers":["example.com/keep"],"ownerReferences":[{"apiVersion":"v1","kind":"ConfigMap","name":"owner","uid":"u1"}],"uid":"abc"}`)
	var m objectMeta
	if err := json.Unmarshal(in, &m); err != nil {
		t.Fatal(err)
	}
	m.Labels = withKeys(m.Labels, map[string]string{RoleLabel: RoleSlot})
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{`"finalizers":["example.com/keep"]`, `"ownerReferences":[{"apiVersion":"v1","kind":"ConfigMap","name":"owner","uid":"u1"}]`, `"uid":"abc"`, `"team":"infra"`, `"resourceVersion":"7"`} {
		if !strings.Contains(string(out), w) {
			t.Errorf("written back without %s: %s", w, out)
		}
	}

	// Through the budget: a slot and a node Lease carrying another tool's
	// label and annotation keep them when taken, released and marked.
	f := newFakeAPI(t)
	clk := newFakeClock()
	f.leases[ns+"/"+SlotName(0)] = &lease{Metadata: objectMeta{Name: SlotName(0), Namespace: ns, ResourceVersion: "3",
		Labels: map[string]string{RoleLabel: RoleSlot, "team": "infra"}}, Spec: leaseSpec{LeaseDurationSeconds: ptr(int32(30))}}
	f.leases[ns+"/"+nodeLeaseName("b")] = &lease{Metadata: objectMeta{Name: nodeLeaseName("b"), Namespace: ns, ResourceVersion: "4",
		Labels: map[string]string{RoleLabel: RoleNode, StateLabel: StateIdle, "team": "infra"}, Annotations: map[string]string{"example.com/note": "n"}}}
	s := mustAcquire(t, t.Context(), newTestBudget(t, f, clk, "a", 1))
	p := acquireAsync(t.Context(), newTestBudget(t, f, clk, "b", 1))
	clk.waitWaiters(t, 2)
	if err := s.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	clk.forget(10 * time.Second)
	for !p.done.Load() {
		clk.tick(t, 5*time.Second, p.done.Load)
	}
	<-p.ch
	p.slot.Release(context.Background())
	if l := f.lease(ns, SlotName(0)); l.Metadata.Labels["team"] != "infra" {
		t.Errorf("slot labels %v", l.Metadata.Labels)
	}
	if l := f.lease(ns, nodeLeaseName("b")); l.Metadata.Labels["team"] != "infra" || l.Metadata.Annotations["example.com/note"] != "n" || l.Metadata.Labels[StateLabel] != StateIdle {
		t.Errorf("node Lease labels %v, annotations %v", l.Metadata.Labels, l.Metadata.Annotations)
	}
}

// TestBudgetRetryAfter: a waiter throttled with Retry-After waits at
// least that long before it looks again (it used to come back after its
// own backoff, competing with the holders' renewals).
func TestBudgetRetryAfter(t *testing.T) {
	t.Parallel()
	f := newFakeAPI(t)
	clk := newFakeClock()
	f.retryAfter = "90"
	f.fail = func(r *http.Request) int {
		if r.Method == http.MethodGet {
			return http.StatusTooManyRequests
		}
		return 0
	}
	b := newTestBudget(t, f, clk, "b", 1)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	p := acquireAsync(ctx, b)
	if ds := clk.waitWaiters(t, 1); ds[0] != 90*time.Second {
		t.Errorf("wait after a 429 with Retry-After: 90: %v", ds[0])
	}
	cancel()
	<-p.ch
}

// TestBudgetSameNameNodes: two machines registered under one node name,
// with K = 1, are two holders (their identities differ by machine ID):
// the second waits instead of taking the first's slot as its own, and
// its ReleaseLeftovers leaves the first's slot alone (both used to hold
// slot 0, and either freed the other's).
func TestBudgetSameNameNodes(t *testing.T) {
	t.Parallel()
	f := newFakeAPI(t)
	clk := newFakeClock()
	one := newTestBudget(t, f, clk, "a", 1, func(c *BudgetConfig) { c.Identity = "a@111111111111" })
	two := newTestBudget(t, f, clk, "a", 1, func(c *BudgetConfig) { c.Identity = "a@222222222222" })
	mustAcquire(t, t.Context(), one)
	if n, err := two.ReleaseLeftovers(t.Context()); err != nil || n != 0 {
		t.Errorf("the other machine's ReleaseLeftovers freed %d (%v), want 0", n, err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	p := acquireAsync(ctx, two)
	clk.waitWaiters(t, 2)
	if p.done.Load() {
		t.Fatalf("a second machine of the same name took the slot: %v", p.err)
	}
	if w, _ := two.Waiting(); !w {
		t.Error("the second machine is not waiting")
	}
	if got := f.holders(ns); !slices.Equal(got, []string{"a@111111111111"}) {
		t.Errorf("holders %v", got)
	}
	cancel()
	<-p.ch
}
