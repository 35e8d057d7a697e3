//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/runtimeclassd/runtimeclassd/shimcheck"
)

// TestPackageLifecycle takes the real .deb through a node's life, as an
// image builder and an operator would: installed into the image with no
// systemd running, booted, hardened unit at work, scraped by a real
// Prometheus, upgraded, disabled by the admin, rebooted with a new policy,
// removed and purged.
func TestPackageLifecycle(t *testing.T) {
	t.Parallel()
	upgrades := buildUpgrades(t, "999.0.0", "999.0.1")
	n, chrootOut := imageNode(t, "rcd-e2e-pkg")

	t.Run("image build: dpkg -i in a chroot enables both units and starts nothing", func(t *testing.T) {
		for _, u := range []string{"runtimeclassd.service", "runtimeclassd-apply.service"} {
			out, err := exec.Command("systemctl", "--root", n.root, "is-enabled", u).CombinedOutput()
			if strings.TrimSpace(string(out)) != "enabled" {
				t.Errorf("%s after the image build: %q (%v)", u, out, err)
			}
		}
		if !strings.Contains(chrootOut, "Setting up runtimeclassd") || strings.Contains(chrootOut, "chroot") || strings.Contains(chrootOut, "Failed") {
			t.Errorf("dpkg -i in the chroot said:\n%s", chrootOut)
		}
		if procs := processesIn(n.root); len(procs) > 0 {
			t.Errorf("processes left running in the image: %v", procs)
		}
	})

	n.boot()
	t.Run("the image boots with the service: apply oneshot, then containerd once, then the daemon", func(t *testing.T) {
		n.waitActive("runtimeclassd.service")
		if got := n.mustSh("systemctl show -p Result --value runtimeclassd-apply.service; systemctl is-active runtimeclassd-apply.service"); got != "success\nactive" {
			t.Errorf("runtimeclassd-apply.service: %q", got)
		}
		if starts := n.containerdStarts(); starts != 1 {
			t.Errorf("containerd started %d times at the first boot", starts)
		}
	})

	t.Run("hardening: exposure at most 2.0, paths from the generator, D-Bus restart, writes and device checks work", func(t *testing.T) {
		out := n.mustSh("systemd-analyze security runtimeclassd.service 2>&1 | tail -1")
		m := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("systemd-analyze security: %s", out)
		}
		score, _ := strconv.ParseFloat(m[1], 64)
		t.Logf("systemd-analyze security runtimeclassd.service in the node: %.1f", score)
		if score > 2.0 {
			t.Errorf("exposure %.1f in the node, want at most 2.0", score)
		}
		cat := n.mustSh("systemctl cat runtimeclassd.service")
		if !strings.Contains(cat, "ReadWritePaths=-/etc/containerd -/var/lib/runtimeclassd -/etc/kubernetes/node-feature-discovery/features.d") {
			t.Errorf("no generated ReadWritePaths in:\n%s", cat)
		}
		kvm := n.mustSh("test -c /dev/kvm && echo yes || echo no") == "yes"
		before := n.containerdPID()
		n.writeFile("/etc/runtimeclassd/policy.d/10-alt.toml", altHandler+kvmHandler, 0o644)
		n.waitFor("containerd restarted over D-Bus, serving runc-alt", 60*time.Second, func() error {
			if pid := n.containerdPID(); pid == before || pid == "0" {
				return fmt.Errorf("containerd MainPID still %s", pid)
			}
			st, err := n.probe()
			if err != nil {
				return err
			}
			if !slices.Contains(st.Handlers, "runc-alt") {
				return fmt.Errorf("CRI serves %v", st.Handlers)
			}
			return nil
		})
		if cfg := string(n.readFile("/etc/containerd/config.toml")); !strings.Contains(cfg, "# runtimeclassd:begin handler=runc-alt") {
			t.Fatalf("config.toml not written:\n%s", cfg)
		}
		// The label follows the handler's smoke test, which comes after
		// CRI serves it.
		n.waitFor("runc-alt offered in the NFD feature file", 60*time.Second, func() error {
			if labels := string(n.readFile("/etc/kubernetes/node-feature-discovery/features.d/runtimeclassd")); !strings.Contains(labels, "runtimeclassd.io/handler.runc-alt=true") ||
				!strings.Contains(labels, "\n# +expiry-time=") {
				return fmt.Errorf("NFD feature file:\n%s", labels)
			}
			return nil
		})
		// The sandboxed daemon's verdict on /dev/kvm against root's,
		// outside any sandbox.
		var outside struct{ Handlers []shimcheck.Result }
		if err := json.Unmarshal([]byte(n.mustSh("runtimeclassd check --output json 2>/dev/null; true")), &outside); err != nil {
			t.Fatal(err)
		}
		want := -1
		for _, h := range outside.Handlers {
			for _, c := range h.Checks {
				if h.Name == "runc-kvm" && c.Name == "kvm" {
					want = map[bool]int{true: 1, false: 0}[c.OK]
				}
			}
		}
		if want == -1 || kvm && want != 1 {
			t.Fatalf("runtimeclassd check outside the sandbox (/dev/kvm in the node: %v): %+v", kvm, outside)
		}
		sample := fmt.Sprintf(`runtimeclassd_host_check_ok{check="kvm",handler="runc-kvm"} %d`, want)
		n.waitFor("the daemon's kvm check agrees with root's", 30*time.Second, func() error {
			if _, body, err := n.get("/metrics"); err != nil || !strings.Contains(body, sample) {
				return fmt.Errorf("no %q in /metrics (%v):\n%s", sample, err, grep(body, "host_check_ok"))
			}
			return nil
		})
		t.Logf("/dev/kvm in the node: %v; kvm check: %d inside the sandbox and out", kvm, want)
	})

	prom := startPrometheus(t, n.port)
	prom.waitUp(t)

	t.Run("a rollback makes RuntimeclassdRolledBack go pending in a real Prometheus", func(t *testing.T) {
		n.armBrokenSpec()
		n.writeFile("/etc/runtimeclassd/policy.d/30-broken.toml",
			"[handlers.broken]\nruntime_type = \"io.containerd.runc.v2\"\nbase_runtime_spec = \"/etc/containerd/bad-spec.json\"\n", 0o644)
		n.waitFor("rolled back", 90*time.Second, func() error {
			if s := n.status(); !strings.Contains(s, "rolled_back (run,") {
				return fmt.Errorf("status:\n%s", s)
			}
			return nil
		})
		prom.waitAlert(t, "RuntimeclassdRolledBack", "pending", 90*time.Second)
		count := n.reconciles()
		n.mustSh("rm /etc/runtimeclassd/policy.d/30-broken.toml /etc/containerd/bad-spec.json")
		n.waitReconciled(count)
		n.waitFor("back to applied or unchanged", 60*time.Second, func() error {
			if s := n.status(); !strings.Contains(s, "unchanged (run,") && !strings.Contains(s, "applied (run,") {
				return fmt.Errorf("status:\n%s", s)
			}
			return nil
		})
	})

	t.Run("an upgrade restarts the daemon, not containerd, and dpkg doesn't wait", func(t *testing.T) {
		ctrd, daemon := n.containerdPID(), n.mainPID("runtimeclassd.service")
		n.copyFile(upgrades[0].deb, "/var/tmp/upgrade-1.deb", 0o644)
		// A start that can't finish until the test says so, as when the
		// daemon's first reconcile restarts containerd and verifies it:
		// dpkg must return all the same.
		n.writeFile("/etc/systemd/system/runtimeclassd.service.d/e2e-hold.conf",
			"[Service]\nExecStartPre=+/bin/sh -c 'while [ ! -e /run/e2e-release ]; do sleep 0.1; done'\n", 0o644)
		n.mustSh("systemctl daemon-reload")
		n.mustSh("dpkg -i /var/tmp/upgrade-1.deb")
		// The restart job is still running: the old daemon stopping
		// (deactivating) or the new one held (activating), depending on how
		// quickly the old one stops; either way dpkg did not wait.
		if got, _ := n.sh("systemctl is-active runtimeclassd"); got != "activating" && got != "deactivating" {
			t.Errorf("right after dpkg -i the daemon is %q; want the restart still under way (dpkg did not wait for it)", got)
		}
		n.mustSh("touch /run/e2e-release && rm /etc/systemd/system/runtimeclassd.service.d/e2e-hold.conf && systemctl daemon-reload")
		n.waitFor("the daemon restarted onto the new package", 60*time.Second, func() error {
			if pid := n.mainPID("runtimeclassd.service"); pid == daemon || pid == "0" {
				return fmt.Errorf("runtimeclassd MainPID %s", pid)
			}
			_, err := n.sh("systemctl is-active runtimeclassd")
			return err
		})
		if got := n.mustSh("dpkg-query -W -f '${Version}' runtimeclassd"); got != "999.0.0-1" {
			t.Errorf("installed version %q", got)
		}
		if pid := n.containerdPID(); pid != ctrd {
			t.Fatalf("the upgrade restarted containerd (MainPID %s -> %s)", ctrd, pid)
		}
	})

	t.Run("policy-rc.d can refuse the restart", func(t *testing.T) {
		daemon := n.mainPID("runtimeclassd.service")
		n.writeFile("/usr/sbin/policy-rc.d", "#!/bin/sh\nexit 101\n", 0o755)
		out := n.mustSh("dpkg -i /var/tmp/upgrade-1.deb 2>&1")
		n.mustSh("rm /usr/sbin/policy-rc.d")
		if pid := n.mainPID("runtimeclassd.service"); pid != daemon {
			t.Fatalf("restarted despite policy-rc.d (MainPID %s -> %s):\n%s", daemon, pid, out)
		}
		if !strings.Contains(out, "policy-rc.d denied restart of runtimeclassd.service") {
			t.Errorf("dpkg -i said:\n%s", out)
		}
	})

	t.Run("the admin's disable survives an upgrade, and a dead daemon makes RuntimeclassdDown pending", func(t *testing.T) {
		n.mustSh("systemctl disable --now runtimeclassd.service")
		prom.waitAlert(t, "RuntimeclassdDown", "pending", 60*time.Second)
		n.copyFile(upgrades[1].deb, "/var/tmp/upgrade-2.deb", 0o644)
		n.mustSh("dpkg -i /var/tmp/upgrade-2.deb")
		if got := n.mustSh("dpkg-query -W -f '${Version}' runtimeclassd"); got != "999.0.1-1" {
			t.Errorf("installed version %q", got)
		}
		if got, _ := n.sh("systemctl is-enabled runtimeclassd.service"); got != "disabled" {
			t.Errorf("after the upgrade runtimeclassd.service is %q, want disabled", got)
		}
		if got, _ := n.sh("systemctl is-active runtimeclassd.service"); got != "inactive" {
			t.Errorf("after the upgrade runtimeclassd.service is %q, want inactive", got)
		}
		if got, _ := n.sh("systemctl is-enabled runtimeclassd-apply.service"); got != "enabled" {
			t.Errorf("runtimeclassd-apply.service is %q; the admin only disabled the daemon", got)
		}
		n.mustSh("systemctl enable --now runtimeclassd.service")
		n.waitActive("runtimeclassd.service")
	})
	prom.stop()

	t.Run("control: without the apply oneshot, a reboot with a changed policy starts containerd twice", func(t *testing.T) {
		n.mustSh("systemctl mask runtimeclassd-apply.service")
		n.shutdown()
		n.writeFile("/etc/runtimeclassd/policy.d/15-alt1.toml", strings.ReplaceAll(altHandler, "runc-alt", "runc-alt1"), 0o644)
		n.boot()
		n.waitActive("runtimeclassd.service")
		n.waitFor("runc-alt1 served", 60*time.Second, func() error {
			st, err := n.probe()
			if err != nil || !slices.Contains(st.Handlers, "runc-alt1") {
				return fmt.Errorf("CRI serves %v (%v)", st, err)
			}
			return nil
		})
		if starts := n.containerdStarts(); starts != 2 {
			t.Errorf("containerd started %d times; the daemon's restart should make it 2", starts)
		}
		n.mustSh("systemctl unmask runtimeclassd-apply.service")
	})

	t.Run("a reboot with a changed policy starts containerd once, on the new config", func(t *testing.T) {
		n.shutdown()
		n.writeFile("/etc/runtimeclassd/policy.d/20-alt2.toml", strings.ReplaceAll(altHandler, "runc-alt", "runc-alt2"), 0o644)
		n.boot()
		n.waitActive("runtimeclassd.service")
		st, err := n.probe()
		if err != nil || !slices.Contains(st.Handlers, "runc-alt2") {
			t.Fatalf("after the reboot CRI serves %v (%v)", st, err)
		}
		if got := n.mustSh("systemctl show -p Result --value runtimeclassd-apply.service"); got != "success" {
			t.Errorf("runtimeclassd-apply.service: %s", got)
		}
		starts := n.containerdStarts()
		t.Logf("containerd starts in this boot: %d", starts)
		if starts != 1 {
			t.Errorf("containerd started %d times during the boot, want 1:\n%s", starts,
				n.mustSh("journalctl -b --no-pager -o short-monotonic -u containerd -u runtimeclassd -u runtimeclassd-apply | tail -40"))
		}
		_, metrics, _ := n.get("/metrics")
		if !strings.Contains(metrics, `runtimeclassd_containerd_restarts_total{result="success"} 0`) {
			t.Errorf("the daemon restarted containerd after the boot:\n%s", grep(metrics, "restarts_total"))
		}
	})

	t.Run("remove stops the daemon and leaves config.toml as it is", func(t *testing.T) {
		before, ctrd := n.readFile("/etc/containerd/config.toml"), n.containerdPID()
		n.mustSh("dpkg -r runtimeclassd")
		if got, _ := n.sh("systemctl is-active runtimeclassd.service"); got == "active" {
			t.Fatal("still active after dpkg -r")
		}
		if got := n.readFile("/etc/containerd/config.toml"); string(got) != string(before) {
			t.Fatal("dpkg -r changed containerd's config")
		}
		if pid := n.containerdPID(); pid != ctrd {
			t.Fatalf("dpkg -r restarted containerd (MainPID %s -> %s)", ctrd, pid)
		}
	})

	t.Run("purge reverts config.toml byte for byte, restarts containerd, drops labels and state", func(t *testing.T) {
		ctrd := n.containerdPID()
		out := n.mustSh("dpkg --purge runtimeclassd 2>&1")
		if got := n.readFile("/etc/containerd/config.toml"); string(got) != string(n.origin) {
			t.Fatalf("config.toml after purge differs from before the install:\n%s\ndpkg said:\n%s", got, out)
		}
		n.waitFor("containerd restarted onto the reverted config", 60*time.Second, func() error {
			if pid := n.containerdPID(); pid == ctrd || pid == "0" {
				return fmt.Errorf("containerd MainPID %s", pid)
			}
			st, err := n.probe()
			if err != nil {
				return err
			}
			if slices.Contains(st.Handlers, "runc-alt") || slices.Contains(st.Handlers, "runc-alt2") || !st.CRIReady {
				return fmt.Errorf("CRI serves %v (ready %v)", st.Handlers, st.CRIReady)
			}
			return nil
		})
		for _, p := range []string{"/etc/kubernetes/node-feature-discovery/features.d/runtimeclassd", "/var/lib/runtimeclassd",
			"/etc/systemd/system/multi-user.target.wants/runtimeclassd.service", "/etc/systemd/system/multi-user.target.wants/runtimeclassd-apply.service"} {
			if _, err := n.sh("test -e " + p + " || test -L " + p); err == nil {
				t.Errorf("%s left after purge", p)
			}
		}
		if starts := n.containerdStarts(); starts != 2 {
			t.Errorf("containerd started %d times this boot; want 2 (the boot and the purge)", starts)
		}
	})
}

// overlayRoot mounts a writable overlay of the cached rootfs and returns
// its root; the test's cleanup unmounts and removes it.
func overlayRoot(t *testing.T, name string) string {
	t.Helper()
	dir, err := os.MkdirTemp("/var/tmp", "runtimeclassd-e2e-"+name+"-")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"upper", "work", "merged"} {
		os.Mkdir(filepath.Join(dir, d), 0o755)
	}
	root := filepath.Join(dir, "merged")
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", rootfs, filepath.Join(dir, "upper"), filepath.Join(dir, "work"))
	if out, err := exec.Command("mount", "-t", "overlay", "overlay", "-o", opts, root).CombinedOutput(); err != nil {
		t.Fatalf("mounting an overlay of the rootfs: %v %s", err, out)
	}
	t.Cleanup(func() {
		exec.Command("umount", "-l", root).Run()
		os.RemoveAll(dir)
	})
	return root
}

// kvmHandler needs /dev/kvm: the daemon's device check, in its sandbox.
const kvmHandler = `[handlers.runc-kvm]
runtime_type = "io.containerd.runc.v2"
requires = ["kvm"]
[handlers.runc-kvm.options]
BinaryName = "/usr/sbin/runc"
`

// imageNode prepares a node's root the way an image build does: the
// package installed with dpkg -i in a chroot, no systemd running. It is
// not booted. It returns what dpkg said.
func imageNode(t *testing.T, name string) (*node, string) {
	t.Helper()
	for _, p := range []string{rootfs, binary, debFile} {
		if _, err := os.Stat(p); err != nil || p == "" {
			t.Fatalf("missing %q: run make e2e (it builds the binary and the rootfs)", p)
		}
	}
	root := overlayRoot(t, name)
	n := &node{t: t, name: name, dir: filepath.Dir(root), root: root, major: 1, port: nextPort()}
	t.Cleanup(n.destroy)
	n.install()
	n.preparePods()
	n.origin = n.readFile("/etc/containerd/config.toml")
	out, err := exec.Command("chroot", n.root, "dpkg", "-i", "/var/tmp/runtimeclassd.deb").CombinedOutput()
	if err != nil {
		t.Fatalf("dpkg -i in the chroot: %v\n%s", err, out)
	}
	// Test settings, as bootNode writes them.
	n.writeFile("/etc/runtimeclassd/config.toml", "restart_min_interval = \"4s\"\nverify_timeout = \"30s\"\ndebounce = \"200ms\"\n", 0o644)
	return n, string(out)
}

// boot starts systemd-nspawn on the node's root (again, after shutdown)
// and waits for containerd. /dev/kvm is passed in when the host has it.
func (n *node) boot() {
	n.t.Helper()
	log, _ := os.OpenFile(filepath.Join(n.dir, "console.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	args := []string{"--register=no", "--keep-unit", "--capability=all", "-q"}
	if _, err := os.Stat("/dev/kvm"); err == nil {
		args = append(args, "--bind=/dev/kvm")
	}
	args = append(args, "-D", n.root, "--boot", "-M", n.name)
	n.cmd = exec.Command("systemd-nspawn", args...)
	n.cmd.Env = append(os.Environ(), "SYSTEMD_SECCOMP=0", "SYSTEMD_NSPAWN_API_VFS_WRITABLE=1")
	n.cmd.Stdout, n.cmd.Stderr = log, log
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := n.cmd.Start(); err != nil {
		n.t.Fatalf("systemd-nspawn: %v", err)
	}
	n.pid1 = n.findPID1()
	n.waitFor("the node's containerd", 90*time.Second, func() error {
		_, err := n.sh("systemctl is-active containerd")
		return err
	})
	n.enablePods()
}

// shutdown powers the node off (systemd-nspawn turns SIGTERM into a
// clean poweroff) and waits for it; the overlay stays for the next boot.
func (n *node) shutdown() {
	n.t.Helper()
	n.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- n.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(90 * time.Second):
		n.t.Fatalf("node %s did not power off within 90s", n.name)
	}
	n.cmd, n.pid1 = nil, 0
}

func (n *node) waitActive(unit string) {
	n.t.Helper()
	n.waitFor(unit+" active", 60*time.Second, func() error {
		_, err := n.sh("systemctl is-active " + unit)
		return err
	})
}

func (n *node) mainPID(unit string) string {
	return n.mustSh("systemctl show -p MainPID --value " + unit)
}

// containerdStarts counts systemd's "Started" messages for
// containerd.service in this boot's journal (restarts included).
func (n *node) containerdStarts() int {
	n.t.Helper()
	// SD_MESSAGE_UNIT_STARTED, logged by PID 1 when a start job is done.
	out := n.mustSh("journalctl -b --no-pager -o cat _PID=1 UNIT=containerd.service MESSAGE_ID=39f53479d3a045ac8e11786248231fbf")
	c := 0
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "Started ") {
			c++
		}
	}
	return c
}

// processesIn lists the processes whose root directory is root.
func processesIn(root string) []string {
	var out []string
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		if r, err := os.Readlink(p + "/root"); err == nil && r == root {
			comm, _ := os.ReadFile(p + "/comm")
			out = append(out, filepath.Base(p)+" "+strings.TrimSpace(string(comm)))
		}
	}
	return out
}

// prometheus is Debian's Prometheus server, run directly on loopback with
// a temporary config and storage, scraping one node's daemon and
// evaluating the packaged alert rules.
type prometheus struct {
	cmd  *exec.Cmd
	addr string
	done chan struct{}
}

func startPrometheus(t *testing.T, target int) *prometheus {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatal("no prometheus binary: apt-get install prometheus (make e2e does)")
	}
	dir := t.TempDir()
	rules, _ := filepath.Abs(filepath.Join(repoDir, "packaging/prometheus-alerts.yml"))
	cfg := fmt.Sprintf(`global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: [%q]
scrape_configs:
  - job_name: runtimeclassd
    static_configs: [{targets: ["127.0.0.1:%d"]}]
`, rules, target)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &prometheus{addr: fmt.Sprintf("127.0.0.1:%d", nextPort()), done: make(chan struct{})}
	log, _ := os.Create(filepath.Join(dir, "prometheus.log"))
	p.cmd = exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+p.addr)
	p.cmd.Stdout, p.cmd.Stderr = log, log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "prometheus.log"))
			t.Logf("prometheus log:\n%s", b)
		}
	})
	return p
}

func (p *prometheus) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// query runs an instant query and returns the number of series.
func (p *prometheus) query(q string) (int, error) {
	resp, err := http.Get("http://" + p.addr + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var r struct {
		Status string
		Data   struct{ Result []json.RawMessage }
	}
	if err := json.Unmarshal(b, &r); err != nil || r.Status != "success" {
		return 0, fmt.Errorf("query %s: %v %s", q, err, b)
	}
	return len(r.Data.Result), nil
}

func (p *prometheus) waitFor(t *testing.T, what, q string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		var c int
		if c, err = p.query(q); err == nil && c > 0 {
			return
		} else if err == nil {
			err = fmt.Errorf("%s: no series", q)
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("prometheus: %s: not within %v: %v", what, timeout, err)
}

func (p *prometheus) waitUp(t *testing.T) {
	t.Helper()
	p.waitFor(t, "the node's daemon scraped", `up{job="runtimeclassd"} == 1 and on(instance) runtimeclassd_policy_valid`, 60*time.Second)
}

func (p *prometheus) waitAlert(t *testing.T, name, state string, timeout time.Duration) {
	t.Helper()
	p.waitFor(t, name+" "+state, fmt.Sprintf(`ALERTS{alertname=%q, alertstate=%q}`, name, state), timeout)
}
