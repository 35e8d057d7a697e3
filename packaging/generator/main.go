// Command runtimeclassd-generator is a systemd generator (systemd.generator(7)).
// At boot and at every `systemctl daemon-reload` it reads runtimeclassd's
// config file and writes a drop-in for runtimeclassd.service and
// runtimeclassd-apply.service that makes exactly the paths runtimeclassd
// writes writable: the units run with ProtectSystem=strict, so every other
// path is read-only to them. The paths come from the same keys the daemon
// reads (containerd_config, state_dir, nfd_feature_file), so an operator who
// moves one changes the config file, runs daemon-reload and restarts the
// service, and the sandbox follows.
//
// With --print-shell it prints the same settings as shell assignments, for
// the package's maintainer scripts (a purge must know what to revert and
// remove after the config file itself is gone).
//
// It never fails: a config file it can't read gives the defaults and a
// warning on stderr (the kernel log, for a generator); the daemon then
// refuses the same file with its line and column.
package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// ConfigFile is where the packaged units' daemon reads its config.
const ConfigFile = "/etc/runtimeclassd/config.toml"

// Units are the units that get the drop-in.
var Units = []string{"runtimeclassd.service", "runtimeclassd-apply.service"}

// DropInName is the drop-in's file name in each unit's .d directory.
const DropInName = "50-runtimeclassd-paths.conf"

// Settings are the keys of the daemon config that decide what the units
// write and restart. Defaults match daemon.DefaultConfig (a test keeps them
// in step).
type Settings struct {
	ContainerdConfig string `toml:"containerd_config"`
	StateDir         string `toml:"state_dir"`
	NFDFeatureFile   string `toml:"nfd_feature_file"`
	ContainerdUnit   string `toml:"containerd_unit"`
	// DropInFile is drop_in when the config sets it; the default is under
	// config.toml's directory, writable already.
	DropInFile string `toml:"drop_in"`
}

// Defaults are the daemon's defaults for Settings.
func Defaults() Settings {
	return Settings{
		ContainerdConfig: "/etc/containerd/config.toml",
		StateDir:         "/var/lib/runtimeclassd",
		NFDFeatureFile:   "/etc/kubernetes/node-feature-discovery/features.d/runtimeclassd",
		ContainerdUnit:   "containerd.service",
	}
}

// Load reads the settings from a daemon config file over the defaults. A
// missing file means the defaults. Keys other than Settings' are the
// daemon's business and are ignored here.
func Load(path string) (Settings, error) {
	s := Defaults()
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return Defaults(), err
	}
	if err := toml.Unmarshal(b, &s); err != nil {
		return Defaults(), fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// safe is what a path may hold to go into a unit file unquoted: no spaces,
// quotes, backslashes, specifiers (%) or variables ($).
func safe(p string) bool {
	for _, r := range p {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune("/._-+@:,=", r):
		default:
			return false
		}
	}
	return filepath.IsAbs(p) && filepath.Clean(p) == p
}

// Writable is what the units must be able to write, in order, without
// duplicates: containerd's config directory (and, for a symlinked
// config.toml, the directory of the file it points to, resolved under
// root), the state directory and the NFD feature directory. Directories
// the package creates when missing are listed in create. Paths that can't
// go into a unit file are returned in rejected.
func (s Settings) Writable(root string) (dirs, create, rejected []string) {
	seen := map[string]bool{}
	add := func(p string, mk bool) {
		if p == "" || seen[p] {
			return
		}
		seen[p] = true
		if !safe(p) {
			rejected = append(rejected, p)
			return
		}
		dirs = append(dirs, p)
		if mk {
			create = append(create, p)
		}
	}
	if s.ContainerdConfig != "" {
		add(filepath.Dir(s.ContainerdConfig), false)
		if target, err := filepath.EvalSymlinks(filepath.Join(root, s.ContainerdConfig)); err == nil {
			if rel, err := filepath.Rel(root, target); err == nil && !strings.HasPrefix(rel, "..") {
				add(filepath.Dir("/"+rel), false)
			}
		}
	}
	if s.DropInFile != "" && !under(filepath.Dir(s.DropInFile), dirs) {
		// The drop-in's directory (mode drop-in), when the config puts it
		// elsewhere; it must exist.
		add(filepath.Dir(s.DropInFile), false)
	}
	add(s.StateDir, true)
	if s.NFDFeatureFile != "" {
		add(filepath.Dir(s.NFDFeatureFile), true)
	}
	return dirs, create, rejected
}

// under reports whether dir is one of dirs or inside one.
func under(dir string, dirs []string) bool {
	for _, d := range dirs {
		if dir == d || strings.HasPrefix(dir, d+"/") {
			return true
		}
	}
	return false
}

// DropIn renders the drop-in for the settings.
func (s Settings) DropIn(root, source string) (string, []string) {
	dirs, create, rejected := s.Writable(root)
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by runtimeclassd-generator from %s at boot and at each\n", source)
	b.WriteString("# daemon-reload: the paths runtimeclassd writes. Change them there.\n")
	b.WriteString("[Service]\n")
	if len(create) > 0 {
		// Before the sandbox is set up for ExecStart: a path in
		// ReadWritePaths must exist then.
		fmt.Fprintf(&b, "ExecStartPre=+/bin/mkdir -p %s\n", strings.Join(create, " "))
	}
	if len(dirs) > 0 {
		// "-": a containerd config directory that doesn't exist yet is
		// not an error here; the daemon reports what it can't write.
		fmt.Fprintf(&b, "ReadWritePaths=-%s\n", strings.Join(dirs, " -"))
	}
	return b.String(), rejected
}

// Shell renders the settings as POSIX shell assignments.
func (s Settings) Shell() string {
	q := func(v string) string { return "'" + strings.ReplaceAll(v, "'", `'\''`) + "'" }
	return fmt.Sprintf("containerd_config=%s\nstate_dir=%s\nnfd_feature_file=%s\ncontainerd_unit=%s\n",
		q(s.ContainerdConfig), q(s.StateDir), q(s.NFDFeatureFile), q(s.ContainerdUnit))
}

// Generate writes the drop-ins into dir (the generator's "normal"
// directory) and returns the warnings for stderr.
func Generate(root, config, dir string) []string {
	var warnings []string
	s, err := Load(filepath.Join(root, config))
	if err != nil {
		warnings = append(warnings, fmt.Sprintf("using the default paths: %v", err))
	}
	content, rejected := s.DropIn(root, config)
	for _, p := range rejected {
		warnings = append(warnings, fmt.Sprintf("%q can't be made writable (only letters, digits and /._-+@:,= in absolute, clean paths); runtimeclassd will fail to write there", p))
	}
	for _, u := range Units {
		d := filepath.Join(dir, u+".d")
		if err := os.MkdirAll(d, 0o755); err != nil {
			warnings = append(warnings, err.Error())
			continue
		}
		if err := os.WriteFile(filepath.Join(d, DropInName), []byte(content), 0o644); err != nil {
			warnings = append(warnings, err.Error())
		}
	}
	return warnings
}

// Main runs the generator with args (without the program name), reading
// the host under root ("/" but in tests), and returns the exit status.
func Main(args []string, root string, stdout, stderr io.Writer) int {
	switch {
	case len(args) >= 1 && args[0] == "--print-shell":
		config := ConfigFile
		if len(args) == 2 {
			config = args[1]
		}
		s, err := Load(filepath.Join(root, config))
		if err != nil {
			fmt.Fprintf(stderr, "runtimeclassd-generator: %v\n", err)
			return 1
		}
		io.WriteString(stdout, s.Shell())
		return 0
	case len(args) == 1 || len(args) == 3:
		var b bytes.Buffer
		for _, w := range Generate(root, ConfigFile, args[0]) {
			fmt.Fprintf(&b, "runtimeclassd-generator: %s\n", w)
		}
		stderr.Write(b.Bytes())
		return 0
	default:
		fmt.Fprintln(stderr, "usage: runtimeclassd-generator NORMAL-DIR [EARLY-DIR LATE-DIR] | --print-shell [CONFIG]")
		return 2
	}
}

func main() { os.Exit(Main(os.Args[1:], "/", os.Stdout, os.Stderr)) }
