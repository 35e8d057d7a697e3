package shimcheck

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// RunscGlobalConfigs are where gVisor's shim (containerd-shim-runsc-v1)
// also looks for its options, the first that exists, besides the file the
// handler's options.ConfigPath names.
var RunscGlobalConfigs = []string{"/run/containerd/runsc/config.toml", "/etc/containerd/runsc/config.toml"}

// checkRunsc checks what gVisor's shim runs: runsc, found on the shim
// path unless a configuration names it (binary_name), and every path its
// configurations name (root, log_path, the flags of [runsc_config]...).
// The configurations are read as the shim reads them: its TOML decoder
// matches keys without regard to case, so two spellings of one key are
// refused.
func (h *Host) checkRunsc(hd Handler) Check {
	const name = "runsc"
	var files []string
	for _, p := range hd.Paths {
		if p.Key == "options.ConfigPath" {
			files = append(files, p.Path)
		}
	}
	for _, g := range RunscGlobalConfigs {
		if _, err := os.Lstat(h.path(g)); err == nil {
			files = append(files, g)
			break
		}
	}
	var binaries, details []string
	for _, f := range files {
		cfg, err := h.readFolded(f)
		if err != nil {
			return fail(name, err)
		}
		for k, v := range cfg {
			if k == "binary_name" {
				s, ok := v.(string)
				if !ok {
					return failf(name, "%s: binary_name is not a string", f)
				}
				if s != "" {
					binaries = append(binaries, s)
				}
				continue
			}
			if err := h.checkHostPaths(v, []string{k}); err != nil {
				return failf(name, "%s: %v", f, err)
			}
		}
		details = append(details, f)
	}
	if len(binaries) == 0 {
		binaries = []string{"runsc"}
	}
	// Each one a configuration names is checked: which the shim takes
	// when two do is its business.
	var p, detail string
	for _, binary := range binaries {
		var err error
		if filepath.IsAbs(binary) {
			p = binary
			detail, err = h.safeFile(binary, true)
		} else if strings.Contains(binary, "/") {
			err = fmt.Errorf("binary_name %q is relative: the shim would resolve it from its working directory", binary)
		} else {
			p, detail, err = h.lookPath(binary)
		}
		if err != nil {
			if len(details) > 0 {
				return failf(name, "%s: binary_name %s: %v", strings.Join(details, ", "), binary, err)
			}
			return fail(name, err)
		}
	}
	if len(details) > 0 {
		detail += "; " + strings.Join(details, ", ") + " checked"
	}
	return pass(name, p+" ("+detail+")")
}
