package main

import (
	"os"
	"path/filepath"
	"testing"
)

func init() { moreHostileCases = append(moreHostileCases, onBoth(policyDirCases)) }

// policyDirCases: no path of a handler may lead into the policy directory
// or the daemon config's (issue 17, defect 2): whoever writes policies
// chooses what is there, even though the files are root's. Here the
// policy directory is the fake host's /etc/runtimeclassd/policy.d.
func policyDirCases() []hostileCase {
	const pd = "/etc/runtimeclassd/policy.d"
	args := []string{"--policy-dir", "{d}/host" + pd}
	c := func(name, body string, mode os.FileMode, setup func(t *testing.T, n *node), want ...string) hostileCase {
		return hostileCase{name: name, stage: atHost, args: args, setup: func(t *testing.T, n *node) {
			hostDir(t, n, pd, 0o755)
			write(t, filepath.Join(n.hostRoot, pd, "a.toml"), body, 0o644)
			if mode != 0 {
				if err := os.Chmod(filepath.Join(n.hostRoot, pd, "a.toml"), mode); err != nil {
					t.Fatal(err)
				}
			}
			if setup != nil {
				setup(t, n)
			}
		}, want: want}
	}
	inPolicyDir := "is in {d}/host" + pd + ", whose content whoever writes policies chooses"
	return []hostileCase{
		c("the policy file itself as BinaryName, a script to the shell", "#!/bin/sh\n"+runcOpts+"BinaryName = \""+pd+"/a.toml\"\n", 0o755, nil,
			"options.BinaryName", pd+"/a.toml: "+inPolicyDir),
		c("base_runtime_spec in the policy directory", runcHandler+"base_runtime_spec = \""+pd+"/spec.json\"\n", 0, func(t *testing.T, n *node) {
			hostFile(t, n, pd+"/spec.json", `{"ociVersion": "1.0.2", "linux": {"namespaces": [{"type": "mount"}]}}`, 0o644)
		}, "base_runtime_spec", inPolicyDir),
		c("a symlink under /usr into the policy directory", runcOpts+"BinaryName = \"/usr/lib/x/runc\"\n", 0, func(t *testing.T, n *node) {
			hostFile(t, n, pd+"/runc.sh", "#!/bin/sh\n", 0o755)
			hostLink(t, n, pd+"/runc.sh", "/usr/lib/x/runc")
		}, "options.BinaryName", inPolicyDir),
		c("Kata's configuration in the policy directory", kataOpts+"ConfigPath = \""+pd+"/kata.conf\"\n", 0, func(t *testing.T, n *node) {
			hostFile(t, n, pd+"/kata.conf", fakeKataConfig, 0o644)
		}, "options.ConfigPath", inPolicyDir),
		c("runtime_path in the policy directory", "[handlers.x]\nruntime_type = \"io.containerd.x.v1\"\nruntime_path = \""+pd+"/shim\"\n", 0, func(t *testing.T, n *node) {
			hostFile(t, n, pd+"/shim", "#!/bin/sh\n", 0o755)
		}, "runtime_path", inPolicyDir),
		{name: "a hook in the daemon config's directory", stage: atHost,
			args: append([]string{"--config", "{d}/host/etc/runtimeclassd/config.toml"}, args...),
			setup: func(t *testing.T, n *node) {
				hostDir(t, n, pd, 0o755)
				hostFile(t, n, "/etc/runtimeclassd/config.toml", "", 0o644)
				hostFile(t, n, "/etc/runtimeclassd/hook", "#!/bin/sh\n", 0o755)
				hostFile(t, n, "/etc/containerd/spec.json", `{"ociVersion": "1.0.2", "hooks": {"prestart": [{"path": "/etc/runtimeclassd/hook"}]}, "linux": {"namespaces": [{"type": "mount"}]}}`, 0o644)
				write(t, filepath.Join(n.hostRoot, pd, "a.toml"), runcHandler+"base_runtime_spec = \"/etc/containerd/spec.json\"\n", 0o644)
			}, want: []string{"hooks.prestart[0].path", "is in {d}/host/etc/runtimeclassd, whose content"}},
	}
}
