package main

import (
	"path/filepath"
	"testing"
)

func init() { moreHostileCases = append(moreHostileCases, onBoth(specCases)) }

// specCases: what a base_runtime_spec makes runc run, or gives every
// container of the class (issue 17, defect 1). The spec is a root-owned
// file in a safe place; its content is what is attacked.
func specCases() []hostileCase {
	const handler = runcHandler + "base_runtime_spec = \"/etc/containerd/spec.json\"\n"
	const ns = `"linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "network"}]}`
	spec := func(name, body string, setup func(t *testing.T, n *node), want ...string) hostileCase {
		return hostileCase{name: name, stage: atHost, files: one(handler), setup: func(t *testing.T, n *node) {
			hostFile(t, n, "/etc/containerd/spec.json", body, 0o644)
			if setup != nil {
				setup(t, n)
			}
		}, want: append([]string{"base_runtime_spec", "/etc/containerd/spec.json"}, want...)}
	}
	userHook := func(t *testing.T, n *node) {
		hostFile(t, n, "/opt/eve/hook", "#!/bin/sh\n", 0o755)
		chown(t, filepath.Join(n.hostRoot, "/opt/eve"))
	}
	return []hostileCase{
		spec("base spec that is not JSON", "not json\n", nil, "not an OCI runtime spec"),
		spec("base spec without ociVersion", "{}\n", nil, "not an OCI runtime spec: no ociVersion"),
		spec("base spec that is a JSON list", "[]\n", nil, "not an OCI runtime spec"),
		spec("prestart hook in a directory a user owns", `{"ociVersion": "1.0.2", "hooks": {"prestart": [{"path": "/opt/eve/hook"}]}, `+ns+`}`, userHook,
			`hooks.prestart[0].path "/opt/eve/hook", which runc runs as root`, "directory /opt/eve is owned by uid 1000"),
		spec("createRuntime hook through a world-writable hop", `{"ociVersion": "1.0.2", "hooks": {"createRuntime": [{"path": "/usr/lib/hook"}]}, `+ns+`}`, func(t *testing.T, n *node) {
			hostFile(t, n, "/usr/lib/real-hook", "#!/bin/sh\n", 0o755)
			hostDir(t, n, "/var/ww", 0o777)
			hostLink(t, n, "/usr/lib/real-hook", "/var/ww/hook")
			hostLink(t, n, "/var/ww/hook", "/usr/lib/hook")
		}, "hooks.createRuntime[0].path", "directory /var/ww is group- or world-writable"),
		spec("poststop hook in /tmp", `{"ociVersion": "1.0.2", "hooks": {"poststop": [{"path": "/usr/bin/true"}, {"path": "/tmp/x"}]}, `+ns+`}`, func(t *testing.T, n *node) {
			hostFile(t, n, "/usr/bin/true", "#!/bin/sh\n", 0o755)
			hostDir(t, n, "/tmp", 0o1777)
			hostFile(t, n, "/tmp/x", "#!/bin/sh\n", 0o755)
		}, "hooks.poststop[1].path", "directory /tmp is group- or world-writable"),
		spec("hooks under a key in capitals, as encoding/json reads it", `{"ociVersion": "1.0.2", "HOOKS": {"Prestart": [{"PATH": "/opt/eve/hook"}]}, `+ns+`}`, userHook,
			"hooks.prestart[0].path", "directory /opt/eve is owned by uid 1000"),
		spec("hooks set twice, the last one evil", `{"ociVersion": "1.0.2", "hooks": {}, "hooks": {"poststart": [{"path": "/opt/eve/hook"}]}, `+ns+`}`, userHook,
			"hooks.poststart[0].path"),
		spec("hook that is not executable", `{"ociVersion": "1.0.2", "hooks": {"createContainer": [{"path": "/etc/containerd/spec.json"}]}, `+ns+`}`, nil,
			"hooks.createContainer[0].path", "not executable"),
		spec("bind mount of the host's root", `{"ociVersion": "1.0.2", "mounts": [{"destination": "/host", "type": "bind", "source": "/", "options": ["rbind"]}], `+ns+`}`, nil,
			`mounts[0] binds the host's "/"`),
		spec("overlay mount whose lower layers are host directories", `{"ociVersion": "1.1.0", "mounts": [{"destination": "/host-etc", "type": "overlay", "source": "overlay", "options": ["lowerdir=/etc:/root"]}], `+ns+`}`, nil,
			`mounts[0] (overlay on "/host-etc") is of type "overlay", which can take host paths`),
		spec("ext4 mount of a host block device", `{"ociVersion": "1.1.0", "mounts": [{"destination": "/disk", "type": "ext4", "source": "/dev/sda1"}], `+ns+`}`, nil,
			`mounts[0] (/dev/sda1 on "/disk") is of type "ext4"`),
		spec("bind mount by option only", `{"ociVersion": "1.0.2", "mounts": [{"destination": "/run/containerd", "source": "/run/containerd", "options": ["bind"]}], `+ns+`}`, nil,
			`mounts[0] binds the host's "/run/containerd"`),
		spec("added capability", `{"ociVersion": "1.0.2", "process": {"cwd": "/", "capabilities": {"bounding": ["CAP_SYS_ADMIN"]}}, `+ns+`}`, nil,
			"process.capabilities.bounding adds CAP_SYS_ADMIN"),
		spec("joining the host's mount namespace", `{"ociVersion": "1.0.2", "linux": {"namespaces": [{"type": "mount", "path": "/proc/1/ns/mnt"}]}}`, nil,
			`joins the mount namespace at "/proc/1/ns/mnt"`),
		spec("no mount namespace", `{"ociVersion": "1.0.2", "linux": {"namespaces": [{"type": "pid"}]}}`, nil,
			"no mount namespace"),
		spec("no linux section", `{"ociVersion": "1.0.2"}`, nil, "no mount namespace"),
		spec("every device allowed", `{"ociVersion": "1.0.2", "linux": {"namespaces": [{"type": "mount"}], "resources": {"devices": [{"allow": true, "access": "rwm"}]}}}`, nil,
			"linux.resources.devices[0] allows devices"),
	}
}
