package daemon

import (
	"fmt"
	"os"
	"path/filepath"
)

// Distributions that embed containerd and regenerate its config: editing
// /etc/containerd/config.toml (which their containerd doesn't read) and
// restarting containerd.service (which isn't theirs) would do nothing, or
// the wrong thing. Each is known by the config file it generates.
var embedded = []struct {
	name, config, template, socket, unit, instead string
}{
	{"k3s", "/var/lib/rancher/k3s/agent/etc/containerd/config.toml", "config.toml.tmpl", "/run/k3s/containerd/containerd.sock", "k3s or k3s-agent",
		"add the runtime handlers to k3s's template (config.toml.tmpl next to it), which k3s renders at every start"},
	{"RKE2", "/var/lib/rancher/rke2/agent/etc/containerd/config.toml", "config.toml.tmpl", "/run/k3s/containerd/containerd.sock", "rke2-server or rke2-agent",
		"add the runtime handlers to RKE2's template (config.toml.tmpl next to it), which RKE2 renders at every start"},
	{"k0s", "/etc/k0s/containerd.toml", "", "/run/k0s/containerd.sock", "k0scontroller or k0sworker",
		"put the runtime handlers in a drop-in in /etc/k0s/containerd.d/, which k0s's generated config imports"},
}

// EmbeddedContainerd says why runtimeclassd must not manage this node's
// containerd, if a distribution embeds it (k3s, RKE2, k0s: its own
// generated config, socket and unit), and what to do instead; nil
// otherwise. It looks under the host root.
func EmbeddedContainerd(cfg Config) error {
	for _, e := range embedded {
		if _, err := os.Lstat(filepath.Join(cmpOr(cfg.HostRoot, "/"), e.config)); err != nil {
			continue
		}
		how := ", which " + e.name + " generates"
		if e.template != "" {
			how = ", which " + e.name + " regenerates from " + e.template + " at every start"
		}
		return fmt.Errorf("this node's containerd is %s's: it reads %s%s, serves %s and runs under the %s unit. runtimeclassd would edit %s, which that containerd doesn't read, and restart %s, which isn't it, so it manages nothing here. Instead, %s",
			e.name, e.config, how, e.socket, e.unit, cfg.ContainerdConfig, cfg.ContainerdUnit, e.instead)
	}
	return nil
}
