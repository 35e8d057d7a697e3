//go:build e2e

package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// On containerd 1.6, auto must pick patch; on 2.4.2, patch mode as asked,
// and auto picks drop-in.
func TestContainerd16Node(t *testing.T) {
	t.Parallel()
	scenarios(t, bootNodeWith(t, "rcd-e2e-16", 1, nodeOptions{mode: "auto"}), false)
}

func TestContainerd24Node(t *testing.T) {
	t.Parallel()
	scenarios(t, bootNodeWith(t, "rcd-e2e-24", 2, nodeOptions{mode: "patch"}), false)
}

func TestContainerd24DropIn(t *testing.T) {
	t.Parallel()
	scenarios(t, bootNodeWith(t, "rcd-e2e-24d", 2, nodeOptions{mode: "auto"}), true)
}

// dropInFile is where runtimeclassd's drop-in goes by default.
const dropInFile = "/etc/containerd/conf.d/50-runtimeclassd.toml"

// blocksFile is the file that holds the managed blocks in a node's mode.
func (n *node) blocksFile(dropIn bool) string {
	if dropIn {
		return dropInFile
	}
	return "/etc/containerd/config.toml"
}

// managed is everything containerd reads of runtimeclassd's: config.toml
// and the drop-in.
func (n *node) managed() string {
	return string(n.readFile("/etc/containerd/config.toml")) + "\x00" + string(n.readFile(dropInFile))
}

// altHandler is a handler this node can really run: runc, through the runc
// v2 shim, under another name.
const altHandler = `[handlers.runc-alt]
runtime_type = "io.containerd.runc.v2"
[handlers.runc-alt.options]
BinaryName = "/usr/sbin/runc"
`

func scenarios(t *testing.T, n *node, dropIn bool) {
	// The daemon runs as a notify service (dpkg -i started it); with no
	// policy it changes nothing.
	n.waitFor("runtimeclassd active", 30*time.Second, func() error {
		_, err := n.sh("systemctl is-active runtimeclassd")
		return err
	})
	if got := n.readFile("/etc/containerd/config.toml"); string(got) != string(n.origin) {
		t.Fatalf("the daemon changed the config with an empty policy:\n%s", got)
	}

	// A container started before any restart.
	taskPID := n.startSleeper()

	t.Run("policy dropped in: patched, restarted over D-Bus, served by CRI", func(t *testing.T) {
		before := n.containerdPID()
		n.writeFile("/etc/runtimeclassd/policy.d/10-alt.toml", altHandler, 0o644)
		n.waitFor("containerd restarted with runc-alt served", 40*time.Second, func() error {
			if pid := n.containerdPID(); pid == before || pid == "0" {
				return fmt.Errorf("containerd MainPID still %s", pid)
			}
			st, err := n.probe()
			if err != nil {
				return err
			}
			if !slices.Contains(st.Handlers, "runc-alt") || !st.CRIReady {
				return fmt.Errorf("CRI serves %v (ready %v)", st.Handlers, st.CRIReady)
			}
			return nil
		})
		blocks := string(n.readFile(n.blocksFile(dropIn)))
		if !strings.Contains(blocks, "# runtimeclassd:begin handler=runc-alt") {
			t.Fatalf("%s:\n%s", n.blocksFile(dropIn), blocks)
		}
		cfg := string(n.readFile("/etc/containerd/config.toml"))
		switch {
		case dropIn && cfg != string(n.origin):
			// 2.4.2's default config imports conf.d/*.toml already.
			t.Fatalf("in drop-in mode, config.toml changed:\n%s", cfg)
		case !dropIn && !strings.HasPrefix(cfg, string(n.origin[:20])):
			t.Fatalf("config:\n%s", cfg)
		}
		n.waitFor("status applied", 10*time.Second, func() error {
			if s := n.status(); !strings.Contains(s, "applied (run,") {
				return fmt.Errorf("status:\n%s", s)
			}
			return nil
		})
	})

	t.Run("a container started before the restart keeps running, same PID", func(t *testing.T) {
		got := n.mustSh("ctr task ls 2>/dev/null | awk '$1 == \"e2e-sleeper\" { print $2, $3 }'")
		if got != taskPID+" RUNNING" {
			t.Fatalf("task after restart: %q, want %q", got, taskPID+" RUNNING")
		}
	})

	t.Run("a second identical drop-in causes no restart", func(t *testing.T) {
		before := n.containerdPID()
		count := n.reconciles()
		n.writeFile("/etc/runtimeclassd/policy.d/20-alt-again.toml", altHandler, 0o644)
		n.waitReconciled(count)
		if pid := n.containerdPID(); pid != before {
			t.Fatalf("containerd restarted (MainPID %s -> %s)", before, pid)
		}
		if s := n.status(); !strings.Contains(s, "unchanged (run,") {
			t.Fatalf("status:\n%s", s)
		}
	})

	t.Run("drift: the managed block removed by someone else is repaired", func(t *testing.T) {
		before := n.containerdPID()
		if dropIn {
			n.writeFile(dropInFile, "version = 3\n", 0o644)
		} else {
			n.writeFile("/etc/containerd/config.toml", string(n.origin), 0o644)
		}
		n.waitFor("block restored, containerd restarted and serving it", 40*time.Second, func() error {
			if !strings.Contains(string(n.readFile(n.blocksFile(dropIn))), "handler=runc-alt") {
				return fmt.Errorf("no block yet")
			}
			// containerd still serves runc-alt from memory until it
			// restarts: only a new MainPID proves the repair reached it.
			if pid := n.containerdPID(); pid == before || pid == "0" {
				return fmt.Errorf("containerd not restarted yet")
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
		code, metrics, err := n.get("/metrics")
		if err != nil || code != 200 {
			t.Fatalf("/metrics: %d %v", code, err)
		}
		for _, want := range []string{"runtimeclassd_config_drift_total 1", `runtimeclassd_handler_ready{handler="runc-alt"} 1`,
			`runtimeclassd_containerd_restarts_total{result="success"} 2`, "runtimeclassd_policy_valid 1", `runtimeclassd_build_info{`} {
			if !strings.Contains(metrics, want) {
				t.Errorf("/metrics lacks %q:\n%s", want, grep(metrics, "runtimeclassd_"))
			}
		}
		for _, path := range []string{"/healthz", "/readyz"} {
			if code, body, err := n.get(path); err != nil || code != 200 || strings.TrimSpace(body) != "ok" {
				t.Errorf("%s: %d %q %v", path, code, body, err)
			}
		}
	})

	t.Run("a handler that makes the CRI plugin fail to load is rolled back", func(t *testing.T) {
		n.armBrokenSpec()
		good := n.managed()
		start := time.Now()
		n.writeFile("/etc/runtimeclassd/policy.d/30-broken.toml",
			"[handlers.broken]\nruntime_type = \"io.containerd.runc.v2\"\nbase_runtime_spec = \"/etc/containerd/bad-spec.json\"\n", 0o644)
		n.waitFor("rolled back", 60*time.Second, func() error {
			if s := n.status(); !strings.Contains(s, "rolled_back (run,") {
				return fmt.Errorf("status:\n%s", s)
			}
			return nil
		})
		took := time.Since(start)
		if got := n.managed(); got != good {
			t.Fatalf("config after rollback differs from before:\n%s", got)
		}
		n.waitFor("healthy after rollback", 30*time.Second, func() error {
			st, err := n.probe()
			if err != nil {
				return err
			}
			if !slices.Contains(st.Handlers, "runc-alt") || !st.CRIReady {
				return fmt.Errorf("CRI serves %v", st.Handlers)
			}
			return nil
		})
		if took > 30*time.Second+10*time.Second {
			t.Errorf("rollback took %v, longer than the verify timeout allows", took)
		}
		t.Logf("rolled back %v after the bad policy was written", took.Round(time.Millisecond))
		if _, err := n.sh("systemctl is-active containerd"); err != nil {
			t.Fatal("containerd is not active after the rollback")
		}
		got := n.mustSh("ctr task ls 2>/dev/null | awk '$1 == \"e2e-sleeper\" { print $2, $3 }'")
		if got != taskPID+" RUNNING" {
			t.Fatalf("task after the rollback: %q", got)
		}
		// Not retried while the inputs stay the same: a resync (SIGHUP)
		// finds the candidate on the bad list and restarts nothing.
		pid := n.containerdPID()
		count := n.reconciles()
		n.mustSh("systemctl reload runtimeclassd")
		n.waitReconciled(count)
		if s := n.status(); !strings.Contains(s, "invalid (run,") || !strings.Contains(s, "rolled back before") {
			t.Fatalf("status after a resync:\n%s", s)
		}
		if got := n.containerdPID(); got != pid {
			t.Fatalf("the resync restarted containerd (MainPID %s -> %s)", pid, got)
		}
	})

	if dropIn {
		t.Run("another tool's drop-in that defines a handler keeps it: reported, not written", func(t *testing.T) {
			other := "/etc/containerd/conf.d/10-other-tool.toml"
			n.writeFile(other, "version = 3\n[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.gpu-alt]\nruntime_type = 'io.containerd.runc.v2'\n", 0o644)
			count := n.reconciles()
			n.writeFile("/etc/runtimeclassd/policy.d/40-gpu.toml", "[handlers.gpu-alt]\nruntime_type = \"io.containerd.runc.v2\"\n", 0o644)
			n.waitReconciled(count)
			n.waitFor("the conflict reported", 30*time.Second, func() error {
				if s := n.status(); !strings.Contains(s, "gpu-alt") || !strings.Contains(s, "10-other-tool.toml") {
					return fmt.Errorf("status:\n%s", s)
				}
				return nil
			})
			if strings.Contains(string(n.readFile(dropInFile)), "handler=gpu-alt") {
				t.Fatalf("runtimeclassd wrote a handler another tool's drop-in defines:\n%s", n.readFile(dropInFile))
			}
			n.mustSh("rm " + other + " /etc/runtimeclassd/policy.d/40-gpu.toml")
		})
	}

	t.Run("the watchdog (5 s here) never fired through all of the above", func(t *testing.T) {
		if got := n.mustSh("systemctl show -p WatchdogUSec --value runtimeclassd"); got != "5s" {
			t.Fatalf("WatchdogUSec %q", got)
		}
		if r := n.unitRestarts(); r != 0 {
			t.Fatalf("systemd restarted runtimeclassd %d times:\n%s", r, n.mustSh("journalctl --no-pager -u runtimeclassd | grep -i watchdog; true"))
		}
	})

	t.Run("runtimeclassd revert restarts containerd over D-Bus and gives back the original bytes", func(t *testing.T) {
		n.mustSh("systemctl stop runtimeclassd")
		before := n.containerdPID()
		start := time.Now()
		out := n.mustSh("runtimeclassd revert 2>&1")
		took := time.Since(start)
		if got := n.readFile("/etc/containerd/config.toml"); string(got) != string(n.origin) {
			t.Fatalf("revert did not give back the original config:\n%s\n%s", got, out)
		}
		if _, err := n.sh("test -e " + dropInFile); err == nil {
			t.Fatalf("the drop-in is still there after revert:\n%s", out)
		}
		if pid := n.containerdPID(); pid == before || pid == "0" {
			t.Fatalf("containerd not restarted by revert (MainPID %s):\n%s", pid, out)
		}
		if !strings.Contains(out, "restarted containerd.service and verified it") {
			t.Fatalf("revert output:\n%s", out)
		}
		st, err := n.probe()
		if err != nil || slices.Contains(st.Handlers, "runc-alt") {
			t.Fatalf("after revert CRI serves %v (%v)", st, err)
		}
		t.Logf("revert took %v, restart budget included", took.Round(time.Millisecond))
	})

	t.Run("dpkg -r stops the service and leaves containerd's config; purge drops the state", func(t *testing.T) {
		before := n.managed()
		n.mustSh("dpkg -r runtimeclassd")
		if out, err := n.sh("systemctl is-active runtimeclassd"); err == nil {
			t.Fatalf("still active after dpkg -r: %s", out)
		}
		if got := n.managed(); got != before {
			t.Fatal("removing the package changed containerd's config")
		}
		n.mustSh("test -d /var/lib/runtimeclassd && test -f /etc/runtimeclassd/config.toml")
		n.mustSh("dpkg --purge runtimeclassd")
		if _, err := n.sh("test -e /var/lib/runtimeclassd"); err == nil {
			t.Fatal("state dir left after purge")
		}
	})
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
