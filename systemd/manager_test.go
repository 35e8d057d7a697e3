package systemd

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-systemd/v22/dbus"
)

// fakeConn is go-systemd's connection as the Manager uses it, with
// function fields for the calls a test cares about.
type fakeConn struct {
	restart  func(ctx context.Context, unit string, ch chan<- string) error
	property func(unit, name string) (string, error)
	closed   chan struct{}
}

func (c *fakeConn) RestartUnitContext(ctx context.Context, name, mode string, ch chan<- string) (int, error) {
	if mode != "replace" {
		return 0, errors.New("mode " + mode)
	}
	return 1, c.restart(ctx, name, ch)
}

func (c *fakeConn) ResetFailedUnitContext(context.Context, string) error { return nil }

func (c *fakeConn) GetUnitPropertyContext(_ context.Context, unit, name string) (*dbus.Property, error) {
	return c.prop(unit, name)
}

func (c *fakeConn) GetServicePropertyContext(_ context.Context, unit, name string) (*dbus.Property, error) {
	return c.prop(unit, name)
}

// prop returns a string property (PropDescription is go-systemd's way to
// make a property holding a string).
func (c *fakeConn) prop(unit, name string) (*dbus.Property, error) {
	v, err := c.property(unit, name)
	if err != nil {
		return nil, err
	}
	p := dbus.PropDescription(v)
	p.Name = name
	return &p, nil
}

func (c *fakeConn) Close() { close(c.closed) }

// fakeBus counts connections and tells which are open.
type fakeBus struct {
	mu     sync.Mutex
	dials  int
	open   int
	fail   error
	newCon func() *fakeConn
}

func (b *fakeBus) dial(context.Context) (conn, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.dials++
	if b.fail != nil {
		return nil, b.fail
	}
	c := b.newCon()
	c.closed = make(chan struct{})
	b.open++
	go func() {
		<-c.closed
		b.mu.Lock()
		b.open--
		b.mu.Unlock()
	}()
	return c, nil
}

func (b *fakeBus) counts() (dials, open int) {
	// Closing is reported by a goroutine: give it a moment.
	for deadline := time.Now().Add(2 * time.Second); ; {
		b.mu.Lock()
		dials, open = b.dials, b.open
		b.mu.Unlock()
		if open == 0 || time.Now().After(deadline) {
			return dials, open
		}
		time.Sleep(time.Millisecond)
	}
}

func healthy() *fakeConn {
	return &fakeConn{
		restart: func(_ context.Context, _ string, ch chan<- string) error {
			ch <- "done"
			return nil
		},
		property: func(_, name string) (string, error) {
			if name == "ActiveState" {
				return "active", nil
			}
			return "success", nil
		},
	}
}

// TestManagerHoldsNoConnectionWhenIdle: every call connects, and once no
// call is in flight the connection is closed, so that other units' jobs
// don't wake an idle daemon; the next call connects again.
func TestManagerHoldsNoConnectionWhenIdle(t *testing.T) {
	t.Parallel()
	bus := &fakeBus{newCon: healthy}
	m := Lazy()
	m.dial = bus.dial
	ctx := context.Background()
	if active, err := m.UnitActive(ctx, "containerd.service"); err != nil || !active {
		t.Fatalf("UnitActive = %v, %v", active, err)
	}
	if dials, open := bus.counts(); dials != 1 || open != 0 {
		t.Fatalf("after UnitActive: %d connections made, %d open; want 1 and 0", dials, open)
	}
	if err := m.RestartUnit(ctx, "containerd.service"); err != nil {
		t.Fatal(err)
	}
	if dials, open := bus.counts(); dials != 2 || open != 0 {
		t.Fatalf("after RestartUnit: %d connections made, %d open; want 2 and 0", dials, open)
	}
	m.Close()
	if err := m.ResetFailed(ctx, "containerd.service"); !errors.Is(err, errClosed) {
		t.Fatalf("ResetFailed after Close = %v", err)
	}
}

// TestRestartFailureReadsTheResultOnTheSameConnection: a failed job's
// unit result is read before the connection closes, and the error is the
// one it always was.
func TestRestartFailureReadsTheResultOnTheSameConnection(t *testing.T) {
	t.Parallel()
	bus := &fakeBus{newCon: func() *fakeConn {
		c := healthy()
		c.restart = func(_ context.Context, _ string, ch chan<- string) error {
			ch <- "failed"
			return nil
		}
		c.property = func(_, name string) (string, error) { return "exit-code", nil }
		return c
	}}
	m := Lazy()
	m.dial = bus.dial
	err := m.RestartUnit(context.Background(), "containerd.service")
	if !errors.Is(err, ErrJobFailed) || err.Error() != `restarting containerd.service: job result "failed", unit result exit-code: restart job did not complete` {
		t.Fatalf("err = %v", err)
	}
	if dials, open := bus.counts(); dials != 1 || open != 0 {
		t.Fatalf("%d connections made, %d open; want 1 and 0", dials, open)
	}
}

// TestConnectionSharedWhileACallIsInFlight: a call made while a restart
// waits for its job shares the connection, and the connection outlives the
// shorter call and its context.
func TestConnectionSharedWhileACallIsInFlight(t *testing.T) {
	t.Parallel()
	waiting, finish := make(chan struct{}), make(chan struct{})
	bus := &fakeBus{newCon: func() *fakeConn {
		c := healthy()
		c.restart = func(_ context.Context, _ string, ch chan<- string) error {
			go func() {
				close(waiting)
				<-finish
				ch <- "done"
			}()
			return nil
		}
		return c
	}}
	m := Lazy()
	m.dial = bus.dial
	done := make(chan error)
	go func() { done <- m.RestartUnit(context.Background(), "containerd.service") }()
	<-waiting
	ctx, cancel := context.WithCancel(context.Background())
	if _, err := m.UnitActive(ctx, "containerd.service"); err != nil {
		t.Fatal(err)
	}
	cancel()
	m.mu.Lock()
	c, users := m.c, m.users
	m.mu.Unlock()
	if c == nil || users != 1 {
		t.Fatalf("while the restart waits: connection %v, %d users; want open, 1", c, users)
	}
	select {
	case <-c.(*fakeConn).closed:
		t.Fatal("the connection closed while the restart waited")
	default:
	}
	close(finish)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if dials, open := bus.counts(); dials != 1 || open != 0 {
		t.Fatalf("%d connections made, %d open; want 1 and 0", dials, open)
	}
}

// TestCanceledRestartClosesTheConnection: a restart whose context ends
// before the job does returns, and leaves no connection open.
func TestCanceledRestartClosesTheConnection(t *testing.T) {
	t.Parallel()
	bus := &fakeBus{newCon: func() *fakeConn {
		c := healthy()
		c.restart = func(context.Context, string, chan<- string) error { return nil } // never ends
		return c
	}}
	m := Lazy()
	m.dial = bus.dial
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err := m.RestartUnit(ctx, "containerd.service")
	if !errors.Is(err, context.DeadlineExceeded) || !strings.HasPrefix(err.Error(), "restarting containerd.service: waiting for the job: ") {
		t.Fatalf("err = %v", err)
	}
	if _, open := bus.counts(); open != 0 {
		t.Fatalf("%d connections open", open)
	}
}

// TestFirstConnectionFailureIsNotRetried: Lazy's first connection is not
// retried when it fails; a later one is, once a connection has worked.
func TestFirstConnectionFailureIsNotRetried(t *testing.T) {
	t.Parallel()
	bus := &fakeBus{newCon: healthy, fail: errors.New("no bus")}
	m := Lazy()
	m.dial = bus.dial
	for range 2 {
		if _, err := m.UnitActive(context.Background(), "x.service"); err == nil || err.Error() != "reading x.service ActiveState: connecting to systemd over D-Bus: no bus" {
			t.Fatalf("err = %v", err)
		}
	}
	if dials, _ := bus.counts(); dials != 1 {
		t.Fatalf("%d dials, want 1", dials)
	}

	bus = &fakeBus{newCon: healthy}
	m = Lazy()
	m.dial = bus.dial
	if _, err := m.UnitActive(context.Background(), "x.service"); err != nil {
		t.Fatal(err)
	}
	bus.mu.Lock()
	bus.fail = errors.New("bus restarting")
	bus.mu.Unlock()
	if _, err := m.UnitActive(context.Background(), "x.service"); err == nil {
		t.Fatal("no error from a failed connection")
	}
	bus.mu.Lock()
	bus.fail = nil
	bus.mu.Unlock()
	if _, err := m.UnitActive(context.Background(), "x.service"); err != nil {
		t.Fatalf("after the bus came back: %v", err)
	}
}
