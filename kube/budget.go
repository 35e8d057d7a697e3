package kube

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Names and labels of the fleet's objects in the budget's namespace.
const (
	// RoleLabel marks the Leases this package manages: RoleSlot or RoleNode.
	RoleLabel = "runtimeclassd.io/role"
	RoleSlot  = "slot"
	RoleNode  = "node"
	// StateLabel is a node Lease's state: StateWaiting or StateIdle.
	StateLabel   = "runtimeclassd.io/state"
	StateWaiting = "waiting"
	StateIdle    = "idle"
	// ReasonAnnotation says why a node waits; SinceAnnotation since when.
	ReasonAnnotation = "runtimeclassd.io/reason"
	SinceAnnotation  = "runtimeclassd.io/since"

	slotPrefix = "runtimeclassd-slot-"
	nodePrefix = "runtimeclassd-node-"
)

// SlotName is the name of slot Lease i (from 0).
func SlotName(i int) string { return slotPrefix + strconv.Itoa(i) }

// nodeLeaseName is the name of a node's own Lease, which says whether it
// waits for a slot. Lease names are DNS subdomains of at most 253
// characters, as node names are; a name too long for the prefix is cut and
// made unique with a hash.
func nodeLeaseName(node string) string {
	name := nodePrefix + node
	if len(name) <= 253 {
		return name
	}
	sum := sha256.Sum256([]byte(node))
	return name[:253-17] + "-" + hex.EncodeToString(sum[:8])
}

// Unreachable policies: what a node does when it can't ask the API server
// for a slot.
const (
	Wait    = "wait"
	Proceed = "proceed"
)

// BudgetConfig configures a restart budget. Zero durations take defaults.
type BudgetConfig struct {
	Namespace string
	Node      string // this node's name: its own Lease, and the default Identity
	// Identity is this node's holder identity in the slot Leases: unique
	// per node, so that two nodes registered under one name never both
	// hold a slot they think is theirs, and one never frees the other's
	// (the daemon uses NAME@MACHINE-ID). Default: Node.
	Identity string
	Slots    int // K: at most K nodes restart at once (default 1)
	// LeaseDuration is how long a slot outlives its holder's last renewal
	// (default 30 s); the holder renews every RenewInterval (default a
	// third of it).
	LeaseDuration time.Duration
	RenewInterval time.Duration
	// PollInterval is the mean wait between two looks at the slots while
	// waiting, jittered by ±50% (default 5 s).
	PollInterval time.Duration
	// OnUnreachable is Wait (the default) or Proceed: whether a node that
	// has failed to reach the API server for ProceedAfter (default
	// LeaseDuration) restarts without a slot.
	OnUnreachable string
	ProceedAfter  time.Duration
	// OnWait, if set, is told when the node starts and stops waiting, and
	// why: for a metric and the status line.
	OnWait func(waiting bool, reason string)
	Log    *slog.Logger
	Clock  Clock
	Rand   func() float64 // in [0, 1); nil is math/rand
}

// Budget is a restart budget of K slot Leases in a namespace: a node holds
// one while it restarts containerd, renewing it until it releases it.
//
// A slot is taken only by a write at the resourceVersion that was read (a
// create for a slot that doesn't exist yet, a replace for a free or
// expired one), so two nodes never both take it: the second write fails
// with a conflict. A slot is expired when its holder has not renewed it
// for its leaseDurationSeconds as measured by the node that wants it, on
// its own clock, from when it first saw that version of the Lease: the
// holder's clock is never compared with anyone else's, so clock skew
// between nodes does not matter (as in client-go's leader election).
type Budget struct {
	client *Client
	cfg    BudgetConfig

	mu       sync.Mutex
	observed map[string]observation // slot name -> when this version was first seen
	// blind is set when a look at the slots failed: what was observed
	// before no longer says since when a holder has not renewed (it may
	// have renewed, or tried to, while this node could not see), so the
	// next look that succeeds starts every slot's clock afresh.
	blind   bool
	waiting bool
	reason  string
	marker  *lease // this node's Lease, as last written
}

type observation struct {
	version string // "" once the Lease is seen gone
	at      time.Time
	holder  string
}

// goneRecently reports whether slot name, missing from the list now, was
// seen held by another node and went missing less than a lease ago.
func (b *Budget) goneRecently(name string, now time.Time) bool {
	b.mu.Lock()
	o, ok := b.observed[name]
	b.mu.Unlock()
	if !ok || o.version != "" || o.holder == "" || o.holder == b.cfg.Identity {
		return false
	}
	if now.Sub(o.at) < b.cfg.LeaseDuration {
		return true
	}
	b.mu.Lock()
	delete(b.observed, name)
	b.mu.Unlock()
	return false
}

// NewBudget returns a restart budget.
func NewBudget(c *Client, cfg BudgetConfig) (*Budget, error) {
	if cfg.Namespace == "" || cfg.Node == "" {
		return nil, errors.New("restart budget: a namespace and a node name are needed")
	}
	if cfg.Identity == "" {
		cfg.Identity = cfg.Node
	}
	if cfg.Slots <= 0 {
		cfg.Slots = 1
	}
	if cfg.LeaseDuration <= 0 {
		cfg.LeaseDuration = 30 * time.Second
	}
	if cfg.LeaseDuration < time.Second {
		return nil, fmt.Errorf("restart budget: lease duration %v: at least 1s", cfg.LeaseDuration)
	}
	if cfg.RenewInterval <= 0 {
		cfg.RenewInterval = cfg.LeaseDuration / 3
	}
	if cfg.RenewInterval >= cfg.LeaseDuration {
		return nil, fmt.Errorf("restart budget: renew interval %v must be shorter than the lease duration %v", cfg.RenewInterval, cfg.LeaseDuration)
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 5 * time.Second
	}
	switch cfg.OnUnreachable {
	case "":
		cfg.OnUnreachable = Wait
	case Wait, Proceed:
	default:
		return nil, fmt.Errorf("restart budget: on_api_unreachable %q: want %q or %q", cfg.OnUnreachable, Wait, Proceed)
	}
	if cfg.ProceedAfter <= 0 {
		cfg.ProceedAfter = cfg.LeaseDuration
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = realClock{}
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Float64
	}
	return &Budget{client: c, cfg: cfg, observed: map[string]observation{}}, nil
}

// Waiting reports whether Acquire is waiting for a slot, and why.
func (b *Budget) Waiting() (bool, string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.waiting, b.reason
}

func (b *Budget) setWaiting(waiting bool, reason string) {
	b.mu.Lock()
	changed := b.waiting != waiting || b.reason != reason
	b.waiting, b.reason = waiting, reason
	b.mu.Unlock()
	if changed && b.cfg.OnWait != nil {
		b.cfg.OnWait(waiting, reason)
	}
}

// Slot is a held slot, renewed until Release or until the context given
// to Acquire ends (a stop without Release is a crash to the others: the
// slot is theirs once it expires).
type Slot struct {
	// Name is the slot Lease's name; "" for a slot that Acquire let the
	// node proceed without (OnUnreachable Proceed).
	Name string
	// Acquired is when the slot was taken, on this node's clock, just
	// before the write that took it.
	Acquired time.Time

	b     *Budget
	mu    sync.Mutex
	lease *lease
	lost  error
	// renewed is when the last write of the slot that succeeded was sent,
	// on this node's clock: no other node sees that version before then,
	// so none takes the slot before renewed plus the lease duration.
	renewed time.Time
	// changed is closed and replaced whenever renewed or lost changes.
	changed chan struct{}
	stop    chan struct{}
	done    chan struct{}
	closed  bool
}

// ErrSlotLost is wrapped in Ready's error when the slot was taken over.
var ErrSlotLost = errors.New("restart slot lost")

// Ready returns nil when the slot is surely this node's now: it renews it
// there and then, and only a write that lands counts, so that the slot is
// good for a whole lease from this moment whatever this node's clock or
// memory say (an operator may have deleted it, another node taken it over
// while this one was paused or throttled). While renewals fail (the API
// server is down) it waits, for the next one that lands; a slot taken
// over, deleted or released returns an error that wraps ErrSlotLost. Call
// it immediately before the restart the slot is for. An unaccounted slot
// is always ready.
func (s *Slot) Ready(ctx context.Context) error {
	if s == nil || s.Unaccounted() {
		return nil
	}
	logged := false
	for {
		s.mu.Lock()
		ch, closed := s.changed, s.closed
		s.mu.Unlock()
		if closed {
			return fmt.Errorf("%w: %s was released", ErrSlotLost, s.Name)
		}
		if err := s.Lost(); err != nil {
			return fmt.Errorf("%w: %w", ErrSlotLost, err)
		}
		err := s.renew(ctx)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, errLost):
			return fmt.Errorf("%w: %w", ErrSlotLost, err)
		case ctx.Err() != nil:
			return ctx.Err()
		case !logged:
			s.b.cfg.Log.Warn("not restarting yet: the restart slot can't be renewed", "slot", s.Name, "err", err)
			logged = true
		}
		// The renewal loop retries every second or two: try again when it
		// has got through (or found the slot lost).
		select {
		case <-ch:
		case <-s.done:
			if s.Lost() == nil {
				return fmt.Errorf("%w: %s is no longer renewed", ErrSlotLost, s.Name)
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// notify wakes whoever waits in Ready. Called with s.mu held.
func (s *Slot) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Unaccounted reports whether the node proceeds without a slot.
func (s *Slot) Unaccounted() bool { return s.Name == "" }

// Lost is non-nil when the slot was taken over by another node while held
// (the holder could not renew it for a whole lease duration).
func (s *Slot) Lost() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lost
}

// maxSlow bounds how far congestion stretches the poll interval.
const maxSlow = 8

// ErrGaveUp is wrapped in Acquire's error when ctx ended while waiting.
var ErrGaveUp = errors.New("gave up waiting for a restart slot")

// Acquire blocks until this node holds a slot, or ctx ends. While it
// waits, Waiting says so, OnWait is told, and the node's own Lease carries
// state=waiting so that `fleet status` lists it. With OnUnreachable
// Proceed, a node that has not reached the API server for ProceedAfter
// gets an unaccounted slot and proceeds.
func (b *Budget) Acquire(ctx context.Context) (*Slot, error) {
	var unreachableSince time.Time
	marked := false
	bo := newBackoff(time.Second, b.cfg.PollInterval*4, b.cfg.Rand)
	// slow stretches the poll interval while the API server is slow to
	// answer or throttles: congestion control, so that the fleet's load
	// follows what the API server serves, however many nodes wait.
	slow := time.Duration(1)
	for {
		began := b.cfg.Clock.Now()
		l, err := b.try(ctx)
		took := b.cfg.Clock.Now().Sub(began)
		if ctx.Err() != nil {
			b.setWaiting(false, "")
			return nil, fmt.Errorf("%w: %w", ErrGaveUp, ctx.Err())
		}
		if l != nil {
			if marked {
				b.mark(ctx, StateIdle, "")
			}
			b.setWaiting(false, "")
			b.cfg.Log.Info("restart slot acquired", "slot", l.Metadata.Name)
			return b.hold(ctx, l, began), nil
		}
		wait := jitter(b.cfg.PollInterval, b.cfg.Rand)
		var reason string
		switch {
		case StatusCode(err) == http.StatusTooManyRequests:
			slow = min(slow*2, maxSlow)
			reason = "the API server is throttling: " + err.Error()
			// At least as long as the server asks: waiters that come back
			// sooner only compete with the holders' renewals.
			wait = max(jitter(b.cfg.PollInterval*slow, b.cfg.Rand), RetryAfter(err))
		case Misconfigured(err):
			// Not an outage: never a reason to proceed without a slot.
			unreachableSince = time.Time{}
			reason = "the API server can't be used as configured: " + err.Error()
			wait = bo.step()
		case err != nil && Unreachable(err):
			now := b.cfg.Clock.Now()
			if unreachableSince.IsZero() {
				unreachableSince = now
			}
			if b.cfg.OnUnreachable == Proceed && now.Sub(unreachableSince) >= b.cfg.ProceedAfter {
				b.setWaiting(false, "")
				b.cfg.Log.Warn("the API server is unreachable; restarting without a slot (on_api_unreachable = proceed)", "err", err)
				return &Slot{b: b}, nil
			}
			reason = "the API server is unreachable: " + err.Error()
			wait = min(bo.step(), wait)
		case err != nil:
			unreachableSince = time.Time{}
			reason = "the API server refused: " + err.Error()
			wait = bo.step()
		default:
			unreachableSince = time.Time{}
			bo.reset()
			reason = fmt.Sprintf("all restart slots are held (%d)", b.cfg.Slots)
			if took > b.cfg.PollInterval/10 {
				slow = min(slow*2, maxSlow)
			} else if slow > 1 {
				slow /= 2
			}
			wait = jitter(b.cfg.PollInterval*slow, b.cfg.Rand)
		}
		if w, r := b.Waiting(); !w || r != reason {
			b.cfg.Log.Info("waiting for a restart slot", "reason", reason)
		}
		b.setWaiting(true, reason)
		if err == nil {
			if b.mark(ctx, StateWaiting, reason) {
				marked = true
			}
		}
		if err := sleep(ctx, b.cfg.Clock, wait); err != nil {
			b.setWaiting(false, "")
			return nil, fmt.Errorf("%w: %w", ErrGaveUp, err)
		}
	}
}

// try looks at the slots and tries to take a free or expired one. It
// returns the taken Lease, or nil and why none was taken (nil error: every
// slot is held). Conflicts mean the list is stale: after two, it lists
// again rather than walk on through slots that others are taking, and it
// gives up for this turn after three lists.
func (b *Budget) try(ctx context.Context) (*lease, error) {
	var lastErr error
	for range 3 {
		list, err := b.client.listLeases(ctx, b.cfg.Namespace, RoleLabel+"="+RoleSlot)
		if err != nil {
			b.mu.Lock()
			b.blind = true
			b.mu.Unlock()
			return nil, fmt.Errorf("listing restart slots: %w", err)
		}
		now := b.cfg.Clock.Now()
		byName := map[string]*lease{}
		b.mu.Lock()
		if b.blind {
			// An outage is not the holders' silence: a holder that could
			// not renew through it is as alive as this node, which could
			// not look. Expiry counts from now, for every slot seen.
			for name, o := range b.observed {
				o.at = now
				b.observed[name] = o
			}
			b.blind = false
		}
		for i := range list.Items {
			l := &list.Items[i]
			byName[l.Metadata.Name] = l
			if o, ok := b.observed[l.Metadata.Name]; !ok || o.version != l.Metadata.ResourceVersion {
				b.observed[l.Metadata.Name] = observation{version: l.Metadata.ResourceVersion, at: now, holder: l.holder()}
			}
		}
		for name, o := range b.observed {
			if _, ok := byName[name]; !ok && o.version != "" {
				// Gone since the last look: held until a lease from now.
				b.observed[name] = observation{at: now, holder: o.holder}
			}
		}
		b.mu.Unlock()
		var candidates []string
		for i := range b.cfg.Slots {
			name := SlotName(i)
			cur, ok := byName[name]
			switch {
			case ok && b.free(cur, now):
			case ok:
				continue
			case b.goneRecently(name, now):
				// Seen held, and now missing (an operator deleted it): its
				// holder may be restarting still, and learns of it only at
				// its next renewal. It counts as held for a lease more.
				continue
			}
			candidates = append(candidates, name)
		}
		if len(candidates) == 0 {
			return nil, lastErr
		}
		// Start at a random candidate, so that nodes looking at once
		// spread over the free slots instead of all racing for the first;
		// but at a slot this node already holds (from before a restart of
		// the daemon), if any, so that it never holds two.
		first := int(b.cfg.Rand() * float64(len(candidates)))
		for j, name := range candidates {
			if cur, ok := byName[name]; ok && cur.holder() == b.cfg.Identity {
				first = j
				break
			}
		}
		conflicts := 0
		for j := range candidates {
			name := candidates[(first+j)%len(candidates)]
			var got *lease
			var err error
			if cur, ok := byName[name]; ok {
				got, err = b.client.updateLease(ctx, b.slotLease(name, cur, now))
			} else {
				got, err = b.client.createLease(ctx, b.slotLease(name, nil, now))
			}
			switch code := StatusCode(err); {
			case err == nil:
				return got, nil
			case code == http.StatusNotFound && byName[name] == nil:
				// A create (POST to the collection) that is not found: the
				// namespace itself is missing. Say so at once; every other
				// slot would answer the same.
				return nil, fmt.Errorf("the fleet's namespace %q does not exist (apply packaging/rbac.yaml, or set fleet_namespace): creating %s: %w", b.cfg.Namespace, name, err)
			case code == http.StatusConflict || code == http.StatusNotFound:
				// Another node was faster (AlreadyExists, Conflict), or
				// the Lease was deleted since it was listed.
				conflicts++
			case Unreachable(err):
				// The writes fail while the reads work (etcd out of space, a
				// failing webhook): the holders can't renew either, so this
				// is an outage as much as a failed list.
				b.mu.Lock()
				b.blind = true
				b.mu.Unlock()
				return nil, fmt.Errorf("taking %s: %w", name, err)
			default:
				lastErr = fmt.Errorf("taking %s: %w", name, err)
			}
			if conflicts >= 2 {
				break
			}
		}
		if conflicts == 0 {
			return nil, lastErr
		}
	}
	return nil, lastErr
}

// free reports whether a slot may be taken: nobody holds it, this node
// does (a hold from before a restart of the daemon), or its holder has not
// renewed it for its lease duration as this node has watched it.
func (b *Budget) free(l *lease, now time.Time) bool {
	h := l.holder()
	if h == "" || h == b.cfg.Identity {
		return true
	}
	b.mu.Lock()
	o := b.observed[l.Metadata.Name]
	b.mu.Unlock()
	d := l.duration()
	if d <= 0 {
		d = b.cfg.LeaseDuration
	}
	return now.Sub(o.at) >= d
}

// slotLease is the slot held by this node from now: a new Lease, or cur
// taken over at its resourceVersion.
func (b *Budget) slotLease(name string, cur *lease, now time.Time) *lease {
	l := &lease{Metadata: objectMeta{Name: name, Namespace: b.cfg.Namespace, Labels: map[string]string{RoleLabel: RoleSlot}}}
	transitions := int32(0)
	if cur != nil {
		l.Metadata = cur.Metadata
		l.Metadata.Labels = withKeys(cur.Metadata.Labels, map[string]string{RoleLabel: RoleSlot})
		transitions = cur.transitions()
		if h := cur.holder(); h != "" && h != b.cfg.Identity {
			transitions++
		}
	}
	l.Spec = leaseSpec{
		HolderIdentity:       ptr(b.cfg.Identity),
		LeaseDurationSeconds: ptr(int32((b.cfg.LeaseDuration + time.Second - 1) / time.Second)),
		AcquireTime:          mt(now),
		RenewTime:            mt(now),
		LeaseTransitions:     ptr(transitions),
	}
	return l
}

// hold starts renewing a taken slot.
func (b *Budget) hold(ctx context.Context, l *lease, sent time.Time) *Slot {
	s := &Slot{Name: l.Metadata.Name, b: b, lease: l, renewed: sent, changed: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	if l.Spec.AcquireTime != nil {
		s.Acquired = l.Spec.AcquireTime.Time
	}
	go s.renewLoop(ctx)
	return s
}

func (s *Slot) renewLoop(ctx context.Context) {
	defer close(s.done)
	b := s.b
	wait := b.cfg.RenewInterval
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.stop:
			return
		case <-b.cfg.Clock.After(wait):
		}
		err := s.renew(ctx)
		switch {
		case err == nil:
			wait = b.cfg.RenewInterval
		case errors.Is(err, errLost):
			b.cfg.Log.Error("restart slot lost: another node took it over", "slot", s.Name, "err", err)
			return
		default:
			// Every second or two until it works: the slot is good for
			// the rest of its lease only if a renewal gets through.
			wait = min(b.cfg.RenewInterval, time.Second+time.Duration(b.cfg.Rand()*float64(time.Second)))
			if ra := RetryAfter(err); ra > wait {
				// As the server asks, unless that would come after the slot
				// stops being surely ours (a lease less one renew interval
				// after the last renewal that landed): it is worth a try
				// before then.
				s.mu.Lock()
				left := s.renewed.Add(b.cfg.LeaseDuration - b.cfg.RenewInterval).Sub(b.cfg.Clock.Now())
				s.mu.Unlock()
				wait = min(ra, max(left, wait))
			}
			b.cfg.Log.Warn("renewing the restart slot failed; retrying", "slot", s.Name, "in", wait.Round(time.Millisecond), "err", err)
		}
	}
}

var errLost = errors.New("slot taken over")

// renew writes a new renewTime at the version last written; on a conflict
// it rereads the Lease and renews it if this node still holds it.
func (s *Slot) renew(ctx context.Context) error {
	b := s.b
	s.mu.Lock()
	l := *s.lease
	s.mu.Unlock()
	for range 2 {
		sent := b.cfg.Clock.Now()
		l.Spec.RenewTime = mt(sent)
		got, err := b.client.updateLease(ctx, &l)
		if err == nil {
			s.mu.Lock()
			s.lease, s.renewed = got, sent
			s.notify()
			s.mu.Unlock()
			return nil
		}
		if StatusCode(err) != http.StatusConflict && StatusCode(err) != http.StatusNotFound {
			return err
		}
		cur, gerr := b.client.getLease(ctx, b.cfg.Namespace, s.Name)
		if gerr != nil && StatusCode(gerr) != http.StatusNotFound {
			return gerr
		}
		if gerr != nil || cur.holder() != b.cfg.Identity {
			holder := "nobody (deleted)"
			if gerr == nil {
				holder = cur.holder()
			}
			s.mu.Lock()
			s.lost = fmt.Errorf("%w: %s now holds %s", errLost, holder, s.Name)
			err := s.lost
			s.notify()
			s.mu.Unlock()
			return err
		}
		l = *cur
	}
	return fmt.Errorf("renewing %s: conflicts", s.Name)
}

// Release gives the slot back: the renewals stop and the Lease is written
// with no holder, so that a waiting node can take it at once. If that
// write fails, the slot is free anyway once its lease expires. Release is
// idempotent.
func (s *Slot) Release(ctx context.Context) error {
	if s == nil || s.Unaccounted() {
		return nil
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	<-s.done
	if s.Lost() != nil {
		return nil
	}
	b := s.b
	s.mu.Lock()
	l := *s.lease
	s.mu.Unlock()
	// A slot not released stays idle for a whole lease: retry what the API
	// server couldn't answer (throttled, down) until ctx ends.
	bo := newBackoff(200*time.Millisecond, 2*time.Second, b.cfg.Rand)
	for conflicts := 0; conflicts < 3; {
		l.Spec.HolderIdentity = nil
		l.Spec.RenewTime = mt(b.cfg.Clock.Now())
		_, err := b.client.updateLease(ctx, &l)
		switch {
		case err == nil:
			b.cfg.Log.Info("restart slot released", "slot", s.Name)
			return nil
		case Unreachable(err):
			if serr := sleep(ctx, b.cfg.Clock, bo.step()); serr != nil {
				return fmt.Errorf("releasing %s (it expires by itself): %w", s.Name, err)
			}
			continue
		case StatusCode(err) != http.StatusConflict:
			return fmt.Errorf("releasing %s (it expires by itself): %w", s.Name, err)
		}
		conflicts++
		cur, gerr := b.client.getLease(ctx, b.cfg.Namespace, s.Name)
		if gerr != nil {
			return fmt.Errorf("releasing %s (it expires by itself): %w", s.Name, gerr)
		}
		if cur.holder() != b.cfg.Identity {
			return nil // taken over already
		}
		l = *cur
	}
	return fmt.Errorf("releasing %s: conflicts (it expires by itself)", s.Name)
}

// ReleaseLeftovers frees the slots this node holds that no Slot of this
// process holds: those an earlier run of the daemon took and never released
// (it was killed, or stopped mid-restart). Without it they block the fleet
// until their lease expires, long after this node has finished. Call it
// only when this process holds no slot. It returns how many it freed; a
// slot that changed since it was listed is left alone.
func (b *Budget) ReleaseLeftovers(ctx context.Context) (int, error) {
	list, err := b.client.listLeases(ctx, b.cfg.Namespace, RoleLabel+"="+RoleSlot)
	if err != nil {
		return 0, fmt.Errorf("listing restart slots: %w", err)
	}
	freed := 0
	for i := range list.Items {
		l := list.Items[i]
		if l.holder() != b.cfg.Identity {
			continue
		}
		l.Spec.HolderIdentity = nil
		l.Spec.RenewTime = mt(b.cfg.Clock.Now())
		switch _, err := b.client.updateLease(ctx, &l); {
		case err == nil:
			freed++
			b.cfg.Log.Info("restart slot released: an earlier run of this node held it", "slot", l.Metadata.Name)
		case StatusCode(err) == http.StatusConflict || StatusCode(err) == http.StatusNotFound:
		default:
			return freed, fmt.Errorf("releasing %s (it expires by itself): %w", l.Metadata.Name, err)
		}
	}
	return freed, nil
}

// mark writes this node's Lease with its state, so that `fleet status`
// lists waiting nodes. Best effort: it reports whether it was written.
// While waiting, it is rewritten only when the reason changes or half its
// lease duration has passed, so a waiting node costs one write a minute.
func (b *Budget) mark(ctx context.Context, state, reason string) bool {
	now := b.cfg.Clock.Now()
	dur := max(2*time.Minute, 4*b.cfg.PollInterval)
	b.mu.Lock()
	cur := b.marker
	b.mu.Unlock()
	if cur != nil && cur.Metadata.Labels[StateLabel] == state && cur.Metadata.Annotations[ReasonAnnotation] == reason &&
		cur.Spec.RenewTime != nil && now.Sub(cur.Spec.RenewTime.Time) < dur/2 {
		return true
	}
	name := nodeLeaseName(b.cfg.Node)
	for range 3 {
		if cur == nil {
			got, err := b.client.getLease(ctx, b.cfg.Namespace, name)
			switch {
			case StatusCode(err) == http.StatusNotFound:
			case err != nil:
				b.cfg.Log.Debug("reading this node's Lease", "err", err)
				return false
			default:
				cur = got
			}
		}
		l := &lease{Metadata: objectMeta{Name: name, Namespace: b.cfg.Namespace}}
		since := now
		if cur != nil {
			l.Metadata = cur.Metadata
			if t, err := time.Parse(time.RFC3339, cur.Metadata.Annotations[SinceAnnotation]); err == nil && cur.Metadata.Labels[StateLabel] == state {
				since = t
			}
		}
		// Ours are set; anything else on the object (another tool's
		// labels and annotations) is kept.
		l.Metadata.Labels = withKeys(l.Metadata.Labels, map[string]string{RoleLabel: RoleNode, StateLabel: state})
		l.Metadata.Annotations = withKeys(l.Metadata.Annotations, map[string]string{SinceAnnotation: since.UTC().Format(time.RFC3339)})
		delete(l.Metadata.Annotations, ReasonAnnotation)
		if reason != "" {
			l.Metadata.Annotations[ReasonAnnotation] = truncate(reason, 256)
		}
		l.Spec = leaseSpec{HolderIdentity: ptr(b.cfg.Node), LeaseDurationSeconds: ptr(int32(dur / time.Second)), RenewTime: mt(now)}
		var got *lease
		var err error
		if cur == nil {
			got, err = b.client.createLease(ctx, l)
		} else {
			got, err = b.client.updateLease(ctx, l)
		}
		if err == nil {
			b.mu.Lock()
			b.marker = got
			b.mu.Unlock()
			return true
		}
		if c := StatusCode(err); c != http.StatusConflict && c != http.StatusNotFound {
			b.cfg.Log.Debug("writing this node's Lease", "err", err)
			return false
		}
		cur = nil // reread and try again
	}
	return false
}

// withKeys is a copy of m with set's keys set.
func withKeys(m, set map[string]string) map[string]string {
	out := make(map[string]string, len(m)+len(set))
	maps.Copy(out, m)
	maps.Copy(out, set)
	return out
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
