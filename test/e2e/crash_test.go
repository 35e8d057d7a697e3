//go:build e2e

package e2e

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestCrashOnARealNode kills the packaged daemon with SIGKILL (its own
// crashpoint, set through a unit drop-in) at each phase of a real apply and
// of a real rollback. systemd restarts it; it must finish what was
// interrupted: containerd serves what config.toml holds, the labels say what
// containerd serves, nothing is left pending, the container started before
// keeps running, and containerd never reaches its start limit.
func TestCrashOnARealNode(t *testing.T) {
	t.Parallel()
	n := bootNode(t, "rcd-e2e-crash", 1)
	n.waitFor("runtimeclassd active", 30*time.Second, func() error {
		_, err := n.sh("systemctl is-active runtimeclassd")
		return err
	})
	taskPID := n.startSleeper()
	n.armBrokenSpec()

	applyPhases := []string{"apply: intent recorded", "write config.toml: renamed", "apply: written recorded",
		"restart: requested", "restart: done", "verify: ok", "apply: done"}
	rollbackPhases := []string{"rollback: intent recorded", "rollback: restored", "rollback: written recorded",
		"restart: requested#2", "restart: done#2", "rollback: done"}
	variant := 0
	for i, phase := range append(applyPhases, rollbackPhases...) {
		rollback := i >= len(applyPhases)
		ok := t.Run(phase, func(t *testing.T) {
			marker := fmt.Sprintf("/var/lib/runtimeclassd/crashed-%d", i)
			n.writeFile("/etc/systemd/system/runtimeclassd.service.d/crash.conf", fmt.Sprintf(
				"[Service]\nEnvironment=\"RUNTIMECLASSD_CRASH_AT=%s\" RUNTIMECLASSD_CRASH_ONCE=%s\nRestartSec=1s\n", phase, marker), 0o644)
			n.mustSh("systemctl daemon-reload && systemctl restart runtimeclassd")
			restarts := n.unitRestarts()
			good := string(n.readFile("/etc/containerd/config.toml"))
			start := time.Now()
			if rollback {
				// A new candidate each time: one rolled back before is not
				// tried again.
				n.writeFile("/etc/runtimeclassd/policy.d/30-broken.toml", fmt.Sprintf(
					"[handlers.broken]\nruntime_type = \"io.containerd.runc.v2\"\nbase_runtime_spec = \"/etc/containerd/bad-spec.json\"\ncontainer_annotations = [%q]\n", variantAnnotation(i)), 0o644)
			} else {
				variant++
				n.writeFile("/etc/runtimeclassd/policy.d/10-alt.toml", altVariant(variant), 0o644)
			}
			n.waitFor("the crash at "+phase, 60*time.Second, func() error {
				_, err := n.sh("test -e " + marker)
				return err
			})
			n.waitFor("runtimeclassd restarted by systemd after the crash", 60*time.Second, func() error {
				if got := n.unitRestarts(); got != restarts+1 {
					return fmt.Errorf("NRestarts %d, want %d", got, restarts+1)
				}
				_, err := n.sh("systemctl is-active runtimeclassd")
				return err
			})
			n.waitFor("converged after the crash", 90*time.Second, func() error { return n.converged(rollback, good, variant) })
			if got := n.mustSh("ctr task ls 2>/dev/null | awk '$1 == \"e2e-sleeper\" { print $2, $3 }'"); got != taskPID+" RUNNING" {
				t.Fatalf("the container started before: %q, want %q", got, taskPID+" RUNNING")
			}
			if res := n.mustSh("systemctl show -p Result --value containerd"); res != "success" {
				t.Fatalf("containerd's unit result: %s", res)
			}
			t.Logf("crashed at %q; converged %v after the policy was written", phase, time.Since(start).Round(time.Millisecond))
			if rollback {
				n.mustSh("rm /etc/runtimeclassd/policy.d/30-broken.toml")
				n.waitFor("the broken policy gone", 30*time.Second, func() error {
					if s := n.status(); strings.Contains(s, "broken") {
						return fmt.Errorf("status:\n%s", s)
					}
					return nil
				})
			}
		})
		if !ok {
			break
		}
	}
}

// altVariant is the runc-alt handler with an annotation that names the
// variant, so that each apply phase has a block to change.
func altVariant(v int) string {
	return fmt.Sprintf("[handlers.runc-alt]\nruntime_type = \"io.containerd.runc.v2\"\ncontainer_annotations = [%q]\n[handlers.runc-alt.options]\nBinaryName = \"/usr/sbin/runc\"\n", variantAnnotation(v))
}

func variantAnnotation(v int) string { return fmt.Sprintf("example.com/variant-%d", v) }

// converged checks the node after a crash: config.toml is the expected one,
// containerd runs it (its handlers are served, and it started after the
// file was written), nothing is pending, and the labels say what is served.
func (n *node) converged(rollback bool, good string, variant int) error {
	cfg := string(n.readFile("/etc/containerd/config.toml"))
	if rollback && cfg != good {
		return fmt.Errorf("config.toml is not back to the good one")
	}
	if !rollback && !strings.Contains(cfg, variantAnnotation(variant)) {
		return fmt.Errorf("config.toml does not hold variant %d yet", variant)
	}
	if state := string(n.readFile("/var/lib/runtimeclassd/state.json")); strings.Contains(state, `"pending"`) {
		return fmt.Errorf("still pending:\n%s", state)
	}
	st, err := n.probe()
	if err != nil {
		return err
	}
	for _, h := range managedHandlers(cfg) {
		if !slices.Contains(st.Handlers, h) {
			return fmt.Errorf("containerd does not serve %s (it serves %v)", h, st.Handlers)
		}
	}
	if rollback && slices.Contains(st.Handlers, "broken") {
		return fmt.Errorf("containerd still serves the rolled-back handler")
	}
	labels := string(n.readFile("/etc/kubernetes/node-feature-discovery/features.d/runtimeclassd"))
	if !strings.Contains(labels, "runtimeclassd.io/handler.runc-alt=true\n") {
		return fmt.Errorf("labels:\n%s", labels)
	}
	if rollback && !strings.Contains(labels, "runtimeclassd.io/handler.broken=false\n") {
		return fmt.Errorf("labels claim the rolled-back handler:\n%s", labels)
	}
	return nil
}

// managedHandlers lists the handlers of the managed blocks in a config.
func managedHandlers(cfg string) []string {
	var out []string
	for _, l := range strings.Split(cfg, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(l), "# runtimeclassd:begin handler="); ok {
			out = append(out, strings.Fields(rest)[0])
		}
	}
	return out
}

// unitRestarts is how many times systemd restarted runtimeclassd.
func (n *node) unitRestarts() int {
	v, _ := strconv.Atoi(n.mustSh("systemctl show -p NRestarts --value runtimeclassd"))
	return v
}

// startSleeper starts a container with ctr and returns its PID.
func (n *node) startSleeper() string {
	n.t.Helper()
	n.mustSh("ctr run -d --rootfs /var/lib/e2e-rootfs e2e-sleeper /bin/busybox sleep 3600 2>/dev/null")
	pid := n.mustSh("ctr task ls 2>/dev/null | awk '$1 == \"e2e-sleeper\" { print $2 }'")
	if pid == "" {
		n.t.Fatal("container not running")
	}
	return pid
}
