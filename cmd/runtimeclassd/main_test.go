package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"github.com/runtimeclassd/runtimeclassd/internal/testbin"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

func containerdBin(t *testing.T, major int) string { t.Helper(); return testbin.Containerd(t, major) }

// node is a throwaway layout: a containerd config, a policy dir and a state
// dir, all under one temp dir.
type node struct {
	t                          *testing.T
	major                      int
	dir, config, policy, state string
	hostRoot, nfd              string
	bin                        string
	sock                       string // containerd's socket: none until startContainerd
	stdout, stderr             bytes.Buffer
}

// fakeShims are the files a fake host root gets, so that handlers of the
// test policies pass their host checks.
var fakeShims = []string{
	"/usr/bin/containerd-shim-kata-v2", "/usr/bin/containerd-shim-runsc-v1", "/usr/bin/containerd-shim-runc-v2",
	"/usr/bin/runsc", "/usr/bin/crun",
}

func makeFakeHost(t *testing.T, root string) {
	t.Helper()
	for _, d := range []string{"/usr/bin", "/opt/kata/share/defaults/kata-containers"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(root, 0o755)
	testbin.FakeInterpreters(t, root)
	for _, f := range fakeShims {
		if err := os.WriteFile(filepath.Join(root, f), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Kata's configuration names what the kata-config check looks at,
	// which every Kata handler gets.
	for f, body := range map[string]string{
		"/opt/kata/bin/qemu-system-x86_64":                            "#!/bin/sh\n",
		"/opt/kata/share/kata-containers/vmlinux.container":           "kernel",
		"/opt/kata/share/kata-containers/kata-containers.img":         "image",
		"/opt/kata/share/defaults/kata-containers/configuration.toml": fakeKataConfig,
	} {
		mode := os.FileMode(0o644)
		if strings.HasPrefix(body, "#!") {
			mode = 0o755
		}
		if err := os.MkdirAll(filepath.Join(root, filepath.Dir(f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, f), []byte(body), mode); err != nil {
			t.Fatal(err)
		}
	}
}

func newNode(t *testing.T, major int, config []byte) *node {
	t.Helper()
	dir := t.TempDir()
	n := &node{t: t, major: major, dir: dir, config: filepath.Join(dir, "etc/containerd/config.toml"), sock: filepath.Join(dir, "no-containerd.sock"),
		policy: filepath.Join(dir, "policy.d"), state: filepath.Join(dir, "state"), bin: containerdBin(t, major),
		hostRoot: filepath.Join(dir, "host"), nfd: filepath.Join(dir, "nfd/features.d/runtimeclassd")}
	makeFakeHost(t, n.hostRoot)
	for _, d := range []string{filepath.Dir(n.config), n.policy} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if config != nil {
		if err := os.WriteFile(n.config, config, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

func (n *node) policyFile(name, body string) {
	n.t.Helper()
	if err := os.WriteFile(filepath.Join(n.policy, name), []byte(body), 0o644); err != nil {
		n.t.Fatal(err)
	}
}

func (n *node) run(args ...string) int {
	n.stdout.Reset()
	n.stderr.Reset()
	all := append([]string{"--config", filepath.Join(n.dir, "none.toml"), "--containerd-config", n.config,
		"--policy-dir", n.policy, "--state-dir", n.state, "--containerd-bin", n.bin,
		"--host-root", n.hostRoot, "--shim-path", "/usr/bin", "--nfd-feature-file", n.nfd, "--containerd-address", n.sock}, args...)
	return Main(context.Background(), all, &n.stdout, &n.stderr)
}

// labels are the NFD feature file's label lines, without its comments.
func (n *node) labels() string {
	b, _ := os.ReadFile(n.nfd)
	var out []string
	for _, l := range strings.SplitAfter(string(b), "\n") {
		if !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "")
}

// startContainerd runs a real containerd on the node's config.toml as it is
// now, as a restart would; from then on commands ask it what it serves.
func (n *node) startContainerd() {
	n.t.Helper()
	n.sock = testbin.StartContainerd(n.t, n.major, n.config)
}

func (n *node) read() []byte {
	n.t.Helper()
	b, err := os.ReadFile(n.config)
	if err != nil {
		n.t.Fatal(err)
	}
	return b
}

func readCorpus(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("../../ctrdconfig/testdata/configs", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fakeKataConfig is the fake host's Kata configuration.
const fakeKataConfig = "[hypervisor.qemu]\npath = \"/opt/kata/bin/qemu-system-x86_64\"\n" +
	"kernel = \"/opt/kata/share/kata-containers/vmlinux.container\"\nimage = \"/opt/kata/share/kata-containers/kata-containers.img\"\n"

// kataPolicy needs only what a fake host root can give: the shim, its
// configuration and what that names (no /dev/kvm, so not the kata preset,
// whose kvm and vhost-vsock checks a policy can't switch off).
const kataPolicy = "[handlers.kata]\nruntime_type = \"io.containerd.kata.v2\"\nprivileged_without_host_devices = true\nsmoke = \"pod\"\n[handlers.kata.options]\nConfigPath = \"/opt/kata/share/defaults/kata-containers/configuration.toml\"\n"

// Untested versions of the policies, for tests of what containerd serves:
// the fake host's shims can't start a sandbox (TestSmokeThroughTheCLI runs
// real ones).
const (
	kataUntested   = "[handlers.kata]\nruntime_type = \"io.containerd.kata.v2\"\nprivileged_without_host_devices = true\nsmoke = \"off\"\n[handlers.kata.options]\nConfigPath = \"/opt/kata/share/defaults/kata-containers/configuration.toml\"\n"
	gvisorUntested = "[handlers.gvisor]\npreset = \"gvisor\"\nsmoke = \"off\"\n"
)

// TestMain fails the run if a test wrote the real node label file: every
// test must point --nfd-feature-file at a temp dir.
func TestMain(m *testing.M) {
	const real = "/etc/kubernetes/node-feature-discovery/features.d/runtimeclassd"
	_, before := os.Stat(real)
	code := m.Run()
	if _, after := os.Stat(real); os.IsNotExist(before) && after == nil {
		os.Remove(real)
		println("a test wrote " + real)
		code = 1
	}
	os.Exit(code)
}

func TestApplyTwiceThenRevert(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		major int
		file  string
	}{{1, "v2-default-1.6.toml"}, {1, "v2-handwritten.toml"}, {1, "v1-legacy.toml"}, {1, "v2-crlf-tabs.toml"},
		{2, "v4-default-2.4.toml"}, {2, "v3-quoted.toml"}, {2, "v2-dotted.toml"}, {2, "v4-imports-dropin.toml"}} {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			orig := readCorpus(t, tc.file)
			n := newNode(t, tc.major, orig)
			n.policyFile("10-kata.toml", kataPolicy)
			n.policyFile("20-gvisor.toml", "[handlers.gvisor]\npreset = \"gvisor\"\n")
			if code := n.run("apply", "--no-restart"); code != 0 {
				t.Fatalf("apply: exit %d\n%s", code, &n.stderr)
			}
			if !strings.Contains(n.stderr.String(), "the change takes effect at its next restart") {
				t.Errorf("apply --no-restart must say the change needs a restart:\n%s", &n.stderr)
			}
			applied := n.read()
			if !bytes.Contains(applied, []byte("handler=kata")) || !bytes.Contains(applied, []byte("handler=gvisor")) {
				t.Fatalf("handlers missing:\n%s", applied)
			}
			fi1, _ := os.Stat(n.config)
			if code := n.run("apply", "--no-restart"); code != 0 || !strings.Contains(n.stderr.String(), "up to date") {
				t.Fatalf("second apply: exit %d\n%s", code, &n.stderr)
			}
			fi2, _ := os.Stat(n.config)
			if !os.SameFile(fi1, fi2) || !bytes.Equal(n.read(), applied) {
				t.Fatal("second apply rewrote the file")
			}
			if code := n.run("revert", "--no-restart"); code != 0 {
				t.Fatalf("revert: exit %d\n%s", code, &n.stderr)
			}
			if !bytes.Equal(n.read(), orig) {
				t.Fatalf("revert did not restore the original bytes:\n%s", n.read())
			}
			backups, _ := filepath.Glob(filepath.Join(n.state, "backups", "config.toml.*"))
			if len(backups) != 2 {
				t.Fatalf("backups = %v, want 2", backups)
			}
		})
	}
}

// TestBadInputLeavesConfigUntouched: each bad input fails with exit status
// 1 and a message naming where the problem is, and config.toml keeps every
// byte, its inode and its mode; no backup or temp file is left behind.
func TestBadInputLeavesConfigUntouched(t *testing.T) {
	t.Parallel()
	handwritten := readCorpus(t, "v2-handwritten.toml")
	tests := []struct {
		name   string
		config []byte
		policy map[string]string
		bin    string
		want   []string
	}{
		{"policy syntax", handwritten, map[string]string{"a.toml": "[handlers.kata\n"}, "", []string{"a.toml:1:"}},
		{"policy unknown key", handwritten, map[string]string{"a.toml": "[handlers.kata]\npreset = \"kata\"\nevil = 1\n"}, "", []string{"a.toml:3:1", "unknown key handlers.kata.evil"}},
		{"policy wildcard", handwritten, map[string]string{"a.toml": "[handlers.kata]\npreset = \"kata\"\npod_annotations = [\"*\"]\n"}, "", []string{"a.toml:3:1", "wildcard"}},
		{"policy path escape", handwritten, map[string]string{"a.toml": "[handlers.x]\nruntime_type = \"io.containerd.runc.v2\"\noptions.BinaryName = \"/tmp/../usr/bin/runc\"\n"}, "", []string{"a.toml:3:", "must be clean"}},
		{"policy conflict", handwritten, map[string]string{"a.toml": kataPolicy, "b.toml": "[handlers.kata]\npreset = \"kata-clh\"\n"}, "", []string{"a.toml", "b.toml"}},
		{"config syntax", []byte("version = 2\n[plugins.\"io.containerd.grpc.v1.cri\"\n"), map[string]string{"a.toml": kataPolicy}, "", []string{"config.toml", "line 2"}},
		{"config inline runtimes", readCorpus(t, "v2-inline.toml"), map[string]string{"a.toml": kataPolicy}, "", []string{"config.toml", "line 5", "inline table"}},
		{"config damaged block", append(append([]byte(nil), handwritten...), "# runtimeclassd:begin handler=kata hash=0\n[x]\n"...), map[string]string{"a.toml": kataPolicy}, "", []string{"config.toml", "line 28", "no end marker"}},
		{"config bad version", []byte("version = 9\n"), map[string]string{"a.toml": kataPolicy}, "", []string{"config.toml", "unsupported config version 9"}},
		{"config with a byte order mark", append([]byte("\xef\xbb\xbf"), handwritten...), map[string]string{"a.toml": kataPolicy}, "", []string{"config.toml: line 1: the file starts with a UTF-8 byte order mark"}},
		{"config disabling CRI (Docker's containerd.io)", []byte("version = 2\n# Docker's default\ndisabled_plugins = [\"cri\"]\n"), map[string]string{"a.toml": kataPolicy}, "", []string{"config.toml: line 3: disabled_plugins holds \"cri\"", "runtimeclassd doesn't enable it"}},
		{"config disabling 2.x's CRI runtime", []byte("version = 3\ndisabled_plugins = ['io.containerd.cri.v1.runtime']\n"), map[string]string{"a.toml": kataPolicy}, "", []string{"config.toml: line 2: disabled_plugins holds \"io.containerd.cri.v1.runtime\""}},
		{"containerd rejects", []byte("version = 2\noom_score = \"high\"\n"), map[string]string{"a.toml": kataPolicy}, "", []string{"containerd"}},
		{"no containerd binary", handwritten, map[string]string{"a.toml": kataPolicy}, "/nonexistent/containerd", []string{"/nonexistent/containerd"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			n := newNode(t, 1, tt.config)
			if err := os.Chmod(n.config, 0o640); err != nil {
				t.Fatal(err)
			}
			before, _ := os.Stat(n.config)
			for name, body := range tt.policy {
				n.policyFile(name, body)
			}
			if tt.bin != "" {
				n.bin = tt.bin
			}
			for _, args := range [][]string{{"apply"}, {"apply", "--dry-run"}, {"apply", "--diff", "--no-restart"}} {
				code := n.run(args...)
				if code != 1 {
					t.Fatalf("%v: exit %d, want 1\n%s", args, code, &n.stderr)
				}
				for _, w := range tt.want {
					if !strings.Contains(n.stderr.String(), w) {
						t.Errorf("%v: stderr does not mention %q:\n%s", args, w, &n.stderr)
					}
				}
				if n.stdout.Len() != 0 {
					t.Errorf("%v: printed to stdout on failure:\n%s", args, &n.stdout)
				}
			}
			after, _ := os.Stat(n.config)
			if !bytes.Equal(n.read(), tt.config) || !os.SameFile(before, after) || after.Mode() != before.Mode() {
				t.Fatal("config.toml was changed")
			}
			if b, _ := filepath.Glob(filepath.Join(n.state, "backups", "*")); len(b) != 0 {
				t.Errorf("backups written: %v", b)
			}
			if left, _ := filepath.Glob(filepath.Join(filepath.Dir(n.config), ".*")); len(left) != 0 {
				t.Errorf("temp files left: %v", left)
			}
		})
	}
}

func TestDryRunAndDiff(t *testing.T) {
	t.Parallel()
	orig := readCorpus(t, "v2-handwritten.toml")
	n := newNode(t, 1, orig)
	n.policyFile("a.toml", kataPolicy)
	if code := n.run("apply", "--dry-run"); code != 0 {
		t.Fatalf("exit %d: %s", code, &n.stderr)
	}
	if !bytes.Contains(n.stdout.Bytes(), []byte("[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.kata]")) ||
		!bytes.HasPrefix(n.stdout.Bytes(), orig[:200]) {
		t.Fatalf("dry run did not print the whole would-be config:\n%s", &n.stdout)
	}
	wouldBe := append([]byte(nil), n.stdout.Bytes()...)
	if !bytes.Equal(n.read(), orig) {
		t.Fatal("dry run wrote the config")
	}
	if code := n.run("apply", "--dry-run", "--diff"); code != 0 {
		t.Fatalf("exit %d: %s", code, &n.stderr)
	}
	diff := n.stdout.String()
	if !strings.HasPrefix(diff, "--- a"+n.config+"\n+++ b"+n.config+"\n@@ ") || !strings.Contains(diff, "\n+    [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.kata]\n") {
		t.Fatalf("diff:\n%s", diff)
	}
	if patch, err := exec.LookPath("patch"); err == nil {
		cp := filepath.Join(t.TempDir(), "c.toml")
		os.WriteFile(cp, orig, 0o644)
		cmd := exec.Command(patch, "-s", cp)
		cmd.Stdin = strings.NewReader(diff)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("patch: %v %s", err, out)
		}
		if got, _ := os.ReadFile(cp); !bytes.Equal(got, wouldBe) {
			t.Fatal("the diff does not turn the config into the dry run's output")
		}
	}
	if !bytes.Equal(n.read(), orig) {
		t.Fatal("dry run with diff wrote the config")
	}
	n.bin = "/nonexistent/containerd" // --no-validate must not need it
	if code := n.run("apply", "--dry-run", "--diff", "--no-validate"); code != 0 || n.stdout.String() != diff {
		t.Fatalf("--no-validate: exit %d, diff differs:\n%s", code, &n.stderr)
	}
	n.bin = containerdBin(t, 1)
	if code := n.run("apply", "--diff", "--no-restart"); code != 0 || n.stdout.String() != diff {
		t.Fatalf("apply --diff: exit %d, diff differs from the dry run's", code)
	}
	if !bytes.Equal(n.read(), wouldBe) {
		t.Fatal("apply wrote something else than the dry run showed")
	}
}

func TestMissingConfigIsCreatedWithContainerdsVersion(t *testing.T) {
	t.Parallel()
	for major, version := range map[int]string{1: "version = 2\n", 2: "version = 4\n"} {
		n := newNode(t, major, nil)
		n.policyFile("a.toml", kataPolicy)
		if code := n.run("apply", "--no-restart"); code != 0 {
			t.Fatalf("containerd %d: exit %d\n%s", major, code, &n.stderr)
		}
		got := n.read()
		if !bytes.HasPrefix(got, []byte(version)) || !bytes.Contains(got, []byte("handler=kata")) || !bytes.Contains(got, []byte("handler=runc")) {
			t.Fatalf("containerd %d: new config:\n%s", major, got)
		}
		fi, _ := os.Stat(n.config)
		if fi.Mode().Perm() != 0o644 {
			t.Errorf("new config mode %v", fi.Mode())
		}
	}
}

func TestWriteKeepsModeOwnerAndSymlink(t *testing.T) {
	t.Parallel()
	if os.Getuid() != 0 {
		t.Skip("needs root")
	}
	n := newNode(t, 1, readCorpus(t, "v2-handwritten.toml"))
	real := filepath.Join(n.dir, "managed", "containerd.toml")
	os.MkdirAll(filepath.Dir(real), 0o755)
	if err := os.Rename(n.config, real); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, n.config); err != nil {
		t.Fatal(err)
	}
	os.Chmod(real, 0o640)
	os.Chown(real, 0, 5678)
	n.policyFile("a.toml", kataPolicy)
	if code := n.run("apply", "--no-restart"); code != 0 {
		t.Fatalf("exit %d\n%s", code, &n.stderr)
	}
	li, _ := os.Lstat(n.config)
	fi, _ := os.Stat(real)
	st := fi.Sys().(*syscall.Stat_t)
	if li.Mode()&os.ModeSymlink == 0 || fi.Mode().Perm() != 0o640 || st.Uid != 0 || st.Gid != 5678 {
		t.Fatalf("symlink %v, mode %v, owner %d:%d", li.Mode(), fi.Mode(), st.Uid, st.Gid)
	}
	if b, _ := os.ReadFile(real); !bytes.Contains(b, []byte("handler=kata")) {
		t.Fatal("the symlink's target was not updated")
	}
}

func TestBackupsAreRotated(t *testing.T) {
	t.Parallel()
	n := newNode(t, 1, readCorpus(t, "v2-handwritten.toml"))
	for i := 0; i < 13; i++ {
		n.policyFile("a.toml", "[handlers.kata]\nruntime_type = \"io.containerd.kata.v2\"\npod_annotations = [\"io.katacontainers.config.n"+string(rune('a'+i))+"\"]\n")
		if code := n.run("apply", "--no-restart"); code != 0 {
			t.Fatalf("exit %d\n%s", code, &n.stderr)
		}
	}
	backups, _ := filepath.Glob(filepath.Join(n.state, "backups", "config.toml.*"))
	if len(backups) != 10 {
		t.Fatalf("%d backups kept, want 10", len(backups))
	}
	// The newest backup is the config before the last apply.
	last, _ := os.ReadFile(backups[len(backups)-1])
	if !bytes.Contains(last, []byte("config.nl")) {
		t.Fatalf("newest backup is not the previous config:\n%s", last)
	}
}

func TestUnmanagedHandlerIsReported(t *testing.T) {
	t.Parallel()
	n := newNode(t, 1, readCorpus(t, "v2-unmanaged-kata.toml"))
	n.policyFile("a.toml", kataPolicy)
	n.policyFile("b.toml", "[handlers.crun]\npreset = \"crun\"\n")
	if code := n.run("apply", "--no-restart"); code != 0 {
		t.Fatalf("exit %d\n%s", code, &n.stderr)
	}
	if !strings.Contains(n.stderr.String(), `handler "kata" is already defined at line 10 and not managed by runtimeclassd`) {
		t.Fatalf("stderr:\n%s", &n.stderr)
	}
	if got := n.read(); !bytes.Contains(got, []byte("handler=crun")) || bytes.Contains(got, []byte("handler=kata")) {
		t.Fatalf("config:\n%s", got)
	}
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{}, {"frobnicate"}, {"apply", "--bogus"}, {"apply", "extra"}, {"apply", "--no-validate"}, {"validate"}, {"--log-level", "loud", "version"}} {
		var out, errb bytes.Buffer
		if code := Main(context.Background(), args, &out, &errb); code != 2 {
			t.Errorf("%v: exit %d, want 2\n%s", args, code, &errb)
		}
	}
	var out bytes.Buffer
	if code := Main(context.Background(), []string{"version"}, &out, &out); code != 0 || !strings.HasPrefix(out.String(), "runtimeclassd ") {
		t.Errorf("version: %d %s", code, &out)
	}
}

func TestConfigFileAndFlagsPrecedence(t *testing.T) {
	t.Parallel()
	n := newNode(t, 1, readCorpus(t, "v2-handwritten.toml"))
	n.policyFile("a.toml", kataPolicy)
	cfgFile := filepath.Join(n.dir, "runtimeclassd.toml")
	os.WriteFile(cfgFile, []byte("containerd_config = \""+n.config+"\"\npolicy_dir = \"/nonexistent\"\nstate_dir = \""+n.state+"\"\ncontainerd_bin = \""+n.bin+"\"\nnfd_feature_file = \""+n.nfd+"\"\nhost_root = \""+n.hostRoot+"\"\nshim_path = \"/usr/bin\"\n"), 0o644)
	var out, errb bytes.Buffer
	// The file's policy_dir is wrong; the flag after the command wins.
	code := Main(context.Background(), []string{"--config", cfgFile, "apply", "--no-restart", "--policy-dir", n.policy}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, &errb)
	}
	errb.Reset()
	os.WriteFile(cfgFile, []byte("policy_dirr = \"x\"\n"), 0o644)
	if code := Main(context.Background(), []string{"--config", cfgFile, "apply"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "runtimeclassd.toml:1:1: unknown key policy_dirr") {
		t.Fatalf("exit %d\n%s", code, &errb)
	}
}

// TestCheckOnThisMachine is the acceptance check on this machine's real
// host: /dev/kvm answers, /dev/vhost-vsock is missing, so kata is not ready,
// check says why and exits 1, and apply leaves kata out of the config.
func TestCheckOnThisMachine(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/dev/kvm"); err != nil {
		t.Skip("no /dev/kvm")
	}
	if _, err := os.Stat("/dev/vhost-vsock"); err == nil {
		t.Skip("this machine has /dev/vhost-vsock")
	}
	n := newNode(t, 1, readCorpus(t, "v2-default-1.6.toml"))
	n.hostRoot = "/"
	n.policyFile("kata.toml", "[handlers.kata]\npreset = \"kata\"\n")
	if code := n.run("check", "--output", "json"); code != 1 {
		t.Fatalf("check: exit %d, want 1\n%s%s", code, &n.stdout, &n.stderr)
	}
	var out struct {
		Handlers []struct {
			Name   string
			Ready  bool
			Checks []struct {
				Name   string
				OK     bool
				Detail string
			}
		}
	}
	if err := json.Unmarshal(n.stdout.Bytes(), &out); err != nil {
		t.Fatalf("check JSON: %v\n%s", err, &n.stdout)
	}
	checks := map[string]bool{}
	for _, c := range out.Handlers[0].Checks {
		checks[c.Name] = c.OK
	}
	if len(out.Handlers) != 1 || out.Handlers[0].Ready || !checks["kvm"] || checks["vhost-vsock"] {
		t.Fatalf("check: %s", &n.stdout)
	}
	for _, name := range []string{"shim", "kvm", "vhost-vsock", "kata-config"} {
		if _, ok := checks[name]; !ok {
			t.Errorf("check %s missing from %s", name, &n.stdout)
		}
	}
	if code := n.run("check"); code != 1 || !strings.Contains(n.stdout.String(), "KVM API version 12") || !strings.Contains(n.stdout.String(), "/dev/vhost-vsock does not exist") {
		t.Fatalf("check text: exit %d\n%s", code, &n.stdout)
	}
	if code := n.run("apply", "--no-restart"); code != 0 {
		t.Fatalf("apply: exit %d\n%s", code, &n.stderr)
	}
	if !strings.Contains(n.stderr.String(), "withheld: kata is not ready") || bytes.Contains(n.read(), []byte("kata")) {
		t.Fatalf("kata was not withheld:\n%s", &n.stderr)
	}
	labels, _ := os.ReadFile(n.nfd)
	if !strings.Contains(string(labels), "runtimeclassd.io/handler.kata=false\n") {
		t.Fatalf("labels:\n%s", labels)
	}
}

// TestHandlerThatStopsBeingReadyIsRemoved: a binary disappears; the next
// apply removes its block, keeps the others, and flips its label.
func TestHandlerThatStopsBeingReadyIsRemoved(t *testing.T) {
	t.Parallel()
	orig := readCorpus(t, "v2-handwritten.toml")
	n := newNode(t, 1, orig)
	n.policyFile("a.toml", kataUntested)
	n.policyFile("b.toml", gvisorUntested)
	if code := n.run("apply", "--no-restart"); code != 0 {
		t.Fatalf("exit %d\n%s", code, &n.stderr)
	}
	// Written, but no containerd serves them yet: not offered.
	labels := n.labels()
	if labels != "runtimeclassd.io/handler.gvisor=false\nruntimeclassd.io/handler.kata=false\n" {
		t.Fatalf("labels before containerd serves the handlers:\n%s", labels)
	}
	// containerd (re)started on the new config: now they are.
	n.startContainerd()
	waitServing(t, n)
	labels = n.labels()
	if labels != "runtimeclassd.io/handler.gvisor=true\nruntimeclassd.io/handler.kata=true\n" {
		t.Fatalf("labels once containerd serves the handlers:\n%s", labels)
	}
	os.Remove(filepath.Join(n.hostRoot, "/usr/bin/runsc"))
	if code := n.run("apply", "--no-restart"); code != 0 {
		t.Fatalf("exit %d\n%s", code, &n.stderr)
	}
	cfg := n.read()
	if bytes.Contains(cfg, []byte("handler=gvisor")) || !bytes.Contains(cfg, []byte("handler=kata")) {
		t.Fatalf("config:\n%s", cfg)
	}
	if !strings.Contains(n.stderr.String(), "withheld: gvisor is not ready: runsc: runsc not found in /usr/bin") || !strings.Contains(n.stderr.String(), "removed: gvisor") {
		t.Fatalf("stderr:\n%s", &n.stderr)
	}
	labels = n.labels()
	if !strings.Contains(labels, "handler.gvisor=false\n") || !strings.Contains(labels, "handler.kata=true\n") {
		t.Fatalf("labels:\n%s", labels)
	}
	// All handlers unready: the config is still valid, and has no blocks.
	for _, f := range fakeShims {
		os.Remove(filepath.Join(n.hostRoot, f))
	}
	if code := n.run("apply", "--no-restart"); code != 0 {
		t.Fatalf("exit %d\n%s", code, &n.stderr)
	}
	if !bytes.Equal(n.read(), orig) {
		t.Fatalf("with no handler ready, the config should be the original:\n%s", n.read())
	}
}

func TestStatus(t *testing.T) {
	t.Parallel()
	n := newNode(t, 1, readCorpus(t, "v2-handwritten.toml"))
	if code := n.run("status"); code != 0 || !strings.Contains(n.stdout.String(), "none recorded") {
		t.Fatalf("status before anything: exit %d\n%s", code, &n.stdout)
	}
	n.policyFile("a.toml", kataUntested)
	n.policyFile("b.toml", gvisorUntested)
	os.Remove(filepath.Join(n.hostRoot, "/usr/bin/runsc"))
	if code := n.run("apply", "--no-restart"); code != 0 {
		t.Fatalf("apply: exit %d\n%s", code, &n.stderr)
	}
	if code := n.run("status"); code != 0 {
		t.Fatalf("status: exit %d\n%s", code, &n.stderr)
	}
	if out := n.stdout.String(); !strings.Contains(out, "applied (apply,") || !strings.Contains(out, "kata     no       containerd does not answer") {
		t.Fatalf("status before containerd restarted:\n%s", out)
	}
	n.startContainerd()
	waitServing(t, n)
	if code := n.run("status"); code != 0 {
		t.Fatalf("status: exit %d\n%s", code, &n.stderr)
	}
	out := n.stdout.String()
	for _, want := range []string{"last outcome:", "unchanged (apply,", "mode:", "managed in " + n.config + ":", "kata\n",
		"gvisor   no       not ready: runsc: runsc not found in /usr/bin", "kata     yes"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	// A failed apply is recorded with its reason, as invalid input.
	n.policyFile("c.toml", "[handlers.bad\n")
	if code := n.run("apply"); code != 1 {
		t.Fatalf("bad apply: exit %d", code)
	}
	n.run("status")
	if !strings.Contains(n.stdout.String(), "invalid (apply,") || !strings.Contains(n.stdout.String(), "c.toml:1:") {
		t.Fatalf("status after a failure:\n%s", &n.stdout)
	}
	// A hand edit inside a block shows.
	cfg := bytes.Replace(n.read(), []byte(`privileged_without_host_devices = true`), []byte(`privileged_without_host_devices = false`), 1)
	os.WriteFile(n.config, cfg, 0o644)
	n.run("status")
	if !strings.Contains(n.stdout.String(), "kata (edited by hand)") {
		t.Fatalf("status after a hand edit:\n%s", &n.stdout)
	}
}

// TestApplyWithoutSystemdWritesNothing: apply without --no-restart needs
// systemd to restart containerd; without it (this test host has no system
// bus) it fails before writing and says how to proceed.
func TestApplyWithoutSystemdWritesNothing(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/run/dbus/system_bus_socket"); err == nil {
		t.Skip("this host has a system bus")
	}
	orig := readCorpus(t, "v2-handwritten.toml")
	n := newNode(t, 1, orig)
	n.policyFile("a.toml", kataPolicy)
	if code := n.run("apply"); code != 1 {
		t.Fatalf("exit %d\n%s", code, &n.stderr)
	}
	if !strings.Contains(n.stderr.String(), "nothing written: the state of containerd.service is unknown") || !strings.Contains(n.stderr.String(), "--no-restart") {
		t.Fatalf("stderr:\n%s", &n.stderr)
	}
	if !bytes.Equal(n.read(), orig) {
		t.Fatal("config written although containerd could not be restarted")
	}
}

// waitServing runs `apply --no-restart` (which changes nothing here) until
// the labels show that the node's containerd answers: containerd takes a
// moment to start, and the command asks it once.
func waitServing(t *testing.T, n *node) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if code := n.run("apply", "--no-restart"); code != 0 {
			t.Fatalf("apply: exit %d\n%s", code, &n.stderr)
		}
		if labels, _ := os.ReadFile(n.nfd); bytes.Contains(labels, []byte("=true")) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("containerd did not serve within 60 s:\n%s", &n.stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestStatusModeAuto: status says what mode auto picks with the installed
// containerd: patch for 1.x, drop-in for 2.x.
func TestStatusModeAuto(t *testing.T) {
	t.Parallel()
	for major, want := range map[int]string{1: "auto: patch", 2: "auto: drop-in"} {
		n := newNode(t, major, nil)
		if code := n.run("status", "--mode", "auto"); code != 0 {
			t.Fatalf("containerd %d.x: status: exit %d\n%s", major, code, &n.stderr)
		}
		if out := n.stdout.String(); !regexp.MustCompile(`(?m)^mode:\s+` + want + `$`).MatchString(out) {
			t.Errorf("containerd %d.x: status does not say %q:\n%s", major, want, out)
		}
	}
}

// TestDropInApplyTwiceThenRevert is the corpus round trip in drop-in mode,
// on containerd 2.4.2: apply writes the handlers into the drop-in (and an
// imports entry only where nothing covers it), a second apply changes
// nothing, and revert gives back config.toml's original bytes with the
// drop-in gone.
func TestDropInApplyTwiceThenRevert(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("../../ctrdconfig/testdata/configs/*.toml")
	if err != nil {
		t.Fatal(err)
	}
	// Refused with their reason, config.toml untouched: a config of version
	// 1 (an empty file is one; 2.x reads no version 1), a runtimes table
	// written inline. v2-unmanaged-kata.toml's kata is another tool's: left
	// alone, reported, and gvisor alone written.
	refused := map[string]string{"empty.toml": "version 1", "v1-legacy.toml": "version 1", "v2-inline.toml": "inline"}
	tried := 0
	for _, path := range files {
		name := filepath.Base(path)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			orig := readCorpus(t, name)
			n := newNode(t, 2, orig)
			dropIn := filepath.Join(filepath.Dir(n.config), "conf.d", "50-runtimeclassd.toml")
			n.policyFile("10-kata.toml", kataPolicy)
			n.policyFile("20-gvisor.toml", "[handlers.gvisor]\npreset = \"gvisor\"\n")
			code := n.run("apply", "--no-restart", "--mode", "drop-in")
			if why, ok := refused[name]; ok {
				if code == 0 || !strings.Contains(n.stderr.String(), why) || !bytes.Equal(n.read(), orig) {
					t.Fatalf("apply: exit %d, want a refusal naming %q and config.toml untouched\n%s", code, why, &n.stderr)
				}
				return
			}
			if code != 0 {
				t.Fatalf("apply: exit %d\n%s", code, &n.stderr)
			}
			in, err := os.ReadFile(dropIn)
			ownKata := name != "v2-unmanaged-kata.toml"
			if err != nil || bytes.Contains(in, []byte("handler=kata")) != ownKata || !bytes.Contains(in, []byte("handler=gvisor")) {
				t.Fatalf("drop-in %s: %v\n%s", dropIn, err, in)
			}
			if !strings.Contains(n.stderr.String(), "wrote "+dropIn) {
				t.Errorf("apply does not name the drop-in it wrote:\n%s", &n.stderr)
			}
			applied := n.read()
			if code := n.run("apply", "--no-restart", "--mode", "drop-in"); code != 0 || !strings.Contains(n.stderr.String(), "up to date") {
				t.Fatalf("second apply: exit %d\n%s", code, &n.stderr)
			}
			if again, _ := os.ReadFile(dropIn); !bytes.Equal(again, in) || !bytes.Equal(n.read(), applied) {
				t.Fatal("second apply rewrote a file")
			}
			if code := n.run("revert", "--no-restart", "--mode", "drop-in"); code != 0 {
				t.Fatalf("revert: exit %d\n%s", code, &n.stderr)
			}
			if !bytes.Equal(n.read(), orig) {
				t.Fatalf("revert did not restore config.toml's original bytes:\n%s", n.read())
			}
			if _, err := os.Stat(dropIn); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("the drop-in is still there after revert: %v", err)
			}
		})
		tried++
	}
	if tried < 10 {
		t.Fatalf("%d corpus files, want at least 10", tried)
	}
}
