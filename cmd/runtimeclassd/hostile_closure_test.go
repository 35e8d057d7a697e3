package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func init() { moreHostileCases = append(moreHostileCases, onBoth(closureCases)) }

// closureCases: what the files a handler names make gVisor's shim and
// Kata run or read (issue 17, defects 3 and 5), read the way each of them
// reads its configuration: keys in any casing, drop-ins, defaults.
func closureCases() []hostileCase {
	host := func(name, body string, setup func(t *testing.T, n *node), want ...string) hostileCase {
		return hostileCase{name: name, stage: atHost, files: one(body), setup: setup, want: want}
	}
	const gvisor = "[handlers.x]\npreset = \"gvisor\"\n[handlers.x.options]\nConfigPath = \"/etc/containerd/runsc.toml\"\n"
	runscToml := func(body string, more func(t *testing.T, n *node)) func(t *testing.T, n *node) {
		return func(t *testing.T, n *node) {
			hostFile(t, n, "/etc/containerd/runsc.toml", body, 0o644)
			if more != nil {
				more(t, n)
			}
		}
	}
	eve := func(t *testing.T, n *node) {
		hostFile(t, n, "/opt/eve/runsc", "#!/bin/sh\n", 0o755)
		chown(t, filepath.Join(n.hostRoot, "/opt/eve"))
	}
	ww := func(t *testing.T, n *node) { hostDir(t, n, "/var/ww", 0o777) }

	const kataCfg = "/opt/kata/share/defaults/kata-containers/configuration.toml"
	const kernelImage = "kernel = \"/opt/kata/share/kata-containers/vmlinux.container\"\nimage = \"/opt/kata/share/kata-containers/kata-containers.img\"\n"
	kata := func(body string, more func(t *testing.T, n *node)) func(t *testing.T, n *node) {
		return func(t *testing.T, n *node) {
			hostFile(t, n, kataCfg, body, 0o644)
			if more != nil {
				more(t, n)
			}
		}
	}
	eveQemu := func(t *testing.T, n *node) {
		hostFile(t, n, "/opt/eve/qemu", "#!/bin/sh\n", 0o755)
		chown(t, filepath.Join(n.hostRoot, "/opt/eve"))
	}
	const good = "[hypervisor.qemu]\npath = \"/opt/kata/bin/qemu-system-x86_64\"\n" + kernelImage

	return []hostileCase{
		// gVisor: runsc.toml, as containerd-shim-runsc-v1 decodes it.
		host("runsc.toml binary_name in a directory a user owns", gvisor, runscToml("binary_name = \"/opt/eve/runsc\"\n", eve),
			"runsc", "/etc/containerd/runsc.toml: binary_name /opt/eve/runsc: directory /opt/eve is owned by uid 1000"),
		host("runsc.toml BINARY_NAME in capitals", gvisor, runscToml("BINARY_NAME = \"/opt/eve/runsc\"\n", eve),
			"binary_name /opt/eve/runsc", "owned by uid 1000"),
		host("runsc.toml binary_name in two casings", gvisor, runscToml("binary_name = \"/usr/bin/runsc\"\nBinary_Name = \"/opt/eve/runsc\"\n", eve),
			"/etc/containerd/runsc.toml", "Binary_Name and binary_name are one key to a decoder that ignores case"),
		host("runsc.toml relative binary_name", gvisor, runscToml("binary_name = \"./runsc\"\n", nil),
			`binary_name "./runsc" is relative`),
		host("runsc.toml root in a world-writable directory", gvisor, runscToml("root = \"/var/ww/runsc\"\n", ww),
			"/etc/containerd/runsc.toml: root /var/ww/runsc", "directory /var/ww is group- or world-writable"),
		host("runsc.toml log_path with a placeholder under /tmp", gvisor, runscToml("log_path = \"/tmp/runsc/%ID%/shim.log\"\n", func(t *testing.T, n *node) {
			hostDir(t, n, "/tmp", 0o1777)
		}), "log_path /tmp/runsc/%ID%/shim.log", "/tmp is group- or world-writable"),
		host("runsc.toml flag naming a directory a user owns", gvisor, runscToml("[runsc_config]\ndebug-log = \"/opt/eve/logs/\"\n", eve),
			"runsc_config.debug-log /opt/eve/logs/", "owned by uid 1000"),
		host("gVisor's global config names runsc", "[handlers.x]\npreset = \"gvisor\"\n", func(t *testing.T, n *node) {
			eve(t, n)
			hostFile(t, n, "/etc/containerd/runsc/config.toml", "binary_name = \"/opt/eve/runsc\"\n", 0o644)
		}, "/etc/containerd/runsc/config.toml: binary_name /opt/eve/runsc", "owned by uid 1000"),
		host("runsc.toml owned by a user", gvisor, runscToml("", func(t *testing.T, n *node) {
			chown(t, filepath.Join(n.hostRoot, "/etc/containerd/runsc.toml"))
		}), "/etc/containerd/runsc.toml", "owned by uid 1000"),

		// Kata: configuration.toml and config.d, as Kata decodes them.
		host("Kata's hypervisor path in capitals", kataHandler, kata("[hypervisor.qemu]\nPATH = \"/opt/eve/qemu\"\n"+kernelImage, eveQemu),
			"kata-config", "[hypervisor.qemu] path /opt/eve/qemu", "owned by uid 1000"),
		host("Kata's hypervisor path in two casings", kataHandler, kata("[hypervisor.qemu]\npath = \"/opt/kata/bin/qemu-system-x86_64\"\nPath = \"/opt/eve/qemu\"\n"+kernelImage, eveQemu),
			"kata-config", "hypervisor.qemu.Path and hypervisor.qemu.path are one key"),
		host("Kata's table names in capitals", kataHandler, kata("[HYPERVISOR.qemu]\npath = \"/opt/eve/qemu\"\n"+kernelImage, eveQemu),
			"kata-config", "path /opt/eve/qemu", "owned by uid 1000"),
		host("Kata's jailer in a directory a user owns", kataHandler, kata(good+"jailer_path = \"/opt/eve/jailer\"\n", func(t *testing.T, n *node) {
			hostFile(t, n, "/opt/eve/jailer", "#!/bin/sh\n", 0o755)
			chown(t, filepath.Join(n.hostRoot, "/opt/eve"))
		}), "kata-config", "jailer_path /opt/eve/jailer", "owned by uid 1000"),
		host("Kata's virtiofsd through a world-writable hop", kataHandler, kata(good+"virtio_fs_daemon = \"/opt/kata/libexec/virtiofsd\"\n", func(t *testing.T, n *node) {
			hostFile(t, n, "/usr/libexec/virtiofsd", "#!/bin/sh\n", 0o755)
			ww(t, n)
			hostLink(t, n, "/usr/libexec/virtiofsd", "/var/ww/virtiofsd")
			hostLink(t, n, "/var/ww/virtiofsd", "/opt/kata/libexec/virtiofsd")
		}), "kata-config", "virtio_fs_daemon /opt/kata/libexec/virtiofsd", "directory /var/ww is group- or world-writable"),
		host("Kata's firmware in /tmp", kataHandler, kata(good+"firmware = \"/tmp/OVMF.fd\"\n", func(t *testing.T, n *node) {
			hostDir(t, n, "/tmp", 0o1777)
			hostFile(t, n, "/tmp/OVMF.fd", "fw", 0o644)
		}), "kata-config", "firmware /tmp/OVMF.fd", "/tmp is group- or world-writable"),
		host("a Kata drop-in replaces the hypervisor", kataHandler, kata(good, func(t *testing.T, n *node) {
			eveQemu(t, n)
			hostFile(t, n, filepath.Dir(kataCfg)+"/config.d/50-evil.toml", "[hypervisor.qemu]\npath = \"/opt/eve/qemu\"\n", 0o644)
		}), "kata-config", "configuration.toml + "+filepath.Dir(kataCfg)+"/config.d/50-evil.toml", "path /opt/eve/qemu", "owned by uid 1000"),
		host("a Kata drop-in that doesn't end in .toml", kataHandler, kata(good, func(t *testing.T, n *node) {
			eveQemu(t, n)
			hostFile(t, n, filepath.Dir(kataCfg)+"/config.d/60-qemu.toml.rpmnew", "[hypervisor.qemu]\npath = \"/opt/eve/qemu\"\n", 0o644)
		}), "kata-config", "config.d/60-qemu.toml.rpmnew", "path /opt/eve/qemu", "owned by uid 1000"),
		host("a Kata drop-in symlinked to a user's file", kataHandler, kata(good, func(t *testing.T, n *node) {
			ww(t, n)
			hostFile(t, n, "/var/ww/eve.conf", "[hypervisor.qemu]\npath = \"/usr/bin/qemu\"\n", 0o644)
			chown(t, filepath.Join(n.hostRoot, "/var/ww/eve.conf"))
			hostDir(t, n, filepath.Dir(kataCfg)+"/config.d", 0o755)
			hostLink(t, n, "/var/ww/eve.conf", filepath.Dir(kataCfg)+"/config.d/.50-qemu.conf")
		}), "kata-config", "config.d/.50-qemu.conf", "directory /var/ww is group- or world-writable"),
		host("Kata's drop-in directory world-writable", kataHandler, kata(good, func(t *testing.T, n *node) {
			hostDir(t, n, filepath.Dir(kataCfg)+"/config.d", 0o777)
		}), "kata-config", "the drop-in directory of Kata's configuration", "group- or world-writable"),
		host("Kata binds a user's directory into every sandbox", kataHandler, kata(good+"[runtime]\nsandbox_bind_mounts = [\"/opt/eve\"]\n", eveQemu),
			"kata-config", "runtime.sandbox_bind_mounts.0 /opt/eve", "owned by uid 1000"),
		// What the kernel runs first: a script's interpreter, an ELF's loader.
		host("shim script whose interpreter a user owns", evilHandler, func(t *testing.T, n *node) {
			hostFile(t, n, "/usr/bin/containerd-shim-evil-v2", "#!/opt/eve/sh -e\n", 0o755)
			hostFile(t, n, "/opt/eve/sh", "#!/bin/sh\n", 0o755)
			chown(t, filepath.Join(n.hostRoot, "/opt/eve"))
		}, "/usr/bin/containerd-shim-evil-v2: its interpreter /opt/eve/sh", "directory /opt/eve is owned by uid 1000"),
		host("BinaryName script with a relative interpreter", runcOpts+"BinaryName = \"/usr/bin/crun\"\n", func(t *testing.T, n *node) {
			hostFile(t, n, "/usr/bin/crun", "#!sh\n", 0o755)
		}, "options.BinaryName", `interpreter "sh" is not an absolute path`),
		host("scripts naming each other as interpreters", runcOpts+"BinaryName = \"/usr/bin/crun\"\n", func(t *testing.T, n *node) {
			hostFile(t, n, "/usr/bin/crun", "#!/usr/bin/crun\n", 0o755)
		}, "options.BinaryName", "interpreters nested more than 4 deep"),
		host("ELF shim whose program interpreter a user owns", evilHandler, func(t *testing.T, n *node) {
			b, err := os.ReadFile("/bin/true")
			if err != nil {
				t.Fatal(err)
			}
			const loader, evil = "/lib64/ld-linux-x86-64.so.2", "/opt/eve/ld-linux-x86-64.so"
			if !bytes.Contains(b, []byte(loader)) {
				t.Skip("this machine's /bin/true has another loader")
			}
			hostFile(t, n, "/usr/bin/containerd-shim-evil-v2", string(bytes.Replace(b, []byte(loader), []byte(evil), 1)), 0o755)
			hostFile(t, n, evil, "loader", 0o755)
			chown(t, filepath.Join(n.hostRoot, "/opt/eve"))
		}, "/usr/bin/containerd-shim-evil-v2: its interpreter /opt/eve/ld-linux-x86-64.so", "owned by uid 1000"),
		host("Kata's vhost-user store would be created in a world-writable directory", kataHandler, kata(good+"vhost_user_store_path = \"/var/ww/kata/vhost-user\"\n", ww),
			"kata-config", "vhost_user_store_path /var/ww/kata/vhost-user", "directory /var/ww is group- or world-writable"),
	}
}
