package systemd

import (
	"net"
	"path/filepath"
	"testing"
)

// TestNotifyOutsideSystemd: with no NOTIFY_SOCKET, notifying is a no-op,
// not an error.
func TestNotifyOutsideSystemd(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	sent, err := Notifier{}.Notify("READY=1")
	if sent || err != nil {
		t.Fatalf("Notify = %v, %v", sent, err)
	}
	t.Setenv("WATCHDOG_USEC", "")
	if d := (Notifier{}).WatchdogInterval(); d != 0 {
		t.Fatalf("watchdog %v without WATCHDOG_USEC", d)
	}
}

// TestNotifyOverRealSocket receives the messages on a real unixgram socket,
// as systemd would.
func TestNotifyOverRealSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	for _, msg := range []string{"READY=1", "STATUS=applied; offering 1 handlers [kata]", "STOPPING=1"} {
		sent, err := Notifier{}.Notify(msg)
		if !sent || err != nil {
			t.Fatalf("Notify(%q) = %v, %v", msg, sent, err)
		}
		buf := make([]byte, 256)
		n, err := conn.Read(buf)
		if err != nil || string(buf[:n]) != msg {
			t.Fatalf("received %q, %v; want %q", buf[:n], err, msg)
		}
	}
	t.Setenv("WATCHDOG_USEC", "2000000")
	t.Setenv("WATCHDOG_PID", "")
	if d := (Notifier{}).WatchdogInterval(); d.Seconds() != 1 {
		t.Fatalf("watchdog interval %v, want half of WatchdogSec", d)
	}
}
