package main

import (
	"os"
	"path/filepath"
	"testing"
)

func init() { moreHostileCases = append(moreHostileCases, onBoth(policyClosureCases)) }

// policyClosureCases: what a policy must not be able to switch off or hand
// to a pod (issue 17): the checks a runtime type brings, annotations that
// choose the runtime's configuration or binaries, a shim cgroup outside
// the hierarchy.
func policyClosureCases() []hostileCase {
	pol := func(name, body string, want ...string) hostileCase {
		return hostileCase{name: name, stage: atPolicy, files: one(body), want: want}
	}
	host := func(name, body string, setup func(t *testing.T, n *node), want ...string) hostileCase {
		return hostileCase{name: name, stage: atHost, files: one(body), setup: setup, want: want}
	}
	// Kata's configuration names a hypervisor reached through a directory
	// anyone can write.
	unsafeKata := func(config string) func(t *testing.T, n *node) {
		return func(t *testing.T, n *node) {
			hostFile(t, n, "/opt/kata/bin/qemu", "#!/bin/sh\n", 0o755)
			hostDir(t, n, "/var/ww", 0o777)
			hostLink(t, n, "/opt/kata/bin/qemu", "/var/ww/qemu")
			hostFile(t, n, config, "[hypervisor.qemu]\npath = \"/var/ww/qemu\"\n"+
				"kernel = \"/opt/kata/share/kata-containers/vmlinux.container\"\nimage = \"/opt/kata/share/kata-containers/kata-containers.img\"\n", 0o644)
		}
	}
	const kataDefault = "/opt/kata/share/defaults/kata-containers/configuration.toml"
	cs := []hostileCase{
		// requires only adds; the runtime type brings its own checks.
		host("kata preset with requires = [] still needs /dev/kvm", "[handlers.x]\npreset = \"kata\"\nrequires = []\n", nil,
			"kvm", "/dev/kvm does not exist"),
		host("nvidia preset with requires = [] still needs /dev/nvidiactl", "[handlers.x]\npreset = \"nvidia\"\nrequires = []\n", nil,
			"nvidia", "/dev/nvidiactl does not exist"),
		host("Kata without a preset still gets its configuration checked", kataHandler, unsafeKata(kataDefault),
			"kata-config", "path /var/ww/qemu: directory /var/ww is group- or world-writable"),
		host("Kata without a preset and with requires = []", kataHandler+"requires = []\n", unsafeKata(kataDefault),
			"kata-config", "directory /var/ww is group- or world-writable"),
		host("Kata's shim named by runtime_path under another runtime type",
			"[handlers.x]\nruntime_type = \"io.containerd.vm.v2\"\nruntime_path = \"/usr/bin/containerd-shim-kata-v2\"\n", unsafeKata(kataDefault),
			"kata-config", "directory /var/ww is group- or world-writable"),
		host("gVisor without a preset still needs a safe runsc", "[handlers.x]\nruntime_type = \"io.containerd.runsc.v1\"\nrequires = []\n",
			func(t *testing.T, n *node) { os.Chmod(filepath.Join(n.hostRoot, "/usr/bin/runsc"), 0o777) },
			"runsc", "/usr/bin/runsc is group- or world-writable"),

		// Annotations that hand a pod the runtime's configuration.
		pol("annotation that has runsc open a host file as the pod's root file system", "[handlers.x]\npreset = \"gvisor\"\npod_annotations = [\"dev.gvisor.spec.rootfs.source\"]\n",
			"{p}/a.toml:3:1", "handlers.x.pod_annotations", `"dev.gvisor.spec.rootfs.source" would let any pod`),
		pol("annotation that binds host directories into Kata's sandbox", "[handlers.x]\npreset = \"kata\"\ncontainer_annotations = [\"io.katacontainers.config.runtime.sandbox_bind_mounts\"]\n",
			"{p}/a.toml:3:1", "handlers.x.container_annotations", `"io.katacontainers.config.runtime.sandbox_bind_mounts" names a host path`),
		pol("annotation choosing Kata's configuration file", "[handlers.x]\npreset = \"kata\"\npod_annotations = [\"io.katacontainers.config_path\"]\n",
			"{p}/a.toml:3:1", "handlers.x.pod_annotations", `"io.katacontainers.config_path" would let any pod`),
		pol("annotation of Kata's OCI internals", kataHandler+"pod_annotations = [\"io.katacontainers.pkg.oci.bundle_path\"]\n",
			"{p}/a.toml:3:1", "io.katacontainers.pkg.oci.bundle_path"),
		pol("annotation choosing Kata's hypervisor binary", kataHandler+"pod_annotations = [\"io.katacontainers.config.hypervisor.path\"]\n",
			"{p}/a.toml:3:1", "names a host path (path)"),
		pol("annotation choosing Kata's jailer, per container", kataHandler+"container_annotations = [\"io.katacontainers.config.hypervisor.jailer_path\"]\n",
			"{p}/a.toml:3:1", "handlers.x.container_annotations", "jailer_path"),
		pol("annotation choosing Kata's kernel", kataHandler+"pod_annotations = [\"io.katacontainers.config.hypervisor.default_memory\", \"io.katacontainers.config.hypervisor.kernel\"]\n",
			"{p}/a.toml:3:1", "names a host path (kernel)"),
		pol("annotation choosing virtiofsd", kataHandler+"pod_annotations = [\"io.katacontainers.config.hypervisor.virtio_fs_daemon\"]\n",
			"{p}/a.toml:3:1", "virtio_fs_daemon"),
		pol("annotation passing virtiofsd arguments", kataHandler+"pod_annotations = [\"io.katacontainers.config.hypervisor.virtio_fs_extra_args\"]\n",
			"{p}/a.toml:3:1", "virtio_fs_extra_args"),
		pol("annotation overriding a runsc flag", "[handlers.x]\npreset = \"gvisor\"\npod_annotations = [\"dev.gvisor.flag.debug-log\"]\n",
			"{p}/a.toml:3:1", "dev.gvisor.flag.debug-log"),

		// The shim's cgroup stays in the hierarchy.
		pol("ShimCgroup climbing out of the cgroup root", runcOpts+"ShimCgroup = \"/../../../etc\"\n", "{p}/a.toml:4:1", "ShimCgroup", "clean absolute cgroup path"),
		pol("ShimCgroup relative", runcOpts+"shimcgroup = \"../x\"\n", "{p}/a.toml:4:1", "clean absolute cgroup path"),

		// A symlinked policy directory is followed from /, hop by hop.
		{name: "policy directory a symlink through a world-writable directory", files: one(runcHandler), setup: func(t *testing.T, n *node) {
			if err := os.Rename(n.policy, n.policy+".real"); err != nil {
				t.Fatal(err)
			}
			symlink(t, filepath.Base(n.policy)+".real", n.policy)
		}, want: []string{"the policy directory {p} is a symlink: directory /tmp is group- or world-writable"}},
	}
	// The same on containerd 2.4.2, whose config is version 3 or 4.
	for _, i := range []int{0, 2, 6, 14} {
		c := cs[i]
		c.name += ", on containerd 2.4.2"
		c.major = 2
		cs = append(cs, c)
	}
	return cs
}
