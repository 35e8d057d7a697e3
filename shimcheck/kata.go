package shimcheck

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"github.com/runtimeclassd/runtimeclassd/internal/safepath"
)

// KataConfigPaths are where Kata looks for its configuration when the
// handler gives no options.ConfigPath: the admin's override, the distro
// default, and kata-deploy's location.
var KataConfigPaths = []string{
	"/etc/kata-containers/configuration.toml",
	"/usr/share/defaults/kata-containers/configuration.toml",
	"/opt/kata/share/defaults/kata-containers/configuration.toml",
}

// kataExec are the keys of a [hypervisor.NAME] table that name a program
// Kata runs on the host; kataFiles the files it reads (boots the VM from).
var (
	kataExec  = []string{"path", "jailer_path", "virtio_fs_daemon", "ctlpath"}
	kataFiles = []string{"kernel", "image", "initrd", "firmware", "firmware_volume"}
)

// maxConfigSize bounds a configuration file read by the checks.
const maxConfigSize = 4 << 20

// checkKataConfig finds Kata's configuration.toml and reads it the way
// Kata does: its TOML decoder matches keys without regard to case (so two
// spellings of one key are ambiguous and refused), and the drop-ins of a
// config.d directory next to it are merged over it in lexical order. It
// checks that each [hypervisor.NAME] names a hypervisor, a kernel and an
// image or initrd that are safe files, that every program a hypervisor
// table names (jailer, virtiofsd, ...) is a safe executable, and that
// every other host path in it is safe or would be created only where
// root alone can write.
func (h *Host) checkKataConfig(hd Handler) Check {
	const name = "kata-config"
	candidates := KataConfigPaths
	for _, p := range hd.Paths {
		if p.Key == "options.ConfigPath" {
			candidates = []string{p.Path}
		}
	}
	var path string
	for _, c := range candidates {
		if _, err := os.Lstat(h.path(c)); err == nil {
			path = c
			break
		}
	}
	if path == "" {
		return failf(name, "no Kata configuration at %s", strings.Join(candidates, ", "))
	}
	cfg, err := h.readFolded(path)
	if err != nil {
		return fail(name, err)
	}
	files := []string{path}
	dropins, err := h.kataDropIns(path)
	if err != nil {
		return fail(name, err)
	}
	for _, d := range dropins {
		over, err := h.readFolded(d)
		if err != nil {
			return fail(name, err)
		}
		mergeFolded(cfg, over)
		files = append(files, d)
	}
	where := strings.Join(files, " + ")
	hvs, _ := cfg["hypervisor"].(map[string]any)
	if len(hvs) == 0 {
		return failf(name, "%s has no [hypervisor.NAME] section", where)
	}
	names := make([]string, 0, len(hvs))
	for n := range hvs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, hv := range names {
		t, _ := hvs[hv].(map[string]any)
		str := func(k string) string { s, _ := t[k].(string); return s }
		if str("path") == "" {
			return failf(name, "%s: [hypervisor.%s] has no path", where, hv)
		}
		if str("kernel") == "" {
			return failf(name, "%s: [hypervisor.%s] has no kernel", where, hv)
		}
		if str("image") == "" && str("initrd") == "" {
			return failf(name, "%s: [hypervisor.%s] sets neither image nor initrd", where, hv)
		}
		for _, k := range kataExec {
			if v := str(k); v != "" {
				if _, err := h.safeFile(v, true); err != nil {
					return failf(name, "%s: [hypervisor.%s] %s %s: %v", where, hv, k, v, err)
				}
			}
		}
		for _, k := range kataFiles {
			if v := str(k); v != "" {
				if _, err := h.safeFile(v, false); err != nil {
					return failf(name, "%s: [hypervisor.%s] %s %s: %v", where, hv, k, v, err)
				}
			}
		}
	}
	// Every other host path anywhere in the configuration: sockets,
	// stores, bind mounts, templates, entropy sources.
	if err := h.checkHostPaths(cfg, nil); err != nil {
		return failf(name, "%s: %v", where, err)
	}
	return pass(name, fmt.Sprintf("%s: hypervisor %s, kernel and image present", where, strings.Join(names, ", ")))
}

// kataDropIns are the *.toml files of the config.d directory next to
// Kata's configuration (the directory of the file as resolved), sorted:
// Kata 3.x merges them over the configuration in that order.
func (h *Host) kataDropIns(path string) ([]string, error) {
	resolved, err := safepath.Resolve(h.root(), "/", path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	dir := filepath.Join(filepath.Dir(resolved), "config.d")
	fi, err := os.Lstat(h.path(dir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if fi.Mode()&os.ModeSymlink != 0 || !fi.IsDir() {
		return nil, fmt.Errorf("%s: Kata's drop-in directory is not a directory (%s); refusing what Kata would read from it", dir, fi.Mode().Type())
	}
	if err := h.safeDir(dir); err != nil {
		return nil, fmt.Errorf("the drop-in directory of Kata's configuration: %w", err)
	}
	entries, err := os.ReadDir(h.path(dir))
	if err != nil {
		return nil, err
	}
	// Every entry, as Kata takes them (os.ReadDir: sorted by name, dotfiles
	// and names that don't end in .toml included: a foo.toml.rpmnew or a
	// .conf symlink is merged like the rest).
	var out []string
	for _, e := range entries {
		out = append(out, filepath.Join(dir, e.Name()))
	}
	return out, nil
}

// readFolded reads a safe TOML file into a map whose keys are folded to
// lower case at every level, as a case-insensitive decoder sees them. Two
// keys of one table that fold to the same name are refused: which one the
// runtime takes is not something to guess.
func (h *Host) readFolded(path string) (map[string]any, error) {
	f, _, err := h.openSafe(path, false)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	src, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(src) > maxConfigSize {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxConfigSize)
	}
	var raw map[string]any
	if err := toml.Unmarshal(src, &raw); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	folded, err := fold(raw, "")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return folded.(map[string]any), nil
}

func fold(v any, at string) (any, error) {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		spelled := map[string]string{}
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			l := strings.ToLower(k)
			if prev, dup := spelled[l]; dup {
				return nil, fmt.Errorf("%s%s and %s%s are one key to a decoder that ignores case; set it once", at, prev, at, k)
			}
			spelled[l] = k
			f, err := fold(v[k], at+k+".")
			if err != nil {
				return nil, err
			}
			out[l] = f
		}
		return out, nil
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			f, err := fold(e, fmt.Sprintf("%s%d.", at, i))
			if err != nil {
				return nil, err
			}
			out[i] = f
		}
		return out, nil
	}
	return v, nil
}

// mergeFolded merges a drop-in over a configuration: tables key by key,
// anything else replaced.
func mergeFolded(dst, src map[string]any) {
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				mergeFolded(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
}

// checkHostPaths checks every string of a configuration that is an
// absolute path (or whose key names one), at any depth, except the
// valid_* lists: those are globs that only matter for annotations, which
// runtimeclassd refuses.
func (h *Host) checkHostPaths(v any, at []string) error {
	switch v := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if strings.HasPrefix(k, "valid_") {
				continue
			}
			if err := h.checkHostPaths(v[k], append(at, k)); err != nil {
				return err
			}
		}
	case []any:
		for i, e := range v {
			if err := h.checkHostPaths(e, append(at, fmt.Sprint(i))); err != nil {
				return err
			}
		}
	case string:
		if strings.HasPrefix(v, "/") {
			if _, err := h.safeAny(v); err != nil {
				return fmt.Errorf("%s %s: %w", strings.Join(at, "."), v, err)
			}
		}
	}
	return nil
}

// safeAny checks a host path a configuration names for an unknown use:
// an existing one must be a safe file or directory, or a root-owned device
// node; a missing one is created by the runtime, so its nearest existing
// ancestor must be a directory root alone can write. The part of a path
// from a runtime's placeholder on ("%ID%") is not known yet and is
// treated as missing.
func (h *Host) safeAny(p string) (string, error) {
	if i := strings.Index(p, "%"); i >= 0 {
		p = filepath.Dir(p[:i] + "x")
	}
	p = filepath.Clean(p)
	resolved, err := safepath.Resolve(h.root(), "/", p)
	if errors.Is(err, safepath.ErrNotExist) {
		for parent := filepath.Dir(p); ; parent = filepath.Dir(parent) {
			rp, err := safepath.Resolve(h.root(), "/", parent)
			if errors.Is(err, safepath.ErrNotExist) && parent != "/" {
				continue
			}
			if err != nil {
				return "", err
			}
			if err := h.notForbidden(parent, rp); err != nil {
				return "", err
			}
			if err := h.safeDir(rp); err != nil {
				return "", err
			}
			return "does not exist yet; " + rp + " is root's alone", nil
		}
	}
	if err != nil {
		return "", err
	}
	if err := h.notForbidden(p, resolved); err != nil {
		return "", err
	}
	fi, err := os.Lstat(h.path(resolved))
	if err != nil {
		return "", err
	}
	switch {
	case fi.Mode().IsRegular():
		return h.safeFile(p, false)
	case fi.IsDir():
		if err := h.safeDir(resolved); err != nil {
			return "", err
		}
		return "root-owned directory", nil
	case fi.Mode()&os.ModeDevice != 0:
		if st := statOwner(fi); st != 0 {
			return "", fmt.Errorf("device %s is owned by uid %d, not root", resolved, st)
		}
		return "root-owned device", nil
	}
	return "", fmt.Errorf("%s is a %s", resolved, fi.Mode().Type())
}
