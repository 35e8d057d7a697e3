// Package systemd restarts units over systemd's D-Bus API and speaks the
// sd_notify protocol. It wraps go-systemd so that the rest of runtimeclassd
// sees four small methods instead of a D-Bus connection.
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
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/coreos/go-systemd/v22/dbus"
)

// Manager is a connection to systemd.
type Manager struct {
	conn *dbus.Conn
	// JobTimeout bounds a restart job; 0 means 90 s.
	JobTimeout time.Duration
}

// Connect opens a connection to the system manager.
func Connect(ctx context.Context) (*Manager, error) {
	conn, err := dbus.NewSystemConnectionContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("connecting to systemd over D-Bus: %w", err)
	}
	return &Manager{conn: conn}, nil
}

// Close closes the connection.
func (m *Manager) Close() { m.conn.Close() }

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
	ch := make(chan string, 1) // buffered: go-systemd must never block on us
	if _, err := m.conn.RestartUnitContext(ctx, unit, "replace", ch); err != nil {
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
	p, err := m.conn.GetUnitPropertyContext(ctx, unit, "ActiveState")
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
	if err := m.conn.ResetFailedUnitContext(ctx, unit); err != nil {
		return fmt.Errorf("resetting %s: %w", unit, err)
	}
	return nil
}

// MainPID returns the unit's main process, 0 if none.
func (m *Manager) MainPID(ctx context.Context, unit string) (int, error) {
	p, err := m.conn.GetServicePropertyContext(ctx, unit, "MainPID")
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

func (m *Manager) serviceResult(ctx context.Context, unit string) (string, error) {
	p, err := m.conn.GetServicePropertyContext(ctx, unit, "Result")
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
