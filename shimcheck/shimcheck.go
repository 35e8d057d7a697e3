// Package shimcheck decides whether this host can really run a runtime
// handler: its shim resolves as containerd resolves it and is a safe
// executable for this machine, every file it names is safe, and the host
// checks it requires pass (/dev/kvm answers KVM_GET_API_VERSION, vhost-vsock
// opens, Kata's configuration points to files that exist, ...).
//
// Every host path goes through Host.Root, so tests build fake hosts in a
// temp dir; symlinks are resolved inside that root, as in a chroot. A file
// is safe when it is a regular file owned by root, not group- or
// world-writable, and when every directory on the way to it is owned by
// root and not group- or world-writable either: the directories of the path
// as written (containerd executes it unresolved) and of every symlink hop,
// not only the final target's. Files are checked through a descriptor
// opened with O_NOFOLLOW on the resolved path, so a symlink swapped in after
// the check fails the open instead of being trusted.
package shimcheck

import (
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	"github.com/runtimeclassd/runtimeclassd/internal/safepath"
)

// Handler is what the checks need to know about a runtime handler.
type Handler struct {
	Name        string
	RuntimeType string
	// RuntimePath, when set, is the shim binary, instead of the one named
	// after RuntimeType.
	RuntimePath string
	// Paths are the other paths the handler names, by key
	// ("options.BinaryName", "base_runtime_spec", ...).
	Paths []Path
	// Requires are host checks: kvm, vhost-vsock, kata-config, runsc,
	// nvidia, path:/ABS.
	Requires []string
}

// Path is a path value of a handler.
type Path struct{ Key, Path string }

// Check is the outcome of one check.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// Result is the readiness of one handler.
type Result struct {
	Name   string  `json:"name"`
	Ready  bool    `json:"ready"`
	Checks []Check `json:"checks"`
}

// Reason summarises why a handler is not ready ("" if it is).
func (r Result) Reason() string {
	var bad []string
	for _, c := range r.Checks {
		if !c.OK {
			bad = append(bad, c.Name+": "+c.Detail)
		}
	}
	return strings.Join(bad, "; ")
}

// Host is the machine the checks look at.
type Host struct {
	// Root prefixes every host path; "" or "/" is the real root.
	Root string
	// ShimPath are the directories searched for shims and runsc, in order,
	// as host paths (Root is prefixed).
	ShimPath []string
	// GOARCH is the architecture binaries must be built for; "" is this
	// process's.
	GOARCH string

	// Forbidden are directories, as real paths (not under Root), whose
	// content someone other than the packages chooses: the policy
	// directory and the daemon config's. No checked path may be in one,
	// as written or resolved.
	Forbidden []string

	// beforeOpen, if set, runs between resolving a path and opening it
	// (tests use it to swap a file).
	beforeOpen func(hostPath string)
	// seen, during CheckAll, holds the checks made so far, by what they
	// depend on.
	seen map[string]Check
	// interpDepth is how many interpreters deep a check is.
	interpDepth int
}

// Known reports whether name is a check Check knows.
func Known(name string) bool {
	if strings.HasPrefix(name, "path:") {
		return true
	}
	switch name {
	case "kvm", "vhost-vsock", "kata-config", "runsc", "nvidia":
		return true
	}
	return false
}

// Check runs every check of a handler. A handler is ready when all pass.
func (h *Host) Check(hd Handler) Result {
	res := Result{Name: hd.Name}
	res.Checks = append(res.Checks, h.once("shim\x00"+hd.RuntimePath+"\x00"+hd.RuntimeType, func() Check { return h.checkShim(hd) }))
	for _, p := range hd.Paths {
		res.Checks = append(res.Checks, h.once("path\x00"+p.Key+"\x00"+p.Path, func() Check { return h.checkPathValue(p) }))
	}
	for _, r := range hd.Requires {
		key := "require\x00" + r
		if r == "kata-config" || r == "runsc" { // it looks where the handler's ConfigPath says
			for _, p := range hd.Paths {
				if p.Key == "options.ConfigPath" {
					key += "\x00" + p.Path
				}
			}
		}
		res.Checks = append(res.Checks, h.once(key, func() Check { return h.checkRequire(r, hd) }))
	}
	res.Ready = true
	for _, c := range res.Checks {
		res.Ready = res.Ready && c.OK
	}
	return res
}

// CheckAll runs Check for each handler, in order, and makes each check
// once: handlers that share a shim, a binary, a file or a host check share
// its outcome, as if the host were looked at once for all of them. Its cost
// grows with the distinct paths and checks, not with the handlers.
func (h *Host) CheckAll(hds []Handler) []Result {
	c := *h
	c.seen = map[string]Check{}
	out := make([]Result, len(hds))
	for i, hd := range hds {
		out[i] = c.Check(hd)
	}
	return out
}

// once runs check, or during CheckAll returns what the same check gave.
// key names everything the check depends on.
func (h *Host) once(key string, check func() Check) Check {
	if h.seen == nil {
		return check()
	}
	c, ok := h.seen[key]
	if !ok {
		c = check()
		h.seen[key] = c
	}
	return c
}

func pass(name, detail string) Check        { return Check{Name: name, OK: true, Detail: detail} }
func fail(name string, err error) Check     { return Check{Name: name, Detail: err.Error()} }
func failf(name, f string, a ...any) Check  { return Check{Name: name, Detail: fmt.Sprintf(f, a...)} }
func (h *Host) path(hostPath string) string { return filepath.Join(h.root(), hostPath) }
func (h *Host) root() string                { return cmpOr(h.Root, "/") }
func cmpOr(a, b string) string {
	if a == "" {
		return b
	}
	return a
}

// ShimBinary returns the shim binary name containerd derives from a
// runtime type: io.containerd.runc.v2 -> containerd-shim-runc-v2.
func ShimBinary(runtimeType string) (string, error) {
	parts := strings.Split(runtimeType, ".")
	if len(parts) < 4 || parts[0] != "io" || parts[1] != "containerd" || !strings.HasPrefix(parts[len(parts)-1], "v") {
		return "", fmt.Errorf("runtime_type %q is not of the form io.containerd.NAME.vN", runtimeType)
	}
	name := strings.Join(parts[2:len(parts)-1], ".")
	return "containerd-shim-" + name + "-" + parts[len(parts)-1], nil
}

func (h *Host) checkShim(hd Handler) Check {
	const name = "shim"
	if hd.RuntimePath != "" {
		detail, err := h.safeFile(hd.RuntimePath, true)
		if err != nil {
			return failf(name, "runtime_path %s: %v", hd.RuntimePath, err)
		}
		return pass(name, hd.RuntimePath+" ("+detail+")")
	}
	bin, err := ShimBinary(hd.RuntimeType)
	if err != nil {
		return fail(name, err)
	}
	p, detail, err := h.lookPath(bin)
	if err != nil {
		return fail(name, err)
	}
	return pass(name, p+" ("+detail+")")
}

// lookPath finds an executable on the shim path, as containerd does, and
// checks it. A candidate that exists but fails the checks is reported, not
// skipped: containerd would run it. So is an unsafe directory searched
// before the shim is found: anyone who can write there could put a shim of
// that name in it, and containerd would run that one.
func (h *Host) lookPath(bin string) (string, string, error) {
	for _, dir := range h.ShimPath {
		if dir == "" || !filepath.IsAbs(dir) {
			continue
		}
		rd, err := safepath.Resolve(h.root(), "/", dir)
		if errors.Is(err, safepath.ErrNotExist) {
			continue
		}
		if err == nil {
			err = h.safeDir(rd)
		}
		if err != nil {
			return "", "", fmt.Errorf("shim path %s: %w", dir, err)
		}
		p := filepath.Join(dir, bin)
		if _, err := os.Lstat(h.path(filepath.Join(rd, bin))); err != nil {
			continue
		}
		detail, err := h.safeFile(p, true)
		if err != nil {
			return p, "", fmt.Errorf("%s: %w", p, err)
		}
		return p, detail, nil
	}
	return "", "", fmt.Errorf("%s not found in %s", bin, strings.Join(h.ShimPath, ":"))
}

// checkPathValue checks a path a handler names, by how the shim uses it
// (see kindOf).
func (h *Host) checkPathValue(p Path) Check {
	if p.Key == "base_runtime_spec" {
		return h.checkBaseSpec(p)
	}
	switch kindOf(p.Key) {
	case kindExec, kindFile:
		detail, err := h.safeFile(p.Path, kindOf(p.Key) == kindExec)
		if err != nil {
			return failf(p.Key, "%s: %v", p.Path, err)
		}
		return pass(p.Key, p.Path+" ("+detail+")")
	}
	detail, err := h.safeEntry(p.Path, kindOf(p.Key) == kindDir)
	if err != nil {
		return failf(p.Key, "%s: %v", p.Path, err)
	}
	return pass(p.Key, p.Path+" ("+detail+")")
}

// kind is how a shim uses a path.
type kind int

const (
	kindAny  kind = iota // unknown use: a safe file or directory, or not there yet
	kindExec             // executed
	kindFile             // read
	kindDir              // a directory the runtime keeps state in; created on first use
)

// kindOf tells how the path under a handler key is used. Option keys come
// in containerd's canonical spelling (policy writes them so); keys of shims
// whose options containerd doesn't know are kindAny.
func kindOf(key string) kind {
	switch key {
	case "runtime_path", "options.BinaryName":
		return kindExec
	case "base_runtime_spec", "options.ConfigPath":
		return kindFile
	case "options.Root", "options.CriuImagePath", "options.CriuWorkPath":
		return kindDir
	}
	return kindAny
}

// safeEntry checks a path that may be a directory, or may not exist yet
// (the runtime creates it): if it exists, it must be a safe directory (or,
// unless dirOnly, a safe regular file); if not, the directory that would
// hold it must be safe.
func (h *Host) safeEntry(hostPath string, dirOnly bool) (string, error) {
	if !filepath.IsAbs(hostPath) {
		return "", fmt.Errorf("path must be absolute")
	}
	resolved, err := safepath.Resolve(h.root(), "/", hostPath)
	if errors.Is(err, safepath.ErrNotExist) {
		parent := filepath.Dir(hostPath)
		rp, err := safepath.Resolve(h.root(), "/", parent)
		if errors.Is(err, safepath.ErrNotExist) {
			return "", fmt.Errorf("directory %s does not exist", parent)
		}
		if err != nil {
			return "", err
		}
		if err := h.safeDir(rp); err != nil {
			return "", err
		}
		return "does not exist yet; the directories that will hold it are root-owned and not writable by others", nil
	}
	if err != nil {
		return "", err
	}
	if err := h.notForbidden(hostPath, resolved); err != nil {
		return "", err
	}
	fi, err := os.Lstat(h.path(resolved))
	if err != nil {
		return "", err
	}
	if fi.Mode().IsRegular() && !dirOnly {
		return h.safeFile(hostPath, false)
	}
	if err := h.safeDir(resolved); err != nil {
		return "", err
	}
	return "root-owned directory", nil
}

// safeDir checks that a resolved path is a directory owned by root and not
// writable by others (its parents were checked on the way to it).
func (h *Host) safeDir(resolved string) error {
	fi, err := os.Lstat(h.path(resolved))
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory (%s)", resolved, fi.Mode().Type())
	}
	if err := safepath.RootOwned(resolved, fi); err != nil {
		return fmt.Errorf("directory %w", err)
	}
	return nil
}

func (h *Host) checkRequire(r string, hd Handler) Check {
	switch {
	case r == "kvm":
		return h.checkKVM()
	case r == "vhost-vsock":
		return h.checkCharDevice("vhost-vsock", "/dev/vhost-vsock", 10, 241, os.O_RDWR)
	case r == "kata-config":
		return h.checkKataConfig(hd)
	case r == "runsc":
		return h.checkRunsc(hd)
	case r == "nvidia":
		// Read-only: the packaged unit grants /dev/nvidiactl read access
		// only (DeviceAllow=/dev/nvidiactl r), and an open that reaches
		// the driver is all the check needs.
		return h.checkCharDevice("nvidia", "/dev/nvidiactl", 195, 255, os.O_RDONLY)
	case strings.HasPrefix(r, "path:"):
		p := strings.TrimPrefix(r, "path:")
		if !filepath.IsAbs(p) {
			return failf(r, "path must be absolute")
		}
		detail, err := h.safeFile(p, false)
		if err != nil {
			return fail(r, err)
		}
		return pass(r, detail)
	}
	return failf(r, "unknown check")
}

// checkCharDevice checks that a device node exists, is the expected
// character device, and opens with flag (the access the packaged unit's
// DeviceAllow= grants for it).
func (h *Host) checkCharDevice(name, dev string, major, minor uint32, flag int) Check {
	f, err := h.openDevice(dev, major, minor, flag)
	if err != nil {
		return fail(name, err)
	}
	f.Close()
	mode := "read-write"
	if flag == os.O_RDONLY {
		mode = "read-only"
	}
	return pass(name, dev+" opens "+mode)
}

func (h *Host) openDevice(dev string, major, minor uint32, flag int) (*os.File, error) {
	p := h.path(dev)
	fi, err := os.Lstat(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s does not exist", dev)
		}
		return nil, err
	}
	if fi.Mode()&os.ModeCharDevice == 0 || fi.Mode()&os.ModeDevice == 0 {
		return nil, fmt.Errorf("%s is not a character device (%s)", dev, fi.Mode().Type())
	}
	st := fi.Sys().(*syscall.Stat_t)
	if maj, mnr := unixMajor(st.Rdev), unixMinor(st.Rdev); maj != major || mnr != minor {
		return nil, fmt.Errorf("%s is device %d:%d, want %d:%d", dev, maj, mnr, major, minor)
	}
	f, err := os.OpenFile(p, flag|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the host path under Root says nothing more
		}
		return nil, fmt.Errorf("opening %s: %w", dev, err)
	}
	return f, nil
}

// kvmGetAPIVersion is _IO(KVMIO, 0x00).
const kvmGetAPIVersion = 0xAE00

func (h *Host) checkKVM() Check {
	f, err := h.openDevice("/dev/kvm", 10, 232, os.O_RDWR)
	if err != nil {
		return fail("kvm", err)
	}
	defer f.Close()
	v, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), kvmGetAPIVersion, 0)
	if errno != 0 {
		return failf("kvm", "KVM_GET_API_VERSION on /dev/kvm: %v", errno)
	}
	if v != 12 {
		return failf("kvm", "KVM API version %d, want 12", v)
	}
	return pass("kvm", "KVM API version 12")
}

func unixMajor(dev uint64) uint32 { return uint32((dev>>32)&0xfffff000) | uint32((dev>>8)&0xfff) }
func unixMinor(dev uint64) uint32 { return uint32((dev>>12)&0xffffff00) | uint32(dev&0xff) }

// safeFile resolves hostPath inside the root, checks its directories, opens
// it without following a last-moment symlink, and checks the open file. If
// exec, it must be executable and an ELF for this architecture or a script.
// It returns a short description.
func (h *Host) safeFile(hostPath string, exec bool) (string, error) {
	f, detail, err := h.openSafe(hostPath, exec)
	if err != nil {
		return "", err
	}
	f.Close()
	return detail, nil
}

// openSafe is safeFile that keeps the checked file open for reading.
func (h *Host) openSafe(hostPath string, exec bool) (*os.File, string, error) {
	if !filepath.IsAbs(hostPath) {
		return nil, "", fmt.Errorf("path must be absolute")
	}
	// Every directory on the way, hop by hop, must be safe; the file
	// itself is checked once opened.
	resolved, err := safepath.Resolve(h.root(), "/", hostPath)
	if err != nil {
		return nil, "", err
	}
	if err := h.notForbidden(hostPath, resolved); err != nil {
		return nil, "", err
	}
	if h.beforeOpen != nil {
		h.beforeOpen(resolved)
	}
	f, err := os.OpenFile(h.path(resolved), os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, "", fmt.Errorf("%s was replaced by a symlink while it was checked", resolved)
		}
		if errors.Is(err, os.ErrNotExist) {
			return nil, "", fmt.Errorf("does not exist")
		}
		return nil, "", err
	}
	detail, err := h.checkOpen(f, resolved, exec)
	if err != nil {
		f.Close()
		return nil, "", err
	}
	if resolved != hostPath {
		detail = "via " + resolved + ", " + detail
	}
	return f, detail, nil
}

func (h *Host) checkOpen(f *os.File, resolved string, exec bool) (string, error) {
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("not a regular file (%s)", fi.Mode().Type())
	}
	if err := safepath.RootOwned(resolved, fi); err != nil {
		return "", err
	}
	if !exec {
		return "root-owned file", nil
	}
	if fi.Mode().Perm()&0o111 == 0 {
		return "", fmt.Errorf("not executable (mode %04o)", fi.Mode().Perm())
	}
	kind, err := h.binaryKind(f)
	if err != nil {
		return "", err
	}
	// What the kernel runs first: a script's interpreter, an ELF's
	// program interpreter (the dynamic loader).
	interp, err := interpreterOf(f, kind)
	if err != nil || interp == "" {
		return kind, err
	}
	if h.interpDepth >= maxInterpDepth {
		return "", fmt.Errorf("interpreters nested more than %d deep", maxInterpDepth)
	}
	inner := *h
	inner.interpDepth++
	c := inner.once(fmt.Sprintf("interp\x00%s\x00%t", interp, kind == "script"), func() Check {
		if _, err := inner.safeFile(interp, kind == "script"); err != nil {
			return fail("", err)
		}
		return pass("", "")
	})
	if !c.OK {
		return "", fmt.Errorf("its interpreter %s: %s", interp, c.Detail)
	}
	return kind + ", interpreter " + interp, nil
}

// maxInterpDepth is how deep scripts may name scripts as interpreters
// (Linux stops at 4 too).
const maxInterpDepth = 4

// interpreterOf is the interpreter a script's "#!" line names, or the
// program interpreter (PT_INTERP) of an ELF; "" for a static ELF.
func interpreterOf(f io.ReaderAt, kind string) (string, error) {
	if kind == "script" {
		var line [256]byte // the kernel reads this much of the #! line
		n, _ := f.ReadAt(line[:], 0)
		l := string(line[2:n])
		if i := strings.IndexByte(l, '\n'); i >= 0 {
			l = l[:i]
		}
		fields := strings.Fields(l)
		if len(fields) == 0 {
			return "", fmt.Errorf("a script whose #! line names no interpreter")
		}
		if !filepath.IsAbs(fields[0]) {
			return "", fmt.Errorf("a script whose interpreter %q is not an absolute path", fields[0])
		}
		return fields[0], nil
	}
	ef, err := elf.NewFile(f)
	if err != nil {
		return "", nil // the header was checked; a truncated file is the loader's problem
	}
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP {
			b := make([]byte, min(p.Filesz, 4096))
			if _, err := p.ReadAt(b, 0); err != nil {
				return "", fmt.Errorf("reading the ELF's program interpreter: %w", err)
			}
			interp := strings.TrimRight(string(b), "\x00")
			if !filepath.IsAbs(interp) {
				return "", fmt.Errorf("an ELF whose program interpreter %q is not an absolute path", interp)
			}
			return interp, nil
		}
	}
	return "", nil
}

// binaryKind tells an ELF for the right machine or a script apart from
// anything else.
func (h *Host) binaryKind(f io.ReaderAt) (string, error) {
	var head [4]byte
	if _, err := f.ReadAt(head[:], 0); err != nil {
		return "", fmt.Errorf("reading the binary: %w", err)
	}
	if head[0] == '#' && head[1] == '!' {
		return "script", nil
	}
	machine, err := elfMachine(f)
	if err != nil {
		return "", err
	}
	arch := cmpOr(h.GOARCH, runtime.GOARCH)
	if want, ok := machines[arch]; ok && machine != want {
		return "", fmt.Errorf("ELF binary for %s, but this host is %s", machineName(machine), arch)
	}
	return "ELF " + machineName(machine), nil
}

// notForbidden refuses a path that is, as written or resolved, in one of
// the Forbidden directories (or is one).
func (h *Host) notForbidden(hostPath, resolved string) error {
	for _, f := range h.Forbidden {
		real := []string{filepath.Clean(f)}
		if r, err := filepath.EvalSymlinks(f); err == nil && r != real[0] {
			real = append(real, r)
		}
		for _, p := range []string{hostPath, resolved} {
			full := filepath.Clean(h.path(p))
			for _, d := range real {
				if full == d || strings.HasPrefix(full, strings.TrimSuffix(d, "/")+"/") {
					return fmt.Errorf("is in %s, whose content whoever writes policies chooses (the policy directory or the daemon config's); name a file the packages installed", f)
				}
			}
		}
	}
	return nil
}

func statOwner(fi os.FileInfo) uint32 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Uid
	}
	return 0
}
