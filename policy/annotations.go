package policy

import (
	"fmt"
	"strings"
)

// Annotations a pod may pass to a runtime are knobs of the runtime's
// execution closure (docs/SECURITY.md): one that names a configuration
// file, a binary, a kernel, an image or a daemon lets every pod of the
// class choose what the shim or the hypervisor runs on the host, which is
// what the `*` rule refuses. Such annotations are refused outright: Kata
// restricts some of them with valid_*_paths globs, but those globs are
// Kata's to match and a node's configuration can widen them, so
// runtimeclassd doesn't offer them at all.

// closureAnnotations are annotation keys, or prefixes ending in '.', that
// select what the runtime runs or reads on the host.
var closureAnnotations = []string{
	// Kata: its whole configuration file, and the OCI internals its shim
	// reads from the bundle.
	"io.katacontainers.config_path",
	"io.katacontainers.pkg.oci.",
	// gVisor: every one of its annotations. They are runsc's knobs, not
	// the workload's: dev.gvisor.flag.* sets any runsc flag (debug-log,
	// root, ...) when its configuration allows overrides,
	// dev.gvisor.spec.rootfs.source has runsc open a host file of the pod's
	// choosing as root and hand it to the sandbox, dev.gvisor.tar.* do the
	// same for a tar file, dev.gvisor.spec.mount.* and dev.gvisor.internal.*
	// change what the gofer serves.
	"dev.gvisor.",
}

// closureWords are in the last segments of an annotation key that name a path
// on the host, whatever the runtime: Kata's hypervisor.path, ctlpath,
// jailer_path, kernel, image, initrd, firmware, firmware_volume,
// virtio_fs_daemon, virtio_fs_extra_args, entropy_source,
// file_mem_backend, vhost_user_store_path, and the like in other runtimes.
var closureWords = []string{"path", "config", "daemon", "kernel", "image", "initrd", "firmware", "bin", "exec", "jailer", "file", "sock", "extra_args", "entropy_source", "backend",
	// a source, a lower or upper layer, a root file system or a mount on
	// the host (Kata's sandbox_bind_mounts, a rootfs source, an overlay's
	// layers)
	"source", "upper", "lower", "rootfs", "mount"}

// safeSegments are last segments that contain one of closureWords but name
// nothing on the host: hashes of assets, guest kernel parameters, the
// guest's hook directory (inside the VM), switches.
var safeSegments = map[string]bool{
	"kernel_params": true, "guest_hook_path": true,
	// booleans
	"disable_image_nvdimm": true, "use_vsock": true,
}

// checkClosureAnnotation says why an annotation may not be passed to a
// runtime, or "".
func checkClosureAnnotation(a string) string {
	l := strings.ToLower(a)
	for _, k := range closureAnnotations {
		if l == k || strings.HasSuffix(k, ".") && strings.HasPrefix(l, k) {
			return fmt.Sprintf("annotation %q would let any pod of the class choose what the runtime runs or reads on the host (a configuration, binary or path); it can't be offered", a)
		}
	}
	last := l[strings.LastIndexAny(l, "./")+1:]
	if safeSegments[last] || strings.HasSuffix(last, "_hash") {
		return ""
	}
	for _, w := range closureWords {
		if strings.Contains(last, w) {
			return fmt.Sprintf("annotation %q names a host path (%s) the runtime would use: any pod of the class could choose what runs or is read on the host; it can't be offered", a, w)
		}
	}
	return ""
}
