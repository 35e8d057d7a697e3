//go:build e2e

package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestPackages inspects the built .deb and .rpm with the distributions'
// own tools, and scores the unit's hardening with systemd-analyze.
func TestPackages(t *testing.T) {
	t.Parallel()
	rpms, _ := filepath.Glob(filepath.Join(filepath.Dir(debFile), "*.rpm"))
	if len(rpms) != 1 {
		t.Fatalf("want one .rpm next to %s, found %v", debFile, rpms)
	}
	run := func(name string, args ...string) string {
		t.Helper()
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
		return string(out)
	}
	contents := run("dpkg-deb", "-c", debFile)
	for _, want := range []string{"./usr/bin/runtimeclassd", "./lib/systemd/system/runtimeclassd.service",
		"./etc/runtimeclassd/config.toml", "./etc/runtimeclassd/policy.d/", "./usr/share/doc/runtimeclassd/prometheus-alerts.yml"} {
		if !strings.Contains(contents, want) {
			t.Errorf(".deb lacks %s", want)
		}
	}
	ctl := t.TempDir()
	run("dpkg-deb", "-e", debFile, ctl)
	if b, _ := os.ReadFile(filepath.Join(ctl, "conffiles")); strings.TrimSpace(string(b)) != "/etc/runtimeclassd/config.toml" {
		t.Errorf("conffiles: %q", b)
	}
	if info := run("dpkg-deb", "-f", debFile, "Depends"); !strings.Contains(info, "containerd") {
		t.Errorf("Depends: %s", info)
	}
	if _, err := exec.LookPath("rpm"); err == nil {
		list := run("rpm", "-qpl", rpms[0])
		for _, want := range []string{"/usr/bin/runtimeclassd", "/usr/lib/systemd/system/runtimeclassd.service", "/etc/runtimeclassd/config.toml"} {
			if !strings.Contains(list, want) {
				t.Errorf(".rpm lacks %s", want)
			}
		}
		scripts := run("rpm", "-qp", "--scripts", rpms[0])
		for _, want := range []string{"postinstall", "preuninstall", "systemctl enable runtimeclassd.service"} {
			if !strings.Contains(scripts, want) {
				t.Errorf(".rpm scripts lack %q:\n%s", want, scripts)
			}
		}
		if cfg := run("rpm", "-qpc", rpms[0]); !strings.Contains(cfg, "/etc/runtimeclassd/config.toml") {
			t.Errorf(".rpm config files: %s", cfg)
		}
	}
	if _, err := exec.LookPath("systemd-analyze"); err == nil {
		out := run("systemd-analyze", "security", "--offline=yes", filepath.Join(repoDir, "packaging/runtimeclassd.service"))
		m := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no score in:\n%s", out)
		}
		score, _ := strconv.ParseFloat(m[1], 64)
		t.Logf("systemd-analyze security --offline: %.1f", score)
		if score > 3.5 {
			t.Errorf("unit hardening score %.1f, want at most 3.5", score)
		}
	}
}
