package kube

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Fleet is the restart budget and the failure record together, in the
// terms the daemon consumes: hold a slot around a restart, record a
// rolled-back policy, and ask whether a policy failed elsewhere.
type Fleet struct {
	Budget   *Budget
	Failures *Failures
	Node     string
	// ReleaseTimeout bounds the release of a slot (default 10 s); a slot
	// that can't be released expires by itself.
	ReleaseTimeout time.Duration

	mu   sync.Mutex
	held *Slot // the slot Acquire returned last, until it is released
}

// Acquire blocks until this node holds a restart slot, or ctx ends.
// release gives the slot back; it never blocks for long and may be called
// more than once.
func (f *Fleet) Acquire(ctx context.Context) (release func(), err error) {
	s, err := f.Budget.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.held = s
	f.mu.Unlock()
	timeout := f.ReleaseTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	return func() {
		f.mu.Lock()
		if f.held == s {
			f.held = nil
		}
		f.mu.Unlock()
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		defer cancel()
		if err := s.Release(rctx); err != nil {
			f.Budget.cfg.Log.Warn("restart slot not released; it expires by itself", "err", err)
		}
	}, nil
}

// Ready returns nil once the slot held is surely still this node's
// (Slot.Ready: it waits while renewals fail), or an error wrapping
// ErrSlotLost if it was taken over or none is held. Call it immediately
// before restarting containerd.
func (f *Fleet) Ready(ctx context.Context) error {
	f.mu.Lock()
	s := f.held
	f.mu.Unlock()
	if s == nil {
		return fmt.Errorf("%w: no restart slot is held", ErrSlotLost)
	}
	return s.Ready(ctx)
}

// unreachableError marks an error of Held as the API server being
// unreachable (Unreachable), for callers that don't link this package:
// the daemon's on_api_unreachable = "proceed" passes over these only.
type unreachableError struct{ error }

func (e unreachableError) Unwrap() error     { return e.error }
func (e unreachableError) Unreachable() bool { return true }

// ReleaseLeftovers frees the slots an earlier run of this node's daemon
// held and never released (Budget.ReleaseLeftovers).
func (f *Fleet) ReleaseLeftovers(ctx context.Context) (int, error) {
	return f.Budget.ReleaseLeftovers(ctx)
}

// Failed records that policy hash failed on this node.
func (f *Fleet) Failed(ctx context.Context, hash, reason string) error {
	return f.Failures.Record(ctx, hash, f.Node, reason)
}

// Held reports whether policy hash failed on some node, which one and why.
func (f *Fleet) Held(ctx context.Context, hash string) (node, reason string, held bool, err error) {
	fl, ok, err := f.Failures.Lookup(ctx, hash)
	if err != nil && Unreachable(err) {
		return "", "", false, unreachableError{err}
	}
	if err != nil || !ok {
		return "", "", false, err
	}
	return fl.Node, fl.Reason, true, nil
}
