package daemon

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Notifier speaks sd_notify. Outside systemd it does nothing.
type Notifier interface {
	Notify(state string) (bool, error)
	WatchdogInterval() time.Duration
}

// Service is the daemon: it reconciles at start, on changes to the policy
// directory and to containerd's config, on SIGHUP and on a timer.
type Service struct {
	Reconciler *Reconciler
	Notifier   Notifier
	Log        *slog.Logger
	// Hup delivers SIGHUP: a full resync.
	Hup <-chan os.Signal
	// Ready is closed after the first reconcile (for /readyz).
	Ready chan struct{}
	// Reconciled, if set, receives every report (tests use it).
	Reconciled chan<- *Report
	// OwnWrite, if set, receives a value each time a config event turns out
	// to be this daemon's own write and is ignored (tests use it).
	OwnWrite chan<- struct{}
}

// trigger says why a reconcile is due.
type trigger int

const (
	trigPolicy trigger = 1 << iota
	trigConfig
	trigResync
)

// Run runs until ctx ends. A reconcile in progress when ctx ends is
// abandoned at its next step; an apply it leaves unverified is finished at
// the next start (Reconciler.Recover).
func (s *Service) Run(ctx context.Context) error {
	cfg := s.Reconciler.Applier.Cfg
	w, err := newWatcher(s.Log, cfg.PolicyDir, filepath.Dir(cfg.ContainerdConfig))
	if err != nil {
		return err
	}
	defer w.Close()

	if rep := s.Reconciler.Recover(ctx); rep != nil {
		s.report(rep)
	}
	s.report(s.Reconciler.Reconcile(ctx))
	s.notify("READY=1")
	if s.Ready != nil {
		close(s.Ready)
	}

	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	resync := time.NewTicker(time.Duration(cfg.ResyncInterval))
	defer resync.Stop()
	var watchdog <-chan time.Time
	if d := s.Notifier.WatchdogInterval(); d > 0 {
		t := time.NewTicker(d)
		defer t.Stop()
		watchdog = t.C
	}
	var due trigger
	configBase := filepath.Base(cfg.ContainerdConfig)
	for {
		select {
		case <-ctx.Done():
			s.notify("STOPPING=1")
			return nil
		case <-watchdog:
			s.notify("WATCHDOG=1")
		case <-s.Hup:
			s.Log.Info("SIGHUP: full resync")
			due |= trigResync
			debounce.Reset(0)
		case <-resync.C:
			due |= trigResync
			debounce.Reset(0)
		case ev, ok := <-w.Events:
			if !ok {
				return errors.New("watcher closed")
			}
			switch what := w.classify(ev, configBase); what {
			case trigPolicy, trigConfig:
				due |= what
				debounce.Reset(time.Duration(cfg.Debounce))
			}
		case err, ok := <-w.Errors:
			if !ok {
				return errors.New("watcher closed")
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				s.Log.Warn("inotify queue overflowed; full resync")
			} else {
				s.Log.Warn("watcher error; full resync", "err", err)
			}
			due |= trigResync
			debounce.Reset(time.Duration(cfg.Debounce))
		case <-debounce.C:
			if due == trigConfig && s.Reconciler.ConfigIsOwnWrite() {
				s.Log.Debug("config event from our own write; nothing to do")
				due = 0
				if s.OwnWrite != nil {
					s.OwnWrite <- struct{}{}
				}
				continue
			}
			s.Log.Debug("reconciling", "policy", due&trigPolicy != 0, "config", due&trigConfig != 0, "resync", due&trigResync != 0)
			due = 0
			s.report(s.Reconciler.Reconcile(ctx))
		}
	}
}

func (s *Service) report(rep *Report) {
	level := slog.LevelInfo
	switch rep.Outcome {
	case OutcomeUnchanged:
		level = slog.LevelDebug
	case OutcomeInvalid, OutcomeError, OutcomeRolledBack:
		level = slog.LevelError
	}
	args := []any{"outcome", rep.Outcome, "restarted", rep.Restarted}
	if rep.Err != nil {
		args = append(args, "err", rep.Err)
	}
	s.Log.Log(context.Background(), level, "reconciled", args...)
	s.notify("STATUS=" + rep.Status())
	if s.Reconciled != nil {
		s.Reconciled <- rep
	}
}

func (s *Service) notify(state string) {
	if _, err := s.Notifier.Notify(state); err != nil {
		s.Log.Warn("sd_notify failed", "err", err)
	}
}

// watcher watches the policy directory and containerd's config directory,
// or, while one doesn't exist, its nearest existing parent, and moves the
// watch down as directories appear.
type watcher struct {
	*fsnotify.Watcher
	log     *slog.Logger
	targets []string
	watched map[string]string // target -> directory watched for it
}

func newWatcher(log *slog.Logger, dirs ...string) (*watcher, error) {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	w := &watcher{Watcher: fw, log: log, targets: dirs, watched: map[string]string{}}
	for _, d := range dirs {
		if err := w.watch(d); err != nil {
			fw.Close()
			return nil, err
		}
	}
	return w, nil
}

// watch watches target, or its nearest existing ancestor. A directory
// created on the way between finding the ancestor and watching it would
// never send an event, so it checks again after each Add and moves down
// until nothing changed.
func (w *watcher) watch(target string) error {
	for {
		dir := nearestDir(target)
		if old, ok := w.watched[target]; ok && old == dir {
			return nil
		}
		if err := w.Add(dir); err != nil {
			return err
		}
		w.watched[target] = dir
		if nearestDir(target) == dir {
			if dir != filepath.Clean(target) {
				w.log.Info("waiting for a directory to appear", "dir", target, "watching", dir)
			}
			return nil
		}
	}
}

// nearestDir returns target if it is a directory, else its nearest
// existing ancestor.
func nearestDir(target string) string {
	dir := filepath.Clean(target)
	for {
		if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return dir
		}
		dir = parent
	}
}

// classify maps an event to what it concerns, re-aiming watches when a
// watched directory appears or goes away.
func (w *watcher) classify(ev fsnotify.Event, configBase string) trigger {
	dir := filepath.Dir(ev.Name)
	var t trigger
	for i, target := range w.targets {
		watched := w.watched[target]
		if watched != filepath.Clean(target) {
			// Watching an ancestor: something on the way may have appeared.
			if err := w.watch(target); err == nil && w.watched[target] == filepath.Clean(target) {
				w.log.Info("directory appeared; watching it", "dir", target)
				t |= trigPolicy
			}
			continue
		}
		if ev.Name == filepath.Clean(target) && ev.Has(fsnotify.Remove|fsnotify.Rename) {
			delete(w.watched, target)
			w.watch(target)
			t |= trigPolicy
			continue
		}
		if dir != watched {
			continue
		}
		if i == 0 {
			t |= trigPolicy // any change in the policy dir, ConfigMap ..data swaps included
		} else if filepath.Base(ev.Name) == configBase {
			t |= trigConfig
		}
	}
	if t&trigPolicy != 0 {
		return trigPolicy
	}
	return t
}
