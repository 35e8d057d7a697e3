//go:build e2e

// Package e2e boots real nodes (systemd, D-Bus and containerd under
// systemd-nspawn), runs runtimeclassd in them as a systemd service, and
// checks what it does to containerd from the outside.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/runtimeclassd/runtimeclassd/ctrdhealth"
)

var (
	cache   = envOr("RUNTIMECLASSD_CACHE", "/var/tmp/runtimeclassd-cache")
	rootfs  = filepath.Join(cache, "rootfs-bookworm-2") // scripts/e2e-rootfs.sh builds it
	ctrd2   = filepath.Join(cache, "containerd-v2.4.2")
	binary  = os.Getenv("RUNTIMECLASSD_BIN") // built by make e2e
	debFile = os.Getenv("RUNTIMECLASSD_DEB") // built by make e2e (make package)
	repoDir = "../.."
)

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// node is a booted systemd-nspawn machine on an overlay of the cached
// rootfs.
type node struct {
	t      *testing.T
	name   string
	dir    string // holds upper, work, merged and the console log
	root   string // the merged root, as seen from the host
	cmd    *exec.Cmd
	pid1   int
	major  int
	port   int    // the daemon's metrics port; nodes share the host's network
	origin []byte // containerd's config before runtimeclassd started
	mode   string // the daemon's configured mode
}

func bootNode(t *testing.T, name string, major int) *node {
	t.Helper()
	return bootNodeWith(t, name, major, nodeOptions{})
}

// nodeOptions changes how bootNodeWith prepares a node. The zero value is
// the node that bootNode boots.
type nodeOptions struct {
	noPackage bool        // boot without installing runtimeclassd
	prepare   func(*node) // writes into the node's root before it boots
	mode      string      // the daemon's mode (its config's default if "")
}

func bootNodeWith(t *testing.T, name string, major int, with nodeOptions) *node {
	t.Helper()
	for _, p := range []string{rootfs, binary, debFile} {
		if _, err := os.Stat(p); err != nil || p == "" {
			t.Fatalf("missing %q: run make e2e (it builds the binary and the rootfs)", p)
		}
	}
	dir, err := os.MkdirTemp("/var/tmp", "runtimeclassd-e2e-"+name+"-")
	if err != nil {
		t.Fatal(err)
	}
	n := &node{t: t, name: name, dir: dir, root: filepath.Join(dir, "merged"), major: major, port: nextPort()}
	for _, d := range []string{"upper", "work", "merged"} {
		os.Mkdir(filepath.Join(dir, d), 0o755)
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", rootfs, filepath.Join(dir, "upper"), filepath.Join(dir, "work"))
	if out, err := exec.Command("mount", "-t", "overlay", "overlay", "-o", opts, n.root).CombinedOutput(); err != nil {
		t.Fatalf("mounting the node's overlay: %v %s", err, out)
	}
	t.Cleanup(n.destroy)
	n.install()
	n.preparePods()
	if with.prepare != nil {
		with.prepare(n)
	}

	log, _ := os.Create(filepath.Join(dir, "console.log"))
	n.cmd = exec.Command("systemd-nspawn", "--register=no", "--keep-unit", "--capability=all", "-q",
		"-D", n.root, "--boot", "-M", name)
	n.cmd.Env = append(os.Environ(), "SYSTEMD_SECCOMP=0", "SYSTEMD_NSPAWN_API_VFS_WRITABLE=1")
	n.cmd.Stdout, n.cmd.Stderr = log, log
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := n.cmd.Start(); err != nil {
		t.Fatalf("systemd-nspawn: %v", err)
	}
	n.pid1 = n.findPID1()
	n.waitFor("the node's containerd", 90*time.Second, func() error {
		_, err := n.sh("systemctl is-active containerd")
		return err
	})
	n.enablePods()
	n.origin = n.readFile("/etc/containerd/config.toml")
	if with.noPackage {
		return n
	}
	// The real package: its postinst enables and starts the service.
	n.mustSh("dpkg -i /var/tmp/runtimeclassd.deb")
	n.waitFor("runtimeclassd active after dpkg -i", 30*time.Second, func() error {
		_, err := n.sh("systemctl is-active runtimeclassd && systemctl is-enabled runtimeclassd")
		return err
	})
	// Test settings: a short restart budget, so the scenarios run quickly.
	settings := "restart_min_interval = \"4s\"\nverify_timeout = \"30s\"\ndebounce = \"200ms\"\n"
	if with.mode != "" {
		settings += fmt.Sprintf("mode = %q\n", with.mode)
	}
	n.mode = with.mode
	n.writeFile("/etc/runtimeclassd/config.toml", settings, 0o644)
	n.mustSh("systemctl restart runtimeclassd")
	return n
}

// install puts the .deb into the node (installed after boot with dpkg -i),
// and containerd 2.4.2 with its default (version 4) config on a 2.x node.
func (n *node) install() {
	n.copyFile(debFile, "/var/tmp/runtimeclassd.deb", 0o644)
	// A port of its own: every node shares the host's network namespace.
	// A short watchdog: every scenario (restarts, rollbacks, smoke tests)
	// runs under it, and must never make systemd restart the daemon.
	n.writeFile("/etc/systemd/system/runtimeclassd.service.d/e2e.conf", fmt.Sprintf(
		"[Service]\nExecStart=\nExecStart=/usr/bin/runtimeclassd run --log-level info --web.listen-address 127.0.0.1:%d\nWatchdogSec=5s\n", n.port), 0o644)
	// A container rootfs: just busybox.
	n.copyFile(filepath.Join(rootfs, "bin/busybox"), "/var/lib/e2e-rootfs/bin/busybox", 0o755)
	if n.major == 2 {
		for _, b := range []string{"containerd", "ctr", "containerd-shim-runc-v2"} {
			n.copyFile(filepath.Join(ctrd2, b), "/usr/bin/"+b, 0o755)
		}
		def, err := exec.Command(filepath.Join(ctrd2, "containerd"), "config", "default").Output()
		if err != nil {
			n.t.Fatal(err)
		}
		n.writeFile("/etc/containerd/config.toml", string(def), 0o644)
	}
}

// preparePods makes the node able to run pod sandboxes through the CRI,
// before it boots: a hostname and /etc/hosts (CRI copies it into each
// sandbox), restrict_oom_score_adj (this machine's bounding set lacks
// CAP_SYS_RESOURCE, so a sandbox can't lower its oom_score_adj), a local
// image to serve as the sandbox image (no registry is reachable), and a
// containerd store outside the overlay root (the overlayfs snapshotter
// can't use an overlay as its upper layer).
func (n *node) preparePods() {
	n.t.Helper()
	n.writeFile("/etc/hostname", n.name+"\n", 0o644)
	n.writeFile("/etc/hosts", "127.0.0.1 localhost "+n.name+"\n", 0o644)
	cfg, err := restrictOOMScoreAdj(string(n.readFile("/etc/containerd/config.toml")))
	if err != nil {
		n.t.Fatal(err)
	}
	n.writeFile("/etc/containerd/config.toml", cfg, 0o644)
	image, err := imageArchive(filepath.Join(rootfs, "bin/busybox"))
	if err != nil {
		n.t.Fatal(err)
	}
	n.writeFile("/var/tmp/e2e-image.tar", string(image), 0o644)
	store, mountpoint := filepath.Join(n.dir, "containerd"), filepath.Join(n.root, "var/lib/containerd")
	os.Mkdir(store, 0o711)
	os.MkdirAll(mountpoint, 0o711)
	if out, err := exec.Command("mount", "--bind", store, mountpoint).CombinedOutput(); err != nil {
		n.t.Fatalf("mounting containerd's store: %v %s", err, out)
	}
}

// enablePods finishes preparePods once the node runs: writable cgroup
// controllers (nspawn mounts them read-only), and the local image imported
// under its own name and the sandbox image's.
func (n *node) enablePods() {
	n.t.Helper()
	n.mustSh(`for d in cpu cpuset cpuacct blkio pids devices freezer memory; do
	  if mountpoint -q /sys/fs/cgroup/$d; then umount -l /sys/fs/cgroup/$d; mkdir -p /sys/fs/cgroup/$d; mount -t cgroup -o $d cgroup /sys/fs/cgroup/$d; fi
	done; true`)
	sandbox := sandboxImage(n.mustSh("containerd config dump"))
	if sandbox == "" {
		n.t.Fatalf("node %s: no sandbox image in containerd's config", n.name)
	}
	// containerd may be restarting under us (the daemon's first reconcile
	// at boot): try until an import lands.
	n.waitFor("the local image imported", 60*time.Second, func() error {
		_, err := n.sh(fmt.Sprintf("ctr -n k8s.io images import /var/tmp/e2e-image.tar >/dev/null && ctr -n k8s.io images tag --force %s %s >/dev/null", localImage, sandbox))
		return err
	})
}

func (n *node) copyFile(src, dst string, mode os.FileMode) {
	n.t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		n.t.Fatal(err)
	}
	n.writeFile(dst, string(b), mode)
}

// writeFile writes into the node: before boot through the overlay, after
// boot through /proc/PID1/root so that the node's mounts are honoured.
func (n *node) writeFile(path, data string, mode os.FileMode) {
	n.t.Helper()
	full := filepath.Join(n.rootPath(), path)
	os.MkdirAll(filepath.Dir(full), 0o755)
	tmp := full + ".e2e-tmp"
	if err := os.WriteFile(tmp, []byte(data), mode); err != nil {
		n.t.Fatal(err)
	}
	os.Chmod(tmp, mode)
	if err := os.Rename(tmp, full); err != nil {
		n.t.Fatal(err)
	}
}

func (n *node) readFile(path string) []byte {
	b, _ := os.ReadFile(filepath.Join(n.rootPath(), path))
	return b
}

func (n *node) rootPath() string {
	if n.pid1 != 0 {
		return fmt.Sprintf("/proc/%d/root", n.pid1)
	}
	return n.root
}

// findPID1 finds the node's systemd: systemd-nspawn's child, or its
// grandchild when nspawn forks an intermediate process.
func (n *node) findPID1() int {
	var pid int
	n.waitFor("the node's PID 1", 30*time.Second, func() error {
		level := []int{n.cmd.Process.Pid}
		for depth := 0; depth < 2; depth++ {
			var nextLevel []int
			for _, p := range level {
				for _, c := range children(p) {
					if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", c)); strings.TrimSpace(string(comm)) == "systemd" {
						pid = c
						return nil
					}
					nextLevel = append(nextLevel, c)
				}
			}
			level = nextLevel
		}
		return fmt.Errorf("not started yet")
	})
	return pid
}

func children(pid int) []int {
	var out []int
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, t := range tasks {
		b, _ := os.ReadFile(t)
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

// sh runs a shell command in the node.
func (n *node) sh(script string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "nsenter", "-t", strconv.Itoa(n.pid1), "-a", "/bin/sh", "-c", script)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return strings.TrimSpace(out.String()), err
}

func (n *node) mustSh(script string) string {
	n.t.Helper()
	out, err := n.sh(script)
	if err != nil {
		n.t.Fatalf("in node %s: %s: %v\n%s", n.name, script, err, out)
	}
	return out
}

func (n *node) waitFor(what string, timeout time.Duration, f func() error) {
	n.t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	n.dumpLogs()
	n.t.Fatalf("node %s: %s: not within %v: %v", n.name, what, timeout, err)
}

func (n *node) dumpLogs() {
	if n.pid1 == 0 {
		b, _ := os.ReadFile(filepath.Join(n.dir, "console.log"))
		n.t.Logf("console:\n%s", b)
		return
	}
	out, _ := n.sh("journalctl --no-pager -n 80 -u runtimeclassd -u containerd")
	n.t.Logf("journal of node %s:\n%s", n.name, out)
}

func (n *node) destroy() {
	if n.t.Failed() {
		n.dumpLogs()
	}
	if n.cmd != nil && n.cmd.Process != nil {
		n.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { n.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			syscall.Kill(-n.cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	}
	exec.Command("umount", "-l", n.root).Run()
	os.RemoveAll(n.dir)
}

func (n *node) containerdPID() string {
	return n.mustSh("systemctl show -p MainPID --value containerd")
}

// probe asks the node's containerd through its socket, from the host.
func (n *node) probe() (*ctrdhealth.Status, error) {
	c := &ctrdhealth.Checker{Address: fmt.Sprintf("/proc/%d/root/run/containerd/containerd.sock", n.pid1)}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return c.Probe(ctx)
}

func (n *node) status() string { out, _ := n.sh("runtimeclassd status"); return out }

var (
	portMu sync.Mutex
	given  = map[int]bool{}
)

// nextPort returns a loopback port that is free now and not given to
// another node of this run, so that e2e runs side by side don't collide.
func nextPort() int {
	portMu.Lock()
	defer portMu.Unlock()
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			panic(err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !given[p] {
			given[p] = true
			return p
		}
	}
}

// noKeepAlive closes each connection after its response: an idle
// connection kept open would be closed by the client 90 s later
// (IdleConnTimeout), and wake the daemon that TestMeasureIdle watches.
var noKeepAlive = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

// get fetches a path from the node's daemon, from the host.
func (n *node) get(path string) (int, string, error) {
	resp, err := noKeepAlive.Get(fmt.Sprintf("http://127.0.0.1:%d%s", n.port, path))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// reconciles is the daemon's count of finished reconciles, from /metrics
// (-1 if it can't be read).
func (n *node) reconciles() int {
	code, body, err := n.get("/metrics")
	if err != nil || code != 200 {
		return -1
	}
	total := 0
	for _, l := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(l, "runtimeclassd_reconcile_total{"); ok {
			if _, v, ok := strings.Cut(rest, "} "); ok {
				f, _ := strconv.ParseFloat(v, 64)
				total += int(f)
			}
		}
	}
	return total
}

// waitReconciled waits until the daemon has finished a reconcile after the
// count given: an event, not a guess at how long one takes.
func (n *node) waitReconciled(after int) {
	n.t.Helper()
	n.waitFor("a reconcile", 60*time.Second, func() error {
		if c := n.reconciles(); c <= after {
			return fmt.Errorf("%d reconciles, waiting for more than %d", c, after)
		}
		return nil
	})
}

// e2eSpec is a valid OCI spec, as containerd's default is for a container
// (its namespaces and capabilities, no hooks and no host mounts): what a
// base_runtime_spec must be to pass runtimeclassd's checks.
const e2eSpec = `{
  "ociVersion": "1.1.0",
  "process": {"cwd": "/", "args": ["/pause"], "user": {"uid": 0, "gid": 0},
    "capabilities": {
      "bounding": ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"],
      "effective": ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"],
      "permitted": ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]
    },
    "noNewPrivileges": true},
  "root": {"path": "rootfs"},
  "mounts": [{"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}],
  "linux": {"namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "network"}]}
}
`

// armBrokenSpec prepares the handler that breaks containerd's CRI plugin:
// /etc/containerd/bad-spec.json is a valid spec, so that runtimeclassd's
// checks pass (they refuse a file that isn't one), and containerd's unit
// turns it into "not json" whenever it starts on a config that holds the
// handler "broken": root changing the file between runtimeclassd's check
// and containerd's start, which only the restart's verification can catch.
// The next start on a config without the handler puts the spec back.
func (n *node) armBrokenSpec() {
	n.t.Helper()
	n.writeFile("/etc/containerd/e2e-good-spec.json", e2eSpec, 0o644)
	n.writeFile("/etc/containerd/bad-spec.json", e2eSpec, 0o644)
	n.writeFile("/etc/systemd/system/containerd.service.d/e2e-broken-spec.conf", "[Service]\n"+
		"ExecStartPre=/bin/sh -c 'if grep -rqs --include=*.toml \"runtimes[.]broken\" /etc/containerd; "+
		"then echo \"not json\" >/etc/containerd/bad-spec.json; "+
		"else cp /etc/containerd/e2e-good-spec.json /etc/containerd/bad-spec.json; fi'\n", 0o644)
	if n.pid1 != 0 {
		n.mustSh("systemctl daemon-reload")
	}
}
