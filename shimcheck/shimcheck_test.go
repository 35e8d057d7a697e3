package shimcheck

import (
	"fmt"
	"github.com/runtimeclassd/runtimeclassd/internal/testbin"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"syscall"
	"testing"
)

// fakeHost is a host root in a temp dir with the usual directories.
type fakeHost struct {
	t    *testing.T
	root string
}

func newFakeHost(t *testing.T) *fakeHost {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("fake hosts need root: files must be root-owned")
	}
	h := &fakeHost{t: t, root: t.TempDir()}
	if err := os.Chmod(h.root, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"/usr/bin", "/usr/local/bin", "/opt/kata/bin", "/opt/kata/share/kata-containers", "/etc/kata-containers", "/dev"} {
		h.mkdir(d)
	}
	testbin.FakeInterpreters(t, h.root)
	return h
}

func (h *fakeHost) mkdir(p string) {
	h.t.Helper()
	if err := os.MkdirAll(filepath.Join(h.root, p), 0o755); err != nil {
		h.t.Fatal(err)
	}
}

func (h *fakeHost) write(p string, data []byte, mode os.FileMode) {
	h.t.Helper()
	h.mkdir(filepath.Dir(p))
	full := filepath.Join(h.root, p)
	if err := os.WriteFile(full, data, mode); err != nil {
		h.t.Fatal(err)
	}
	if err := os.Chmod(full, mode); err != nil {
		h.t.Fatal(err)
	}
}

// elfBinary returns a real ELF executable of this machine (a copy of
// /bin/true), optionally with its machine field changed.
func elfBinary(t *testing.T, machine uint16) []byte {
	t.Helper()
	b, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	if machine != 0 {
		b[18], b[19] = byte(machine), byte(machine>>8)
	}
	return b
}

func (h *fakeHost) host() *Host {
	return &Host{Root: h.root, ShimPath: []string{"/usr/local/bin", "/usr/bin", "/opt/kata/bin"}}
}

const kataShim = "/opt/kata/bin/containerd-shim-kata-v2"

func kataHandler() Handler {
	return Handler{Name: "kata", RuntimeType: "io.containerd.kata.v2"}
}

func TestShimChecks(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		setup func(h *fakeHost)
		hd    Handler
		ok    bool
		want  string // in the shim check's detail
	}{
		{"found and safe", func(h *fakeHost) { h.write(kataShim, elfBinary(t, 0), 0o755) }, kataHandler(), true, "ELF " + runtime.GOARCH},
		{"missing", func(h *fakeHost) {}, kataHandler(), false, "containerd-shim-kata-v2 not found in /usr/local/bin:/usr/bin:/opt/kata/bin"},
		{"not executable", func(h *fakeHost) { h.write(kataShim, elfBinary(t, 0), 0o644) }, kataHandler(), false, "not executable"},
		{"owned by a user", func(h *fakeHost) {
			h.write(kataShim, elfBinary(t, 0), 0o755)
			os.Chown(filepath.Join(h.root, kataShim), 1000, 1000)
		}, kataHandler(), false, "owned by uid 1000"},
		{"group-writable", func(h *fakeHost) { h.write(kataShim, elfBinary(t, 0), 0o775) }, kataHandler(), false, "group- or world-writable"},
		{"world-writable", func(h *fakeHost) { h.write(kataShim, elfBinary(t, 0), 0o757) }, kataHandler(), false, "group- or world-writable"},
		{"world-writable parent", func(h *fakeHost) {
			h.write(kataShim, elfBinary(t, 0), 0o755)
			os.Chmod(filepath.Join(h.root, "/opt/kata"), 0o777)
		}, kataHandler(), false, "directory /opt/kata is group- or world-writable"},
		{"parent owned by a user", func(h *fakeHost) {
			h.write(kataShim, elfBinary(t, 0), 0o755)
			os.Chown(filepath.Join(h.root, "/opt/kata/bin"), 1000, 1000)
		}, kataHandler(), false, "directory /opt/kata/bin is owned by uid 1000"},
		{"wrong architecture", func(h *fakeHost) { h.write(kataShim, elfBinary(t, 183), 0o755) }, kataHandler(), false, "ELF binary for arm64"},
		{"not a binary", func(h *fakeHost) { h.write(kataShim, []byte("MZ garbage"), 0o755) }, kataHandler(), false, "not an ELF binary or a script"},
		{"script", func(h *fakeHost) { h.write(kataShim, []byte("#!/bin/sh\nexec true\n"), 0o755) }, kataHandler(), true, "script"},
		{"a directory", func(h *fakeHost) { h.mkdir(kataShim) }, kataHandler(), false, "not a regular file"},
		{"symlink resolved inside the root", func(h *fakeHost) {
			h.write(kataShim, elfBinary(t, 0), 0o755)
			os.Symlink(kataShim, filepath.Join(h.root, "/usr/local/bin/containerd-shim-kata-v2"))
		}, kataHandler(), true, "via " + kataShim},
		{"symlink climbing out of the root", func(h *fakeHost) {
			os.Symlink("../../../../../../../../bin/true", filepath.Join(h.root, "/usr/bin/containerd-shim-kata-v2"))
		}, kataHandler(), false, "does not exist"},
		{"world-writable directory earlier on the shim path", func(h *fakeHost) {
			h.write(kataShim, elfBinary(t, 0), 0o755)
			os.Chmod(filepath.Join(h.root, "/usr/bin"), 0o777)
		}, kataHandler(), false, "directory /usr/bin is group- or world-writable"},
		{"earlier unsafe candidate is reported, not skipped", func(h *fakeHost) {
			h.write(kataShim, elfBinary(t, 0), 0o755)
			h.write("/usr/bin/containerd-shim-kata-v2", elfBinary(t, 0), 0o777)
		}, kataHandler(), false, "/usr/bin/containerd-shim-kata-v2: /usr/bin/containerd-shim-kata-v2 is group- or world-writable"},
		// Hole 2 of issue 7: containerd executes the path as written, so the
		// directories of the unresolved path and of every hop count, not only
		// the final target's.
		{"symlink in a world-writable directory", func(h *fakeHost) {
			h.write(kataShim, elfBinary(t, 0), 0o755)
			os.Chmod(filepath.Join(h.root, "/usr/local/bin"), 0o777)
			os.Symlink(kataShim, filepath.Join(h.root, "/usr/local/bin/containerd-shim-kata-v2"))
		}, kataHandler(), false, "directory /usr/local/bin is group- or world-writable (mode 0777)"},
		{"symlink in a sticky world-writable directory", func(h *fakeHost) {
			h.write(kataShim, elfBinary(t, 0), 0o755)
			os.Chmod(filepath.Join(h.root, "/usr/local/bin"), os.ModeSticky|0o777)
			os.Symlink(kataShim, filepath.Join(h.root, "/usr/local/bin/containerd-shim-kata-v2"))
		}, kataHandler(), false, "directory /usr/local/bin is group- or world-writable (mode 1777)"},
		{"symlink chain through a world-writable directory", func(h *fakeHost) {
			h.write(kataShim, elfBinary(t, 0), 0o755)
			h.mkdir("/var/ww")
			os.Chmod(filepath.Join(h.root, "/var/ww"), 0o777)
			os.Symlink(kataShim, filepath.Join(h.root, "/var/ww/hop"))
			os.Symlink("../../../var/ww/hop", filepath.Join(h.root, "/usr/local/bin/containerd-shim-kata-v2"))
		}, kataHandler(), false, "directory /var/ww is group- or world-writable"},
		{"symlinked parent owned by a user", func(h *fakeHost) {
			h.write(kataShim, elfBinary(t, 0), 0o755)
			h.mkdir("/srv/eve")
			os.Chown(filepath.Join(h.root, "/srv/eve"), 1000, 1000)
			os.Symlink(kataShim, filepath.Join(h.root, "/srv/eve/shim"))
			os.RemoveAll(filepath.Join(h.root, "/usr/local/bin"))
			os.Symlink("/srv/eve", filepath.Join(h.root, "/usr/local/bin"))
		}, kataHandler(), false, "directory /srv/eve is owned by uid 1000"},
		{"hardlink to a file a user owns", func(h *fakeHost) {
			h.write("/opt/kata/bin/real", elfBinary(t, 0), 0o755)
			os.Chown(filepath.Join(h.root, "/opt/kata/bin/real"), 1000, 1000)
			os.Link(filepath.Join(h.root, "/opt/kata/bin/real"), filepath.Join(h.root, kataShim))
		}, kataHandler(), false, "owned by uid 1000"},
		{"runtime_path wins", func(h *fakeHost) { h.write("/opt/x/shim", elfBinary(t, 0), 0o755) },
			Handler{Name: "x", RuntimeType: "io.containerd.kata.v2", RuntimePath: "/opt/x/shim"}, true, "/opt/x/shim"},
		{"runtime_path missing", func(h *fakeHost) { h.write(kataShim, elfBinary(t, 0), 0o755) },
			Handler{Name: "x", RuntimeType: "io.containerd.kata.v2", RuntimePath: "/opt/x/shim"}, false, "runtime_path /opt/x/shim: does not exist"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newFakeHost(t)
			tt.setup(h)
			res := h.host().Check(tt.hd)
			c := res.Checks[0]
			if c.Name != "shim" || c.OK != tt.ok || !strings.Contains(c.Detail, tt.want) {
				t.Fatalf("shim check = %+v, want ok=%v and %q", c, tt.ok, tt.want)
			}
			if res.Ready != tt.ok {
				t.Fatalf("ready = %v", res.Ready)
			}
		})
	}
}

func TestSymlinkSwappedAfterCheck(t *testing.T) {
	t.Parallel()
	h := newFakeHost(t)
	h.write(kataShim, elfBinary(t, 0), 0o755)
	h.write("/usr/bin/evil", []byte("#!/bin/sh\nrm -rf /\n"), 0o755)
	host := h.host()
	host.beforeOpen = func(p string) {
		// An attacker replaces the checked shim with a symlink between the
		// resolution and the open.
		full := filepath.Join(h.root, p)
		os.Remove(full)
		os.Symlink("/usr/bin/evil", full)
	}
	c := host.Check(kataHandler()).Checks[0]
	if c.OK || !strings.Contains(c.Detail, "replaced by a symlink") {
		t.Fatalf("shim check = %+v", c)
	}
}

func TestPathValues(t *testing.T) {
	t.Parallel()
	h := newFakeHost(t)
	h.write(kataShim, elfBinary(t, 0), 0o755)
	h.write("/usr/bin/crun", elfBinary(t, 0), 0o755)
	h.write("/etc/spec.json", []byte("{}"), 0o666)
	hd := Handler{Name: "x", RuntimeType: "io.containerd.kata.v2", Paths: []Path{
		{"options.BinaryName", "/usr/bin/crun"},
		{"base_runtime_spec", "/etc/spec.json"},
		{"options.ConfigPath", "/etc/missing.toml"},
		{"options.Root", "/usr/bin/x-state"},
		{"options.Root", "/usr/nope/x"},
	}}
	res := h.host().Check(hd)
	want := map[string]string{
		"options.BinaryName": "ok", "base_runtime_spec": "group- or world-writable",
		"options.ConfigPath": "does not exist", "options.Root": "ok",
	}
	for i, c := range res.Checks[1:] {
		w := want[c.Name]
		if i == 4 {
			w = "directory /usr/nope does not exist"
		}
		if (w == "ok") != c.OK || w != "ok" && !strings.Contains(c.Detail, w) {
			t.Errorf("%s = %+v, want %s", c.Name, c, w)
		}
	}
	if res.Ready {
		t.Fatal("ready with bad paths")
	}
}

// TestPathKinds: each path a handler names is checked by how the shim uses
// it, with the same directory rules as the shim, hop by hop.
func TestPathKinds(t *testing.T) {
	t.Parallel()
	h := newFakeHost(t)
	h.write(kataShim, elfBinary(t, 0), 0o755)
	h.write("/usr/bin/crun", elfBinary(t, 0), 0o755)
	h.mkdir("/var/ww")
	os.Chmod(filepath.Join(h.root, "/var/ww"), 0o777)
	os.Symlink("/usr/bin/crun", filepath.Join(h.root, "/var/ww/crun"))
	os.Symlink("/var/ww/crun", filepath.Join(h.root, "/usr/bin/crun-link"))
	h.mkdir("/run/eve")
	os.Chown(filepath.Join(h.root, "/run/eve"), 1000, 1000)
	h.mkdir("/run/safe")
	h.write("/etc/runsc/log", nil, 0o644)
	syscall.Mkfifo(filepath.Join(h.root, "/etc/runsc/fifo"), 0o644)
	tests := []struct {
		key, path string
		want      string // "" for ok
	}{
		{"options.BinaryName", "/usr/bin/crun-link", "directory /var/ww is group- or world-writable"},
		{"options.BinaryName", "/usr/bin/crun", ""},
		{"options.Root", "/run/eve/runc", "directory /run/eve is owned by uid 1000"},
		{"options.Root", "/run/eve", "directory /run/eve is owned by uid 1000"},
		{"options.Root", "/run/safe/runc", ""},
		{"options.CriuWorkPath", "/var/ww/criu", "directory /var/ww is group- or world-writable"},
		{"options.CriuImagePath", "/usr/bin/crun", "not a directory"},
		{"options.runsc_config.debug-log", "/var/ww/x", "directory /var/ww is group- or world-writable"},
		{"options.runsc_config.debug-log", "/etc/runsc/log", ""},
		{"options.runsc_config.debug-log", "/etc/runsc/new", ""},
		{"options.binary_name", "/etc/runsc/fifo", "is not a directory"},
	}
	for _, tt := range tests {
		c := h.host().checkPathValue(Path{tt.key, tt.path})
		if tt.want == "" && !c.OK || tt.want != "" && (c.OK || !strings.Contains(c.Detail, tt.want)) {
			t.Errorf("%s = %s: %+v, want %q", tt.key, tt.path, c, tt.want)
		}
	}
}

func TestDevices(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, check string
		setup       func(h *fakeHost)
		want        string
	}{
		{"kvm missing", "kvm", func(h *fakeHost) {}, "/dev/kvm does not exist"},
		{"kvm regular file", "kvm", func(h *fakeHost) { h.write("/dev/kvm", nil, 0o600) }, "/dev/kvm is not a character device"},
		{"kvm wrong device", "kvm", func(h *fakeHost) { mknod(t, h, "/dev/kvm", 1, 3) }, "/dev/kvm is device 1:3, want 10:232"},
		{"kvm symlink", "kvm", func(h *fakeHost) { os.Symlink("/dev/null", filepath.Join(h.root, "/dev/kvm")) }, "not a character device"},
		{"vsock missing", "vhost-vsock", func(h *fakeHost) {}, "/dev/vhost-vsock does not exist"},
		{"nvidia missing", "nvidia", func(h *fakeHost) {}, "/dev/nvidiactl does not exist"},
		{"nvidia wrong minor", "nvidia", func(h *fakeHost) { mknod(t, h, "/dev/nvidiactl", 195, 0) }, "/dev/nvidiactl is device 195:0, want 195:255"},
		{"nvidia without a driver", "nvidia", func(h *fakeHost) { mknod(t, h, "/dev/nvidiactl", 195, 255) }, "opening /dev/nvidiactl: no such device or address"},
		{"unknown", "sgx", func(h *fakeHost) {}, "unknown check"},
		{"path missing", "path:/etc/thing", func(h *fakeHost) {}, "does not exist"},
		{"runsc missing", "runsc", func(h *fakeHost) {}, "runsc not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newFakeHost(t)
			h.write(kataShim, elfBinary(t, 0), 0o755)
			tt.setup(h)
			hd := kataHandler()
			hd.Requires = []string{tt.check}
			res := h.host().Check(hd)
			c := res.Checks[len(res.Checks)-1]
			if c.Name != tt.check || c.OK || !strings.Contains(c.Detail, tt.want) || res.Ready {
				t.Fatalf("%s = %+v, want failure %q", tt.check, c, tt.want)
			}
		})
	}
}

func mknod(t *testing.T, h *fakeHost, p string, major, minor uint32) {
	t.Helper()
	dev := (uint64(major&0xfff) << 8) | uint64(minor&0xff) | (uint64(minor&^0xff) << 12) | (uint64(major&^0xfff) << 32)
	if err := syscall.Mknod(filepath.Join(h.root, p), syscall.S_IFCHR|0o600, int(dev)); err != nil {
		t.Skipf("mknod: %v", err)
	}
}

// TestRealKVM runs the kvm check's success path on this machine's real
// /dev/kvm: it must open it and get API version 12 from the ioctl. The real
// host has no /dev/vhost-vsock, and the check must say so.
func TestRealKVM(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/dev/kvm"); err != nil {
		if os.Getenv("RUNTIMECLASSD_REQUIRE_KVM") != "" {
			t.Fatal("/dev/kvm missing")
		}
		t.Skip("no /dev/kvm here")
	}
	c := (&Host{Root: "/"}).checkKVM()
	if !c.OK || c.Detail != "KVM API version 12" {
		t.Fatalf("kvm = %+v", c)
	}
	if _, err := os.Stat("/dev/vhost-vsock"); os.IsNotExist(err) {
		v := (&Host{}).checkRequire("vhost-vsock", Handler{})
		if v.OK || v.Detail != "/dev/vhost-vsock does not exist" {
			t.Fatalf("vhost-vsock = %+v", v)
		}
	}
}

const kataConfig = `[hypervisor.qemu]
path = "/opt/kata/bin/qemu-system-x86_64"
kernel = "/opt/kata/share/kata-containers/vmlinux.container"
image = "/opt/kata/share/kata-containers/kata-containers.img"
machine_type = "q35"

[runtime]
internetworking_model = "tcfilter"
`

func TestKataConfig(t *testing.T) {
	t.Parallel()
	good := func(h *fakeHost) {
		h.write("/opt/kata/bin/qemu-system-x86_64", elfBinary(t, 0), 0o755)
		h.write("/opt/kata/share/kata-containers/vmlinux.container", []byte("kernel"), 0o644)
		h.write("/opt/kata/share/kata-containers/kata-containers.img", []byte("image"), 0o644)
	}
	tests := []struct {
		name   string
		setup  func(h *fakeHost)
		config string // where the config goes; "" for none
		body   string
		hd     Handler
		ok     bool
		want   string
	}{
		{"standard location", good, "/etc/kata-containers/configuration.toml", kataConfig, kataHandler(), true, "hypervisor qemu"},
		{"kata-deploy location", good, "/opt/kata/share/defaults/kata-containers/configuration.toml", kataConfig, kataHandler(), true, "/opt/kata/share/defaults"},
		{"ConfigPath", good, "/opt/kata/custom.toml", kataConfig,
			Handler{Name: "kata", RuntimeType: "io.containerd.kata.v2", Paths: []Path{{"options.ConfigPath", "/opt/kata/custom.toml"}}}, true, "/opt/kata/custom.toml"},
		{"ConfigPath missing, standard one present", good, "/etc/kata-containers/configuration.toml", kataConfig,
			Handler{Name: "kata", RuntimeType: "io.containerd.kata.v2", Paths: []Path{{"options.ConfigPath", "/opt/kata/custom.toml"}}}, false, "no Kata configuration at /opt/kata/custom.toml"},
		{"none", good, "", "", kataHandler(), false, "no Kata configuration at /etc/kata-containers/configuration.toml"},
		{"missing kernel", func(h *fakeHost) {
			good(h)
			os.Remove(filepath.Join(h.root, "/opt/kata/share/kata-containers/vmlinux.container"))
		}, "/etc/kata-containers/configuration.toml", kataConfig, kataHandler(), false, "[hypervisor.qemu] kernel /opt/kata/share/kata-containers/vmlinux.container: does not exist"},
		{"initrd instead of image", func(h *fakeHost) {
			good(h)
			h.write("/opt/kata/share/kata-containers/initrd.img", []byte("x"), 0o644)
		}, "/etc/kata-containers/configuration.toml", strings.Replace(kataConfig, "image = \"/opt/kata/share/kata-containers/kata-containers.img\"", "initrd = \"/opt/kata/share/kata-containers/initrd.img\"", 1), kataHandler(), true, "qemu"},
		{"neither image nor initrd", good, "/etc/kata-containers/configuration.toml", strings.Replace(kataConfig, "image = ", "# image = ", 1), kataHandler(), false, "sets neither image nor initrd"},
		{"hypervisor not executable", func(h *fakeHost) {
			good(h)
			os.Chmod(filepath.Join(h.root, "/opt/kata/bin/qemu-system-x86_64"), 0o644)
		}, "/etc/kata-containers/configuration.toml", kataConfig, kataHandler(), false, "path /opt/kata/bin/qemu-system-x86_64: not executable"},
		{"bad toml", good, "/etc/kata-containers/configuration.toml", "[hypervisor.qemu\n", kataHandler(), false, "configuration.toml"},
		{"no hypervisor", good, "/etc/kata-containers/configuration.toml", "[runtime]\n", kataHandler(), false, "no [hypervisor.NAME] section"},
		{"world-writable config", good, "/etc/kata-containers/configuration.toml", kataConfig + "#0666\n", kataHandler(), false, "group- or world-writable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newFakeHost(t)
			h.write(kataShim, elfBinary(t, 0), 0o755)
			tt.setup(h)
			if tt.config != "" {
				mode := os.FileMode(0o644)
				if strings.HasSuffix(tt.body, "#0666\n") {
					mode = 0o666
				}
				h.write(tt.config, []byte(tt.body), mode)
			}
			hd := tt.hd
			hd.Requires = []string{"kata-config"}
			res := h.host().Check(hd)
			c := res.Checks[len(res.Checks)-1]
			if c.Name != "kata-config" || c.OK != tt.ok || !strings.Contains(c.Detail, tt.want) {
				t.Fatalf("kata-config = %+v, want ok=%v and %q", c, tt.ok, tt.want)
			}
		})
	}
}

func TestShimBinary(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"io.containerd.runc.v2":     "containerd-shim-runc-v2",
		"io.containerd.kata-clh.v2": "containerd-shim-kata-clh-v2",
		"io.containerd.runsc.v1":    "containerd-shim-runsc-v1",
	} {
		if got, err := ShimBinary(in); err != nil || got != want {
			t.Errorf("ShimBinary(%s) = %s, %v", in, got, err)
		}
	}
	if _, err := ShimBinary("kata"); err == nil {
		t.Error("ShimBinary(kata) succeeded")
	}
}

// TestCheckAllChecksEachThingOnce: CheckAll gives what Check gives for
// each handler, and opens each shared file once, however many handlers
// name it.
func TestCheckAllChecksEachThingOnce(t *testing.T) {
	t.Parallel()
	h := newFakeHost(t)
	h.write(kataShim, elfBinary(t, 0), 0o755)
	h.write("/usr/bin/containerd-shim-runc-v2", elfBinary(t, 0), 0o755)
	h.write("/usr/bin/crun", elfBinary(t, 0), 0o755)
	h.write("/usr/bin/bad", []byte("MZ"), 0o755)
	h.write("/etc/kata-containers/configuration.toml", []byte(kataConfig), 0o644)
	h.write("/etc/kata-b.toml", []byte("[hypervisor.qemu]\n"), 0o644)
	var hds []Handler
	for i := range 30 {
		hds = append(hds,
			Handler{Name: fmt.Sprintf("runc-%d", i), RuntimeType: "io.containerd.runc.v2", Paths: []Path{{"options.BinaryName", "/usr/bin/crun"}}},
			Handler{Name: fmt.Sprintf("bad-%d", i), RuntimeType: "io.containerd.runc.v2", Paths: []Path{{"options.BinaryName", "/usr/bin/bad"}}, Requires: []string{"path:/usr/bin/crun"}},
			Handler{Name: fmt.Sprintf("kata-%d", i), RuntimeType: "io.containerd.kata.v2", Requires: []string{"kata-config", "kvm"}},
			Handler{Name: fmt.Sprintf("kata-b-%d", i), RuntimeType: "io.containerd.kata.v2", Requires: []string{"kata-config"}, Paths: []Path{{"options.ConfigPath", "/etc/kata-b.toml"}}})
	}
	host := h.host()
	var want []Result
	for _, hd := range hds {
		want = append(want, host.Check(hd))
	}
	opens := map[string]int{}
	host.beforeOpen = func(p string) { opens[p]++ }
	got := host.CheckAll(hds)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("CheckAll:\n%+v\nCheck one by one:\n%+v", got, want)
	}
	for p, n := range opens {
		if n > 2 { // a file may be both a binary and a required path
			t.Errorf("%s opened %d times", p, n)
		}
	}
	if want[3].Ready || !strings.Contains(want[3].Reason(), "/etc/kata-b.toml") {
		t.Errorf("kata-b: %+v", want[3])
	}
	if host.seen != nil {
		t.Error("CheckAll left its results in the host")
	}
}
