package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// TestJournalPriorities: under journald every line starts with the
// sd-daemon priority of its level, carries no time (journald records it),
// and keeps the attributes and groups of the logger it came from.
func TestJournalPriorities(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	level := new(slog.LevelVar)
	level.Set(slog.LevelDebug)
	log := slog.New(newJournalHandler(&buf, level))
	log.Debug("d")
	log.Info("i", "k", "v")
	log.Warn("w")
	log.Error("e", "err", "boom\nsecond line")
	log.With("component", "web").WithGroup("g").Error("grouped", "x", 1)
	log.Log(context.Background(), slog.LevelWarn+2, "between warn and error")
	want := []string{
		`<7>level=DEBUG msg=d`,
		`<6>level=INFO msg=i k=v`,
		`<4>level=WARN msg=w`,
		`<3>level=ERROR msg=e err="boom\nsecond line"`,
		`<3>level=ERROR msg=grouped component=web g.x=1`,
		`<4>level=WARN+2 msg="between warn and error"`,
	}
	if got := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestJournalPrioritiesConcurrent: each line keeps its own priority when
// loggers write at once.
func TestJournalPrioritiesConcurrent(t *testing.T) {
	t.Parallel()
	var buf syncBuffer
	log := slog.New(newJournalHandler(&buf, slog.LevelDebug))
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := log.With("worker", i)
			for range 200 {
				l.Error("e")
				l.Info("i")
			}
		}()
	}
	wg.Wait()
	for _, l := range strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n") {
		if strings.HasPrefix(l, "<3>") != strings.Contains(l, "level=ERROR") || strings.HasPrefix(l, "<6>") != strings.Contains(l, "level=INFO") {
			t.Fatalf("line with the wrong priority: %q", l)
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string { return s.b.String() }

// TestLoggerFindsTheJournal: the priority prefixes are used only when
// stderr is the stream JOURNAL_STREAM names (its device and inode), as
// systemd sets it for a unit whose output goes to the journal; not for a
// terminal, a pipe, or a file the variable doesn't name (a child that
// inherited the variable but not the stream).
func TestLoggerFindsTheJournal(t *testing.T) {
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	other, _ := os.Create(filepath.Join(dir, "other"))
	defer other.Close()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	stream := fmt.Sprintf("%d:%d", st.Dev, st.Ino)
	for _, tc := range []struct {
		env     string
		w       *os.File
		journal bool
	}{{stream, f, true}, {stream, other, false}, {"", f, false}, {"garbage", f, false}, {fmt.Sprintf("%d:%d", st.Dev, st.Ino+1), f, false}} {
		t.Setenv("JOURNAL_STREAM", tc.env)
		if got := isJournal(tc.w, os.Getenv("JOURNAL_STREAM")); got != tc.journal {
			t.Errorf("JOURNAL_STREAM=%q, %s: journal %v, want %v", tc.env, tc.w.Name(), got, tc.journal)
		}
		tc.w.Truncate(0)
		tc.w.Seek(0, 0)
		newLogger(tc.w, slog.LevelInfo).Error("x")
		b, _ := os.ReadFile(tc.w.Name())
		if strings.HasPrefix(string(b), "<3>level=ERROR msg=x") != tc.journal || strings.Contains(string(b), "time=") == tc.journal {
			t.Errorf("JOURNAL_STREAM=%q, %s: wrote %q", tc.env, tc.w.Name(), b)
		}
	}
}
