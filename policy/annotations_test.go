package policy

import (
	"strings"
	"testing"
)

// Annotations that choose what the runtime runs or reads on the host are
// refused; Kata's other annotations (sizes, switches, guest settings) are
// not. The lists are Kata's documented annotations.
func TestClosureAnnotations(t *testing.T) {
	t.Parallel()
	const hv = "io.katacontainers.config.hypervisor."
	refused := []string{
		"io.katacontainers.config_path", "io.katacontainers.pkg.oci.bundle_path", "io.katacontainers.pkg.oci.container_type",
		hv + "path", hv + "ctlpath", hv + "jailer_path", hv + "kernel", hv + "image", hv + "initrd", hv + "firmware",
		hv + "firmware_volume", hv + "virtio_fs_daemon", hv + "virtio_fs_extra_args", hv + "entropy_source",
		hv + "file_mem_backend", hv + "vhost_user_store_path", "dev.gvisor.flag.debug-log", "dev.gvisor.flag.root",
		"IO.KATACONTAINERS.CONFIG_PATH", "example.com/helper-binary",
		"dev.gvisor.spec.rootfs.source", "dev.gvisor.spec.rootfs.type", "dev.gvisor.tar.rootfs.upper",
		"dev.gvisor.spec.mount.data.share", "dev.gvisor.spec.cgroup-parent", "dev.gvisor.bundle.experimental-ptrace",
		"io.katacontainers.config.runtime.sandbox_bind_mounts", "example.com/overlay-lower",
	}
	allowed := []string{
		hv + "default_vcpus", hv + "default_memory", hv + "default_max_vcpus", hv + "block_device_cache_direct",
		hv + "block_device_cache_noflush", hv + "block_device_driver", hv + "disable_image_nvdimm", hv + "use_vsock",
		hv + "enable_iothreads", hv + "shared_fs", hv + "virtio_fs_cache", hv + "virtio_fs_cache_size", hv + "kernel_params",
		hv + "kernel_hash", hv + "image_hash", hv + "hypervisor_hash", hv + "msize_9p", hv + "machine_type", hv + "cpu_features",
		hv + "enable_hugepages", hv + "disable_vhost_net", hv + "hotplug_vfio_on_root_bus", hv + "pcie_root_port",
		hv + "memory_slots", hv + "memory_offset", hv + "enable_virtio_mem", hv + "enable_guest_swap", hv + "use_legacy_serial",
		hv + "enable_iommu", hv + "enable_mem_prealloc", hv + "enable_vhost_user_store", hv + "guest_hook_path",
		"io.katacontainers.config.runtime.disable_guest_seccomp", "io.katacontainers.container.resource.swappiness",
	}
	for _, a := range refused {
		if checkClosureAnnotation(a) == "" {
			t.Errorf("%s: allowed, want refused", a)
		}
	}
	for _, a := range allowed {
		if msg := checkClosureAnnotation(a); msg != "" {
			t.Errorf("%s: %s", a, msg)
		}
	}
	_, err := Parse("p.toml", []byte("[handlers.x]\npreset = \"kata\"\npod_annotations = [\"io.katacontainers.config_path\"]\n"), Options{SkipOwnership: true})
	if err == nil || !strings.Contains(err.Error(), "p.toml:3:1") || !strings.Contains(err.Error(), "pod_annotations") {
		t.Errorf("error %v, want one naming p.toml:3:1 and pod_annotations", err)
	}
}
