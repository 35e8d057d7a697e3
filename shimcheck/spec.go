package shimcheck

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// maxSpecSize is the largest base_runtime_spec read.
const maxSpecSize = 4 << 20

// defaultCapabilities are the capabilities containerd gives a container
// (oci.populateDefaultUnixSpec): a base spec may not add to them, since
// what it grants reaches every container of the class unseen by the
// Kubernetes admission that judges pod specs.
var defaultCapabilities = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
	"CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// checkBaseSpec checks a base_runtime_spec: a safe file, and its content
// as containerd reads it (encoding/json into the OCI spec struct: keys
// without regard to case, the last of duplicates) and as runc then runs
// it. Every hook is a program runc runs as root: it gets the executable
// checks. And what would reach every container of the class unseen by
// admission control is refused: a bind mount from the host, a capability
// beyond containerd's defaults, a device the container may use, a missing
// mount namespace, a namespace joined by path.
func (h *Host) checkBaseSpec(p Path) Check {
	f, detail, err := h.openSafe(p.Path, false)
	if err != nil {
		return failf(p.Key, "%s: %v", p.Path, err)
	}
	src, err := io.ReadAll(io.LimitReader(f, maxSpecSize+1))
	f.Close()
	if err != nil {
		return failf(p.Key, "%s: %v", p.Path, err)
	}
	if len(src) > maxSpecSize {
		return failf(p.Key, "%s: larger than %d bytes", p.Path, maxSpecSize)
	}
	var spec specs.Spec
	if err := json.Unmarshal(src, &spec); err != nil {
		return failf(p.Key, "%s: not an OCI runtime spec: %v", p.Path, err)
	}
	if spec.Version == "" {
		return failf(p.Key, "%s: not an OCI runtime spec: no ociVersion", p.Path)
	}
	if msg := h.specProblem(&spec); msg != "" {
		return failf(p.Key, "%s: %s", p.Path, msg)
	}
	return pass(p.Key, p.Path+" ("+detail+", an OCI spec: "+specSummary(&spec)+")")
}

// sourcelessMounts are the mount types whose source names nothing on the
// host (the kernel makes them), the ones containerd's default spec uses:
// any other type (overlay with lowerdir=/etc, ext4 from a device, a FUSE
// or network file system) could show host files to every container.
var sourcelessMounts = []string{"proc", "sysfs", "tmpfs", "devpts", "mqueue", "cgroup", "cgroup2"}

func (h *Host) specProblem(s *specs.Spec) string {
	if s.Hooks != nil {
		for _, l := range []struct {
			name  string
			hooks []specs.Hook
			//lint:ignore SA1019 deprecated in the spec, but runc still runs prestart hooks
		}{{"prestart", s.Hooks.Prestart}, {"createRuntime", s.Hooks.CreateRuntime}, {"createContainer", s.Hooks.CreateContainer},
			{"startContainer", s.Hooks.StartContainer}, {"poststart", s.Hooks.Poststart}, {"poststop", s.Hooks.Poststop}} {
			for i, hk := range l.hooks {
				if _, err := h.safeFile(hk.Path, true); err != nil {
					return fmt.Sprintf("hooks.%s[%d].path %q, which runc runs as root: %v", l.name, i, hk.Path, err)
				}
			}
		}
	}
	for i, m := range s.Mounts {
		if m.Type == "bind" || slices.Contains(m.Options, "bind") || slices.Contains(m.Options, "rbind") {
			return fmt.Sprintf("mounts[%d] binds the host's %q into every container of the class; put host paths in the pod spec, where admission control sees them", i, m.Source)
		}
		if !slices.Contains(sourcelessMounts, m.Type) {
			return fmt.Sprintf("mounts[%d] (%s on %q) is of type %q, which can take host paths (an overlay's lowerdir, a block device); a base spec may hold only mounts of types %s", i, m.Source, m.Destination, m.Type, strings.Join(sourcelessMounts, ", "))
		}
	}
	if c := s.Process; c != nil && c.Capabilities != nil {
		for _, l := range []struct {
			name string
			caps []string
		}{{"bounding", c.Capabilities.Bounding}, {"effective", c.Capabilities.Effective}, {"permitted", c.Capabilities.Permitted},
			{"inheritable", c.Capabilities.Inheritable}, {"ambient", c.Capabilities.Ambient}} {
			for _, cp := range l.caps {
				if !slices.Contains(defaultCapabilities, strings.ToUpper(cp)) {
					return fmt.Sprintf("process.capabilities.%s adds %s, beyond containerd's default set, to every container of the class; grant it in the pod spec", l.name, cp)
				}
			}
		}
	}
	if s.Linux != nil {
		mnt := false
		for i, ns := range s.Linux.Namespaces {
			if ns.Path != "" {
				return fmt.Sprintf("linux.namespaces[%d] joins the %s namespace at %q", i, ns.Type, ns.Path)
			}
			mnt = mnt || ns.Type == specs.MountNamespace
		}
		if !mnt {
			return "linux.namespaces has no mount namespace: containers would share the host's mounts"
		}
		if len(s.Linux.Devices) > 0 {
			return fmt.Sprintf("linux.devices gives every container of the class the device %s", s.Linux.Devices[0].Path)
		}
		if r := s.Linux.Resources; r != nil {
			for i, d := range r.Devices {
				if d.Allow {
					return fmt.Sprintf("linux.resources.devices[%d] allows devices to every container of the class", i)
				}
			}
		}
	} else {
		return "no linux section, so no mount namespace: containers would share the host's mounts"
	}
	return ""
}

func specSummary(s *specs.Spec) string {
	n := 0
	if s.Hooks != nil {
		//lint:ignore SA1019 deprecated in the spec, but runc still runs prestart hooks
		n = len(s.Hooks.Prestart) + len(s.Hooks.CreateRuntime) + len(s.Hooks.CreateContainer) +
			len(s.Hooks.StartContainer) + len(s.Hooks.Poststart) + len(s.Hooks.Poststop)
	}
	return fmt.Sprintf("%d hooks checked", n)
}
