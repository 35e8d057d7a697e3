package daemon

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fakeSmoker passes or fails each handler's smoke test as told, and counts
// the tests.
type fakeSmoker struct {
	mu        sync.Mutex
	result    map[string]string // handler -> result; missing: passed
	calls     []string
	opts      []SmokeOptions
	leftovers int
}

func (f *fakeSmoker) Smoke(_ context.Context, handler string, opts SmokeOptions) SmokeResult {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, handler)
	f.opts = append(f.opts, opts)
	res := f.result[handler]
	if res == "" {
		res = SmokePassed
	}
	detail := ""
	if res != SmokePassed {
		detail = "fake: " + res
	}
	return SmokeResult{Handler: handler, Result: res, Detail: detail, Took: 300 * time.Millisecond}
}

func (f *fakeSmoker) RemoveLeftovers(context.Context) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := f.leftovers
	f.leftovers = 0
	return n, nil
}

func (f *fakeSmoker) set(handler, result string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.result == nil {
		f.result = map[string]string{}
	}
	f.result[handler] = result
}

func (f *fakeSmoker) count() int { f.mu.Lock(); defer f.mu.Unlock(); return len(f.calls) }

const twoHandlers = kataPolicy + "smoke = \"host\"\n[handlers.broken]\nruntime_type = \"io.containerd.runc.v2\"\n"

// A handler that is written and served but can't run a sandbox stays in
// config.toml and is not offered; the others are, after one restart. When
// the host is fixed, a resync offers it with no restart. A passed test is
// not repeated until the block changes.
func TestSmokeTestGatesTheOffer(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	sm := &fakeSmoker{}
	sm.set("broken", SmokeFailed)
	r.rec.Smoker = sm
	r.policy("p.toml", twoHandlers)
	rep := r.rec.Reconcile(context.Background())
	if rep.Outcome != OutcomeApplied || r.sd.restarts != 1 {
		t.Fatalf("apply: %+v, restarts %d", rep, r.sd.restarts)
	}
	if !rep.Offered["kata"] || rep.Offered["broken"] {
		t.Fatalf("offered %v", rep.Offered)
	}
	if l := r.labels(); !strings.Contains(l, "handler.kata=true") || !strings.Contains(l, "handler.broken=false") {
		t.Fatalf("labels:\n%s", l)
	}
	if !strings.Contains(string(r.config()), "handler=broken") {
		t.Fatal("the handler that failed its smoke test was removed from config.toml")
	}
	st, _ := LoadState(r.cfg.StateDir)
	for _, h := range st.Handlers {
		if h.Name == "broken" && (h.Offered || h.Reason != "smoke test failed: fake: failed" || h.Smoke == nil) {
			t.Fatalf("state of broken: %+v", h)
		}
	}
	m := r.rec.Metrics
	if testutil.ToFloat64(m.smokeOK.WithLabelValues("broken")) != 0 || testutil.ToFloat64(m.smokeOK.WithLabelValues("kata")) != 1 ||
		testutil.ToFloat64(m.smokeTotal.WithLabelValues(SmokeFailed)) != 1 || testutil.ToFloat64(m.ready.WithLabelValues("broken")) != 0 {
		t.Fatal("smoke metrics do not match")
	}
	// A resync: the failed one is tested again, the passed one is not.
	calls := sm.count()
	r.rec.Reconcile(context.Background())
	if got := sm.calls[calls:]; len(got) != 1 || got[0] != "broken" {
		t.Fatalf("resync tested %v, want only broken", got)
	}
	// The host is fixed: the next resync offers it, with no restart.
	sm.set("broken", SmokePassed)
	rep = r.rec.Reconcile(context.Background())
	if rep.Outcome != OutcomeUnchanged || !rep.Offered["broken"] || r.sd.restarts != 1 {
		t.Fatalf("after the fix: %+v, restarts %d", rep, r.sd.restarts)
	}
	// A changed block is tested again.
	calls = sm.count()
	r.policy("p.toml", twoHandlers+"pod_annotations = [\"io.katacontainers.config.hypervisor.default_memory\"]\n")
	r.clock.advance(time.Hour)
	r.rec.Reconcile(context.Background())
	if got := sm.calls[calls:]; len(got) != 1 || got[0] != "broken" {
		t.Fatalf("after a change to broken's block, tested %v", got)
	}
}

// Pending (no pod network yet) and skipped (no sandbox image) are not
// offered either; smoke = "off" offers untested; Kata's preset tests on a
// pod network.
func TestSmokeModes(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	sm := &fakeSmoker{}
	sm.set("kata", SmokePending)
	sm.set("skipped", SmokeSkipped)
	r.rec.Smoker = sm
	r.policy("p.toml", "[handlers.kata]\npreset = \"kata\"\nrequires = []\n"+
		"[handlers.skipped]\nruntime_type = \"io.containerd.runc.v2\"\n"+
		"[handlers.untested]\nruntime_type = \"io.containerd.runc.v2\"\nsmoke = \"off\"\n")
	rep := r.rec.Reconcile(context.Background())
	if rep.Offered["kata"] || rep.Offered["skipped"] || !rep.Offered["untested"] {
		t.Fatalf("offered %v", rep.Offered)
	}
	if !strings.Contains(rep.Offers["kata"].Reason, "smoke test pending") || !strings.Contains(rep.Offers["skipped"].Reason, "smoke test skipped") {
		t.Fatalf("offers %+v", rep.Offers)
	}
	for i, h := range sm.calls {
		if want := h == "kata"; sm.opts[i].PodNetwork != want {
			t.Errorf("%s tested with PodNetwork=%v", h, sm.opts[i].PodNetwork)
		}
		if h == "untested" {
			t.Error("smoke = off was tested")
		}
	}
}

// Sandboxes a crash left behind are removed at the next start.
func TestSmokeLeftoversRemovedAtStart(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	sm := &fakeSmoker{leftovers: 2}
	r.rec.Smoker = sm
	r.rec.Recover(context.Background())
	if sm.leftovers != 0 {
		t.Fatal("leftover smoke sandboxes not removed at start")
	}
}

// runtimeclassd_handler_required follows the policy's required key, for
// the HandlerNotReady alert.
func TestHandlerRequiredMetric(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.policy("p.toml", kataPolicy+"required = true\n[handlers.crun]\npreset = \"crun\"\n")
	r.rec.Reconcile(context.Background())
	m := r.rec.Metrics
	if testutil.ToFloat64(m.required.WithLabelValues("kata")) != 1 || testutil.ToFloat64(m.required.WithLabelValues("crun")) != 0 {
		t.Fatal("handler_required does not follow the policy")
	}
}
