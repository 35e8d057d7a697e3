// Package testbin finds the real containerd binaries that tests run
// against: CONTAINERD1_BIN (default /usr/bin/containerd, Debian's 1.6) and
// CONTAINERD2_BIN (2.4.2, built by scripts/deps.sh). A missing binary
// skips the test, unless RUNTIMECLASSD_REQUIRE_REAL is set (make test and
// CI set it), where it fails.
package testbin

import (
	"os"
	"os/exec"
	"testing"
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
