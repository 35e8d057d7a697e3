// Package testbin finds the real containerd binaries that tests run
// against: CONTAINERD1_BIN (default /usr/bin/containerd, Debian's 1.6) and
// CONTAINERD2_BIN (2.4.2, built by scripts/deps.sh). A missing binary
// skips the test, unless RUNTIMECLASSD_REQUIRE_REAL is set (make test and
// CI set it), where it fails.
package testbin

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Containerd returns the containerd binary of a major version (1 or 2).
func Containerd(t testing.TB, major int) string {
	t.Helper()
	env, bin := "CONTAINERD1_BIN", "/usr/bin/containerd"
	if major == 2 {
		env, bin = "CONTAINERD2_BIN", ""
	}
	if v := os.Getenv(env); v != "" {
		bin = v
	}
	if bin != "" {
		if _, err := exec.LookPath(bin); err == nil {
			return bin
		}
	}
	if os.Getenv("RUNTIMECLASSD_REQUIRE_REAL") != "" {
		t.Fatalf("containerd %d.x binary not found (set %s)", major, env)
	}
	t.Skipf("containerd %d.x binary not found (set %s)", major, env)
	return ""
}

// StartContainerd runs a real containerd of a major version on config, with
// its root, state and socket in a fresh temp dir whatever config says, and
// returns the socket. It is killed when the test ends. Root only.
func StartContainerd(t testing.TB, major int, config string) (sock string) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("containerd needs root")
	}
	bin := Containerd(t, major)
	dir, err := os.MkdirTemp("/tmp", "ctrd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock = filepath.Join(dir, "s", "c.sock")
	cmd := exec.Command(bin, "--config", config, "--root", filepath.Join(dir, "r"), "--state", filepath.Join(dir, "s"), "--address", sock)
	// Its own shims first: a 2.x containerd must not start Debian's 1.6 shim.
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(bin)+":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	log, _ := os.Create(filepath.Join(dir, "log"))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "log"))
			t.Logf("containerd's log:\n%s", b)
		}
	})
	// Return once it accepts connections: a caller may use the socket at
	// once (ctr, for one, doesn't wait).
	deadline := time.Now().Add(60 * time.Second)
	for {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return sock
		}
		if time.Now().After(deadline) {
			t.Fatalf("containerd did not listen on %s within 60 s", sock)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Ctr returns the ctr binary that comes with containerd of a major
// version: next to CONTAINERD2_BIN for 2.x, /usr/bin/ctr for 1.x.
func Ctr(t testing.TB, major int) string {
	t.Helper()
	ctr := filepath.Join(filepath.Dir(Containerd(t, major)), "ctr")
	if _, err := os.Stat(ctr); err != nil {
		t.Fatalf("ctr for containerd %d.x: %v", major, err)
	}
	return ctr
}

// Busybox returns a static busybox (Debian's busybox-static) for test
// images.
func Busybox(t testing.TB) string {
	t.Helper()
	for _, p := range []string{"/bin/busybox", "/usr/bin/busybox"} {
		if out, err := exec.Command("file", "-L", p).Output(); err == nil && bytesContains(out, "statically linked") {
			return p
		}
	}
	if os.Getenv("RUNTIMECLASSD_REQUIRE_REAL") != "" {
		t.Fatal("no static busybox (apt-get install busybox-static)")
	}
	t.Skip("no static busybox (apt-get install busybox-static)")
	return ""
}

func bytesContains(b []byte, s string) bool { return strings.Contains(string(b), s) }

// Release is one containerd release of the version matrix: its name
// ("1.7.35") and binary.
type Release struct {
	Version string
	Bin     string
}

// MatrixVersions are the containerd releases the matrix tests run on:
// Debian 12's 1.6, and the newest patch of each minor from 1.7 (LTS) to
// 2.4 that scripts/containerd-versions.sh builds into the cache
// (RUNTIMECLASSD_CACHE, default /var/tmp/runtimeclassd-cache), 2.4.2 being
// CONTAINERD2_BIN.
var MatrixVersions = []string{"1.7.35", "2.0.14", "2.1.9", "2.2.10", "2.3.7"}

// Matrix returns every release of the matrix. A missing binary skips the
// test (fails it under RUNTIMECLASSD_REQUIRE_REAL).
func Matrix(t testing.TB) []Release {
	t.Helper()
	out := []Release{{"1.6 (Debian)", Containerd(t, 1)}}
	cache := os.Getenv("RUNTIMECLASSD_CACHE")
	if cache == "" {
		cache = "/var/tmp/runtimeclassd-cache"
	}
	for _, v := range MatrixVersions {
		bin := filepath.Join(cache, "containerd-v"+v, "containerd")
		if _, err := os.Stat(bin); err != nil {
			if os.Getenv("RUNTIMECLASSD_REQUIRE_REAL") != "" {
				t.Fatalf("containerd %s not found at %s (scripts/containerd-versions.sh builds it)", v, bin)
			}
			t.Skipf("containerd %s not found at %s (scripts/containerd-versions.sh builds it)", v, bin)
		}
		out = append(out, Release{v, bin})
	}
	return append(out, Release{"2.4.2", Containerd(t, 2)})
}
