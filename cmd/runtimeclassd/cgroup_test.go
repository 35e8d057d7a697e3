package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestCgroupDriverFollowsTheNode: on a kubeadm-style node (runc with
// SystemdCgroup = true), a runc-shim handler whose policy says nothing
// about cgroups is written with SystemdCgroup = true, and containerd (1.6
// and 2.4.2) reads it so (it used to get runc's cgroupfs default, and its
// smoke test passed all the same: a bare sandbox sets no cgroup parent).
// A policy that sets SystemdCgroup against the kubelet's configured
// driver is withheld, naming the kubelet's file, and config.toml keeps
// its bytes.
func TestCgroupDriverFollowsTheNode(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		major  int
		corpus string
	}{{1, "v2-default-1.6.toml"}, {2, "v4-default-2.4.toml"}} {
		t.Run(c.corpus, func(t *testing.T) {
			t.Parallel()
			kubeadm := bytes.Replace(readCorpus(t, c.corpus), []byte("SystemdCgroup = false"), []byte("SystemdCgroup = true"), 1)
			n := newNode(t, c.major, kubeadm)
			n.policyFile("a.toml", "[handlers.crun]\nruntime_type = \"io.containerd.runc.v2\"\n[handlers.crun.options]\nBinaryName = \"/usr/bin/crun\"\n")
			if code := n.run("apply", "--no-restart", "--mode", "patch"); code != 0 {
				t.Fatalf("exit %d\n%s%s", code, &n.stdout, &n.stderr)
			}
			i := bytes.Index(n.read(), []byte("runtimeclassd:begin handler=crun"))
			if i < 0 {
				t.Fatalf("not written:\n%s%s", &n.stdout, &n.stderr)
			}
			block := n.read()[i:]
			block = block[:bytes.Index(block, []byte("runtimeclassd:end"))]
			if !bytes.Contains(block, []byte("SystemdCgroup = true")) {
				t.Errorf("the handler did not take the default runtime's cgroup driver:\n%s", block)
			}

			// The kubelet says systemd; a policy that says cgroupfs is withheld.
			n = newNode(t, c.major, kubeadm)
			orig := n.read()
			hostFile(t, n, "/var/lib/kubelet/config.yaml", "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncgroupDriver: systemd\n", 0o644)
			n.policyFile("a.toml", "[handlers.crun]\nruntime_type = \"io.containerd.runc.v2\"\n[handlers.crun.options]\nBinaryName = \"/usr/bin/crun\"\nSystemdCgroup = false\n")
			want := "options.SystemdCgroup = false, but the kubelet's cgroup driver is systemd (/var/lib/kubelet/config.yaml)"
			if code := n.run("check"); code != 1 || !strings.Contains(n.stdout.String(), "cgroup-driver") || !strings.Contains(n.stdout.String(), want) {
				t.Errorf("check: exit %d\n%s%s", code, &n.stdout, &n.stderr)
			}
			if code := n.run("apply", "--no-restart", "--mode", "patch"); code != 0 || !strings.Contains(n.stderr.String(), "withheld: crun is not ready") {
				t.Errorf("apply: exit %d\n%s%s", code, &n.stdout, &n.stderr)
			}
			if !bytes.Equal(n.read(), orig) {
				t.Errorf("config.toml changed:\n%s", n.read())
			}
			// Saying what the kubelet says is fine.
			n.policyFile("a.toml", "[handlers.crun]\nruntime_type = \"io.containerd.runc.v2\"\n[handlers.crun.options]\nBinaryName = \"/usr/bin/crun\"\nSystemdCgroup = true\n")
			if code := n.run("apply", "--no-restart", "--mode", "patch"); code != 0 || !bytes.Contains(n.read(), []byte("handler=crun")) {
				t.Errorf("apply, matching the kubelet: exit %d\n%s%s", code, &n.stdout, &n.stderr)
			}
		})
	}
}
