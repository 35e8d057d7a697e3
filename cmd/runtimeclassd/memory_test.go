//go:build !runtimeclassd_lite

package main

import (
	"net/http"
	"net/http/httptest"
	"runtime/metrics"
	"testing"
	"time"
)

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

// TestMemoryReleasedAfterWork: releaseMemory, the daemon's
// after-reconcile hook, collects and returns memory, and so does each
// HTTP response.
func TestMemoryReleasedAfterWork(t *testing.T) {
	before := forcedGCs()
	releaseMemory()
	waitForcedGC(t, before, "a reconcile")
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

// TestGOGCKeepsGosPolicy: an operator's GOGC or GOMEMLIMIT wins; the
// unit's GOGC=off means the daemon collects after its work.
func TestGOGCKeepsGosPolicy(t *testing.T) {
	t.Setenv("GOGC", "off")
	t.Setenv("GOMEMLIMIT", "32MiB")
	if !collectWhenIdle() {
		t.Error("GOGC=off (the unit's), and the daemon would not collect after its work")
	}
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
