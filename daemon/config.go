// Package daemon runs runtimeclassd's reconcile: policy in, containerd's
// config out. One pipeline serves the one-shot commands and the service:
// load the policy, patch config.toml, validate the candidate with
// containerd, back up the old file and write the new one atomically.
// Nothing is written unless every step before the write succeeded, so a bad
// input leaves config.toml byte for byte as it was.
package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
)

// Config is the daemon's configuration: the file /etc/runtimeclassd/config.toml,
// overridden by command-line flags.
type Config struct {
	ContainerdConfig    string   `toml:"containerd_config"`
	PolicyDir           string   `toml:"policy_dir"`
	StateDir            string   `toml:"state_dir"`
	ShimPath            string   `toml:"shim_path"`
	HostRoot            string   `toml:"host_root"`
	ContainerdBin       string   `toml:"containerd_bin"`
	ContainerdAddress   string   `toml:"containerd_address"`
	ContainerdUnit      string   `toml:"containerd_unit"`
	AllowedPathPrefixes []string `toml:"allowed_path_prefixes"`
	// Backups is how many backups of config.toml to keep.
	Backups int `toml:"backups"`
	// NFDFeatureFile is Node Feature Discovery's local feature file for
	// this daemon; "" disables it.
	NFDFeatureFile string `toml:"nfd_feature_file"`

	// Service settings.
	Debounce           Duration `toml:"debounce"`
	ResyncInterval     Duration `toml:"resync_interval"`
	RestartMinInterval Duration `toml:"restart_min_interval"`
	RestartSplay       Duration `toml:"restart_splay"`
	VerifyTimeout      Duration `toml:"verify_timeout"`
	// PollInterval is how often files are checked for changes when inotify
	// can't be used.
	PollInterval Duration `toml:"poll_interval"`
	// SmokeTimeout bounds one handler's sandbox smoke test; SmokePull lets
	// it pull the sandbox image when the node doesn't have it.
	SmokeTimeout Duration `toml:"smoke_timeout"`
	SmokePull    bool     `toml:"smoke_pull"`
	// Mode is where handlers are written: "patch" (config.toml's own
	// blocks), "drop-in" (the DropIn file, containerd 2.0 and later) or
	// "auto" (drop-in on 2.x, patch on 1.x).
	Mode string `toml:"mode"`
	// DropIn is the drop-in file; "" means conf.d/50-runtimeclassd.toml
	// next to ContainerdConfig (see DropInPath).
	DropIn string `toml:"drop_in"`
	// File is the daemon config file that was read ("" when there was
	// none): its directory is root's configuration, and no handler may
	// name a file in it.
	File string `toml:"-"`

	// The Kubernetes API (docs/FLEET.md).
	//
	// NodeKubeconfig is the credential the daemon sets its own Node's
	// runtimeclassd.io/handler.* labels with: by default the kubelet's,
	// used only if the file exists; "" disables.
	NodeKubeconfig string `toml:"node_kubeconfig"`
	// KubeletConfig is the kubelet's config file (a KubeletConfiguration),
	// under host_root, read for its cgroupDriver: a runc-shim handler whose
	// policy sets SystemdCgroup against it is withheld. "" reads nothing.
	KubeletConfig string `toml:"kubelet_config"`
	// NodeName is this node's name in the cluster; "" takes it from the
	// node kubeconfig's certificate (system:node:NAME), else the host
	// name.
	NodeName string `toml:"node_name"`
	// FleetKubeconfig enables the fleet's restart budget and failure
	// record, with a credential of its own (never the kubelet's);
	// FleetNamespace holds their objects (packaging/rbac.yaml).
	FleetKubeconfig string `toml:"fleet_kubeconfig"`
	FleetNamespace  string `toml:"fleet_namespace"`
	// MaxConcurrentRestarts is the number of restart slots: at most that
	// many nodes restart containerd at once.
	MaxConcurrentRestarts int `toml:"max_concurrent_restarts"`
	// OnAPIUnreachable is what a node does when it can't reach the API
	// server for a slot or the failure record: "wait" or "proceed".
	OnAPIUnreachable string `toml:"on_api_unreachable"`
	// FleetLeaseDuration is how long a slot outlives its holder's last
	// renewal (a holder that died loses it after that).
	FleetLeaseDuration Duration `toml:"fleet_lease_duration"`
}

// Duration is a time.Duration written as a string ("500ms", "5m").
type Duration time.Duration

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes the duration as a Go duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// DefaultShimPath is the PATH that Debian's and upstream's
// containerd.service run containerd with, plus where Kata installs itself.
const DefaultShimPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/opt/kata/bin"

// DefaultConfig returns the defaults of every setting.
func DefaultConfig() Config {
	return Config{
		ContainerdConfig:      "/etc/containerd/config.toml",
		PolicyDir:             "/etc/runtimeclassd/policy.d",
		StateDir:              "/var/lib/runtimeclassd",
		ShimPath:              DefaultShimPath,
		HostRoot:              "/",
		ContainerdBin:         "containerd",
		ContainerdAddress:     "/run/containerd/containerd.sock",
		ContainerdUnit:        "containerd.service",
		Backups:               10,
		NFDFeatureFile:        "/etc/kubernetes/node-feature-discovery/features.d/runtimeclassd",
		Debounce:              Duration(500 * time.Millisecond),
		ResyncInterval:        Duration(5 * time.Minute),
		RestartMinInterval:    Duration(60 * time.Second),
		VerifyTimeout:         Duration(60 * time.Second),
		PollInterval:          Duration(5 * time.Second),
		SmokeTimeout:          Duration(60 * time.Second),
		Mode:                  ModePatch,
		NodeKubeconfig:        "/etc/kubernetes/kubelet.conf",
		KubeletConfig:         "/var/lib/kubelet/config.yaml",
		FleetNamespace:        "runtimeclassd-fleet",
		MaxConcurrentRestarts: 1,
		OnAPIUnreachable:      "wait",
		FleetLeaseDuration:    Duration(30 * time.Second),
	}
}

// LoadConfig reads the daemon config file over the defaults. A missing file
// means defaults. Unknown keys are errors, with their line and column.
func LoadConfig(path string) (Config, error) {
	cfg := DefaultConfig()
	src, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return cfg, nil
	}
	if err != nil {
		return cfg, err
	}
	dec := toml.NewDecoder(strings.NewReader(string(src)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		var sme *toml.StrictMissingError
		if errors.As(err, &sme) && len(sme.Errors) > 0 {
			row, col := sme.Errors[0].Position()
			return cfg, fmt.Errorf("%s:%d:%d: unknown key %s", path, row, col, strings.Join(sme.Errors[0].Key(), "."))
		}
		var de *toml.DecodeError
		if errors.As(err, &de) {
			row, col := de.Position()
			return cfg, fmt.Errorf("%s:%d:%d: %s", path, row, col, de.Error())
		}
		return cfg, fmt.Errorf("%s: %w", path, err)
	}
	cfg.File = path
	if err := cfg.check(); err != nil {
		return cfg, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// check refuses values no setting allows.
func (c *Config) check() error {
	switch {
	case c.OnAPIUnreachable != "wait" && c.OnAPIUnreachable != "proceed":
		return fmt.Errorf("on_api_unreachable = %q: want \"wait\" or \"proceed\"", c.OnAPIUnreachable)
	case c.MaxConcurrentRestarts < 1:
		return fmt.Errorf("max_concurrent_restarts = %d: at least 1", c.MaxConcurrentRestarts)
	case c.FleetLeaseDuration < Duration(time.Second):
		return fmt.Errorf("fleet_lease_duration = %q: at least 1s", time.Duration(c.FleetLeaseDuration))
	}
	return nil
}

// Paths returns the settings that have a command-line flag of the same
// name, by flag name, so that flags can be laid over the config file.
func (c *Config) Paths() map[string]*string {
	return map[string]*string{
		"containerd-config":  &c.ContainerdConfig,
		"policy-dir":         &c.PolicyDir,
		"state-dir":          &c.StateDir,
		"shim-path":          &c.ShimPath,
		"host-root":          &c.HostRoot,
		"containerd-bin":     &c.ContainerdBin,
		"containerd-address": &c.ContainerdAddress,
		"containerd-unit":    &c.ContainerdUnit,
		"nfd-feature-file":   &c.NFDFeatureFile,
		"mode":               &c.Mode,
		"drop-in":            &c.DropIn,
		"node-kubeconfig":    &c.NodeKubeconfig,
		"node-name":          &c.NodeName,
		"fleet-kubeconfig":   &c.FleetKubeconfig,
		"fleet-namespace":    &c.FleetNamespace,
	}
}
