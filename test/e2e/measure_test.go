//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The measurements behind the figures in the issue notes. They run with
// RUNTIMECLASSD_MEASURE=1 (make measure) and log what they measure; they
// fail only when the measurement itself could not be made.

func measuring(t *testing.T) {
	if os.Getenv("RUNTIMECLASSD_MEASURE") == "" {
		t.Skip("set RUNTIMECLASSD_MEASURE=1 (make measure)")
	}
}

// TestMeasureCRIDowntime compares how long CRI is unavailable during a
// restart that runtimeclassd makes with a bare `systemctl restart
// containerd`, on the same node, alternating, with a probe polling CRI
// Status every 2 ms from the host.
func TestMeasureCRIDowntime(t *testing.T) {
	measuring(t)
	for _, major := range []int{1, 2} {
		t.Run(fmt.Sprint(major), func(t *testing.T) {
			n := bootNode(t, fmt.Sprintf("rcd-measure-%d", major), major)
			n.writeFile("/etc/runtimeclassd/config.toml", "restart_min_interval = \"1s\"\ndebounce = \"100ms\"\n", 0o644)
			n.mustSh("systemctl restart runtimeclassd")
			n.writeFile("/etc/runtimeclassd/policy.d/10-alt.toml", altHandler, 0o644)
			waitStatus(t, n, "applied")
			time.Sleep(3 * time.Second)

			sock := fmt.Sprintf("/proc/%d/root/run/containerd/containerd.sock", n.pid1)
			var bare, daemon []time.Duration
			for i := 0; i < 8; i++ {
				d, err := downtime(sock, func() { n.mustSh("systemctl restart containerd") })
				if err != nil {
					t.Fatal(err)
				}
				bare = append(bare, d)
				time.Sleep(2500 * time.Millisecond) // stay far from the start limit
				d, err = downtime(sock, func() {
					n.writeFile("/etc/runtimeclassd/policy.d/10-alt.toml", altHandler+fmt.Sprintf("# change %d\nSystemdCgroup = %v\n", i, i%2 == 0), 0o644)
				})
				if err != nil {
					t.Fatal(err)
				}
				daemon = append(daemon, d)
				time.Sleep(2500 * time.Millisecond)
			}
			mb, md := median(bare), median(daemon)
			t.Logf("containerd %d.x CRI downtime over 8 restarts each: bare systemctl restart median %v (all %v); runtimeclassd median %v (all %v); ratio %.2f",
				major, mb, bare, md, daemon, float64(md)/float64(mb))
		})
	}
}

// downtime triggers a restart and returns the longest stretch in which
// CRI Status did not answer, from the first failed probe to the next
// successful one.
func downtime(sock string, trigger func()) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var mu sync.Mutex
	var down time.Time
	var longest time.Duration
	seenDown := false
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			ok := criUp(ctx, sock)
			now := time.Now()
			mu.Lock()
			switch {
			case !ok && down.IsZero():
				down, seenDown = now, true
			case ok && !down.IsZero():
				if d := now.Sub(down); d > longest {
					longest = d
				}
				down = time.Time{}
				mu.Unlock()
				return
			}
			mu.Unlock()
			time.Sleep(2 * time.Millisecond)
		}
	}()
	time.Sleep(50 * time.Millisecond)
	trigger()
	<-done
	if !seenDown {
		return 0, fmt.Errorf("no downtime seen: did containerd restart?")
	}
	return longest, nil
}

func criUp(ctx context.Context, sock string) bool {
	ctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return false
	}
	defer conn.Close()
	resp, err := runtimeapi.NewRuntimeServiceClient(conn).Status(ctx, &runtimeapi.StatusRequest{})
	if err != nil {
		return false
	}
	for _, c := range resp.GetStatus().GetConditions() {
		if c.Type == runtimeapi.RuntimeReady {
			return c.Status
		}
	}
	return false
}

func waitStatus(t *testing.T, n *node, outcome string) {
	n.waitFor("status "+outcome, 30*time.Second, func() error {
		if s := n.status(); !strings.Contains(s, outcome+" (") {
			return fmt.Errorf("status:\n%s", s)
		}
		return nil
	})
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func percentile(ds []time.Duration, p float64) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(float64(len(s)-1) * p)
	return s[i]
}

// TestMeasureIdle measures the daemon's idle RSS, CPU and wake-ups over 60
// s on a node, after it has applied a policy.
func TestMeasureIdle(t *testing.T) {
	measuring(t)
	n := bootNode(t, "rcd-measure-idle", 1)
	n.mustSh("systemctl restart runtimeclassd")
	n.writeFile("/etc/runtimeclassd/policy.d/10-alt.toml", altHandler, 0o644)
	waitStatus(t, n, "applied")
	time.Sleep(5 * time.Second)
	pid := n.mustSh("systemctl show -p MainPID --value runtimeclassd")
	read := func() (rss int, cpu int, ctxsw int) {
		st := n.mustSh("cat /proc/" + pid + "/status")
		for _, l := range strings.Split(st, "\n") {
			f := strings.Fields(l)
			if len(f) >= 2 && f[0] == "VmRSS:" {
				rss, _ = strconv.Atoi(f[1])
			}
		}
		// Wake-ups: context switches of every thread, not only the main one.
		sw := n.mustSh("cat /proc/" + pid + "/task/*/status | awk '/ctxt_switches/ { s += $2 } END { print s }'")
		ctxsw, _ = strconv.Atoi(sw)
		stat := strings.Fields(n.mustSh("cat /proc/" + pid + "/stat"))
		u, _ := strconv.Atoi(stat[13])
		s, _ := strconv.Atoi(stat[14])
		return rss, u + s, ctxsw
	}
	rss0, cpu0, sw0 := read()
	time.Sleep(60 * time.Second)
	rss1, cpu1, sw1 := read()
	t.Logf("idle over 60 s: RSS %d KiB -> %d KiB (%.1f MiB); CPU %d ticks (%.2f s, %.3f%% of a core); context switches %d (%.1f/s)",
		rss0, rss1, float64(rss1)/1024, cpu1-cpu0, float64(cpu1-cpu0)/100, float64(cpu1-cpu0)/100/60*100, sw1-sw0, float64(sw1-sw0)/60)
}

// TestMeasureWriteLatency measures, on this host, the time from a policy
// write to config.toml being written, minus the debounce, for 100 writes,
// with containerd 1.6 and 2.4.2 validating the candidate.
func TestMeasureWriteLatency(t *testing.T) {
	measuring(t)
	for _, bin := range []string{"/usr/bin/containerd", filepath.Join(ctrd2, "containerd")} {
		t.Run(filepath.Base(filepath.Dir(bin)), func(t *testing.T) {
			dir := t.TempDir()
			os.Chmod(dir, 0o755)
			cfgPath := filepath.Join(dir, "etc/containerd/config.toml")
			os.MkdirAll(filepath.Dir(cfgPath), 0o755)
			os.MkdirAll(filepath.Join(dir, "policy.d"), 0o755)
			def, _ := exec.Command(bin, "config", "default").Output()
			os.WriteFile(cfgPath, def, 0o644)
			const debounce = 100 * time.Millisecond
			os.WriteFile(filepath.Join(dir, "cfg.toml"), []byte(fmt.Sprintf("debounce = %q\n", debounce.String())), 0o644)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			cmd := exec.CommandContext(ctx, binary, "--config", filepath.Join(dir, "cfg.toml"), "--containerd-bin", bin, "--containerd-config", cfgPath,
				"--policy-dir", filepath.Join(dir, "policy.d"), "--state-dir", filepath.Join(dir, "state"), "--nfd-feature-file", "",
				"--shim-path", "/usr/bin:/usr/sbin", "run", "--no-restart", "--web.listen-address", "")
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { cancel(); cmd.Wait() }()
			w, _ := fsnotify.NewWatcher()
			defer w.Close()
			w.Add(filepath.Dir(cfgPath))
			time.Sleep(time.Second)
			var lat []time.Duration
			for i := 0; i < 100; i++ {
				body := altHandler + fmt.Sprintf("SystemdCgroup = %v\n", i%2 == 0)
				drain(w)
				start := time.Now()
				os.WriteFile(filepath.Join(dir, "policy.d", "alt.toml"), []byte(body), 0o644)
				if err := waitRename(w, filepath.Base(cfgPath), 10*time.Second); err != nil {
					t.Fatalf("write %d: %v", i, err)
				}
				lat = append(lat, time.Since(start)-debounce)
			}
			t.Logf("%s: policy write to config written, minus the %v debounce, over %d writes: p50 %v, p90 %v, p99 %v, max %v",
				bin, debounce, len(lat), percentile(lat, 0.5).Round(100*time.Microsecond), percentile(lat, 0.9).Round(100*time.Microsecond),
				percentile(lat, 0.99).Round(100*time.Microsecond), percentile(lat, 1).Round(100*time.Microsecond))
		})
	}
}

func drain(w *fsnotify.Watcher) {
	for {
		select {
		case <-w.Events:
		default:
			return
		}
	}
}

func waitRename(w *fsnotify.Watcher, base string, timeout time.Duration) error {
	deadline := time.After(timeout)
	for {
		select {
		case ev := <-w.Events:
			if filepath.Base(ev.Name) == base && ev.Has(fsnotify.Create) {
				return nil
			}
		case <-deadline:
			return fmt.Errorf("config not written within %v", timeout)
		}
	}
}
