package daemon

import (
	"strings"
	"testing"
	"time"
)

// The feature file in Node Feature Discovery's format: the expiry
// directive first (NFD applies it to the lines after it), an hour ahead,
// in RFC 3339; then one label per handler, in the policy's order.
func TestNFDFeatures(t *testing.T) {
	t.Parallel()
	before := time.Now()
	got := string(NFDFeatures([]string{"kata", "gvisor"}, map[string]bool{"gvisor": true}))
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
