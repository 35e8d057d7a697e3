package daemon

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"

	"github.com/runtimeclassd/runtimeclassd/ctrdconfig"
	"github.com/runtimeclassd/runtimeclassd/policy"
	"github.com/runtimeclassd/runtimeclassd/shimcheck"
)

// The cgroup driver of handlers on the runc shim. runc puts a container
// in a cgroup either through systemd (SystemdCgroup = true) or by writing
// cgroupfs itself, and the kubelet must use the same driver: with the
// other one, pods run outside the kubelet's cgroup hierarchy (its limits
// and eviction don't see them) or fail to start. A bare sandbox, as the
// smoke test creates one, passes either way: it sets no cgroup parent.
// So a runc-shim handler whose policy says nothing takes the default
// runtime's SystemdCgroup, which is what the node's pods already run
// with, and a policy value that contradicts the kubelet's configured
// driver is refused.

const systemdCgroup = "SystemdCgroup"

func isRuncShim(runtimeType string) bool {
	return runtimeType == "io.containerd.runc.v2" || runtimeType == "io.containerd.runc.v1"
}

// kubeletCgroupDriver reads cgroupDriver from the kubelet's config file
// (a KubeletConfiguration; the key is top-level), under the host root: the
// driver and the file, or "" when the file can't be read. A file that
// doesn't set it means the kubelet's default, cgroupfs.
func kubeletCgroupDriver(cfg Config) (driver, file string) {
	if cfg.KubeletConfig == "" {
		return "", ""
	}
	file = filepath.Join(cmpOr(cfg.HostRoot, "/"), cfg.KubeletConfig)
	b, err := os.ReadFile(file)
	if err != nil || len(b) > 1<<20 {
		return "", ""
	}
	driver = "cgroupfs"
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), "cgroupDriver:")
		if !ok {
			continue
		}
		v, _, _ = strings.Cut(v, "#")
		driver = strings.Trim(strings.TrimSpace(v), `"'`)
	}
	return driver, cfg.KubeletConfig
}

// CheckCgroupDriver withholds the runc-shim handlers whose policy sets
// SystemdCgroup against the kubelet's driver, adding the failed check to
// their readiness (CheckHandlers' results, in the policy's order).
func CheckCgroupDriver(cfg Config, pol *policy.Policy, readiness []shimcheck.Result) {
	driver, file := kubeletCgroupDriver(cfg)
	if driver == "" || readiness == nil {
		return
	}
	for i := range pol.Handlers {
		h := &pol.Handlers[i]
		v, ok := h.Options[systemdCgroup].(bool)
		if !isRuncShim(h.RuntimeType) || !ok || v == (driver == "systemd") {
			continue
		}
		readiness[i].Ready = false
		readiness[i].Checks = append(readiness[i].Checks, shimcheck.Check{Name: "cgroup-driver",
			Detail: fmt.Sprintf("options.SystemdCgroup = %t, but the kubelet's cgroup driver is %s (%s): its pods would run outside the kubelet's cgroup hierarchy, or not start; drop SystemdCgroup from the policy to take the node's, or set it to %t", v, driver, file, driver == "systemd")})
	}
}

// inheritCgroupDriver gives runc-shim handlers whose policy doesn't set
// SystemdCgroup the default runtime's value, when that is true (false is
// runc's default anyway). The default runtime is read from config.toml
// when it defines it and imports nothing, otherwise from containerd's
// effective config (one dump, cached and shared with the patch). It
// returns the options to write for each handler by name; a handler not in
// it keeps the policy's options.
func (a *Applier) inheritCgroupDriver(ctx context.Context, p *Plan, pol *policy.Policy) map[string]map[string]any {
	need := false
	for _, h := range pol.Handlers {
		if _, set := h.Options[systemdCgroup]; isRuncShim(h.RuntimeType) && !set {
			need = true
		}
	}
	if !need {
		return nil
	}
	def, err := ctrdconfig.DefaultRuntimeInFile(a.Cfg.ContainerdConfig, p.Original)
	if err == nil && def == nil {
		def, err = a.defaultRuntime(ctx, p.Original)
	}
	if err != nil || def == nil {
		if err != nil {
			a.Log.Warn("containerd's default runtime can't be read; runc-shim handlers keep runc's default cgroup driver", "err", err)
		}
		return nil
	}
	rt, _ := def.Fields["runtime_type"].(string)
	if v, _ := def.Options[systemdCgroup].(bool); !isRuncShim(rt) || !v {
		return nil
	}
	out := map[string]map[string]any{}
	for _, h := range pol.Handlers {
		if _, set := h.Options[systemdCgroup]; isRuncShim(h.RuntimeType) && !set {
			opts := maps.Clone(h.Options)
			if opts == nil {
				opts = map[string]any{}
			}
			opts[systemdCgroup] = true
			out[h.Name] = opts
		}
	}
	return out
}
