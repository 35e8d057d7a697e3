package kube

import (
	"context"
	"math/rand/v2"
	"time"
)

// Clock is the time this package reads and waits on. Tests give a fake one
// that moves only when told to.
type Clock interface {
	Now() time.Time
	// After sends on the channel once d has passed.
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// sleep waits for d on clk, or until ctx ends.
func sleep(ctx context.Context, clk Clock, d time.Duration) error {
	select {
	case <-clk.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// backoff is an exponential backoff with full jitter in its upper half:
// each wait is in [d/2, d), and d doubles up to max.
type backoff struct {
	min, max time.Duration
	next     time.Duration
	rand     func() float64
}

func newBackoff(min, max time.Duration, rnd func() float64) *backoff {
	if rnd == nil {
		rnd = rand.Float64
	}
	return &backoff{min: min, max: max, next: min, rand: rnd}
}

// step returns the next wait and doubles the one after.
func (b *backoff) step() time.Duration {
	d := b.next
	b.next = min(b.next*2, b.max)
	return d/2 + time.Duration(b.rand()*float64(d/2))
}

func (b *backoff) reset() { b.next = b.min }

// jitter returns d scaled by a factor in [0.5, 1.5).
func jitter(d time.Duration, rnd func() float64) time.Duration {
	return d/2 + time.Duration(rnd()*float64(d))
}
