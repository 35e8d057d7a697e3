package shimcheck

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkCheck50 checks 50 handlers, as `runtimeclassd check` does for a
// policy of 50. "fakehost": each handler's shim, BinaryName and Kata
// configuration (with its hypervisor, kernel and image) are all present and
// fully checked. "realkvm": 50 handlers whose only host check is the real
// /dev/kvm ioctl.
func BenchmarkCheck50(b *testing.B) {
	root := b.TempDir()
	os.Chmod(root, 0o755)
	bin, err := os.ReadFile("/bin/true")
	if err != nil {
		b.Fatal(err)
	}
	write := func(p string, data []byte, mode os.FileMode) {
		os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755)
		if err := os.WriteFile(filepath.Join(root, p), data, mode); err != nil {
			b.Fatal(err)
		}
	}
	write("/opt/kata/bin/qemu-system-x86_64", bin, 0o755)
	write("/opt/kata/share/kata-containers/vmlinux.container", []byte("k"), 0o644)
	write("/opt/kata/share/kata-containers/kata-containers.img", []byte("i"), 0o644)
	write("/etc/kata-containers/configuration.toml", []byte(kataConfig), 0o644)
	var handlers []Handler
	for i := range 50 {
		shim := fmt.Sprintf("containerd-shim-h%02d-v2", i)
		write("/usr/bin/"+shim, bin, 0o755)
		write(fmt.Sprintf("/usr/bin/rt%02d", i), bin, 0o755)
		handlers = append(handlers, Handler{
			Name: fmt.Sprintf("h%02d", i), RuntimeType: fmt.Sprintf("io.containerd.h%02d.v2", i),
			Paths:    []Path{{"options.BinaryName", fmt.Sprintf("/usr/bin/rt%02d", i)}},
			Requires: []string{"kata-config"},
		})
	}
	host := &Host{Root: root, ShimPath: []string{"/usr/local/bin", "/usr/bin"}}
	b.Run("fakehost", func(b *testing.B) {
		for b.Loop() {
			for _, h := range handlers {
				if r := host.Check(h); !r.Ready {
					b.Fatal(r.Reason())
				}
			}
		}
	})
	if _, err := os.Stat("/dev/kvm"); err != nil {
		return
	}
	b.Run("realkvm", func(b *testing.B) {
		real := &Host{Root: "/"}
		for b.Loop() {
			for range 50 {
				if c := real.checkKVM(); !c.OK {
					b.Fatal(c.Detail)
				}
			}
		}
	})
}
