package kube

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// LabelPrefix is the prefix of every Node label this package writes. Labels
// without it are never touched.
const LabelPrefix = "runtimeclassd.io/handler."

// HandlerLabels turns handler -> offered into the Node labels that say it:
// runtimeclassd.io/handler.NAME = "true" | "false", as the NFD feature file
// does.
func HandlerLabels(offered map[string]bool) map[string]string {
	out := make(map[string]string, len(offered))
	for name, ok := range offered {
		out[LabelPrefix+name] = fmt.Sprint(ok)
	}
	return out
}

// LabelerOptions tune a Labeler; the zero value is the default.
type LabelerOptions struct {
	Log *slog.Logger
	// MinBackoff and MaxBackoff bound the wait between failed attempts
	// (default 1 s and 5 min).
	MinBackoff, MaxBackoff time.Duration
	// RecheckAfter is how old what the Labeler knows of the Node's labels
	// may get before a Sync reads them again (default 5 min, the daemon's
	// resync): a Node registered again, or a label someone else removed or
	// changed, is repaired at the next Sync after that, at one GET.
	RecheckAfter time.Duration
	Clock        Clock
	Rand         func() float64 // in [0, 1); nil is math/rand
}

// Labeler keeps one Node's runtimeclassd.io/handler.* labels equal to the
// last set given to Sync. Sync never waits on the API server: it records
// the wanted set and wakes Run, which applies it (a GET when our labels on
// the Node are not known yet, then one merge patch that names only our
// keys) and retries with exponential backoff while the API server fails.
// When the wanted set equals what was last applied, no request is made.
type Labeler struct {
	client *Client
	node   string
	opts   LabelerOptions

	mu      sync.Mutex
	desired map[string]string // nil until the first Sync
	applied map[string]string // our labels on the Node as last read or written; nil: unknown
	seen    time.Time         // when applied was last read or written
	lastErr error
	wake    chan struct{}
	changed chan struct{} // closed when applied or lastErr changes
}

// NewLabeler returns a Labeler of the named Node. Start its Run.
func NewLabeler(c *Client, node string, opts LabelerOptions) *Labeler {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = time.Second
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 5 * time.Minute
	}
	if opts.Clock == nil {
		opts.Clock = realClock{}
	}
	if opts.RecheckAfter <= 0 {
		opts.RecheckAfter = 5 * time.Minute
	}
	return &Labeler{client: c, node: node, opts: opts, wake: make(chan struct{}, 1), changed: make(chan struct{})}
}

// validLabelName reports whether s can be a label's name part (after the
// prefix's slash) or a label value: at most 63 characters, alphanumeric at
// both ends, with - _ . inside. (No regexp: nothing here runs at start-up.)
func validLabelName(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || i == len(s)-1 || c != '-' && c != '_' && c != '.') {
			return false
		}
	}
	return true
}

// Sync sets the labels the Node should carry under LabelPrefix: each key
// must start with it; ours that are missing from labels become "false"
// (see withStale). It
// returns at once; an error means labels is invalid, never that the API
// server is down.
func (l *Labeler) Sync(_ context.Context, labels map[string]string) error {
	for k, v := range labels {
		name, ok := strings.CutPrefix(k, LabelPrefix)
		if !ok {
			return fmt.Errorf("label %q: not under %s", k, LabelPrefix)
		}
		if !validLabelName("handler." + name) {
			return fmt.Errorf("label %q: a label name is at most 63 characters: alphanumerics, '-', '_', '.'", k)
		}
		if v != "" && !validLabelName(v) {
			return fmt.Errorf("label %q: value %q is not a label value", k, v)
		}
	}
	l.mu.Lock()
	l.desired = maps.Clone(labels)
	if l.desired == nil {
		l.desired = map[string]string{}
	}
	if l.applied != nil && l.opts.Clock.Now().Sub(l.seen) >= l.opts.RecheckAfter {
		l.applied = nil // read the Node again: someone may have changed it
	}
	same := l.applied != nil && maps.Equal(l.applied, withStale(l.desired, l.applied))
	l.mu.Unlock()
	if !same {
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
	return nil
}

// Run applies what Sync asks for until ctx ends.
func (l *Labeler) Run(ctx context.Context) {
	bo := newBackoff(l.opts.MinBackoff, l.opts.MaxBackoff, l.opts.Rand)
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.wake:
		}
		for {
			err := l.apply(ctx)
			if err == nil || ctx.Err() != nil {
				bo.reset()
				break
			}
			d := bo.step()
			l.opts.Log.Warn("node labels not applied; retrying", "node", l.node, "in", d.Round(time.Millisecond), "err", err)
			if sleep(ctx, l.opts.Clock, d) != nil {
				return
			}
		}
	}
}

// Flush waits until the Node carries what Sync last asked for, or ctx ends
// (then it returns the last error): for one-shot commands and tests.
func (l *Labeler) Flush(ctx context.Context) error {
	for {
		l.mu.Lock()
		done := l.desired == nil || l.applied != nil && maps.Equal(l.applied, withStale(l.desired, l.applied))
		err, changed := l.lastErr, l.changed
		l.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			if err == nil {
				err = ctx.Err()
			}
			return fmt.Errorf("node %s labels not applied: %w", l.node, err)
		}
	}
}

// Err is the last attempt's error, nil once the labels are applied.
func (l *Labeler) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastErr
}

func (l *Labeler) setResult(applied map[string]string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if applied != nil {
		l.applied, l.seen = applied, l.opts.Clock.Now()
	}
	l.lastErr = err
	close(l.changed)
	l.changed = make(chan struct{})
}

type nodeMeta struct {
	Metadata struct {
		Labels map[string]string `json:"labels"`
	} `json:"metadata"`
}

// withStale returns desired plus "false" for each of our labels the Node
// carries that desired no longer names: a handler whose policy was removed
// is one the node does not offer, and saying so keeps the label's meaning
// plain to anyone who selects on it (a missing label and "false" both
// keep pods off; "false" also says who decided). Removing the label is
// left to the operator.
func withStale(desired, applied map[string]string) map[string]string {
	var out map[string]string
	for k := range applied {
		if _, ok := desired[k]; !ok {
			if out == nil {
				out = maps.Clone(desired)
				if out == nil {
					out = map[string]string{}
				}
			}
			out[k] = "false"
		}
	}
	if out == nil {
		return desired
	}
	return out
}

func ours(labels map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range labels {
		if strings.HasPrefix(k, LabelPrefix) {
			out[k] = v
		}
	}
	return out
}

// apply makes one attempt: read our labels if unknown, then patch the
// difference.
func (l *Labeler) apply(ctx context.Context) error {
	l.mu.Lock()
	desired, applied := l.desired, l.applied
	l.mu.Unlock()
	path := "/api/v1/nodes/" + url.PathEscape(l.node)
	if applied == nil {
		var n nodeMeta
		if err := l.client.do(ctx, http.MethodGet, path, nil, "", nil, &n); err != nil {
			l.setResult(nil, fmt.Errorf("reading node %s: %w", l.node, err))
			return err
		}
		applied = ours(n.Metadata.Labels)
		l.setResult(applied, nil)
	}
	desired = withStale(desired, applied)
	if maps.Equal(applied, desired) {
		return nil
	}
	patch := map[string]any{}
	for k, v := range desired {
		if old, ok := applied[k]; !ok || old != v {
			patch[k] = v
		}
	}
	body := map[string]any{"metadata": map[string]any{"labels": patch}}
	var n nodeMeta
	if err := l.client.do(ctx, http.MethodPatch, path, nil, "application/merge-patch+json", body, &n); err != nil {
		err = fmt.Errorf("patching node %s labels: %w", l.node, err)
		l.setResult(nil, err)
		return err
	}
	got := ours(n.Metadata.Labels)
	l.setResult(got, nil)
	l.opts.Log.Info("node labels applied", "node", l.node, "labels", got)
	return nil
}
