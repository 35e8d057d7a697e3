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
// own tools, and scores the units' hardening with systemd-analyze.
func TestPackages(t *testing.T) {
	t.Parallel()
	rpmFile := theRPM(t)
	run := func(name string, args ...string) string {
		t.Helper()
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
		return string(out)
	}

	t.Run("deb", func(t *testing.T) {
		contents := run("dpkg-deb", "-c", debFile)
		for _, want := range []string{"./usr/bin/runtimeclassd", "./lib/systemd/system/runtimeclassd.service",
			"./lib/systemd/system/runtimeclassd-apply.service", "./lib/systemd/system-generators/runtimeclassd-generator",
			"./etc/runtimeclassd/config.toml", "./etc/runtimeclassd/policy.d/", "./usr/share/doc/runtimeclassd/prometheus-alerts.yml",
			"./usr/share/doc/runtimeclassd/grafana-dashboard.json", "./usr/share/doc/runtimeclassd/RUNBOOK.md",
			"./usr/share/doc/runtimeclassd/copyright", "./usr/share/doc/runtimeclassd/changelog.Debian.gz",
			"./usr/share/lintian/overrides/runtimeclassd"} {
			if !strings.Contains(contents, want) {
				t.Errorf(".deb lacks %s", want)
			}
		}
		ctl := t.TempDir()
		run("dpkg-deb", "-e", debFile, ctl)
		if b, _ := os.ReadFile(filepath.Join(ctl, "conffiles")); strings.TrimSpace(string(b)) != "/etc/runtimeclassd/config.toml" {
			t.Errorf("conffiles: %q", b)
		}
		// containerd is often installed from its release tarball: a
		// recommendation, not a dependency.
		if got := run("dpkg-deb", "-f", debFile, "Depends", "Recommends"); strings.Contains(got, "Depends") ||
			!strings.Contains(got, "Recommends: containerd | containerd.io") {
			t.Errorf("control fields:\n%s", got)
		}
		if got := run("dpkg-deb", "-f", debFile, "Homepage"); !strings.Contains(got, "https://") {
			t.Errorf("Homepage: %q", got)
		}
	})

	t.Run("rpm", func(t *testing.T) {
		if info := run("rpm", "-qp", "--qf", "%{URL}|%{LICENSE}|%{SUMMARY}\n", rpmFile); info != "https://github.com/runtimeclassd/runtimeclassd|Apache-2.0|Keeps containerd's CRI runtime handlers in line with a policy\n" {
			t.Errorf("URL, licence, summary: %q", info)
		}
		if got := run("rpm", "-qp", "--recommends", rpmFile); strings.TrimSpace(got) != "containerd" {
			t.Errorf("recommends: %q", got)
		}
		if got := run("rpm", "-qpR", rpmFile); strings.Contains(got, "containerd") {
			t.Errorf("requires containerd:\n%s", got)
		}
		if got := run("rpm", "-qp", "--changelog", rpmFile); !strings.Contains(got, "First packaged release") {
			t.Errorf("changelog: %q", got)
		}
		scripts := run("rpm", "-qp", "--scripts", rpmFile)
		for _, want := range []string{"postinstall scriptlet", "preuninstall scriptlet", "postuninstall scriptlet",
			"systemctl --no-reload preset runtimeclassd.service runtimeclassd-apply.service",
			"systemctl --no-reload disable --now runtimeclassd.service runtimeclassd-apply.service",
			"systemctl --no-block try-restart runtimeclassd.service"} {
			if !strings.Contains(scripts, want) {
				t.Errorf(".rpm scripts lack %q:\n%s", want, scripts)
			}
		}
		var code []string
		for _, l := range strings.Split(scripts, "\n") {
			if !strings.HasPrefix(strings.TrimSpace(l), "#") {
				code = append(code, l)
			}
		}
		if c := strings.Join(code, "\n"); regexp.MustCompile(`systemctl (--\S+ )*(restart|start|enable) `).MatchString(c) || strings.Contains(c, "containerd") {
			t.Errorf(".rpm scripts start, enable or restart something directly, or touch containerd:\n%s", c)
		}
		// Owned directories, modes and owners, from the package itself.
		list := run("rpm", "-qplv", rpmFile)
		for _, want := range []*regexp.Regexp{
			regexp.MustCompile(`(?m)^-rwxr-xr-x +1 root +root .* /usr/bin/runtimeclassd$`),
			regexp.MustCompile(`(?m)^-rwxr-xr-x +1 root +root .* /usr/lib/systemd/system-generators/runtimeclassd-generator$`),
			regexp.MustCompile(`(?m)^-rw-r--r-- +1 root +root .* /etc/runtimeclassd/config.toml$`),
			regexp.MustCompile(`(?m)^drwxr-xr-x +2 root +root .* /etc/runtimeclassd/policy.d$`),
			regexp.MustCompile(`(?m)^drwxr-xr-x +2 root +root .* /etc/runtimeclassd$`),
			regexp.MustCompile(`(?m)^drwx------ +2 root +root .* /var/lib/runtimeclassd$`),
			regexp.MustCompile(`(?m)^drwxr-xr-x +2 root +root .* /usr/share/doc/runtimeclassd$`),
			regexp.MustCompile(`(?m)^drwxr-xr-x +2 root +root .* /usr/share/licenses/runtimeclassd$`),
			regexp.MustCompile(`(?m)^-rw-r--r-- +1 root +root .* /usr/lib/systemd/system/runtimeclassd-apply.service$`),
			regexp.MustCompile(`(?m)^-rw-r--r-- +1 root +root .* /usr/lib/systemd/system-preset/80-runtimeclassd.preset$`),
		} {
			if !want.MatchString(list) {
				t.Errorf(".rpm file list has no match for %s:\n%s", want, list)
			}
		}
		if strings.Contains(list, " /usr/lib/systemd/system\n") || strings.Contains(list, " /usr/share/doc\n") || strings.Contains(list, " /etc\n") {
			t.Errorf(".rpm owns a directory that is not its own:\n%s", list)
		}
		flags := run("rpm", "-qp", "--qf", "[%{FILEFLAGS:fflags} %{FILENAMES}\n]", rpmFile)
		for _, want := range []string{"cn /etc/runtimeclassd/config.toml", "d /usr/share/doc/runtimeclassd/README.md",
			"d /usr/share/doc/runtimeclassd/RUNBOOK.md", "d /usr/share/doc/runtimeclassd/prometheus-alerts.yml",
			"d /usr/share/doc/runtimeclassd/grafana-dashboard.json", "d /usr/share/doc/runtimeclassd/examples/policy.d/10-kata.toml",
			"l /usr/share/licenses/runtimeclassd/LICENSE", "l /usr/share/licenses/runtimeclassd/copyright"} {
			if !strings.Contains(flags, want+"\n") {
				t.Errorf(".rpm file flags lack %q (c config, n noreplace, d doc, l licence):\n%s", want, flags)
			}
		}
		// Members named ./usr/..., as rpmbuild writes them: rpm2cpio | cpio
		// -id then stays in the current directory.
		members, err := exec.Command("sh", "-c", "rpm2cpio '"+rpmFile+"' | cpio -t --quiet").Output()
		if err != nil || len(members) == 0 {
			t.Fatalf("listing the payload: %v", err)
		}
		for _, m := range strings.Fields(string(members)) {
			if !strings.HasPrefix(m, "./") {
				t.Errorf("payload member %q is not relative", m)
			}
		}
	})

	t.Run("systemd-analyze security", func(t *testing.T) {
		for _, unit := range []string{"runtimeclassd.service", "runtimeclassd-apply.service"} {
			out := run("systemd-analyze", "security", "--offline=yes", filepath.Join(repoDir, "packaging", unit))
			m := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`).FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("no score in:\n%s", out)
			}
			score, _ := strconv.ParseFloat(m[1], 64)
			t.Logf("systemd-analyze security --offline %s: %.1f", unit, score)
			if score > 2.0 {
				t.Errorf("%s: exposure %.1f, want at most 2.0", unit, score)
			}
		}
	})
}

// TestRPMInstallRoot installs the real .rpm with rpm -i --root into a copy
// of the node rootfs (so that its scriptlets run, chrooted, as in an image
// build), upgrades it after an admin's disable, and erases it.
func TestRPMInstallRoot(t *testing.T) {
	t.Parallel()
	root := overlayRoot(t, "rpm-root")
	r := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("rpm", append([]string{"--root", root, "--dbpath", "/var/lib/rpm"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("rpm %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	enabled := func(unit string) string {
		out, _ := exec.Command("systemctl", "--root", root, "is-enabled", unit).CombinedOutput()
		return strings.TrimSpace(string(out))
	}
	r("--initdb")
	out := r("-i", "--nodeps", theRPM(t))
	if strings.Contains(out, "scriptlet failed") || strings.Contains(out, "warning") {
		t.Errorf("rpm -i said:\n%s", out)
	}
	// The package's preset enables both units, in the image.
	for _, u := range []string{"runtimeclassd.service", "runtimeclassd-apply.service"} {
		if got := enabled(u); got != "enabled" {
			t.Errorf("%s after rpm -i: %q", u, got)
		}
	}
	for path, mode := range map[string]os.FileMode{"usr/bin/runtimeclassd": 0o755, "etc/runtimeclassd/config.toml": 0o644,
		"var/lib/runtimeclassd": os.ModeDir | 0o700, "usr/lib/systemd/system-generators/runtimeclassd-generator": 0o755} {
		if fi, err := os.Stat(filepath.Join(root, path)); err != nil || fi.Mode() != mode {
			t.Errorf("/%s: %v %v, want %v", path, fi.Mode(), err, mode)
		}
	}
	if out, err := exec.Command("rpm", "--root", root, "--dbpath", "/var/lib/rpm", "-V", "runtimeclassd").CombinedOutput(); err != nil {
		t.Errorf("rpm -V: %v\n%s", err, out)
	}

	// Fedora's rule: an upgrade keeps the admin's choice.
	if out, err := exec.Command("systemctl", "--root", root, "disable", "runtimeclassd.service").CombinedOutput(); err != nil {
		t.Fatalf("systemctl disable: %v\n%s", err, out)
	}
	r("-U", "--nodeps", buildUpgrades(t, "999.0.0")[0].rpm)
	if got := r("-q", "runtimeclassd"); !strings.HasPrefix(got, "runtimeclassd-999.0.0-1") {
		t.Errorf("after rpm -U: %s", got)
	}
	if got := enabled("runtimeclassd.service"); got != "disabled" {
		t.Errorf("runtimeclassd.service after the upgrade: %q, want disabled", got)
	}
	if got := enabled("runtimeclassd-apply.service"); got != "enabled" {
		t.Errorf("runtimeclassd-apply.service after the upgrade: %q, want enabled", got)
	}

	r("-e", "runtimeclassd")
	for _, p := range []string{"usr/bin/runtimeclassd", "etc/runtimeclassd/config.toml", "var/lib/runtimeclassd",
		"etc/systemd/system/multi-user.target.wants/runtimeclassd-apply.service"} {
		if _, err := os.Lstat(filepath.Join(root, p)); err == nil {
			t.Errorf("/%s left after rpm -e", p)
		}
	}
}

// theRPM is the .rpm built next to the .deb.
func theRPM(t *testing.T) string {
	t.Helper()
	rpms, _ := filepath.Glob(filepath.Join(filepath.Dir(debFile), "*.rpm"))
	if len(rpms) != 1 {
		t.Fatalf("want one .rpm next to %s, found %v", debFile, rpms)
	}
	return rpms[0]
}

type built struct{ deb, rpm string }

// buildUpgrades builds packages of the same tree with higher versions
// (VERSION=... DIST=... scripts/package.sh), in the test's temp dir.
func buildUpgrades(t *testing.T, versions ...string) []built {
	t.Helper()
	var out []built
	for _, v := range versions {
		dir := t.TempDir()
		cmd := exec.Command(filepath.Join(repoDir, "scripts/package.sh"))
		cmd.Env = append(os.Environ(), "VERSION="+v, "DIST="+dir)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("building the %s packages: %v\n%s", v, err, b)
		}
		debs, _ := filepath.Glob(filepath.Join(dir, "*.deb"))
		rpms, _ := filepath.Glob(filepath.Join(dir, "*.rpm"))
		if len(debs) != 1 || len(rpms) != 1 {
			t.Fatalf("want one .deb and one .rpm in %s, found %v %v", dir, debs, rpms)
		}
		out = append(out, built{debs[0], rpms[0]})
	}
	return out
}
