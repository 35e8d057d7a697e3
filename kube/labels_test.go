package kube

import (
	"context"
	"maps"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func startLabeler(t *testing.T, f *fakeAPI, node string, clk Clock) *Labeler {
	t.Helper()
	l := NewLabeler(f.client(t), node, LabelerOptions{Clock: clk, Rand: func() float64 { return 0 }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { l.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return l
}

func flush(t *testing.T, l *Labeler) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestLabelerOnlyOurs: the Node gets our labels added and changed, ours no
// longer wanted turn "false", and every other label is kept; an unchanged
// set costs no request.
func TestLabelerOnlyOurs(t *testing.T) {
	t.Parallel()
	f := newFakeAPI(t)
	f.nodes["w1"] = map[string]string{
		"kubernetes.io/hostname":          "w1",
		"runtimeclassd.io/e2e":            "keep", // ours by domain, not by prefix: untouched
		"runtimeclassd.io/handler.stale":  "true", // from an earlier policy: "false"
		"runtimeclassd.io/handler.gvisor": "true",
	}
	l := startLabeler(t, f, "w1", newFakeClock())
	ctx := context.Background()

	if err := l.Sync(ctx, HandlerLabels(map[string]bool{"kata": true, "gvisor": false})); err != nil {
		t.Fatal(err)
	}
	flush(t, l)
	want := map[string]string{
		"kubernetes.io/hostname":          "w1",
		"runtimeclassd.io/e2e":            "keep",
		"runtimeclassd.io/handler.kata":   "true",
		"runtimeclassd.io/handler.gvisor": "false",
		"runtimeclassd.io/handler.stale":  "false",
	}
	if got := f.nodeLabels("w1"); !maps.Equal(got, want) {
		t.Errorf("labels %v, want %v", got, want)
	}
	if g, p := f.count("GET", "/api/v1/nodes/w1"), f.count("PATCH", "/api/v1/nodes/w1"); g != 1 || p != 1 {
		t.Errorf("first sync: %d GET, %d PATCH; want 1 and 1", g, p)
	}

	// The same set again: nothing to do, no request.
	before := f.total()
	for range 5 {
		l.Sync(ctx, HandlerLabels(map[string]bool{"kata": true, "gvisor": false}))
	}
	flush(t, l)
	if n := f.total() - before; n != 0 {
		t.Errorf("unchanged labels: %d requests, want 0", n)
	}

	// A change: one patch, and no read.
	l.Sync(ctx, HandlerLabels(map[string]bool{"kata": false, "crun": true}))
	flush(t, l)
	// gvisor's policy is gone: its label says false, it is not removed.
	want["runtimeclassd.io/handler.gvisor"] = "false"
	want["runtimeclassd.io/handler.kata"] = "false"
	want["runtimeclassd.io/handler.crun"] = "true"
	if got := f.nodeLabels("w1"); !maps.Equal(got, want) {
		t.Errorf("labels %v, want %v", got, want)
	}
	if n := f.total() - before; n != 1 {
		t.Errorf("a change: %d requests, want 1 (a patch)", n)
	}

	// No policy at all: every label of ours says false, once.
	before = f.total()
	for range 3 {
		l.Sync(ctx, nil)
		flush(t, l)
	}
	for k := range want {
		if strings.HasPrefix(k, LabelPrefix) {
			want[k] = "false"
		}
	}
	if got := f.nodeLabels("w1"); !maps.Equal(got, want) {
		t.Errorf("no policy: labels %v, want %v", got, want)
	}
	if n := f.total() - before; n != 1 {
		t.Errorf("no policy, synced 3 times: %d requests, want 1 (a patch)", n)
	}
}

func (f *fakeAPI) nodeLabels(name string) map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.nodes[name])
}

// TestLabelerAPIDown: Sync returns at once while the API server fails;
// the labeler retries with a doubling backoff and catches up when it is
// back, with the last set asked for.
func TestLabelerAPIDown(t *testing.T) {
	t.Parallel()
	f := newFakeAPI(t)
	f.nodes["w1"] = map[string]string{}
	var down atomic.Bool
	down.Store(true)
	f.fail = func(*http.Request) int {
		if down.Load() {
			return http.StatusServiceUnavailable
		}
		return 0
	}
	clk := newFakeClock()
	l := startLabeler(t, f, "w1", clk)
	start := time.Now()
	if err := l.Sync(context.Background(), HandlerLabels(map[string]bool{"kata": true})); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Sync took %v with the API server down", d)
	}
	// Backoff with Rand = 0 waits half of 1 s, 2 s, 4 s...
	var waits []time.Duration
	for i := range 4 {
		ds := clk.waitWaiters(t, 1)
		waits = append(waits, ds[0])
		if i == 2 {
			// The policy changes meanwhile: the newest set wins.
			l.Sync(context.Background(), HandlerLabels(map[string]bool{"kata": false}))
		}
		if i == 3 {
			if err := l.Err(); err == nil || !strings.Contains(err.Error(), "503") {
				t.Errorf("Err() = %v, want the 503", err)
			}
			down.Store(false)
		}
		clk.Advance(ds[0])
	}
	if want := []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second}; !equalDurations(waits, want) {
		t.Errorf("backoff %v, want %v", waits, want)
	}
	flush(t, l)
	if got := f.nodeLabels("w1"); got["runtimeclassd.io/handler.kata"] != "false" {
		t.Errorf("labels after the API server came back: %v", got)
	}
}

func equalDurations(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestLabelerNodeNotRegistered: a Node that doesn't exist yet (the kubelet
// registers it later) is retried until it does.
func TestLabelerNodeNotRegistered(t *testing.T) {
	t.Parallel()
	f := newFakeAPI(t)
	clk := newFakeClock()
	l := startLabeler(t, f, "late", clk)
	l.Sync(context.Background(), HandlerLabels(map[string]bool{"crun": true}))
	clk.waitWaiters(t, 1)
	if err := l.Err(); StatusCode(err) != http.StatusNotFound {
		t.Errorf("Err() = %v, want a 404", err)
	}
	f.mu.Lock()
	f.nodes["late"] = map[string]string{"kubernetes.io/hostname": "late"}
	f.mu.Unlock()
	clk.Advance(time.Minute)
	flush(t, l)
	if got := f.nodeLabels("late"); got["runtimeclassd.io/handler.crun"] != "true" || got["kubernetes.io/hostname"] != "late" {
		t.Errorf("labels %v", got)
	}
}

func TestLabelerRefusesOtherLabels(t *testing.T) {
	t.Parallel()
	f := newFakeAPI(t)
	l := NewLabeler(f.client(t), "w1", LabelerOptions{})
	for _, labels := range []map[string]string{
		{"kubernetes.io/hostname": "x"},
		{"runtimeclassd.io/handler." + strings.Repeat("a", 56): "true"}, // name part over 63
		{"runtimeclassd.io/handler.kata": "not a value"},
	} {
		if err := l.Sync(context.Background(), labels); err == nil {
			t.Errorf("Sync(%v): no error", labels)
		}
	}
	if n := f.total(); n != 0 {
		t.Errorf("%d requests", n)
	}
}

// TestLabelerRepairs: a label of ours that someone else removed or
// changed on the Node (or a Node registered again, without them) is put
// back at the first Sync once what the Labeler knows is RecheckAfter old,
// at one GET and one PATCH; before that, a Sync costs nothing (it used to
// trust its cache forever).
func TestLabelerRepairs(t *testing.T) {
	t.Parallel()
	f := newFakeAPI(t)
	f.nodes["w1"] = map[string]string{"kubernetes.io/hostname": "w1"}
	clk := newFakeClock()
	l := startLabeler(t, f, "w1", clk)
	ctx := context.Background()
	set := HandlerLabels(map[string]bool{"kata": true})
	l.Sync(ctx, set)
	flush(t, l)
	f.mu.Lock()
	delete(f.nodes["w1"], "runtimeclassd.io/handler.kata") // re-registered, or removed by hand
	f.mu.Unlock()
	before := f.total()
	l.Sync(ctx, set)
	flush(t, l)
	if n := f.total() - before; n != 0 {
		t.Errorf("a Sync within RecheckAfter: %d requests, want 0", n)
	}
	clk.Advance(5 * time.Minute)
	l.Sync(ctx, set)
	flush(t, l)
	if got := f.nodeLabels("w1")["runtimeclassd.io/handler.kata"]; got != "true" {
		t.Errorf("label after the recheck: %q, want true", got)
	}
	if n := f.total() - before; n != 2 {
		t.Errorf("the recheck: %d requests, want 2 (a GET and a PATCH)", n)
	}
}
