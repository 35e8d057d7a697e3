package kube

// Regression tests for what an attacker-briefed review of the budget
// found past the outage test: a deleted slot, writes that fail while reads
// work, a partition of the holder shorter than the lease, throttled
// renewals.

import (
	"context"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// gatedClient is a client of f through a door of its own: gate may answer
// a request itself (code != 0), as a partition or a throttle of this one
// node would.
func (f *fakeAPI) gatedClient(t *testing.T, gate func(r *http.Request) (code int, retryAfter string)) *Client {
	t.Helper()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if code, ra := gate(r); code != 0 {
			if ra != "" {
				w.Header().Set("Retry-After", ra)
			}
			f.status(w, code, "InternalError", "injected at the node's door")
			return
		}
		f.serve(w, r)
	}))
	t.Cleanup(srv.Close)
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	c, err := NewClient(&Config{Path: "test", Server: srv.URL, CA: caPEM, Token: "t0ken"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func budgetOn(t *testing.T, c *Client, clk Clock, node string) *Budget {
	t.Helper()
	b, err := NewBudget(c, BudgetConfig{Namespace: ns, Node: node, Slots: 1, Clock: clk, Rand: func() float64 { return 0.5 },
		LeaseDuration: 30 * time.Second, RenewInterval: 10 * time.Second, PollInterval: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readySoon(s *Slot) error {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	return s.Ready(ctx)
}

// watchHolds ticks the clock for d and fails if p (a waiter) gets the slot.
func watchHolds(t *testing.T, clk *fakeClock, p *pending, d time.Duration, what string) {
	t.Helper()
	start := clk.Now()
	for clk.Now().Sub(start) < d {
		clk.tick(t, time.Second, p.done.Load)
		if p.done.Load() {
			t.Fatalf("%s: the waiter took the slot %v in: %v", what, clk.Now().Sub(start), p.err)
		}
	}
}

// An operator deletes the slot a holder restarts under: the waiter that
// saw it held counts it held for a lease more (it used to create it at its
// next look, K+1), and the old holder's Ready says the slot is lost.
func TestBudgetDeletedSlot(t *testing.T) {
	t.Parallel()
	f := newFakeAPI(t)
	clk := newFakeClock()
	actx, stopRenewing := context.WithCancel(t.Context())
	a := mustAcquire(t, actx, newTestBudget(t, f, clk, "a", 1))
	p := acquireAsync(t.Context(), newTestBudget(t, f, clk, "b", 1))
	clk.waitWaiters(t, 2)
	clk.tick(t, 5*time.Second, p.done.Load) // b has seen a hold it
	// a's renewals would find the slot gone at once; this is about the
	// waiter, so they stop (a's Ready still asks the API server itself).
	stopRenewing()
	<-a.done
	clk.forget(10 * time.Second)
	f.mu.Lock()
	delete(f.leases, ns+"/"+SlotName(0))
	f.mu.Unlock()
	watchHolds(t, clk, p, 25*time.Second, "a deleted slot")
	// The answer is an event (the API server says 404), not a timeout: a
	// bound long enough for a slow machine.
	rctx, cancel := context.WithTimeout(t.Context(), waitBoundKube)
	defer cancel()
	if err := a.Ready(rctx); !errors.Is(err, ErrSlotLost) {
		t.Errorf("Ready of a deleted slot: %v, want ErrSlotLost", err)
	}
	for !p.done.Load() {
		clk.tick(t, time.Second, p.done.Load)
	}
	<-p.ch
	if p.err != nil {
		t.Fatal(p.err)
	}
	p.slot.Release(context.Background())
}

// Writes fail while reads work (etcd out of space, a failing webhook), for
// longer than the lease: the waiter's failed takes count as an outage as
// much as a failed list (it used to take a's slot at the first write that
// worked again).
func TestBudgetWriteOnlyOutage(t *testing.T) {
	t.Parallel()
	f := newFakeAPI(t)
	clk := newFakeClock()
	var down atomic.Bool
	f.fail = func(r *http.Request) int {
		if down.Load() && r.Method != http.MethodGet {
			return http.StatusInternalServerError
		}
		return 0
	}
	mustAcquire(t, t.Context(), newTestBudget(t, f, clk, "a", 1))
	p := acquireAsync(t.Context(), newTestBudget(t, f, clk, "b", 1))
	clk.waitWaiters(t, 2)
	clk.tick(t, 5*time.Second, p.done.Load)
	down.Store(true)
	watchHolds(t, clk, p, time.Minute, "during the write outage")
	down.Store(false)
	watchHolds(t, clk, p, 2*time.Minute, "after the write outage")
}

// The holder alone is cut off, for less than the lease: Ready, which
// renews there and then, doesn't pass until a renewal lands (it used to
// pass on the age of the last one, and the waiter then took the slot
// mid-restart).
func TestBudgetReadyRenews(t *testing.T) {
	t.Parallel()
	f := newFakeAPI(t)
	clk := newFakeClock()
	var cut atomic.Bool
	ca := f.gatedClient(t, func(*http.Request) (int, string) {
		if cut.Load() {
			return http.StatusServiceUnavailable, ""
		}
		return 0, ""
	})
	a := mustAcquire(t, t.Context(), budgetOn(t, ca, clk, "a"))
	p := acquireAsync(t.Context(), newTestBudget(t, f, clk, "b", 1))
	clk.waitWaiters(t, 2)
	clk.tick(t, 9*time.Second, p.done.Load)
	cut.Store(true)
	clk.tick(t, 10*time.Second, p.done.Load)
	if err := readySoon(a); err == nil {
		t.Fatal("Ready passed while the holder could not renew")
	}
	cut.Store(false)
	ctx, cancel := context.WithTimeout(t.Context(), waitBoundKube)
	defer cancel()
	if err := a.Ready(ctx); err != nil {
		t.Fatalf("Ready once the holder reaches the API server: %v", err)
	}
	watchHolds(t, clk, p, 40*time.Second, "after Ready renewed")
}

// Only the holder's renewals are throttled (429, Retry-After: 60): its
// retry comes before the slot stops being surely its own, not when the
// server says, and the waiter never takes a live slot (it used to, 10 s
// into a restart).
func TestBudgetThrottledRenewal(t *testing.T) {
	t.Parallel()
	f := newFakeAPI(t)
	clk := newFakeClock()
	var throttled atomic.Bool
	ca := f.gatedClient(t, func(r *http.Request) (int, string) {
		if throttled.Load() && r.Method == http.MethodPut {
			return http.StatusTooManyRequests, "60"
		}
		return 0, ""
	})
	mustAcquire(t, t.Context(), budgetOn(t, ca, clk, "a"))
	p := acquireAsync(t.Context(), newTestBudget(t, f, clk, "b", 1))
	clk.waitWaiters(t, 2)
	throttled.Store(true)
	clk.tick(t, 10*time.Second, p.done.Load) // a's renewal gets 429, Retry-After: 60
	for _, d := range clk.waitWaiters(t, 2) {
		if d > 10*time.Second {
			t.Errorf("a timer of %v after a throttled renewal: the retry would come after the slot stops being surely a's (10 s from now)", d)
		}
	}
	watchHolds(t, clk, p, 15*time.Second, "while a's renewals are throttled")
	throttled.Store(false)
	watchHolds(t, clk, p, time.Minute, "after the throttling")
}
