package atomicfile

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/runtimeclassd/runtimeclassd/internal/crashpoint"
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
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", opts+",mode=0755", "tmpfs", dir).CombinedOutput(); err != nil {
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

// crashSteps are WriteFile's steps in order, as crashpoint names them for a
// file called config.toml; a crash before "renamed" must leave the old
// bytes, at or after it the new ones.
var crashSteps = []string{"begin", "temp created", "temp written", "temp synced", "renamed", "dir synced"}

// TestCrashAtEveryStep kills a real writer process with SIGKILL at each step
// of WriteFile: the file holds exactly the old bytes before the rename and
// exactly the new ones from it on, and RemoveTemps clears what the killed
// writer left behind.
func TestCrashAtEveryStep(t *testing.T) {
	t.Parallel()
	old := bytes.Repeat([]byte("old config line\n"), 20000)
	next := bytes.Repeat([]byte("new config line\n"), 20000)
	for i, step := range crashSteps {
		t.Run(step, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			p := filepath.Join(dir, "config.toml")
			os.WriteFile(p, old, 0o644)
			cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$")
			cmd.Env = append(os.Environ(), "ATOMICFILE_CHILD="+p, "ATOMICFILE_CHILD_ONCE=1", "GORACE=atexit_sleep_ms=0",
				"RUNTIMECLASSD_CRASH_AT=write config.toml: "+step)
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("the writer was not killed at %q: %v", step, err)
			}
			b, _ := os.ReadFile(p)
			want, name := old, "old"
			if i >= slices.Index(crashSteps, "renamed") {
				want, name = next, "new"
			}
			if !bytes.Equal(b, want) {
				t.Fatalf("killed at %q: the file is not the %s bytes (%d bytes)", step, name, len(b))
			}
			removed, err := RemoveTemps(p)
			if err != nil {
				t.Fatal(err)
			}
			left, _ := filepath.Glob(filepath.Join(dir, ".*"))
			if len(left) != 0 {
				t.Fatalf("temp files left after RemoveTemps: %v", left)
			}
			if b2, _ := os.ReadFile(p); !bytes.Equal(b2, want) {
				t.Fatal("RemoveTemps changed the file")
			}
			t.Logf("killed at %q: %s bytes, removed %d temp files", step, name, len(removed))
		})
	}
}

// TestCrashAtRandomMoments kills a writer that alternates between two
// contents at random moments, many times: the file must always hold one of
// the complete contents (or the original), never a mix or a truncation. The
// kill waits for the child to say it is writing, so a slow machine only
// moves where the kills land, not what the test checks.
func TestCrashAtRandomMoments(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "config.toml")
	old := bytes.Repeat([]byte("old config line\n"), 20000)
	contents := map[string][]byte{"old": old, "a": childContent("a"), "b": childContent("b")}
	seen := map[string]int{}
	const runs = 60
	for range runs {
		os.WriteFile(p, old, 0o644)
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$")
		cmd.Env = append(os.Environ(), "ATOMICFILE_CHILD="+p)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if _, err := bufio.NewReader(out).ReadString('\n'); err != nil {
			t.Fatalf("the child never said it was writing: %v", err)
		}
		time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
		cmd.Process.Kill()
		cmd.Wait()
		b, _ := os.ReadFile(p)
		found := ""
		for name, c := range contents {
			if bytes.Equal(b, c) {
				found = name
			}
		}
		if found == "" {
			t.Fatalf("after a kill the file is none of the complete contents (%d bytes)", len(b))
		}
		seen[found]++
		if _, err := RemoveTemps(p); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("after %d kills at random moments: %v", runs, seen)
}

func childContent(tag string) []byte {
	return bytes.Repeat([]byte("new config line "+tag+"\n"), 20000)
}

// TestCrashChild is the writer the crash tests kill. It says "writing" on
// stdout once it is about to write, then writes until killed (or once, with
// ATOMICFILE_CHILD_ONCE, for the crashpoint test).
func TestCrashChild(t *testing.T) {
	p := os.Getenv("ATOMICFILE_CHILD")
	if p == "" {
		t.Skip("run by the crash tests")
	}
	if os.Getenv("ATOMICFILE_CHILD_ONCE") != "" {
		if err := WriteFile(p, bytes.Repeat([]byte("new config line\n"), 20000), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
		os.Exit(3) // the crashpoint should have killed us
	}
	fmt.Println("writing")
	for i := 0; ; i++ {
		tag := "a"
		if i%2 == 1 {
			tag = "b"
		}
		if err := WriteFile(p, childContent(tag), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}

// TestReplaceIf covers each moment another writer can act while ReplaceIf
// runs: the file ends up with the newest bytes anyone wrote, ours only if
// nobody wrote after the caller's read, and ErrChanged tells the caller.
// Each case uses its own file name, because crashpoint hooks see every
// write in the process.
func TestReplaceIf(t *testing.T) {
	const orig, ours, theirs, later = "original\n", "ours\n", "theirs\n", "later\n"
	cases := []struct {
		name    string
		actions map[string]string // step -> bytes another writer renames over the file then
		want    string
		changed bool
	}{
		{"nobody else", nil, ours, false},
		{"write before the exchange", map[string]string{"temp synced": theirs}, theirs, true},
		{"write right after the exchange", map[string]string{"renamed": theirs}, theirs, false},
		{"writes before the exchange and before putting theirs back",
			map[string]string{"temp synced": theirs, "displaced differs": later}, later, true},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			base := fmt.Sprintf("replace-%d.toml", i)
			p := filepath.Join(dir, base)
			os.WriteFile(p, []byte(orig), 0o640)
			os.Chmod(p, 0o640)
			remove := crashpoint.SetHook(func(step string) {
				s, ok := strings.CutPrefix(step, "write "+base+": ")
				if b, act := c.actions[s]; ok && act {
					other := filepath.Join(dir, "other")
					os.WriteFile(other, []byte(b), 0o644)
					os.Rename(other, p)
				}
			})
			err := ReplaceIf(p, []byte(ours), 0o644, []byte(orig))
			remove()
			if c.changed != errors.Is(err, ErrChanged) || err != nil && !c.changed {
				t.Fatalf("err = %v, want ErrChanged: %v", err, c.changed)
			}
			if b, _ := os.ReadFile(p); string(b) != c.want {
				t.Fatalf("file holds %q, want %q", b, c.want)
			}
			if left, _ := filepath.Glob(filepath.Join(dir, ".*")); len(left) != 0 {
				t.Fatalf("temp files left: %v", left)
			}
		})
	}
}

func TestReplaceIfExpectations(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	// Must not exist: created.
	if err := ReplaceIf(p, []byte("new"), 0o600, nil); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode())
	}
	// Must not exist, but does: left alone.
	if err := ReplaceIf(p, []byte("other"), 0o600, nil); !errors.Is(err, ErrChanged) {
		t.Fatalf("err = %v", err)
	}
	// Expected other bytes: left alone, mode kept.
	os.Chmod(p, 0o640)
	if err := ReplaceIf(p, []byte("other"), 0o600, []byte("not this")); !errors.Is(err, ErrChanged) {
		t.Fatalf("err = %v", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "new" {
		t.Fatalf("file holds %q", b)
	}
	// Expected bytes: replaced, mode kept.
	if err := ReplaceIf(p, []byte("third"), 0o600, []byte("new")); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v", fi.Mode())
	}
	// Removed since it was read: not recreated.
	os.Remove(p)
	if err := ReplaceIf(p, []byte("x"), 0o600, []byte("third")); !errors.Is(err, ErrChanged) {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(p); err == nil {
		t.Fatal("a removed file was recreated")
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*")); len(left) != 0 {
		t.Fatalf("temp files left: %v", left)
	}
}

func TestRemoveIf(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "50-runtimeclassd.toml")
	os.WriteFile(p, []byte("ours"), 0o644)
	if err := RemoveIf(p, []byte("theirs")); !errors.Is(err, ErrChanged) {
		t.Fatalf("err = %v", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "ours" {
		t.Fatalf("a file that was not the expected one was changed: %q", b)
	}
	if err := RemoveIf(p, []byte("ours")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err == nil {
		t.Fatal("not removed")
	}
	if err := RemoveIf(p, []byte("ours")); !errors.Is(err, ErrChanged) {
		t.Fatalf("removing a missing file: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*")); len(left) != 0 {
		t.Fatalf("temp files left: %v", left)
	}
}
