package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/runtimeclassd/runtimeclassd/daemon"
)

// The generator's defaults are the daemon's: a drift here would sandbox
// the daemon away from its own default paths.
func TestDefaultsMatchTheDaemon(t *testing.T) {
	t.Parallel()
	d, g := daemon.DefaultConfig(), Defaults()
	if g.ContainerdConfig != d.ContainerdConfig || g.StateDir != d.StateDir || g.NFDFeatureFile != d.NFDFeatureFile || g.ContainerdUnit != d.ContainerdUnit {
		t.Fatalf("generator defaults %+v differ from the daemon's %+v", g, d)
	}
}

func writeConfig(t *testing.T, root, content string) {
	t.Helper()
	p := filepath.Join(root, ConfigFile)
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestDropIn(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, config      string
		want              []string // lines the drop-in must hold
		wantWarn, notWant string
	}{
		{"no config file: the defaults", "", []string{
			"ExecStartPre=+/bin/mkdir -p /var/lib/runtimeclassd /etc/kubernetes/node-feature-discovery/features.d",
			"ReadWritePaths=-/etc/containerd -/var/lib/runtimeclassd -/etc/kubernetes/node-feature-discovery/features.d"}, "", ""},
		{"commented defaults", "# containerd_config = \"/srv/x.toml\"\n", []string{
			"ReadWritePaths=-/etc/containerd -/var/lib/runtimeclassd -/etc/kubernetes/node-feature-discovery/features.d"}, "", "/srv"},
		{"moved paths", "containerd_config = \"/srv/ctrd/config.toml\"\nstate_dir = '/data/rcd'\nnfd_feature_file = \"/run/nfd/features.d/x\"\ndebounce = \"1s\"\n", []string{
			"ExecStartPre=+/bin/mkdir -p /data/rcd /run/nfd/features.d",
			"ReadWritePaths=-/srv/ctrd -/data/rcd -/run/nfd/features.d"}, "", "/etc/containerd"},
		{"labels off", "nfd_feature_file = \"\"\n", []string{
			"ExecStartPre=+/bin/mkdir -p /var/lib/runtimeclassd\n",
			"ReadWritePaths=-/etc/containerd -/var/lib/runtimeclassd\n"}, "", "node-feature-discovery"},
		{"a path a unit file can't hold", "state_dir = \"/var/lib/my state\"\n", []string{
			"ReadWritePaths=-/etc/containerd -/etc/kubernetes/node-feature-discovery/features.d"}, `"/var/lib/my state" can't be made writable`, "my state"},
		{"a relative path", "state_dir = \"var/lib/x\"\n", nil, `"var/lib/x" can't be made writable`, "var/lib/x"},
		{"broken TOML: the defaults, and a warning", "state_dir = \n", []string{
			"ReadWritePaths=-/etc/containerd -/var/lib/runtimeclassd -/etc/kubernetes/node-feature-discovery/features.d"}, "using the default paths", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root, out := t.TempDir(), t.TempDir()
			if tc.config != "" {
				writeConfig(t, root, tc.config)
			}
			warnings := strings.Join(Generate(root, ConfigFile, out), "\n")
			if tc.wantWarn == "" && warnings != "" || !strings.Contains(warnings, tc.wantWarn) {
				t.Errorf("warnings %q, want %q", warnings, tc.wantWarn)
			}
			for _, u := range Units {
				b, err := os.ReadFile(filepath.Join(out, u+".d", DropInName))
				if err != nil {
					t.Fatal(err)
				}
				for _, w := range tc.want {
					if !strings.Contains(string(b), w) {
						t.Errorf("%s drop-in lacks %q:\n%s", u, w, b)
					}
				}
				if tc.notWant != "" && strings.Contains(strings.SplitN(string(b), "[Service]", 2)[1], tc.notWant) {
					t.Errorf("%s drop-in has %q:\n%s", u, tc.notWant, b)
				}
			}
		})
	}
}

// A symlinked config.toml is written where it points (the daemon keeps
// the symlink), so that directory must be writable too.
func TestSymlinkedContainerdConfig(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc/containerd"), 0o755)
	os.MkdirAll(filepath.Join(root, "srv/managed"), 0o755)
	os.WriteFile(filepath.Join(root, "srv/managed/containerd.toml"), []byte("version = 2\n"), 0o644)
	if err := os.Symlink("../../srv/managed/containerd.toml", filepath.Join(root, "etc/containerd/config.toml")); err != nil {
		t.Fatal(err)
	}
	dirs, _, _ := Defaults().Writable(root)
	if strings.Join(dirs, " ") != "/etc/containerd /srv/managed /var/lib/runtimeclassd /etc/kubernetes/node-feature-discovery/features.d" {
		t.Fatalf("writable: %v", dirs)
	}
}

// The drop-in is accepted by systemd itself: systemd-analyze verify loads
// the real unit with it and reports no unknown or bad settings.
func TestDropInLoadsInSystemd(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("no systemd-analyze")
	}
	root, out := t.TempDir(), t.TempDir()
	writeConfig(t, root, "state_dir = \"/var/lib/rcd-other\"\n")
	if w := Generate(root, ConfigFile, out); len(w) > 0 {
		t.Fatal(w)
	}
	unit, err := os.ReadFile("../runtimeclassd.service")
	if err != nil {
		t.Fatal(err)
	}
	drop, _ := os.ReadFile(filepath.Join(out, "runtimeclassd.service.d", DropInName))
	// One file holding both: what systemd sees after merging the drop-in.
	merged := filepath.Join(t.TempDir(), "runtimeclassd.service")
	os.WriteFile(merged, append(append(unit, '\n'), drop...), 0o644)
	cmd := exec.Command("systemd-analyze", "security", "--offline=yes", merged)
	b, err := cmd.CombinedOutput()
	if err != nil || bytes.Contains(b, []byte("Unknown key")) || bytes.Contains(b, []byte("Failed to parse")) {
		t.Fatalf("systemd-analyze: %v\n%s", err, b)
	}
}

func TestPrintShell(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	writeConfig(t, root, "state_dir = \"/var/lib/it's\"\ncontainerd_unit = \"ctrd.service\"\n")
	var out, errb bytes.Buffer
	if code := Main([]string{"--print-shell"}, root, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, &errb)
	}
	sh := exec.Command("sh", "-c", out.String()+`printf '%s|%s|%s|%s' "$containerd_config" "$state_dir" "$nfd_feature_file" "$containerd_unit"`)
	got, err := sh.Output()
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "/etc/containerd/config.toml|/var/lib/it's|/etc/kubernetes/node-feature-discovery/features.d/runtimeclassd|ctrd.service" {
		t.Fatalf("shell assignments give %q:\n%s", got, &out)
	}
}

// A drop-in outside config.toml's directory gets its own writable path;
// the default one, under /etc/containerd, needs none.
func TestDropInPath(t *testing.T) {
	t.Parallel()
	s := Defaults()
	dirs, _, _ := s.Writable(t.TempDir())
	if strings.Contains(strings.Join(dirs, " "), "conf.d") {
		t.Fatalf("the default drop-in's directory listed on its own: %v", dirs)
	}
	s.DropInFile = "/srv/containerd.d/50-runtimeclassd.toml"
	if dirs, _, _ = s.Writable(t.TempDir()); !slices.Contains(dirs, "/srv/containerd.d") {
		t.Fatalf("the drop-in's directory is not writable: %v", dirs)
	}
}
