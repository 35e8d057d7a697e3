package daemon

import (
	"context"
	"os"
	"path/filepath"
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

// TestLabelsNotWrittenThroughUserSymlink: a user's symlink in a writable
// features.d pointing at config.toml must not turn config.toml into label
// lines; the error names the directory and why.
func TestLabelsNotWrittenThroughUserSymlink(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root")
	}
	root := t.TempDir()
	cfg := filepath.Join(root, "config.toml")
	os.WriteFile(cfg, []byte("version = 2\n"), 0o644)
	fd := filepath.Join(root, "features.d")
	os.Mkdir(fd, 0o755)
	os.Chmod(fd, 0o777)
	link := filepath.Join(fd, "runtimeclassd")
	os.Symlink(cfg, link)
	os.Lchown(link, 1000, 1000)
	_, err := WriteLabels(link, nil, nil, time.Now(), time.Hour)
	if err == nil || !strings.Contains(err.Error(), "directory "+fd+" is group- or world-writable (mode 0777)") {
		t.Fatalf("err = %v", err)
	}
	if b, _ := os.ReadFile(cfg); string(b) != "version = 2\n" {
		t.Fatalf("config.toml now holds %q", b)
	}
}

// TestStateDirOthersCanWriteRefused: an existing state directory that
// others can write, or that a user owns, is refused, not used.
func TestStateDirOthersCanWriteRefused(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root")
	}
	for name, prep := range map[string]func(string){
		"world-writable": func(d string) { os.Chmod(d, 0o777) },
		"user-owned":     func(d string) { os.Chown(d, 1000, 1000) },
	} {
		t.Run(name, func(t *testing.T) {
			d := filepath.Join(t.TempDir(), "state")
			os.Mkdir(d, 0o700)
			prep(d)
			err := SaveState(d, &State{})
			if err == nil || !strings.Contains(err.Error(), "state directory "+d) {
				t.Fatalf("SaveState: err = %v", err)
			}
			if _, err := Lock(context.Background(), d); err == nil || !strings.Contains(err.Error(), "state directory "+d) {
				t.Fatalf("Lock: err = %v", err)
			}
			if _, err := os.Lstat(StateFile(d)); err == nil {
				t.Fatal("state file written")
			}
		})
	}
}

// TestRemoveTempsSkipsUntrustedBackups: a backups directory that leads
// somewhere others can write is not cleaned: nothing there is deleted.
func TestRemoveTempsSkipsUntrustedBackups(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root")
	}
	r := newRig(t)
	evil := filepath.Join(r.dir, "evil")
	os.Mkdir(evil, 0o755)
	os.Chmod(evil, 0o777)
	os.WriteFile(filepath.Join(evil, ".keep"), []byte("x"), 0o644)
	os.MkdirAll(r.cfg.StateDir, 0o700)
	os.Symlink(evil, filepath.Join(r.cfg.StateDir, "backups"))
	r.rec.removeTemps()
	if _, err := os.Stat(filepath.Join(evil, ".keep")); err != nil {
		t.Fatalf("a file in %s was removed: %v", evil, err)
	}
}
