package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestEmbeddedContainerdRefused: on a k3s, RKE2 or k0s node (their
// containerd reads a config they generate, on a socket and under a unit
// of their own), apply refuses, says whose containerd it is and what to
// do instead, and writes nothing.
func TestEmbeddedContainerdRefused(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ name, file, want string }{
		{"k3s", "/var/lib/rancher/k3s/agent/etc/containerd/config.toml", "add the runtime handlers to k3s's template (config.toml.tmpl"},
		{"RKE2", "/var/lib/rancher/rke2/agent/etc/containerd/config.toml", "RKE2's template"},
		{"k0s", "/etc/k0s/containerd.toml", "/etc/k0s/containerd.d/"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			n := newNode(t, 1, readCorpus(t, "v2-default-1.6.toml"))
			orig := n.read()
			hostFile(t, n, c.file, "version = 2\n", 0o644)
			n.policyFile("a.toml", kataPolicy)
			for _, args := range [][]string{{"apply", "--dry-run"}, {"apply", "--no-restart"}} {
				code := n.run(args...)
				msg := n.stderr.String()
				if code != 1 || !strings.Contains(msg, "this node's containerd is "+c.name+"'s: it reads "+c.file) || !strings.Contains(msg, c.want) {
					t.Errorf("%v: exit %d\n%s", args, code, msg)
				}
			}
			if !bytes.Equal(n.read(), orig) {
				t.Error("config.toml changed")
			}
		})
	}
}
