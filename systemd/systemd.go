// Package systemd restarts units over systemd's D-Bus API and speaks the
// sd_notify protocol. It wraps go-systemd so that the rest of runtimeclassd
// sees four small methods instead of a D-Bus connection, and it holds that
// connection only while a call is in flight: an idle daemon hears nothing
// of other units' jobs.
//
// A restart succeeds only when systemd reports the job result "done";
// anything else ("failed", "timeout", "canceled", "dependency", "skipped")
// is an error naming the result and the unit's own Result property. Every
// call is bounded by its context. containerd is never signalled directly:
// SIGHUP kills it.
package systemd

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/coreos/go-systemd/v22/dbus"
)

// Manager is a connection to systemd, open only while a call is in flight.
//
// go-systemd's connection subscribes to every job's JobRemoved signal, so
// an open connection wakes the process whenever any unit on the node
// starts or stops. The Manager connects for a call and closes the
// connection once no call is left in flight: after a restart, once the
// job's result is read. The next call connects again.
type Manager struct {
	// JobTimeout bounds a restart job; 0 means 90 s.
	JobTimeout time.Duration

	mu        sync.Mutex
	c         conn   // nil while idle
	cancel    func() // ends c's context
	users     int    // calls using c
	connected bool   // a connection succeeded once
	cerr      error  // the first connection's failure, kept: it is not retried
	closed    bool
	// dial connects; nil is the system bus (tests give a fake).
	dial func(ctx context.Context) (conn, error)
}

// conn is what the Manager uses of go-systemd's *dbus.Conn.
type conn interface {
	RestartUnitContext(ctx context.Context, name, mode string, ch chan<- string) (int, error)
	ResetFailedUnitContext(ctx context.Context, name string) error
	GetUnitPropertyContext(ctx context.Context, unit, name string) (*dbus.Property, error)
	GetServicePropertyContext(ctx context.Context, service, name string) (*dbus.Property, error)
	Close()
}

func dialSystem(ctx context.Context) (conn, error) {
	c, err := dbus.NewSystemConnectionContext(ctx)
	if err != nil {
		return nil, err // not a typed nil in the interface
	}
	return c, nil
}

// Connect checks that the system manager answers. The connection closes
// again at once; calls open their own.
func Connect(ctx context.Context) (*Manager, error) {
	m := &Manager{}
	_, release, err := m.acquire(ctx)
	if err != nil {
		return nil, err
	}
	release()
	return m, nil
}

// Lazy returns a Manager that connects on its first call, so that a command
// that turns out to have nothing to restart never talks to D-Bus. If that
// first connection fails, it is not retried: every call returns its error.
func Lazy() *Manager { return &Manager{} }

// errClosed is a call after Close.
var errClosed = errors.New("connection to systemd closed")

// acquire returns the connection for one call, connecting if there is
// none; release ends the call, and closes the connection when no other
// call uses it.
func (m *Manager) acquire(ctx context.Context) (conn, func(), error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.closed:
		return nil, nil, errClosed
	case m.c == nil && m.cerr != nil:
		return nil, nil, m.cerr
	case m.c == nil:
		dial := m.dial
		if dial == nil {
			dial = dialSystem
		}
		// The connection lives as long as its context: not the call's,
		// which may end while another call still uses it. The call's
		// context bounds only the dialing.
		cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		stop := context.AfterFunc(ctx, cancel)
		c, err := dial(cctx)
		stop()
		if err == nil && cctx.Err() != nil { // the call ended as it connected
			c.Close()
			err = ctx.Err()
		}
		if err != nil {
			cancel()
			err = fmt.Errorf("connecting to systemd over D-Bus: %w", err)
			if !m.connected {
				m.cerr = err
			}
			return nil, nil, err
		}
		m.c, m.cancel, m.connected = c, cancel, true
	}
	m.users++
	c := m.c
	var once sync.Once
	return c, func() { once.Do(m.release) }, nil
}

func (m *Manager) release() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.users--; m.users == 0 {
		m.disconnect()
	}
}

func (m *Manager) disconnect() {
	if m.c != nil {
		m.c.Close()
		m.cancel()
		m.c, m.cancel = nil, nil
	}
}

// Close closes the connection, if there is one; calls after it fail.
func (m *Manager) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	m.disconnect()
}

// ErrJobFailed is a restart job whose result was not "done".
var ErrJobFailed = errors.New("restart job did not complete")

// RestartUnit restarts unit (mode "replace") and waits for the job's
// result.
func (m *Manager) RestartUnit(ctx context.Context, unit string) error {
	timeout := m.JobTimeout
	if timeout == 0 {
		timeout = 90 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, release, err := m.acquire(ctx)
	if err != nil {
		return err
	}
	defer release()            // the job's result is read: nothing left in flight
	ch := make(chan string, 1) // buffered: go-systemd must never block on us
	if _, err := conn.RestartUnitContext(ctx, unit, "replace", ch); err != nil {
		return fmt.Errorf("restarting %s: %w", unit, err)
	}
	select {
	case result := <-ch:
		if result == "done" {
			return nil
		}
		detail := ""
		if r, err := m.serviceResult(ctx, unit); err == nil && r != "" && r != "success" {
			detail = ", unit result " + r
		}
		return fmt.Errorf("restarting %s: job result %q%s: %w", unit, result, detail, ErrJobFailed)
	case <-ctx.Done():
		return fmt.Errorf("restarting %s: waiting for the job: %w", unit, ctx.Err())
	}
}

// UnitActive reports whether unit's ActiveState is active (or activating or
// reloading: it is running, or about to).
func (m *Manager) UnitActive(ctx context.Context, unit string) (bool, error) {
	p, err := m.property(ctx, unit, "", "ActiveState")
	if err != nil {
		return false, fmt.Errorf("reading %s ActiveState: %w", unit, err)
	}
	s, _ := p.Value.Value().(string)
	return s == "active" || s == "activating" || s == "reloading", nil
}

// StartLimitHit reports whether the unit failed because it hit its start
// limit, which keeps it down until reset.
func (m *Manager) StartLimitHit(ctx context.Context, unit string) (bool, error) {
	r, err := m.serviceResult(ctx, unit)
	return r == "start-limit-hit", err
}

// ResetFailed clears a unit's failed state and its start-limit counter.
func (m *Manager) ResetFailed(ctx context.Context, unit string) error {
	conn, release, err := m.acquire(ctx)
	if err != nil {
		return err
	}
	defer release()
	if err := conn.ResetFailedUnitContext(ctx, unit); err != nil {
		return fmt.Errorf("resetting %s: %w", unit, err)
	}
	return nil
}

// MainPID returns the unit's main process, 0 if none.
func (m *Manager) MainPID(ctx context.Context, unit string) (int, error) {
	p, err := m.property(ctx, unit, "Service", "MainPID")
	if err != nil {
		return 0, err
	}
	switch v := p.Value.Value().(type) {
	case uint32:
		return int(v), nil
	default:
		return strconv.Atoi(fmt.Sprint(v))
	}
}

// property reads a property of a unit ("" iface) or of its Service
// interface.
func (m *Manager) property(ctx context.Context, unit, iface, name string) (*dbus.Property, error) {
	conn, release, err := m.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	if iface == "Service" {
		return conn.GetServicePropertyContext(ctx, unit, name)
	}
	return conn.GetUnitPropertyContext(ctx, unit, name)
}

// StartedAt returns when the unit's main process last started
// (ExecMainStartTimestamp); zero if it never ran.
func (m *Manager) StartedAt(ctx context.Context, unit string) (time.Time, error) {
	p, err := m.property(ctx, unit, "Service", "ExecMainStartTimestamp")
	if err != nil {
		return time.Time{}, fmt.Errorf("reading %s ExecMainStartTimestamp: %w", unit, err)
	}
	us, ok := p.Value.Value().(uint64)
	if !ok {
		return time.Time{}, fmt.Errorf("reading %s ExecMainStartTimestamp: unexpected %T", unit, p.Value.Value())
	}
	if us == 0 {
		return time.Time{}, nil
	}
	return time.UnixMicro(int64(us)), nil
}

func (m *Manager) serviceResult(ctx context.Context, unit string) (string, error) {
	p, err := m.property(ctx, unit, "Service", "Result")
	if err != nil {
		return "", err
	}
	s, _ := p.Value.Value().(string)
	return s, nil
}

// Notifier sends sd_notify messages. Outside systemd (no NOTIFY_SOCKET) it
// does nothing: that is a state, not an error.
type Notifier struct{}

// Notify sends state ("READY=1", "STATUS=...", "WATCHDOG=1", "STOPPING=1")
// and reports whether systemd was there to receive it.
func (Notifier) Notify(state string) (bool, error) { return daemon.SdNotify(false, state) }

// WatchdogInterval returns how often to ping the watchdog (half of
// WatchdogSec), or 0 if the watchdog is off.
func (Notifier) WatchdogInterval() time.Duration {
	d, err := daemon.SdWatchdogEnabled(false)
	if err != nil || d <= 0 {
		return 0
	}
	return d / 2
}
