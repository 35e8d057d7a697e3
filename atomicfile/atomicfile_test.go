package atomicfile

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestWriteFileReplacesAndKeepsMode(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "f")
	os.WriteFile(p, []byte("old"), 0o640)
	os.Chmod(p, 0o640)
	if err := WriteFile(p, []byte("new"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	fi, _ := os.Stat(p)
	if string(b) != "new" || fi.Mode().Perm() != 0o640 {
		t.Fatalf("content %q mode %v", b, fi.Mode())
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(p), ".*")); len(left) != 0 {
		t.Fatalf("temp files left: %v", left)
	}
}

func TestWriteFileRefusesNonRegular(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := WriteFile(dir, []byte("x"), 0o644); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("directory target: %v", err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skip(err)
	}
	if err := WriteFile(fifo, []byte("x"), 0o644); err == nil {
		t.Fatal("wrote over a fifo")
	}
}

func TestWriteFileFollowsSymlink(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	target := filepath.Join(dir, "real")
	os.WriteFile(target, []byte("old"), 0o644)
	link := filepath.Join(dir, "link")
	os.Symlink("real", link)
	if err := WriteFile(link, []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Lstat(link); fi.Mode()&os.ModeSymlink == 0 {
		t.Fatal("the symlink was replaced by a file")
	}
	if b, _ := os.ReadFile(target); string(b) != "new" {
		t.Fatalf("target holds %q", b)
	}
}

// mountTmpfs mounts a small tmpfs (root only).
func mountTmpfs(t *testing.T, opts string) string {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("needs root to mount")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", opts, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("mount: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}

// TestFullDiskKeepsOldFile: ENOSPC in the middle of the write leaves the
// old file whole and no temp file behind.
func TestFullDiskKeepsOldFile(t *testing.T) {
	t.Parallel()
	dir := mountTmpfs(t, "size=64k")
	p := filepath.Join(dir, "config.toml")
	old := bytes.Repeat([]byte("o"), 20<<10)
	os.WriteFile(p, old, 0o644)
	err := WriteFile(p, bytes.Repeat([]byte("n"), 60<<10), 0o644)
	if err == nil || !strings.Contains(err.Error(), "no space left") {
		t.Fatalf("err = %v, want ENOSPC", err)
	}
	if b, _ := os.ReadFile(p); !bytes.Equal(b, old) {
		t.Fatal("old file damaged")
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*")); len(left) != 0 {
		t.Fatalf("temp files left: %v", left)
	}
}

func TestReadOnlyKeepsOldFile(t *testing.T) {
	t.Parallel()
	dir := mountTmpfs(t, "size=1m")
	p := filepath.Join(dir, "config.toml")
	os.WriteFile(p, []byte("old"), 0o644)
	if out, err := exec.Command("mount", "-o", "remount,ro", dir).CombinedOutput(); err != nil {
		t.Skipf("remount ro: %v %s", err, out)
	}
	if err := WriteFile(p, []byte("new"), 0o644); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Fatalf("err = %v", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "old" {
		t.Fatal("old file damaged")
	}
}

// TestCrashLeavesOldOrNew kills a writer process with SIGKILL at random
// moments, many times: the file must always hold the old bytes or the new
// ones, never anything else.
func TestCrashLeavesOldOrNew(t *testing.T) {
	t.Parallel()
	if os.Getenv("ATOMICFILE_CHILD") != "" {
		return
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "config.toml")
	old := bytes.Repeat([]byte("old config line\n"), 20000)
	next := bytes.Repeat([]byte("new config line\n"), 20000)
	seen := map[string]int{}
	for i := 0; i < 40; i++ {
		os.WriteFile(p, old, 0o644)
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$")
		cmd.Env = append(os.Environ(), "ATOMICFILE_CHILD="+p)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// The child needs a few ms to start; after that each write of
		// 320 KB takes about a millisecond, so kills land everywhere in it.
		time.Sleep(time.Duration(5000+rand.IntN(30000)) * time.Microsecond)
		cmd.Process.Kill()
		cmd.Wait()
		b, _ := os.ReadFile(p)
		switch {
		case bytes.Equal(b, old):
			seen["old"]++
		case bytes.Equal(b, next):
			seen["new"]++
		default:
			t.Fatalf("after a kill the file is neither old nor new (%d bytes)", len(b))
		}
	}
	t.Logf("after 40 kills: %v", seen)
	if seen["new"] == 0 {
		t.Fatal("no kill landed after a write: the test did not exercise the writer")
	}
}

// TestCrashChild is the writer TestCrashLeavesOldOrNew kills.
func TestCrashChild(t *testing.T) {
	p := os.Getenv("ATOMICFILE_CHILD")
	if p == "" {
		t.Skip("run by TestCrashLeavesOldOrNew")
	}
	for {
		if err := WriteFile(p, bytes.Repeat([]byte("new config line\n"), 20000), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}
