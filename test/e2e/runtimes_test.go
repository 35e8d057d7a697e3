//go:build e2e

package e2e

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Real alternative runtimes, from the node's Debian packages (the rootfs
// has crun, runsc and the CNI plugins): a handler is offered only when a
// pod sandbox really ran through it, and a pod started with it then really
// runs under that runtime, as the runtime itself says.

// gvisorWrapper is what the gvisor handler names as its BinaryName. Debian
// ships runsc but no containerd-shim-runsc-v1, so gVisor goes through
// containerd's runc shim, which calls its binary the way it calls runc; the
// wrapper bridges what runsc does differently (its comments say what).
//
//go:embed testdata/runsc-host
var gvisorWrapper string

const gvisorWrapperPath = "/usr/local/sbin/runsc-host"

// runtimesPolicy: crun (the preset: the runc shim with BinaryName
// /usr/bin/crun), gVisor through the wrapper, and a handler that passes
// every static check (a root-owned binary in /usr/bin) but can't start
// anything.
const runtimesPolicy = `[handlers.crun]
preset = "crun"

[handlers.gvisor]
runtime_type = "io.containerd.runc.v2"
[handlers.gvisor.options]
BinaryName = "` + gvisorWrapperPath + `"

[handlers.broken]
runtime_type = "io.containerd.runc.v2"
[handlers.broken.options]
BinaryName = "/usr/bin/false"
`

// runcRoot is where the runc shim tells its binary to keep its state, for
// CRI's namespace: crun and runsc keep theirs there too, each in its own
// format.
const runcRoot = "/run/containerd/runc/k8s.io"

// crunTooOld is the error Debian 12's crun 1.8.1 gives for the OCI spec
// containerd 2.4.2 writes: it predates that runtime-spec version.
const crunTooOld = "unknown version specified"

// newerCrun is Debian 13's crun (1.21), which scripts/e2e-rootfs.sh puts
// in the rootfs with the libraries it needs.
const newerCrun = "/opt/crun-trixie/crun"

func TestAlternativeRuntimes(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name  string
		major int
		// crun: whether Debian 12's crun runs sandboxes of this containerd.
		crun bool
	}{
		{"containerd-1.6", 1, true},
		{"containerd-2.4.2", 2, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			n := bootNode(t, fmt.Sprintf("rcd-rt-%d", c.major), c.major)
			alternativeRuntimes(t, n, c.crun)
		})
	}
}

func alternativeRuntimes(t *testing.T, n *node, crunWorks bool) {
	want := map[string]bool{"crun": crunWorks, "gvisor": true, "broken": false}
	n.waitActive("runtimeclassd")
	n.writeFile(gvisorWrapperPath, gvisorWrapper, 0o755)

	t.Run("one restart: each handler written, offered only if its sandbox ran", func(t *testing.T) {
		starts, pid := n.containerdStarts(), n.containerdPID()
		n.writeFile("/etc/runtimeclassd/policy.d/40-runtimes.toml", runtimesPolicy, 0o644)
		metrics := n.waitSmoked([]string{"crun", "gvisor", "broken"})
		cfg := string(n.readFile("/etc/containerd/config.toml"))
		for h := range want {
			if !strings.Contains(cfg, "# runtimeclassd:begin handler="+h+" ") {
				t.Errorf("no managed block for %s in config.toml", h)
			}
		}
		labels := n.labels()
		status := n.status()
		for h, ok := range want {
			if got := sample(metrics, `runtimeclassd_handler_ready{handler="`+h+`"}`); got != b2s(ok) {
				t.Errorf("handler_ready{%s} = %s, want %s", h, got, b2s(ok))
			}
			if got := sample(metrics, `runtimeclassd_smoke_test_ok{handler="`+h+`"}`); got != b2s(ok) {
				t.Errorf("smoke_test_ok{%s} = %s, want %s", h, got, b2s(ok))
			}
			if got := labels["runtimeclassd.io/handler."+h]; got != strconv.FormatBool(ok) {
				t.Errorf("label of %s = %q, want %v", h, got, ok)
			}
			if !ok && !strings.Contains(handlerLine(status, h), "smoke test failed") {
				t.Errorf("status does not say why %s is not offered:\n%s", h, status)
			}
		}
		// The CRI's own error, in status: the shim's exec of /usr/bin/false,
		// and crun's refusal of the spec version on containerd 2.4.2.
		if s := handlerLine(status, "broken"); !strings.Contains(s, "RunPodSandbox with handler broken") {
			t.Errorf("status of broken: %q", s)
		}
		if !crunWorks {
			if s := handlerLine(status, "crun"); !strings.Contains(s, crunTooOld) {
				t.Errorf("status of crun lacks %q: %q", crunTooOld, s)
			}
			// check --smoke runs the test on demand, and fails with it.
			out, err := n.sh("runtimeclassd check --smoke")
			if s := handlerLine(out[strings.Index(out, "SMOKE TEST")+1:], "crun"); err == nil || !strings.Contains(s, "failed") || !strings.Contains(s, crunTooOld) {
				t.Errorf("check --smoke (%v) does not fail crun with %q:\n%s", err, crunTooOld, out)
			}
		}
		if got := n.containerdStarts(); got != starts+1 {
			t.Errorf("containerd started %d times, want exactly once", got-starts)
		}
		if n.containerdPID() == pid {
			t.Errorf("containerd's MainPID is still %s", pid)
		}
		t.Logf("labels %v; smoke tests took crun %ss, gvisor %ss, broken %ss", labels,
			sample(metrics, `runtimeclassd_smoke_test_duration_seconds{handler="crun"}`),
			sample(metrics, `runtimeclassd_smoke_test_duration_seconds{handler="gvisor"}`),
			sample(metrics, `runtimeclassd_smoke_test_duration_seconds{handler="broken"}`))
	})

	t.Run("a resync tests the failed handlers again, with no restart", func(t *testing.T) {
		starts, pid := n.containerdStarts(), n.containerdPID()
		before := sampleSum(n.metrics(), "runtimeclassd_smoke_tests_total")
		count := n.reconciles()
		n.mustSh("systemctl reload runtimeclassd")
		n.waitReconciled(count)
		failed := 0
		for _, ok := range want {
			if !ok {
				failed++
			}
		}
		if got := sampleSum(n.metrics(), "runtimeclassd_smoke_tests_total") - before; got != float64(failed) {
			t.Errorf("%v smoke tests in the resync, want %d (the failed handlers only)", got, failed)
		}
		if n.containerdStarts() != starts || n.containerdPID() != pid {
			t.Errorf("the resync restarted containerd")
		}
	})

	t.Run("crun runs the pod and its container", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		rt := n.cri(t)
		pod, ctr, err := runPod(ctx, rt, "crun", "e2e-crun")
		if !crunWorks {
			// The smoke test said so: the same pod fails through the CRI.
			if err == nil || !strings.Contains(err.Error(), crunTooOld) {
				t.Fatalf("a pod with handler crun: %v, want %q", err, crunTooOld)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		// crun's own state: both are its containers, running; runc has no
		// state for them (it did not create them).
		list := n.mustSh("crun --root " + runcRoot + " list")
		for _, id := range []string{pod, ctr} {
			if !slices.ContainsFunc(strings.Split(list, "\n"), func(l string) bool {
				f := strings.Fields(l)
				return len(f) >= 3 && f[0] == id && f[2] == "running"
			}) {
				t.Errorf("crun list has no running %s:\n%s", id, list)
			}
			if out, err := n.sh("runc --root " + runcRoot + " state " + id); err == nil {
				t.Errorf("runc knows %s, which crun should have created:\n%s", id, out)
			}
		}
		t.Logf("crun --root %s list:\n%s", runcRoot, list)
		stopContainer(t, rt, ctr)
		removePod(t, rt, pod)
	})

	t.Run("gVisor runs the pod and its container", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		rt := n.cri(t)
		pod, ctr, err := runPod(ctx, rt, "gvisor", "e2e-gvisor")
		if err != nil {
			t.Fatal(err)
		}
		// runsc's own state: both are its containers, running.
		list := n.mustSh("runsc --root " + runcRoot + " list")
		for _, id := range []string{pod, ctr} {
			if !slices.ContainsFunc(strings.Split(list, "\n"), func(l string) bool {
				f := strings.Fields(l)
				return len(f) >= 3 && f[0] == id && f[2] == "running"
			}) {
				t.Errorf("runsc list has no running %s:\n%s", id, list)
			}
		}
		// The pod's sandbox is a runsc-sandbox process (gVisor's kernel),
		// and the container's processes run inside it: the node's kernel
		// sees none of the image's sleeps.
		procs := n.mustSh(`for p in /proc/[0-9]*; do tr '\0' ' ' < $p/cmdline 2>/dev/null; echo; done`)
		var sandbox []string
		for _, l := range strings.Split(procs, "\n") {
			if strings.HasPrefix(l, "runsc-sandbox ") && strings.Contains(l, pod) {
				sandbox = append(sandbox, l)
			}
			if strings.Contains(l, "sleep 2147483647") {
				t.Errorf("a process of the pod runs on the node's kernel: %s", l)
			}
		}
		if len(sandbox) != 1 {
			t.Errorf("runsc-sandbox processes of pod %s: %q", pod, sandbox)
		}
		t.Logf("runsc --root %s list:\n%s\nthe sandbox: %.160s...", runcRoot, list, strings.Join(sandbox, ""))
		stopContainer(t, rt, ctr)
		removePod(t, rt, pod)
	})

	if !crunWorks {
		t.Run("Debian 13's crun: offered and used, with one restart", func(t *testing.T) {
			// The operator's way out: a newer crun (the rootfs has Debian
			// 13's, with its own libraries, in /opt/crun-trixie) named in
			// the policy. The block changes, so containerd restarts once,
			// and the smoke test passes this time.
			starts := n.containerdStarts()
			n.writeFile("/etc/runtimeclassd/policy.d/40-runtimes.toml", strings.Replace(runtimesPolicy,
				"preset = \"crun\"\n", "preset = \"crun\"\n[handlers.crun.options]\nBinaryName = \""+newerCrun+"\"\n", 1), 0o644)
			n.waitFor("crun offered", 3*time.Minute, func() error {
				if got := sample(n.metrics(), `runtimeclassd_handler_ready{handler="crun"}`); got != "1" {
					return fmt.Errorf("handler_ready{crun} = %q", got)
				}
				return nil
			})
			want["crun"] = true
			if got := n.labels()["runtimeclassd.io/handler.crun"]; got != "true" {
				t.Errorf("label of crun = %q", got)
			}
			if got := n.containerdStarts(); got != starts+1 {
				t.Errorf("containerd started %d times, want once", got-starts)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			rt := n.cri(t)
			pod, ctr, err := runPod(ctx, rt, "crun", "e2e-crun-trixie")
			if err != nil {
				t.Fatal(err)
			}
			list := n.mustSh(newerCrun + " --root " + runcRoot + " list")
			for _, id := range []string{pod, ctr} {
				if !slices.ContainsFunc(strings.Split(list, "\n"), func(l string) bool {
					f := strings.Fields(l)
					return len(f) >= 3 && f[0] == id && f[2] == "running"
				}) {
					t.Errorf("crun 1.21 lists no running %s:\n%s", id, list)
				}
			}
			t.Logf("%s --version: %s\nlist:\n%s", newerCrun, strings.SplitN(n.mustSh(newerCrun+" --version"), "\n", 2)[0], list)
			stopContainer(t, rt, ctr)
			removePod(t, rt, pod)
		})
	}

	t.Run("no leftovers after 100 smoke tests", func(t *testing.T) {
		starts := n.containerdStarts()
		first := sampleSum(n.metrics(), "runtimeclassd_smoke_tests_total")
		resyncs := 0
		for sampleSum(n.metrics(), "runtimeclassd_smoke_tests_total")-first < 100 {
			n.forgetSmokeTests()
			count := n.reconciles()
			n.mustSh("systemctl reload runtimeclassd")
			n.waitReconciled(count)
			if resyncs++; resyncs > 100 {
				t.Fatalf("%d resyncs ran %v smoke tests", resyncs, sampleSum(n.metrics(), "runtimeclassd_smoke_tests_total")-first)
			}
		}
		metrics := n.metrics()
		for h, ok := range want {
			if got := sample(metrics, `runtimeclassd_handler_ready{handler="`+h+`"}`); got != b2s(ok) {
				t.Errorf("handler_ready{%s} = %s after the resyncs, want %s", h, got, b2s(ok))
			}
		}
		pods, containers := n.criCounts(t)
		if pods != 0 || containers != 0 {
			t.Errorf("after %v smoke tests the CRI has %d pod sandboxes and %d containers, want none",
				sampleSum(metrics, "runtimeclassd_smoke_tests_total")-first, pods, containers)
		}
		// Nor does any runtime keep state of one.
		for _, rt := range []string{"runc", "crun", newerCrun, "runsc"} {
			out := n.mustSh(rt + " --root " + runcRoot + " list")
			if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) > 1 {
				t.Errorf("%s still lists containers:\n%s", rt, out)
			}
		}
		if n.containerdStarts() != starts {
			t.Errorf("containerd restarted during the smoke tests")
		}
		t.Logf("%v smoke tests in %d resyncs: %d pod sandboxes, %d containers left; smoke_tests_total %s",
			sampleSum(metrics, "runtimeclassd_smoke_tests_total")-first, resyncs, pods, containers,
			strings.ReplaceAll(grep(metrics, "runtimeclassd_smoke_tests_total"), "\n", ", "))
	})
}

// waitSmoked waits until the daemon finished a reconcile in which each of
// the handlers had its smoke test (handler_ready is set at the end of the
// reconcile, after the labels), and returns /metrics.
func (n *node) waitSmoked(handlers []string) string {
	n.t.Helper()
	var body string
	n.waitFor("the smoke tests of "+strings.Join(handlers, ", "), 3*time.Minute, func() error {
		body = n.metrics()
		for _, h := range handlers {
			for _, m := range []string{"runtimeclassd_smoke_test_ok", "runtimeclassd_handler_ready"} {
				if sample(body, m+`{handler="`+h+`"}`) == "" {
					return fmt.Errorf("no %s for %s yet", m, h)
				}
			}
		}
		return nil
	})
	return body
}

func (n *node) metrics() string {
	code, body, err := n.get("/metrics")
	if err != nil || code != 200 {
		return ""
	}
	return body
}

// sample is the value of one series in a Prometheus text exposition ("" if
// it isn't there).
func sample(body, series string) string {
	for _, l := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			return v
		}
	}
	return ""
}

// sampleSum adds up every series of a metric.
func sampleSum(body, name string) float64 {
	sum := 0.0
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, name+"{") || strings.HasPrefix(l, name+" ") {
			f := strings.Fields(l)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			sum += v
		}
	}
	return sum
}

func b2s(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// labels reads the node's NFD feature file.
func (n *node) labels() map[string]string {
	out := map[string]string{}
	for _, l := range strings.Split(string(n.readFile("/etc/kubernetes/node-feature-discovery/features.d/runtimeclassd")), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok && !strings.HasPrefix(l, "#") {
			out[k] = v
		}
	}
	return out
}

// handlerLine is the line of `runtimeclassd status` about a handler.
func handlerLine(status, handler string) string {
	for _, l := range strings.Split(status, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == handler {
			return l
		}
	}
	return ""
}

// cri is a CRI client of the node's containerd, from the host.
func (n *node) cri(t *testing.T) runtimeapi.RuntimeServiceClient {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+n.criSocket(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return runtimeapi.NewRuntimeServiceClient(conn)
}

func (n *node) criSocket() string {
	return fmt.Sprintf("/proc/%d/root/run/containerd/containerd.sock", n.pid1)
}

// runPod starts a pod sandbox with a handler on the node's network, as
// kubelet does for a hostNetwork pod of that RuntimeClass, and one
// container in it (the local image, whose entrypoint sleeps).
func runPod(ctx context.Context, rt runtimeapi.RuntimeServiceClient, handler, name string) (pod, ctr string, err error) {
	node := &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE}
	cfg := &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: name, Uid: name, Namespace: "e2e"},
		Labels:   map[string]string{"e2e": name},
		Linux:    &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: node}},
	}
	run, err := rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg, RuntimeHandler: handler})
	if err != nil {
		return "", "", err
	}
	pod = run.GetPodSandboxId()
	c, err := rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: pod, SandboxConfig: cfg, Config: &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "app"},
		Image:    &runtimeapi.ImageSpec{Image: localImage},
		Linux:    &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{NamespaceOptions: node}},
	}})
	if err != nil {
		return pod, "", fmt.Errorf("creating a container in pod %s: %w", pod, err)
	}
	if _, err := rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: c.GetContainerId()}); err != nil {
		return pod, c.GetContainerId(), fmt.Errorf("starting container %s: %w", c.GetContainerId(), err)
	}
	return pod, c.GetContainerId(), nil
}

// stopContainer stops a container (SIGTERM, which the image's entrypoint
// obeys), as kubelet does before it stops the pod.
func stopContainer(t *testing.T, rt runtimeapi.RuntimeServiceClient, ctr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: ctr, Timeout: 30}); err != nil {
		t.Fatalf("stopping container %s: %v", ctr, err)
	}
}

// removePod stops and removes a pod sandbox and its containers.
func removePod(t *testing.T, rt runtimeapi.RuntimeServiceClient, pod string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatalf("stopping pod %s: %v", pod, err)
	}
	if _, err := rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatalf("removing pod %s: %v", pod, err)
	}
}

// forgetSmokeTests drops the daemon's record of past smoke tests from its
// state file, so that its next reconcile tests every handler again. The
// daemon must be idle (between reconciles).
func (n *node) forgetSmokeTests() {
	n.t.Helper()
	path := filepath.Join(n.rootPath(), "var/lib/runtimeclassd/state.json")
	b, err := os.ReadFile(path)
	if err != nil {
		n.t.Fatal(err)
	}
	var st map[string]json.RawMessage
	if err := json.Unmarshal(b, &st); err != nil {
		n.t.Fatal(err)
	}
	delete(st, "smoke")
	b, err = json.Marshal(st)
	if err != nil {
		n.t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		n.t.Fatal(err)
	}
	n.writeFile("/var/lib/runtimeclassd/state.json", string(b), info.Mode().Perm())
}

// criCounts counts every pod sandbox and container the node's CRI has.
func (n *node) criCounts(t *testing.T) (pods, containers int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rt := n.cri(t)
	p, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return len(p.GetItems()), len(c.GetContainers())
}
