//go:build runtimeclassd_lite

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/runtimeclassd/runtimeclassd/atomicfile"
	"github.com/runtimeclassd/runtimeclassd/daemon"
)

// daemonName is the complete build of this command (run.go included),
// which the lite build executes for the commands it leaves out.
const daemonName = "runtimeclassd-daemon"

// runDaemon is `runtimeclassd run`: the complete build runs it.
func (e *env) runDaemon(context.Context, *runOptions) error { return e.execDaemon() }

// change is apply or revert that writes: the complete build runs it.
func (e *env) change(context.Context, daemon.PlanOptions, bool, bool) error { return e.execDaemon() }

// checkSmoke is `check --smoke`, which talks to containerd's CRI: the
// complete build runs it.
func (e *env) checkSmoke(context.Context, string) error { return e.execDaemon() }

// fleet is `runtimeclassd fleet`, which talks to the Kubernetes API: the
// complete build runs it.
func (e *env) fleet(context.Context, *fleetOptions, string, []string) error { return e.execDaemon() }

// execDaemon replaces this process with runtimeclassd-daemon, given the
// same arguments: the same process (a systemd unit's main PID stays), the
// same streams and environment.
func (e *env) execDaemon() error {
	path, err := daemonBinary()
	if err != nil {
		return err
	}
	argv := append([]string{path}, e.args...)
	return fmt.Errorf("running %s: %w", path, syscall.Exec(path, argv, os.Environ()))
}

// daemonBinary finds runtimeclassd-daemon: next to this executable (a
// build tree's bin/), or in ../libexec/runtimeclassd/ from it
// (/usr/bin/runtimeclassd finds /usr/libexec/runtimeclassd/runtimeclassd-daemon).
// Both are relative to the executable itself, never to PATH or the
// working directory.
func daemonBinary() (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("finding %s: %w", daemonName, err)
	}
	dir := filepath.Dir(self)
	candidates := []string{filepath.Join(dir, daemonName), filepath.Join(dir, "..", "libexec", "runtimeclassd", daemonName)}
	for _, p := range candidates {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			p = filepath.Clean(p)
			// Run as root, it runs as root: it must be a file only root can
			// change, where only root can replace it (a copy of this
			// command in /tmp must not run a user's runtimeclassd-daemon
			// next to it).
			if os.Geteuid() == 0 {
				if _, err := atomicfile.CheckRootOnly(p); err != nil {
					return "", fmt.Errorf("not running %s: %w", p, err)
				}
			}
			return p, nil
		}
	}
	return "", errors.New(daemonName + " is not installed (looked for " + candidates[0] + " and " + filepath.Clean(candidates[1]) + "); it runs the daemon and the commands that write")
}
