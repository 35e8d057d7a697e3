package kube

import (
	"context"
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
}

// Acquire blocks until this node holds a restart slot, or ctx ends.
// release gives the slot back; it never blocks for long and may be called
// more than once.
func (f *Fleet) Acquire(ctx context.Context) (release func(), err error) {
	s, err := f.Budget.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	timeout := f.ReleaseTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	return func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		defer cancel()
		if err := s.Release(rctx); err != nil {
			f.Budget.cfg.Log.Warn("restart slot not released; it expires by itself", "err", err)
		}
	}, nil
}

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
	if err != nil || !ok {
		return "", "", false, err
	}
	return fl.Node, fl.Reason, true, nil
}
