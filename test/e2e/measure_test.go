//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
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
	"unsafe"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The measurements behind the figures in the issue notes and
// docs/BENCHMARKS.md. They run with RUNTIMECLASSD_MEASURE=1 (make measure,
// make bench) and log what they measure; with RUNTIMECLASSD_MEASURE_OUT=FILE
// they also write their figures there as JSON, which make bench puts in
// its table next to their goals. They fail only when the measurement
// itself could not be made.

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

// figures is the JSON that RUNTIMECLASSD_MEASURE_OUT receives; tools/bench
// reads it.
type figures struct {
	Reaction []reactionFigure `json:"reaction"`
	Idle     *idleFigure      `json:"idle,omitempty"`
}

type reactionFigure struct {
	Containerd      string  `json:"containerd"`
	Changes         int     `json:"changes"`
	DebounceMS      float64 `json:"debounce_ms"`
	P50MS           float64 `json:"p50_ms"`
	P99MS           float64 `json:"p99_ms"`
	DumpP50MS       float64 `json:"dump_p50_ms"`
	DumpP99MS       float64 `json:"dump_p99_ms"`
	NoopResyncs     int     `json:"noop_resyncs"`
	NoopExecs       int     `json:"noop_execs"`
	NoopDumps       int     `json:"noop_dumps"`
	NoopWrites      int     `json:"noop_writes"`
	NoopLabelWrites int     `json:"noop_label_writes"`
}

type idleFigure struct {
	Containerd    string  `json:"containerd"`
	RSSKiB        int     `json:"rss_kib"`
	RSSAnonKiB    int     `json:"rss_anon_kib"`
	RSSFileKiB    int     `json:"rss_file_kib"`
	EndRSSKiB     int     `json:"end_rss_kib"`
	WindowS       float64 `json:"window_s"`
	Wakeups       int     `json:"wakeups"`
	WakeupTimesS  []int   `json:"wakeup_times_s"`
	WatchdogPings int     `json:"watchdog_pings"`
	WatchdogSec   float64 `json:"watchdog_sec"`
	CPUTicks      int     `json:"cpu_ticks"`
}

// record merges figures into RUNTIMECLASSD_MEASURE_OUT, if set.
func record(t *testing.T, update func(*figures)) {
	path := os.Getenv("RUNTIMECLASSD_MEASURE_OUT")
	if path == "" {
		return
	}
	var f figures
	if b, err := os.ReadFile(path); err == nil && len(b) > 0 {
		if err := json.Unmarshal(b, &f); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
	update(&f)
	b, _ := json.MarshalIndent(f, "", "  ")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// TestMeasureReaction measures, on a real node, the time from a policy
// write to the new config.toml on disk, minus the debounce, for 200
// changes, and right after each change containerd's own `config dump` of
// that config (the floor: a reconcile validates the candidate with it).
// The daemon runs with --no-restart, so that the figure is the reaction,
// not 200 containerd restarts. Then, with resync_interval = 2s, it counts
// what resyncs that find nothing to do execute and write: runs of the
// containerd binary (inotify IN_CLOSE_NOWRITE on it, one per process) and
// data written or renamed into containerd's config dir, the state dir and
// the NFD dir.
func TestMeasureReaction(t *testing.T) {
	measuring(t)
	for _, major := range []int{1, 2} {
		t.Run(fmt.Sprint(major), func(t *testing.T) {
			n := bootNode(t, fmt.Sprintf("rcd-react-%d", major), major)
			const debounce = 100 * time.Millisecond
			n.writeFile("/etc/runtimeclassd/config.toml", fmt.Sprintf("debounce = %q\n", debounce.String()), 0o644)
			n.writeFile("/etc/systemd/system/runtimeclassd.service.d/e2e.conf", fmt.Sprintf(
				"[Service]\nExecStart=\nExecStart=/usr/bin/runtimeclassd run --no-restart --log-level info --web.listen-address 127.0.0.1:%d\n", n.port), 0o644)
			n.mustSh("systemctl daemon-reload && systemctl restart runtimeclassd")
			n.waitReconciled(0)
			before := n.reconciles()
			n.writeFile("/etc/runtimeclassd/policy.d/10-alt.toml", altHandler, 0o644)
			n.waitReconciled(before)

			w, err := newInotify()
			if err != nil {
				t.Fatal(err)
			}
			defer w.close()
			cfgDir := filepath.Join(n.rootPath(), "etc/containerd")
			if err := w.add(cfgDir, unix.IN_MOVED_TO|unix.IN_CREATE); err != nil {
				t.Fatal(err)
			}
			bin := filepath.Join(n.rootPath(), "usr/bin/containerd")
			var lat, dumps []time.Duration
			const changes = 200
			for i := 0; i < changes; i++ {
				body := strings.Replace(altHandler, "BinaryName", fmt.Sprintf("SystemdCgroup = %v\nBinaryName", i%2 == 0), 1)
				w.drain()
				before := n.reconciles()
				start := time.Now()
				n.writeFile("/etc/runtimeclassd/policy.d/10-alt.toml", body, 0o644)
				if err := w.waitFor("config.toml", unix.IN_MOVED_TO, 10*time.Second); err != nil {
					t.Fatalf("change %d: %v", i, err)
				}
				lat = append(lat, time.Since(start)-debounce)
				n.waitReconciled(before)
				dump := exec.Command(bin, "--config", filepath.Join(cfgDir, "config.toml"), "config", "dump")
				dump.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
				start = time.Now()
				if out, err := dump.CombinedOutput(); err != nil {
					t.Fatalf("config dump: %v\n%s", err, out)
				}
				dumps = append(dumps, time.Since(start))
			}
			fig := reactionFigure{Containerd: fmt.Sprintf("containerd %s", map[int]string{1: "1.6", 2: "2.4.2"}[major]), Changes: changes,
				DebounceMS: ms(debounce), P50MS: ms(percentile(lat, 0.5)), P99MS: ms(percentile(lat, 0.99)),
				DumpP50MS: ms(percentile(dumps, 0.5)), DumpP99MS: ms(percentile(dumps, 0.99))}
			t.Logf("%s: policy write to config written, minus the %v debounce, over %d changes: p50 %.1f ms, p99 %.1f ms, max %.1f ms; containerd config dump of the same file: p50 %.1f ms, p99 %.1f ms",
				fig.Containerd, debounce, changes, fig.P50MS, fig.P99MS, ms(percentile(lat, 1)), fig.DumpP50MS, fig.DumpP99MS)

			// The counters below see what a change does: one config dump
			// (the validation; the default runtime is in a managed block
			// by now) and the new config. A dump is runtimeclassd's
			// candidate file next to config.toml (.config.toml.validate-*);
			// runs of the containerd binary are counted too (inotify
			// IN_CLOSE_NOWRITE on it, once per process, at its exit; an
			// execve raises IN_OPEN twice), though the runc shim runs it
			// as well, to publish the events of the smoke test's sandbox.
			c, err := newInotify()
			if err != nil {
				t.Fatal(err)
			}
			defer c.close()
			if err := c.add(bin, unix.IN_CLOSE_NOWRITE); err != nil {
				t.Fatal(err)
			}
			if err := c.add(cfgDir, unix.IN_MOVED_TO|unix.IN_CREATE); err != nil {
				t.Fatal(err)
			}
			before = n.reconciles()
			n.writeFile("/etc/runtimeclassd/policy.d/10-alt.toml", altHandler, 0o644)
			n.waitReconciled(before)
			validations, configs := 0, 0
			for _, ev := range c.drain() {
				switch {
				case ev.mask&unix.IN_CREATE != 0 && strings.HasPrefix(ev.name, ".config.toml.validate-"):
					validations++
				case ev.mask&unix.IN_MOVED_TO != 0 && ev.name == "config.toml":
					configs++
				}
			}
			if validations != 1 || configs != 1 {
				t.Fatalf("one change: %d config dumps and config.toml written %d times; want 1 and 1", validations, configs)
			}

			// Resyncs that find nothing to do.
			n.writeFile("/etc/runtimeclassd/config.toml", "debounce = \"100ms\"\nresync_interval = \"2s\"\n", 0o644)
			r := n.reconciles()
			n.mustSh("systemctl restart runtimeclassd")
			n.waitFor("the first reconcile after the restart", 30*time.Second, func() error {
				if c := n.reconciles(); c < 1 || c == r && c > 0 {
					return fmt.Errorf("%d reconciles", c)
				}
				return nil
			})
			time.Sleep(3 * time.Second)
			c.drain()
			dirs := map[string]string{"etc/containerd": "config", "var/lib/runtimeclassd": "state",
				"var/lib/runtimeclassd/backups": "backups", "etc/kubernetes/node-feature-discovery/features.d": "labels"}
			for d := range dirs {
				if d == "etc/containerd" {
					continue // watched already
				}
				os.MkdirAll(filepath.Join(n.rootPath(), d), 0o755)
				if err := c.add(filepath.Join(n.rootPath(), d), unix.IN_MODIFY|unix.IN_MOVED_TO|unix.IN_CREATE|unix.IN_DELETE); err != nil {
					t.Fatal(err)
				}
			}
			r0 := n.reconciles()
			time.Sleep(21 * time.Second)
			r1 := n.reconciles()
			events := c.drain()
			fig.NoopResyncs = r1 - r0
			var writes []string
			for _, ev := range events {
				switch {
				case ev.mask&unix.IN_CLOSE_NOWRITE != 0:
					fig.NoopExecs++
				case ev.mask&unix.IN_CREATE != 0 && strings.HasPrefix(ev.name, ".config.toml.validate-"):
					fig.NoopDumps++
				case ev.name == "lock":
				case dirs[strings.TrimPrefix(ev.dir, n.rootPath()+"/")] == "labels":
					if ev.mask&unix.IN_MOVED_TO != 0 {
						fig.NoopLabelWrites++
					}
				default:
					fig.NoopWrites++
					writes = append(writes, fmt.Sprintf("%s/%s (%#x)", strings.TrimPrefix(ev.dir, n.rootPath()), ev.name, ev.mask))
				}
			}
			if fig.NoopResyncs < 5 {
				t.Fatalf("only %d resyncs in 21 s at resync_interval 2s", fig.NoopResyncs)
			}
			t.Logf("%s: %d resyncs with nothing to do: %d config dumps, containerd's binary run %d times, %d writes %v, NFD feature file refreshed %d times (its expiry)",
				fig.Containerd, fig.NoopResyncs, fig.NoopDumps, fig.NoopExecs, fig.NoopWrites, writes, fig.NoopLabelWrites)
			record(t, func(f *figures) {
				kept := f.Reaction[:0]
				for _, old := range f.Reaction {
					if old.Containerd != fig.Containerd {
						kept = append(kept, old)
					}
				}
				f.Reaction = append(kept, fig)
			})
		})
	}
}

// TestMeasureIdle measures the daemon on a real node after its first
// reconcile: its resident memory, and its wake-ups over 5 minutes between
// two resyncs (resync_interval = 6m). Every 20 ms the host reads how many
// times any of its threads was scheduled (/proc/PID/task/*/schedstat); a
// wake-up is activity after at least a second without any (the runtime
// keeps a woken process busy for a few samples). The window starts after
// two quiet seconds. The watchdog's pings, if the unit sets WatchdogSec,
// are expected.
func TestMeasureIdle(t *testing.T) {
	measuring(t)
	n := bootNode(t, "rcd-measure-idle", 1)
	n.writeFile("/etc/runtimeclassd/config.toml", "resync_interval = \"6m\"\n", 0o644)
	// The packaged unit's WatchdogSec (the e2e nodes' drop-in sets 5s), or
	// RUNTIMECLASSD_MEASURE_WATCHDOG.
	wd := os.Getenv("RUNTIMECLASSD_MEASURE_WATCHDOG")
	if wd == "" {
		wd = "0"
		for _, l := range strings.Split(string(n.readFile("/lib/systemd/system/runtimeclassd.service")), "\n") {
			if v, ok := strings.CutPrefix(l, "WatchdogSec="); ok {
				wd = v
			}
		}
	}
	n.writeFile("/etc/systemd/system/runtimeclassd.service.d/zz-measure.conf", "[Service]\nWatchdogSec="+wd+"\n", 0o644)
	n.mustSh("systemctl daemon-reload && systemctl restart runtimeclassd")
	n.writeFile("/etc/runtimeclassd/policy.d/10-alt.toml", altHandler, 0o644)
	waitStatus(t, n, "applied")
	time.Sleep(10 * time.Second)
	pid := n.hostPID(n.mustSh("systemctl show -p MainPID --value runtimeclassd"))
	status := func() map[string]int {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]int{}
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 2 {
				m[strings.TrimSuffix(f[0], ":")], _ = strconv.Atoi(f[1])
			}
		}
		return m
	}
	cpu := func() int {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
		u, _ := strconv.Atoi(f[11])
		s, _ := strconv.Atoi(f[12])
		return u + s
	}
	scheduled := func() int { return timesScheduled(pid) }
	wdSec := 0.0
	if v := n.mustSh("systemctl show -p WatchdogUSec --value runtimeclassd"); v != "" && v != "0" && v != "infinity" {
		if d, err := time.ParseDuration(strings.ReplaceAll(v, "min", "m")); err == nil {
			wdSec = d.Seconds()
		}
	}
	last, quiet := scheduled(), time.Now()
	for time.Since(quiet) < 2*time.Second {
		time.Sleep(20 * time.Millisecond)
		if s := scheduled(); s != last {
			last, quiet = s, time.Now()
		}
	}
	st0, cpu0, r0 := status(), cpu(), n.reconciles()
	const window = 5 * time.Minute
	start := time.Now()
	last, quiet = scheduled(), start
	var wakes []int
	for time.Since(start) < window {
		time.Sleep(20 * time.Millisecond)
		s := scheduled()
		if s == last {
			continue
		}
		if time.Since(quiet) >= time.Second {
			wakes = append(wakes, int(time.Since(start).Seconds()))
		}
		last, quiet = s, time.Now()
	}
	st1, cpu1 := status(), cpu()
	if r := n.reconciles(); r != r0 {
		t.Fatalf("%d reconciles during the idle window", r-r0)
	}
	fig := &idleFigure{Containerd: "containerd 1.6", RSSKiB: st0["VmRSS"], RSSAnonKiB: st0["RssAnon"], RSSFileKiB: st0["RssFile"],
		EndRSSKiB: st1["VmRSS"], WindowS: window.Seconds(), Wakeups: len(wakes), WakeupTimesS: wakes, WatchdogSec: wdSec, CPUTicks: cpu1 - cpu0}
	if wdSec > 0 {
		fig.WatchdogPings = int(window.Seconds() / (wdSec / 2))
	}
	t.Logf("idle after the first reconcile: RSS %d KiB (anon %d, file %d), %d KiB after %v; %d wake-ups at %v s (watchdog: %v s, %d pings); CPU %d ticks",
		fig.RSSKiB, fig.RSSAnonKiB, fig.RSSFileKiB, fig.EndRSSKiB, window, fig.Wakeups, wakes, wdSec, fig.WatchdogPings, fig.CPUTicks)
	record(t, func(f *figures) { f.Idle = fig })
}

// hostPID is the host's PID of the node's process nodePID: the process
// whose innermost PID is nodePID and whose root is this node's.
func (n *node) hostPID(nodePID string) int {
	n.t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*/status")
	root, _ := os.Readlink(fmt.Sprintf("/proc/%d/root", n.pid1))
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			f := strings.Fields(l)
			if len(f) < 3 || f[0] != "NSpid:" || f[len(f)-1] != nodePID {
				continue
			}
			pid, _ := strconv.Atoi(f[1])
			if r, _ := os.Readlink(fmt.Sprintf("/proc/%d/root", pid)); r == root {
				return pid
			}
		}
	}
	n.t.Fatalf("no host process for the node's PID %s", nodePID)
	return 0
}

// inotify is a raw inotify instance (fsnotify has no IN_CLOSE_NOWRITE,
// which counts executions).
type inotify struct {
	f      *os.File
	mu     sync.Mutex
	dirs   map[int32]string
	events []inotifyEvent
	notify chan struct{}
}

type inotifyEvent struct {
	dir, name string
	mask      uint32
}

func newInotify() (*inotify, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, err
	}
	in := &inotify{f: os.NewFile(uintptr(fd), "inotify"), dirs: map[int32]string{}, notify: make(chan struct{}, 1)}
	go in.read()
	return in, nil
}

func (in *inotify) add(path string, mask uint32) error {
	wd, err := unix.InotifyAddWatch(int(in.f.Fd()), path, mask)
	if err != nil {
		return fmt.Errorf("inotify on %s: %w", path, err)
	}
	in.mu.Lock()
	in.dirs[int32(wd)] = path
	in.mu.Unlock()
	return nil
}

func (in *inotify) read() {
	buf := make([]byte, 64*1024)
	for {
		n, err := in.f.Read(buf)
		if err != nil {
			return
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			name := string(bytes.TrimRight(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+int(ev.Len)], "\x00"))
			in.mu.Lock()
			in.events = append(in.events, inotifyEvent{dir: in.dirs[ev.Wd], name: name, mask: ev.Mask})
			in.mu.Unlock()
			select {
			case in.notify <- struct{}{}:
			default:
			}
			off += unix.SizeofInotifyEvent + int(ev.Len)
		}
	}
}

// drain returns and forgets the events so far.
func (in *inotify) drain() []inotifyEvent {
	in.mu.Lock()
	defer in.mu.Unlock()
	evs := in.events
	in.events = nil
	return evs
}

// waitFor waits for an event on name with a bit of mask.
func (in *inotify) waitFor(name string, mask uint32, timeout time.Duration) error {
	deadline := time.After(timeout)
	for {
		in.mu.Lock()
		for _, ev := range in.events {
			if ev.name == name && ev.mask&mask != 0 {
				in.events = nil
				in.mu.Unlock()
				return nil
			}
		}
		in.mu.Unlock()
		select {
		case <-in.notify:
		case <-deadline:
			return fmt.Errorf("no event on %s within %v", name, timeout)
		}
	}
}

func (in *inotify) close() { in.f.Close() }

// TestMeasureWakeSources shows what wakes an idle daemon besides its
// timers: after a restart of containerd it holds a D-Bus connection to
// systemd, and go-systemd subscribes that connection to every job's
// JobRemoved signal, so any unit's job on the node wakes it. A job of an
// unrelated unit is started; a command that is no systemd job is the
// control.
func TestMeasureWakeSources(t *testing.T) {
	measuring(t)
	n := bootNode(t, "rcd-measure-wake", 1)
	n.writeFile("/etc/runtimeclassd/config.toml", "resync_interval = \"6m\"\n", 0o644)
	n.writeFile("/etc/systemd/system/runtimeclassd.service.d/zz-measure.conf", "[Service]\nWatchdogSec=0\n", 0o644)
	n.writeFile("/etc/systemd/system/e2e-noop.service", "[Service]\nType=oneshot\nExecStart=/bin/true\n", 0o644)
	n.mustSh("systemctl daemon-reload && systemctl restart runtimeclassd")
	n.writeFile("/etc/runtimeclassd/policy.d/10-alt.toml", altHandler, 0o644)
	waitStatus(t, n, "applied")
	time.Sleep(5 * time.Second)
	pid := n.hostPID(n.mustSh("systemctl show -p MainPID --value runtimeclassd"))
	scheduled := func() int { return timesScheduled(pid) }
	// woke runs f and reports whether the daemon was scheduled within 2 s,
	// after 2 quiet seconds.
	woke := func(f func()) bool {
		last, quiet := scheduled(), time.Now()
		for time.Since(quiet) < 2*time.Second {
			time.Sleep(20 * time.Millisecond)
			if s := scheduled(); s != last {
				last, quiet = s, time.Now()
			}
		}
		f()
		deadline := time.Now().Add(2 * time.Second)
		for time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
			if scheduled() != last {
				return true
			}
		}
		return false
	}
	var job, control, nothing int
	for i := 0; i < 5; i++ {
		if woke(func() { n.mustSh("systemctl start e2e-noop.service") }) {
			job++
		}
		if woke(func() { n.mustSh("/bin/true") }) {
			control++
		}
		if woke(func() {}) {
			nothing++
		}
	}
	t.Logf("idle daemon woken by: a job of another unit %d/5, a command that is no job %d/5, nothing %d/5", job, control, nothing)
}

// timesScheduled is how many times any thread of the process pid has been
// scheduled (/proc/PID/task/*/schedstat): a change between two reads is a
// wake-up.
func timesScheduled(pid int) int {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	sum := 0
	for _, tk := range tasks {
		b, _ := os.ReadFile(tk)
		if f := strings.Fields(string(b)); len(f) == 3 {
			v, _ := strconv.Atoi(f[2])
			sum += v
		}
	}
	return sum
}
