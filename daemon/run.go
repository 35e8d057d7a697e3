package daemon

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/runtimeclassd/runtimeclassd/atomicfile"
	"github.com/runtimeclassd/runtimeclassd/ctrdconfig"
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
	// NewWatcher makes the inotify watcher; nil means fsnotify.NewWatcher.
	NewWatcher func() (*fsnotify.Watcher, error)
	// After is the timer of retries and polls; nil means time.After. Tests
	// use it to see the delays asked for.
	After func(d time.Duration) <-chan time.Time
	// AfterReconcile, if set, runs after each reconcile is reported: the
	// daemon's memory policy collects the garbage there (the unit turns
	// Go's own collection off, docs/BENCHMARKS.md).
	AfterReconcile func()

	live liveness
}

// trigger says why a reconcile is due.
type trigger int

const (
	trigPolicy  trigger = 1 << iota
	trigConfig          // one of the files runtimeclassd writes
	trigForeign         // a file config.toml imports that is not ours
	trigResync
)

// Backoff bounds for retries after a reconcile that failed because of the
// machine (a full disk, D-Bus gone, a restart job that failed, ...).
const (
	retryFirst = time.Second
	retryMax   = 5 * time.Minute
)

// retryDelay is the wait before the nth consecutive retry: 1 s, doubling,
// at most max.
func retryDelay(n int, max time.Duration) time.Duration {
	d := retryFirst
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	return min(d, max)
}

// Run runs until ctx ends. READY=1 is sent as soon as the watches are set,
// before the first reconcile, which may wait for the restart budget and two
// verifications: systemd's start timeout must never kill the daemon in the
// middle of an apply, nor make a package manager wait for one. /readyz
// still means "first reconcile done". A reconcile in progress when ctx ends
// is abandoned at its next step; an apply it leaves unfinished is finished
// at the next start (Reconciler.Recover).
func (s *Service) Run(ctx context.Context) error {
	cfg := s.Reconciler.Applier.Cfg
	w, err := s.newWatcher(cfg)
	if err != nil {
		return err
	}
	defer w.close()
	if s.Reconciler.Metrics != nil {
		s.Reconciler.Metrics.polling.Set(b2f(w.polling))
	}
	s.Reconciler.Busy = s.live.busy
	s.notify("READY=1")
	s.notify("STATUS=starting: finishing interrupted work, then the first reconcile")
	stopWatchdog := s.watchdog()
	defer stopWatchdog()

	failures := 0
	var retry <-chan time.Time
	reconciled := func(rep *Report) {
		s.live.idle()
		w.rewatchConfig()
		if rep.Outcome == OutcomeError && ctx.Err() == nil {
			failures++
			d := retryDelay(failures, min(retryMax, time.Duration(cfg.ResyncInterval)))
			s.Log.Warn("reconcile failed; retrying", "in", d, "attempt", failures)
			retry = s.after(d)
			s.setBackoff(d)
		} else {
			failures, retry = 0, nil
			s.setBackoff(0)
		}
		s.report(rep) // last: tests read the metrics when the report arrives
	}
	if rep := s.Reconciler.Recover(ctx); rep != nil {
		reconciled(rep)
	}
	rep := s.Reconciler.Reconcile(ctx)
	reconciled(rep)
	if s.Ready != nil {
		close(s.Ready)
	}

	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	// urgent: a reconcile is due at once (SIGHUP, resync, retry); file
	// events that come meanwhile must not postpone it.
	urgent := false
	now := func() { urgent = true; debounce.Reset(0) }
	later := func() {
		if !urgent {
			debounce.Reset(time.Duration(cfg.Debounce))
		}
	}
	if rep.Replan {
		later()
	}
	resync := time.NewTicker(time.Duration(cfg.ResyncInterval))
	defer resync.Stop()
	var due trigger
	for {
		var poll <-chan time.Time
		if w.polling {
			poll = s.after(time.Duration(cfg.PollInterval))
		}
		select {
		case <-ctx.Done():
			s.notify("STOPPING=1")
			return nil
		case <-s.Hup:
			s.Log.Info("SIGHUP: full resync")
			due |= trigResync
			now()
		case <-resync.C:
			due |= trigResync
			now()
		case <-retry:
			retry = nil
			due |= trigResync
			now()
		case <-poll:
			if what := w.pollChanged(); what != 0 {
				due |= what
				later()
			}
		case ev, ok := <-w.events():
			if !ok {
				return errors.New("watcher closed")
			}
			if what := w.classify(ev); what != 0 {
				due |= what
				later()
			}
			if w.polling && s.Reconciler.Metrics != nil {
				s.Reconciler.Metrics.polling.Set(1)
			}
		case err, ok := <-w.errors():
			if !ok {
				return errors.New("watcher closed")
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				s.Log.Warn("inotify queue overflowed; full resync")
			} else {
				s.Log.Warn("watcher error; full resync", "err", err)
			}
			due |= trigResync
			later()
		case <-debounce.C:
			urgent = false
			if due == trigConfig && s.Reconciler.ConfigIsOwnWrite() {
				s.Log.Debug("config event from our own write; nothing to do")
				due = 0
				if s.OwnWrite != nil {
					s.OwnWrite <- struct{}{}
				}
				continue
			}
			s.Log.Debug("reconciling", "policy", due&trigPolicy != 0, "config", due&trigConfig != 0, "imported", due&trigForeign != 0, "resync", due&trigResync != 0)
			due = 0
			rep := s.Reconciler.Reconcile(ctx)
			reconciled(rep)
			if rep.Replan {
				later()
			}
		}
	}
}

func (s *Service) after(d time.Duration) <-chan time.Time {
	if s.After != nil {
		return s.After(d)
	}
	return time.After(d)
}

func (s *Service) setBackoff(d time.Duration) {
	if s.Reconciler.Metrics != nil {
		s.Reconciler.Metrics.backoff.Set(d.Seconds())
	}
}

func (s *Service) report(rep *Report) {
	level := slog.LevelInfo
	switch rep.Outcome {
	case OutcomeUnchanged:
		level = slog.LevelDebug
	case OutcomeInvalid, OutcomeError, OutcomeRolledBack:
		level = slog.LevelError
	case OutcomeHeld:
		level = slog.LevelWarn
	}
	args := []any{"outcome", rep.Outcome, "restarted", rep.Restarted}
	if rep.Err != nil {
		args = append(args, "err", rep.Err)
	}
	s.Log.Log(context.Background(), level, "reconciled", args...)
	s.notify("STATUS=" + rep.Status())
	if s.AfterReconcile != nil {
		s.AfterReconcile()
	}
	if s.Reconciled != nil {
		s.Reconciled <- rep
	}
}

func (s *Service) notify(state string) {
	if _, err := s.Notifier.Notify(state); err != nil {
		s.Log.Warn("sd_notify failed", "err", err)
	}
}

// watchdog pings systemd's watchdog from its own goroutine while the
// service is alive: idle in its loop, or inside a reconcile step that has
// not outlived its own bound (every step has one: the restart job, the
// verification, the restart budget). A step stuck past its bound stops the
// pings, and systemd restarts the daemon.
func (s *Service) watchdog() (stop func()) {
	d := s.Notifier.WatchdogInterval()
	if d <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if step, ok := s.live.alive(time.Now()); ok {
					s.notify("WATCHDOG=1")
				} else {
					s.Log.Error("a reconcile step outlived its bound; not pinging the watchdog", "step", step)
				}
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// liveness is what the service is doing, for the watchdog.
type liveness struct {
	mu    sync.Mutex
	step  string
	until time.Time // zero: idle
}

func (l *liveness) busy(step string, until time.Time) {
	l.mu.Lock()
	l.step, l.until = step, until
	l.mu.Unlock()
}

func (l *liveness) idle() { l.busy("", time.Time{}) }

func (l *liveness) alive(now time.Time) (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.step, l.until.IsZero() || now.Before(l.until)
}

// watcher tells the service when the policy directory or containerd's
// config changed. It uses inotify on directories (the policy dir, the
// config's dir, and the dir of the file a symlinked config points to), or,
// while a directory doesn't exist, its nearest existing parent, and moves
// the watch down as directories appear. Where inotify can't be had (the
// instance or watch limit is reached), it polls instead.
type watcher struct {
	fw      *fsnotify.Watcher
	log     *slog.Logger
	polling bool
	targets []target
	watched map[string]string // target dir -> directory watched for it
	config  string
	print   [sha256.Size]byte // the last poll's fingerprint
}

// target is a directory whose events mean something: any event for the
// policy dir, events on one file name for the config.
type target struct {
	dir  string
	base string // "" for any entry
	what trigger
	// own, with base "", is the one entry that is runtimeclassd's own file
	// (trigConfig); the others are trigForeign.
	own string
}

func (s *Service) newWatcher(cfg Config) (*watcher, error) {
	w := &watcher{log: s.Log, watched: map[string]string{}, config: cfg.ContainerdConfig}
	w.targets = []target{
		{dir: filepath.Clean(cfg.PolicyDir), what: trigPolicy},
		{dir: filepath.Dir(filepath.Clean(cfg.ContainerdConfig)), base: filepath.Base(cfg.ContainerdConfig), what: trigConfig},
	}
	// The drop-in's directory, every file in it: the drop-in's own drift,
	// and other tools' drop-ins that may claim a handler.
	w.targets = append(w.targets, target{dir: filepath.Dir(filepath.Clean(cfg.DropInPath())), what: trigForeign, own: filepath.Base(cfg.DropInPath())})
	w.addResolvedConfig()
	w.addImports()
	newFW := s.NewWatcher
	if newFW == nil {
		newFW = fsnotify.NewWatcher
	}
	fw, err := newFW()
	if err == nil {
		w.fw = fw
		for _, t := range w.targets {
			if err = w.watch(t.dir); err != nil {
				break
			}
		}
	}
	if err != nil {
		w.fallBack(err)
	}
	return w, nil
}

// fallBack switches to polling.
func (w *watcher) fallBack(err error) {
	if w.polling {
		return
	}
	hint := ""
	if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENOSPC) {
		hint = " (the inotify instance or watch limit is reached: fs.inotify.max_user_instances, max_user_watches)"
	}
	w.log.Warn("inotify is unavailable; polling for changes instead"+hint, "err", err)
	if w.fw != nil {
		w.fw.Close()
		w.fw = nil
	}
	w.polling = true
	w.print = w.fingerprint()
}

func (w *watcher) close() {
	if w.fw != nil {
		w.fw.Close()
	}
}

func (w *watcher) events() <-chan fsnotify.Event {
	if w.fw == nil {
		return nil
	}
	return w.fw.Events
}

func (w *watcher) errors() <-chan error {
	if w.fw == nil {
		return nil
	}
	return w.fw.Errors
}

// addResolvedConfig adds the directory of the file a symlinked config.toml
// points to, so that edits made there are seen at once.
func (w *watcher) addResolvedConfig() bool {
	real, err := atomicfile.Resolve(w.config)
	if err != nil || filepath.Clean(real) == filepath.Clean(w.config) {
		return false
	}
	t := target{dir: filepath.Dir(real), base: filepath.Base(real), what: trigConfig}
	for _, have := range w.targets {
		if have == t {
			return false
		}
	}
	w.targets = append(w.targets, t)
	return true
}

// appeared is what a target's directory appearing means: for the drop-in's
// directory, runtimeclassd's own write unless someone else's file is in it.
func (t target) appeared() trigger {
	if t.own == "" {
		return t.what
	}
	entries, _ := os.ReadDir(t.dir)
	for _, e := range entries {
		if e.Name() != t.own && !strings.HasPrefix(e.Name(), atomicfile.TempPrefix(t.own)) {
			return trigForeign
		}
	}
	return trigConfig
}

// addImports adds the files config.toml imports (for a glob, its
// directory), so that a change in any of them is seen at once. It reports
// how many targets it added.
func (w *watcher) addImports() int {
	src, err := os.ReadFile(w.config)
	if err != nil {
		return 0
	}
	imports, err := ctrdconfig.Imports(src)
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range imports {
		p := e
		if !filepath.IsAbs(p) {
			p = filepath.Join(filepath.Dir(w.config), p)
		}
		t := target{dir: filepath.Dir(filepath.Clean(p)), base: filepath.Base(p), what: trigForeign}
		if strings.Contains(t.base, "*") {
			t.base = ""
		}
		if !slices.ContainsFunc(w.targets, func(x target) bool { return x.dir == t.dir && (x.base == "" || x.base == t.base) }) {
			w.targets = append(w.targets, t)
			n++
		}
	}
	return n
}

// rewatchConfig follows config.toml's symlink and imports again after a
// reconcile: they may point elsewhere now.
func (w *watcher) rewatchConfig() {
	before := len(w.targets)
	w.addResolvedConfig()
	w.addImports()
	if w.polling {
		return
	}
	for _, t := range w.targets[before:] {
		if err := w.watch(t.dir); err != nil {
			w.fallBack(err)
			return
		}
	}
}

// watch watches dir, or its nearest existing ancestor. A directory created
// on the way between finding the ancestor and watching it would never send
// an event, so it checks again after each Add and moves down until nothing
// changed.
func (w *watcher) watch(dir string) error {
	for {
		near := nearestDir(dir)
		if old, ok := w.watched[dir]; ok && old == near {
			return nil
		}
		if err := w.fw.Add(near); err != nil {
			return err
		}
		w.watched[dir] = near
		if nearestDir(dir) == near {
			if near != dir {
				w.log.Info("waiting for a directory to appear", "dir", dir, "watching", near)
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
func (w *watcher) classify(ev fsnotify.Event) trigger {
	dir := filepath.Dir(ev.Name)
	var t trigger
	for _, tg := range w.targets {
		watched := w.watched[tg.dir]
		if watched != tg.dir {
			// Watching an ancestor: something on the way may have appeared.
			if err := w.watch(tg.dir); err != nil {
				w.fallBack(err)
				return tg.what
			}
			if w.watched[tg.dir] == tg.dir {
				w.log.Info("directory appeared; watching it", "dir", tg.dir)
				t |= tg.appeared()
			}
			continue
		}
		if ev.Name == tg.dir && ev.Has(fsnotify.Remove|fsnotify.Rename) {
			delete(w.watched, tg.dir)
			if err := w.watch(tg.dir); err != nil {
				w.fallBack(err)
			}
			t |= tg.what
			continue
		}
		if dir != watched {
			continue
		}
		switch name := filepath.Base(ev.Name); {
		case tg.own != "" && (name == tg.own || strings.HasPrefix(name, atomicfile.TempPrefix(tg.own))):
			t |= trigConfig // the drop-in, or its temporary file
		case tg.base == "" || name == tg.base:
			t |= tg.what // for the policy dir: any change, ConfigMap ..data swaps included
		}
	}
	if t&trigPolicy != 0 {
		return trigPolicy
	}
	return t
}

// pollChanged reports whether anything watched changed since the last poll.
func (w *watcher) pollChanged() trigger {
	w.addResolvedConfig()
	p := w.fingerprint()
	if p == w.print {
		return 0
	}
	w.print = p
	return trigPolicy | trigConfig
}

// fingerprint sums what the watched files look like: for each target, the
// name, size, mode, inode and modification time of each entry that matters,
// following symlinks (a ConfigMap's ..data swap changes what they resolve
// to).
func (w *watcher) fingerprint() [sha256.Size]byte {
	h := sha256.New()
	for _, t := range w.targets {
		names := []string{t.base}
		if t.base == "" {
			entries, _ := os.ReadDir(t.dir)
			names = names[:0]
			for _, e := range entries {
				names = append(names, e.Name())
			}
			sort.Strings(names)
		}
		fmt.Fprintf(h, "%s\x00", t.dir)
		for _, n := range names {
			fi, err := os.Stat(filepath.Join(t.dir, n))
			if err != nil {
				fmt.Fprintf(h, "%s\x00-\x00", n)
				continue
			}
			var ino uint64
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				ino = st.Ino
			}
			fmt.Fprintf(h, "%s\x00%d\x00%v\x00%d\x00%d\x00", n, fi.Size(), fi.Mode(), ino, fi.ModTime().UnixNano())
		}
	}
	var out [sha256.Size]byte
	copy(out[:], h.Sum(nil))
	return out
}
