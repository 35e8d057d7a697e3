//go:build !runtimeclassd_lite

package main

import (
	"net/http"
	"net/http/httptest"
	"runtime/metrics"
	"testing"
	"time"
)

type countingNotifier struct{ states []string }

func (n *countingNotifier) Notify(state string) (bool, error) {
	n.states = append(n.states, state)
	return true, nil
}
func (n *countingNotifier) WatchdogInterval() time.Duration { return 0 }

func forcedGCs() uint64 {
	s := []metrics.Sample{{Name: "/gc/cycles/forced:gc-cycles"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// waitForcedGC waits until the runtime counts more forced collections than
// before.
func waitForcedGC(t *testing.T, before uint64, after string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if forcedGCs() > before {
			return
		}
	}
	t.Errorf("no collection after %s", after)
}

// TestMemoryReleasedAfterWork: the daemon collects and returns memory
// after each reconcile (its STATUS= notification) and after each HTTP
// response, and passes every notification on.
func TestMemoryReleasedAfterWork(t *testing.T) {
	inner := &countingNotifier{}
	n := releasingNotifier{inner}
	before := forcedGCs()
	if ok, err := n.Notify("STATUS=applied; offering 1 handlers [x]"); !ok || err != nil {
		t.Fatal(ok, err)
	}
	waitForcedGC(t, before, "a reconcile")
	n.Notify("WATCHDOG=1")
	if len(inner.states) != 2 || inner.states[1] != "WATCHDOG=1" {
		t.Errorf("notifications passed on: %q", inner.states)
	}
	before = forcedGCs()
	srv := httptest.NewServer(releasingHandler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok")) })))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	waitForcedGC(t, before, "a scrape")
}

// TestGOGCKeepsGosPolicy: an operator's GOGC or GOMEMLIMIT wins.
func TestGOGCKeepsGosPolicy(t *testing.T) {
	t.Setenv("GOGC", "100")
	if collectWhenIdle() {
		t.Error("GOGC is set, and the daemon changed the collector's policy anyway")
	}
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "64MiB")
	if collectWhenIdle() {
		t.Error("GOMEMLIMIT is set, and the daemon changed the collector's policy anyway")
	}
}
