package daemon

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/runtimeclassd/runtimeclassd/internal/crashpoint"
)

// Resource faults: each gives a clear error and a metric, and leaves
// config.toml byte for byte as it was (or as a rollback restored it). The
// retry with backoff that follows an error is TestErrorsAreRetriedWithBackoff.

// mountTmpfs mounts a small tmpfs at a new directory (root only).
func mountTmpfs(t *testing.T, opts string) string {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("needs root to mount")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", opts+",mode=0755", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}

// onTmpfs moves the rig's config.toml onto a tmpfs mounted with opts,
// with some padding so that its size matters.
func onTmpfs(t *testing.T, r *rig, opts string, pad int) {
	t.Helper()
	dir := mountTmpfs(t, opts)
	r.orig = append([]byte(handwritten), bytes.Repeat([]byte("# padding\n"), pad/10)...)
	r.rec.Applier.Cfg.ContainerdConfig = filepath.Join(dir, "config.toml")
	r.cfg = r.rec.Applier.Cfg
	r.sd.config = r.cfg.ContainerdConfig
	if err := os.WriteFile(r.cfg.ContainerdConfig, r.orig, 0o644); err != nil {
		t.Fatal(err)
	}
}

func expectError(t *testing.T, r *rig, rep *Report, want string) {
	t.Helper()
	if rep.Outcome != OutcomeError || rep.Err == nil || !strings.Contains(rep.Err.Error(), want) {
		t.Fatalf("outcome %s, err %v; want an error saying %q", rep.Outcome, rep.Err, want)
	}
	if !bytes.Equal(r.config(), r.orig) {
		t.Fatalf("config.toml changed:\n%s", r.config())
	}
	if v := testutil.ToFloat64(r.rec.Metrics.reconciles.WithLabelValues(OutcomeError)); v != 1 {
		t.Fatalf("reconcile_total{error} = %v", v)
	}
	if st, _ := LoadState(r.rec.Applier.Cfg.StateDir); st != nil && st.Pending != nil {
		t.Fatalf("pending left after a failed write: %+v", st.Pending)
	}
	if r.sd.restarts != 0 {
		t.Fatalf("%d restarts after a failed write", r.sd.restarts)
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(r.cfg.ContainerdConfig), ".*"))
	if len(left) != 0 {
		t.Fatalf("temp files left: %v", left)
	}
}

func TestFullDisk(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	onTmpfs(t, r, "size=64k", 40<<10)
	r.policy("kata.toml", kataPolicy)
	expectError(t, r, r.rec.Reconcile(context.Background()), "no space left on device")
}

func TestReadOnlyConfigDir(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	onTmpfs(t, r, "size=1m", 0)
	if out, err := exec.Command("mount", "-o", "remount,ro", filepath.Dir(r.cfg.ContainerdConfig)).CombinedOutput(); err != nil {
		t.Fatalf("remount ro: %v %s", err, out)
	}
	r.policy("kata.toml", kataPolicy)
	expectError(t, r, r.rec.Reconcile(context.Background()), "read-only file system")
}

func TestUnusableStateDir(t *testing.T) {
	t.Parallel()
	for name, setup := range map[string]func(r *rig) string{
		"a file where the directory should be": func(r *rig) string {
			f := filepath.Join(r.dir, "not-a-dir")
			os.WriteFile(f, nil, 0o600)
			return filepath.Join(f, "state")
		},
		"read-only": func(r *rig) string {
			dir := mountTmpfs(t, "size=1m")
			exec.Command("mount", "-o", "remount,ro", dir).Run()
			return filepath.Join(dir, "state")
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t)
			r.rec.Applier.Cfg.StateDir = setup(r)
			r.policy("kata.toml", kataPolicy)
			expectError(t, r, r.rec.Reconcile(context.Background()), r.rec.Applier.Cfg.StateDir)
		})
	}
}

// A restart job that fails (not the start limit): the candidate is rolled
// back and containerd restarted on the old config.
func TestRestartJobFails(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.sd.restartErr = func(n int) error {
		if n == 1 {
			return errors.New(`restarting containerd.service: job result "failed", unit result exit-code`)
		}
		return nil
	}
	r.policy("kata.toml", kataPolicy)
	rep := r.rec.Reconcile(context.Background())
	if rep.Outcome != OutcomeRolledBack || !strings.Contains(rep.Err.Error(), `job result "failed"`) {
		t.Fatalf("report %+v", rep)
	}
	if !bytes.Equal(r.config(), r.orig) || !bytes.Equal(r.running(), r.orig) {
		t.Fatal("not rolled back")
	}
	if testutil.ToFloat64(r.rec.Metrics.restarts.WithLabelValues("failure")) != 1 {
		t.Error("the failed restart is not counted")
	}
}

// A verification that never succeeds ends at verify_timeout and rolls back.
func TestVerificationTimesOut(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.rec.Applier.Cfg.VerifyTimeout = Duration(200 * time.Millisecond)
	r.rec.Verifier = hangingVerifier{r.sd, "handler=kata"}
	r.policy("kata.toml", kataPolicy)
	rep := r.rec.Reconcile(context.Background())
	if rep.Outcome != OutcomeRolledBack || !errors.Is(rep.Err, context.DeadlineExceeded) {
		t.Fatalf("report %+v", rep)
	}
	if !bytes.Equal(r.config(), r.orig) || !bytes.Equal(r.running(), r.orig) {
		t.Fatal("not rolled back")
	}
}

// hangingVerifier never answers while containerd runs a config with hang.
type hangingVerifier struct {
	*fakeContainerd
	hang string
}

func (h hangingVerifier) Verify(ctx context.Context, handlers []string) error {
	if bytes.Contains(h.runs(), []byte(h.hang)) {
		<-ctx.Done()
		return ctx.Err()
	}
	return h.fakeContainerd.Verify(ctx, handlers)
}

// runs is the config the fake containerd runs.
func (f *fakeContainerd) runs() []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.running
}

// Concurrent writers: another tool writes config.toml between our plan and
// our rename. Their bytes stay, and the next reconcile applies the policy
// over them.
func TestWriterBetweenPlanAndRename(t *testing.T) {
	r := newRig(t)
	r.policy("kata.toml", kataPolicy)
	theirs := append(append([]byte{}, r.orig...), "# written by another tool\n"...)
	remove := crashpoint.SetHook(func(s string) {
		if s == "write config.toml: temp synced" {
			os.WriteFile(r.cfg.ContainerdConfig, theirs, 0o644)
		}
	})
	rep := r.rec.Reconcile(context.Background())
	remove()
	if rep.Outcome != OutcomeError || !errors.Is(rep.Err, ErrConfigChanged) || !rep.Replan {
		t.Fatalf("report %+v", rep)
	}
	if !bytes.Equal(r.config(), theirs) || r.sd.restarts != 0 {
		t.Fatalf("their bytes were lost, or containerd restarted (%d):\n%s", r.sd.restarts, r.config())
	}
	if st, _ := LoadState(r.cfg.StateDir); st.Pending != nil {
		t.Fatalf("pending left: %+v", st.Pending)
	}
	rep = r.rec.Reconcile(context.Background())
	if rep.Outcome != OutcomeApplied || !bytes.Contains(r.config(), []byte("# written by another tool")) || !bytes.Contains(r.config(), []byte("handler=kata")) {
		t.Fatalf("after them: %+v\n%s", rep, r.config())
	}
}

// Concurrent writers: another tool writes config.toml while a rollback is
// under way, before the restore. Their bytes stay.
func TestWriterDuringRollback(t *testing.T) {
	r := newRig(t)
	r.verifier.bad = "handler=kata"
	r.policy("kata.toml", badKata)
	theirs := append(append([]byte{}, r.orig...), "# written by another tool\n"...)
	remove := crashpoint.SetHook(func(s string) {
		if s == "rollback: intent recorded" {
			os.WriteFile(r.cfg.ContainerdConfig, theirs, 0o644)
		}
	})
	rep := r.rec.Reconcile(context.Background())
	remove()
	if rep.Outcome != OutcomeRolledBack || !rep.Replan {
		t.Fatalf("report %+v", rep)
	}
	if !bytes.Equal(r.config(), theirs) || !bytes.Equal(r.running(), theirs) {
		t.Fatalf("their bytes were lost, or containerd does not run them:\n%s", r.config())
	}
}
