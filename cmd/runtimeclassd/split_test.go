package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// daemonOnly are the modules that only the daemon's paths need: the lite
// build (what /usr/bin/runtimeclassd is) must not link them, because Go
// runs every linked package's initialisation at every start. The planned
// kube package (Kubernetes API) belongs here too.
var daemonOnly = []string{
	"google.golang.org/grpc", "google.golang.org/protobuf", "github.com/prometheus/", "k8s.io/",
	"github.com/godbus/", "github.com/coreos/go-systemd", "github.com/containerd/", "net/http",
	module + "ctrdhealth", module + "systemd", module + "kube",
}

const module = "github.com/runtimeclassd/runtimeclassd/"

// TestLiteBuildLinksNoDaemonDeps: the one-shot build compiles (every
// field and method of daemon.Metrics used outside metrics.go has its
// counterpart in metrics_lite.go) and leaves out what only the daemon
// needs.
func TestLiteBuildLinksNoDaemonDeps(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps", "-tags", "runtimeclassd_lite", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -tags runtimeclassd_lite: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, bad := range daemonOnly {
			if dep == strings.TrimSuffix(bad, "/") || strings.HasPrefix(dep, bad) {
				t.Errorf("the lite build links %s, which only the daemon needs: its package initialisation would run at every start of every command", dep)
			}
		}
	}
}

// buildBoth builds bin/runtimeclassd and bin/runtimeclassd-daemon as make
// build does, into dir.
func buildBoth(t *testing.T, dir string) (lite, full string) {
	t.Helper()
	lite, full = filepath.Join(dir, "runtimeclassd"), filepath.Join(dir, "runtimeclassd-daemon")
	for _, b := range [][]string{{"-tags", "runtimeclassd_lite", "-o", lite}, {"-o", full}} {
		cmd := exec.Command("go", append(append([]string{"build"}, b...), ".")...)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %v: %v\n%s", b, err, out)
		}
	}
	return lite, full
}

// TestLiteExecutesDaemon: the one-shot build runs what doesn't write
// itself, and executes runtimeclassd-daemon (next to it, or in
// ../libexec/runtimeclassd/) for what does: the same process, the same
// arguments. Without it, those commands fail and say where they looked.
func TestLiteExecutesDaemon(t *testing.T) {
	t.Parallel()
	lite, full := buildBoth(t, t.TempDir())
	n := newNode(t, 1, readCorpus(t, "v2-default-1.6.toml"))
	n.policyFile("10-kata.toml", kataPolicy)
	args := func(cmd ...string) []string {
		return append([]string{"--config", filepath.Join(n.dir, "none.toml"), "--containerd-config", n.config,
			"--policy-dir", n.policy, "--state-dir", n.state, "--containerd-bin", n.bin,
			"--host-root", n.hostRoot, "--shim-path", "/usr/bin", "--nfd-feature-file", n.nfd, "--containerd-address", n.sock}, cmd...)
	}
	run := func(bin string, cmd ...string) (int, string, string) {
		c := exec.Command(bin, args(cmd...)...)
		var out, errb bytes.Buffer
		c.Stdout, c.Stderr = &out, &errb
		err := c.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return code, out.String(), errb.String()
	}
	orig := n.read()
	if code, out, errs := run(lite, "apply", "--dry-run"); code != 0 || !strings.Contains(out, "handler=kata") {
		t.Fatalf("dry run: exit %d\n%s%s", code, out, errs)
	}
	if !bytes.Equal(n.read(), orig) {
		t.Fatal("the dry run wrote")
	}
	if code, _, errs := run(lite, "apply", "--no-restart"); code != 0 || !strings.Contains(errs, "the change takes effect at its next restart") {
		t.Fatalf("apply through runtimeclassd-daemon: exit %d\n%s", code, errs)
	}
	if !bytes.Contains(n.read(), []byte("handler=kata")) {
		t.Fatal("apply did not write")
	}

	// /usr/bin/runtimeclassd and /usr/libexec/runtimeclassd/runtimeclassd-daemon.
	usr := t.TempDir()
	for p, from := range map[string]string{"bin/runtimeclassd": lite, "libexec/runtimeclassd/runtimeclassd-daemon": full} {
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(filepath.Join(usr, filepath.Dir(p)), 0o755)
		if err := os.WriteFile(filepath.Join(usr, p), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if code, _, errs := run(filepath.Join(usr, "bin/runtimeclassd"), "revert", "--no-restart"); code != 0 || !bytes.Equal(n.read(), orig) {
		t.Fatalf("revert through libexec: exit %d\n%s", code, errs)
	}

	// The daemon: the same process becomes runtimeclassd-daemon.
	d := exec.Command(filepath.Join(usr, "bin/runtimeclassd"), args("run", "--no-restart", "--web.listen-address", "", "--log-level", "info")...)
	pipe, err := d.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	// SIGTERM only once the daemon says it is starting: it has its signal
	// handler then, and before that the signal would simply kill it.
	var derr bytes.Buffer
	started, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pipe)
		seen := false
		for sc.Scan() {
			derr.WriteString(sc.Text() + "\n")
			if !seen && strings.Contains(sc.Text(), "msg=starting") {
				seen = true
				close(started)
			}
		}
	}()
	select {
	case <-started:
	case <-time.After(60 * time.Second):
		t.Fatal("the daemon did not start within 60 s")
	}
	exe, _ := os.Readlink("/proc/" + strconv.Itoa(d.Process.Pid) + "/exe")
	d.Process.Signal(syscall.SIGTERM)
	<-done
	err = d.Wait()
	if !strings.HasSuffix(exe, "libexec/runtimeclassd/runtimeclassd-daemon") {
		t.Errorf("run: process %d is %q, want runtimeclassd-daemon", d.Process.Pid, exe)
	}
	if err != nil {
		t.Errorf("run stopped by SIGTERM: %v\n%s", err, &derr)
	}

	os.Remove(filepath.Join(usr, "libexec/runtimeclassd/runtimeclassd-daemon"))
	if code, _, errs := run(filepath.Join(usr, "bin/runtimeclassd"), "apply", "--no-restart"); code != 1 || !strings.Contains(errs, "runtimeclassd-daemon is not installed") {
		t.Errorf("apply without runtimeclassd-daemon: exit %d\n%s", code, errs)
	}
	if code, _, errs := run(filepath.Join(usr, "bin/runtimeclassd"), "apply", "--dry-run"); code != 0 {
		t.Errorf("a dry run needs no runtimeclassd-daemon: exit %d\n%s", code, errs)
	}

	// Run as root, a runtimeclassd-daemon that a user owns (a copy of the
	// command in a shared directory, next to a user's file) is not run.
	if os.Geteuid() == 0 {
		evil := filepath.Join(usr, "libexec/runtimeclassd/runtimeclassd-daemon")
		proof := filepath.Join(usr, "ran")
		if err := os.WriteFile(evil, []byte("#!/bin/sh\ntouch "+proof+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(evil, 1000, 1000); err != nil {
			t.Fatal(err)
		}
		code, _, errs := run(filepath.Join(usr, "bin/runtimeclassd"), "apply", "--no-restart")
		if code != 1 || !strings.Contains(errs, "not running "+evil) || !strings.Contains(errs, "owned by uid 1000, not root") {
			t.Errorf("a user's runtimeclassd-daemon: exit %d\n%s", code, errs)
		}
		if _, err := os.Stat(proof); err == nil {
			t.Error("a user's runtimeclassd-daemon ran as root")
		}
	}
}
