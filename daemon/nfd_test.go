package daemon

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/runtimeclassd/runtimeclassd/policy"
)

// The feature file in Node Feature Discovery's format: the expiry
// directive first (NFD applies it to the lines after it), an hour ahead,
// in RFC 3339; then one label per handler, in the policy's order.
func TestNFDFeatures(t *testing.T) {
	t.Parallel()
	before := time.Now()
	got := string(NFDFeatures([]string{"kata", "gvisor"}, map[string]bool{"gvisor": true}, time.Now().Add(time.Hour)))
	after := time.Now()
	lines := strings.Split(got, "\n")
	if len(lines) != 5 || lines[4] != "" || !strings.HasPrefix(lines[0], "# ") {
		t.Fatalf("feature file:\n%s", got)
	}
	stamp, ok := strings.CutPrefix(lines[1], "# +expiry-time=")
	if !ok {
		t.Fatalf("no expiry directive on the second line:\n%s", got)
	}
	expiry, err := time.Parse(time.RFC3339, stamp)
	if err != nil {
		t.Fatalf("expiry %q: %v", stamp, err)
	}
	if lo, hi := before.Add(time.Hour).Truncate(time.Second), after.Add(time.Hour); expiry.Before(lo) || expiry.After(hi) {
		t.Errorf("expiry %v, want an hour from now (%v..%v)", expiry, lo, hi)
	}
	if lines[2] != "runtimeclassd.io/handler.kata=false" || lines[3] != "runtimeclassd.io/handler.gvisor=true" {
		t.Errorf("labels:\n%s", got)
	}
}

// An idle daemon rewrites the labels only when half their validity is
// gone; a changed label is written at once; the validity covers three
// resyncs, so labels never expire under a running daemon.
func TestWriteLabelsRefreshesBeforeExpiry(t *testing.T) {
	t.Parallel()
	path := t.TempDir() + "/runtimeclassd"
	pol := &policy.Policy{Handlers: []policy.Handler{{Name: "kata"}}}
	v := LabelValidity(5 * time.Minute)
	if v != time.Hour || LabelValidity(time.Hour) != 3*time.Hour {
		t.Fatalf("validity %v, %v", v, LabelValidity(time.Hour))
	}
	t0 := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	write := func(at time.Duration, offered bool) bool {
		t.Helper()
		wrote, err := WriteLabels(path, pol, map[string]bool{"kata": offered}, t0.Add(at), v)
		if err != nil {
			t.Fatal(err)
		}
		return wrote
	}
	for _, c := range []struct {
		at      time.Duration
		offered bool
		wrote   bool
	}{
		{0, true, true},
		{5 * time.Minute, true, false},  // a resync: nothing changed
		{25 * time.Minute, true, false}, // still more than half left
		{31 * time.Minute, true, true},  // refreshed
		{32 * time.Minute, false, true}, // a label changed
		{33 * time.Minute, false, false},
	} {
		if got := write(c.at, c.offered); got != c.wrote {
			t.Fatalf("at +%v offered=%v: wrote %v, want %v", c.at, c.offered, got, c.wrote)
		}
	}
	b, _ := os.ReadFile(path)
	if exp, _ := labelsExpiry(b); !exp.Equal(t0.Add(32*time.Minute + v)) {
		t.Fatalf("expiry %v", exp)
	}
}
