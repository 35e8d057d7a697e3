package shimcheck

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// KataConfigPaths are where Kata looks for its configuration when the
// handler gives no options.ConfigPath: the admin's override, the distro
// default, and kata-deploy's location.
var KataConfigPaths = []string{
	"/etc/kata-containers/configuration.toml",
	"/usr/share/defaults/kata-containers/configuration.toml",
	"/opt/kata/share/defaults/kata-containers/configuration.toml",
}

// checkKataConfig finds Kata's configuration.toml, checks it is a safe
// file, parses it, and checks that each [hypervisor.NAME] points to a
// hypervisor binary, a kernel, and an image or initrd that are safe files.
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
	f, _, err := h.openSafe(path, false)
	if err != nil {
		return failf(name, "%s: %v", path, err)
	}
	src, err := io.ReadAll(io.LimitReader(f, 4<<20))
	f.Close()
	if err != nil {
		return failf(name, "%s: %v", path, err)
	}
	var cfg struct {
		Hypervisor map[string]map[string]any `toml:"hypervisor"`
	}
	if err := toml.Unmarshal(src, &cfg); err != nil {
		return failf(name, "%s: %v", path, err)
	}
	if len(cfg.Hypervisor) == 0 {
		return failf(name, "%s has no [hypervisor.NAME] section", path)
	}
	names := make([]string, 0, len(cfg.Hypervisor))
	for n := range cfg.Hypervisor {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, hv := range names {
		t := cfg.Hypervisor[hv]
		str := func(k string) string { s, _ := t[k].(string); return s }
		checks := []struct {
			key  string
			exec bool
		}{{"path", true}, {"kernel", false}}
		image := "image"
		if str("image") == "" && str("initrd") != "" {
			image = "initrd"
		}
		checks = append(checks, struct {
			key  string
			exec bool
		}{image, false})
		for _, c := range checks {
			v := str(c.key)
			if v == "" {
				if c.key == "image" {
					return failf(name, "%s: [hypervisor.%s] sets neither image nor initrd", path, hv)
				}
				return failf(name, "%s: [hypervisor.%s] has no %s", path, hv, c.key)
			}
			if _, err := h.safeFile(v, c.exec); err != nil {
				return failf(name, "%s: [hypervisor.%s] %s %s: %v", path, hv, c.key, v, err)
			}
		}
	}
	return pass(name, fmt.Sprintf("%s: hypervisor %s, kernel and %s present", path, strings.Join(names, ", "), "image"))
}
