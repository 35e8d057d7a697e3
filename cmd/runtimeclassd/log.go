package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// newLogger is the logger of every command: slog's text format on stderr.
// When stderr is the journal (systemd sets JOURNAL_STREAM to its device
// and inode), each line starts with its syslog priority in sd-daemon's
// form (<3> errors, <4> warnings, <6> info, <7> debug), which journald
// strips and stores as the entry's PRIORITY, so that `journalctl -p err`
// shows the errors; the time is left to journald.
func newLogger(w io.Writer, level slog.Leveler) *slog.Logger {
	f, ok := w.(*os.File)
	if !ok || !isJournal(f, os.Getenv("JOURNAL_STREAM")) {
		return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
	}
	return slog.New(newJournalHandler(w, level))
}

// isJournal reports whether f is the stream JOURNAL_STREAM ("DEV:INODE")
// names.
func isJournal(f *os.File, stream string) bool {
	devs, inos, ok := strings.Cut(stream, ":")
	if !ok {
		return false
	}
	dev, err1 := strconv.ParseUint(devs, 10, 64)
	ino, err2 := strconv.ParseUint(inos, 10, 64)
	var st syscall.Stat_t
	if err1 != nil || err2 != nil || syscall.Fstat(int(f.Fd()), &st) != nil {
		return false
	}
	return uint64(st.Dev) == dev && st.Ino == ino
}

// journalHandler is slog's text handler with a priority prefix per line.
type journalHandler struct {
	text slog.Handler // writes to w
	w    *prefixWriter
}

// prefixWriter writes each record, which the text handler writes in one
// call, after the prefix of its level. mu holds from choosing the prefix
// to the write.
type prefixWriter struct {
	mu     sync.Mutex
	out    io.Writer
	prefix string
	buf    []byte
}

func (w *prefixWriter) Write(p []byte) (int, error) {
	w.buf = append(append(w.buf[:0], w.prefix...), p...)
	if _, err := w.out.Write(w.buf); err != nil {
		return 0, err
	}
	return len(p), nil
}

func newJournalHandler(out io.Writer, level slog.Leveler) *journalHandler {
	w := &prefixWriter{out: out}
	return &journalHandler{w: w, text: slog.NewTextHandler(w, &slog.HandlerOptions{Level: level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{} // journald records the time
			}
			return a
		}})}
}

// priority is the sd-daemon prefix (syslog priority) of a level.
func priority(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "<3>"
	case l >= slog.LevelWarn:
		return "<4>"
	case l >= slog.LevelInfo:
		return "<6>"
	}
	return "<7>"
}

func (h *journalHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.text.Enabled(ctx, l)
}

func (h *journalHandler) Handle(ctx context.Context, r slog.Record) error {
	h.w.mu.Lock()
	defer h.w.mu.Unlock()
	h.w.prefix = priority(r.Level)
	return h.text.Handle(ctx, r)
}

func (h *journalHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &journalHandler{text: h.text.WithAttrs(as), w: h.w}
}

func (h *journalHandler) WithGroup(name string) slog.Handler {
	return &journalHandler{text: h.text.WithGroup(name), w: h.w}
}
