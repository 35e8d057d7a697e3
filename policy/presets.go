package policy

import (
	"maps"
	"slices"
	"sort"
)

// preset holds the defaults a preset gives a handler. Keys a policy sets
// win; options are merged key by key.
type preset struct {
	runtimeType string
	privileged  *bool
	options     map[string]any
	requires    []string
	smoke       string
	doc         string
}

func (p preset) handler() Handler {
	return Handler{
		RuntimeType:                  p.runtimeType,
		PrivilegedWithoutHostDevices: p.privileged,
		Options:                      maps.Clone(p.options),
		Requires:                     slices.Clone(p.requires),
		Smoke:                        p.smoke,
	}
}

func ptr[T any](v T) *T { return &v }

const kataDefaults = "/opt/kata/share/defaults/kata-containers/"

var presets = map[string]preset{
	"kata": {
		smoke:       SmokePod, // Kata does not support the node's network
		runtimeType: "io.containerd.kata.v2",
		privileged:  ptr(true),
		requires:    []string{"kvm", "vhost-vsock", "kata-config"},
		doc:         "Kata Containers with its default hypervisor (containerd-shim-kata-v2)",
	},
	"kata-qemu": {
		smoke:       SmokePod, // Kata does not support the node's network
		runtimeType: "io.containerd.kata-qemu.v2",
		privileged:  ptr(true),
		options:     map[string]any{"ConfigPath": kataDefaults + "configuration-qemu.toml"},
		requires:    []string{"kvm", "vhost-vsock", "kata-config"},
		doc:         "Kata Containers on QEMU, as kata-deploy installs it",
	},
	"kata-clh": {
		smoke:       SmokePod, // Kata does not support the node's network
		runtimeType: "io.containerd.kata-clh.v2",
		privileged:  ptr(true),
		options:     map[string]any{"ConfigPath": kataDefaults + "configuration-clh.toml"},
		requires:    []string{"kvm", "vhost-vsock", "kata-config"},
		doc:         "Kata Containers on Cloud Hypervisor, as kata-deploy installs it",
	},
	"gvisor": {
		runtimeType: "io.containerd.runsc.v1",
		requires:    []string{"runsc"},
		doc:         "gVisor (containerd-shim-runsc-v1 and runsc)",
	},
	"crun": {
		runtimeType: "io.containerd.runc.v2",
		options:     map[string]any{"BinaryName": "/usr/bin/crun"},
		doc:         "crun through the runc v2 shim",
	},
	"nvidia": {
		runtimeType: "io.containerd.runc.v2",
		options:     map[string]any{"BinaryName": "/usr/bin/nvidia-container-runtime"},
		requires:    []string{"nvidia"},
		doc:         "NVIDIA Container Runtime through the runc v2 shim",
	},
	"spin": {
		runtimeType: "io.containerd.spin.v2",
		doc:         "Spin WebAssembly apps (containerd-shim-spin-v2)",
	},
	"wasmtime": {
		runtimeType: "io.containerd.wasmtime.v1",
		doc:         "WebAssembly on wasmtime (containerd-shim-wasmtime-v1)",
	},
}

// PresetNames returns the known presets, sorted.
func PresetNames() []string {
	names := make([]string, 0, len(presets))
	for n := range presets {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
