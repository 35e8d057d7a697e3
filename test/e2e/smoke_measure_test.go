//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestMeasureSmoke measures what the smoke test costs a handler: the time
// from containerd's restart (systemd's start of its new main process) to
// the handler's label saying true (the NFD feature file's write), with the
// smoke test and with smoke = "off", for crun and for gVisor, on
// containerd 1.6 and 2.4.2 (where Debian 12's crun can't run: Debian 13's
// instead). Each round adds a new handler in place of the last one, so each
// is one restart and one new label; the cases alternate, so that drift hits
// them alike. The daemon spaces the restarts itself (restart_min_interval),
// far from containerd's start limit.
func TestMeasureSmoke(t *testing.T) {
	measuring(t)
	const rounds = 11
	for _, c := range []struct {
		major    int
		runtimes []string
	}{{1, []string{"crun", "gvisor"}}, {2, []string{"crun-trixie", "gvisor"}}} {
		t.Run(fmt.Sprintf("containerd-%d", c.major), func(t *testing.T) {
			n := bootNode(t, fmt.Sprintf("rcd-msmoke-%d", c.major), c.major)
			n.writeFile(gvisorWrapperPath, gvisorWrapper, 0o755)
			n.writeFile("/etc/runtimeclassd/config.toml", "restart_min_interval = \"2500ms\"\nverify_timeout = \"30s\"\ndebounce = \"100ms\"\n", 0o644)
			n.mustSh("systemctl restart runtimeclassd")
			n.waitActive("runtimeclassd")
			offered := map[string][]time.Duration{}
			smoke := map[string][]time.Duration{}
			for i := 0; i < rounds; i++ {
				for _, rt := range c.runtimes {
					for _, mode := range []string{"host", "off"} {
						name := fmt.Sprintf("%s-%s-%d", rt, mode, i)
						n.writeFile("/etc/runtimeclassd/policy.d/50-measure.toml", measuredHandler(rt, name, mode), 0o644)
						d, s := n.restartToOffered(name)
						key := rt + " smoke=" + mode
						offered[key] = append(offered[key], d)
						if mode != "off" {
							smoke[key] = append(smoke[key], s)
						}
					}
				}
			}
			for _, rt := range c.runtimes {
				on, off := offered[rt+" smoke=host"], offered[rt+" smoke=off"]
				t.Logf("containerd %d.x, %s: restart to offered median %v with the smoke test (the test itself: median %v), %v with smoke = \"off\"; %d rounds each\n  with: %v\n  without: %v",
					c.major, rt, median(on).Round(time.Millisecond), median(smoke[rt+" smoke=host"]).Round(time.Millisecond),
					median(off).Round(time.Millisecond), len(on), rounded(on), rounded(off))
			}
		})
	}
}

func measuredHandler(runtime, name, smoke string) string {
	binary := map[string]string{"crun": "/usr/bin/crun", "crun-trixie": newerCrun, "gvisor": gvisorWrapperPath}[runtime]
	return fmt.Sprintf("[handlers.%[1]s]\nruntime_type = \"io.containerd.runc.v2\"\nsmoke = %[2]q\n[handlers.%[1]s.options]\nBinaryName = %[3]q\n", name, smoke, binary)
}

// restartToOffered waits until the handler's label says true and returns
// the time from containerd's last start to the label file's write, and
// how long the handler's smoke test took (from /metrics; 0 if none ran).
func (n *node) restartToOffered(handler string) (time.Duration, time.Duration) {
	n.t.Helper()
	file := filepath.Join(n.rootPath(), "etc/kubernetes/node-feature-discovery/features.d/runtimeclassd")
	var written time.Time
	n.waitFor(handler+" offered", 2*time.Minute, func() error {
		b, _ := os.ReadFile(file)
		if !strings.Contains(string(b), "runtimeclassd.io/handler."+handler+"=true\n") {
			return fmt.Errorf("not offered yet")
		}
		fi, err := os.Stat(file)
		if err != nil {
			return err
		}
		written = fi.ModTime()
		return nil
	})
	// systemd's realtime stamp of the main process's start, in µs.
	out := n.mustSh("busctl get-property org.freedesktop.systemd1 /org/freedesktop/systemd1/unit/containerd_2eservice org.freedesktop.systemd1.Service ExecMainStartTimestamp")
	f := strings.Fields(out) // "t 1764353000000000"
	us, err := strconv.ParseInt(f[len(f)-1], 10, 64)
	if err != nil {
		n.t.Fatalf("containerd's start time: %q", out)
	}
	started := time.UnixMicro(us)
	if !written.After(started) {
		n.t.Fatalf("%s: label written at %v, before containerd's start at %v: not from this restart", handler, written, started)
	}
	s, _ := strconv.ParseFloat(sample(n.metrics(), `runtimeclassd_smoke_test_duration_seconds{handler="`+handler+`"}`), 64)
	return written.Sub(started), time.Duration(s * float64(time.Second))
}

func rounded(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Millisecond)
	}
	return out
}
