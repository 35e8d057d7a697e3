package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The files runtimeclassd writes, and those it makes containerd read, must
// sit where only root can change them: no write through a user's symlink,
// into a directory others can write, or into a drop-in directory that is
// not root's alone; and drop-in mode must not import a file for nothing.

func init() { moreHostileCases = append(moreHostileCases, onBoth(writesCases)) }

// dropIn is the drop-in's default path in a node.
func dropIn(n *node) string {
	return filepath.Join(filepath.Dir(n.config), "conf.d", "50-runtimeclassd.toml")
}

func writesCases() []hostileCase {
	// withheld is a valid policy whose handler the host can't run: apply
	// leaves config.toml alone and writes the labels (x=false).
	withheld := one(evilHandler)
	// labelsKept: config.toml keeps its bytes (checked by run) and the
	// symlink still points at it: the labels were not written through it.
	labelsKept := func(t *testing.T, n *node) {
		if fi, err := os.Lstat(n.nfd); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Errorf("the user's symlink at %s was replaced or removed (%v)", n.nfd, err)
		}
	}
	userLink := func(mode os.FileMode, owner bool) func(t *testing.T, n *node) {
		return func(t *testing.T, n *node) {
			mkdir(t, filepath.Dir(n.nfd), mode)
			if owner {
				chown(t, filepath.Dir(n.nfd))
			}
			symlink(t, n.config, n.nfd)
			chown(t, n.nfd)
		}
	}
	noDropIn := func(t *testing.T, n *node) {
		if _, err := os.Lstat(dropIn(n)); err == nil {
			t.Errorf("a drop-in was written: %s", dropIn(n))
		}
	}
	dropInMode := []string{"--mode", "drop-in"}
	stateDir := func(mode os.FileMode, owner bool) func(t *testing.T, n *node) {
		return func(t *testing.T, n *node) {
			mkdir(t, n.state, mode)
			if owner {
				chown(t, n.state)
			}
		}
	}
	return []hostileCase{
		// The node labels.
		{name: "labels: a user's symlink to config.toml in a world-writable features.d", stage: atWrite, files: withheld,
			setup: userLink(0o777, false), after: labelsKept,
			want: []string{"could not write node labels", "directory {d}/nfd/features.d is group- or world-writable (mode 0777)"}},
		{name: "labels: a user's symlink to config.toml in a sticky world-writable features.d", stage: atWrite, files: withheld,
			setup: userLink(os.ModeSticky|0o777, false), after: labelsKept,
			want: []string{"could not write node labels", "directory {d}/nfd/features.d is group- or world-writable (mode 1777)"}},
		{name: "labels: a user's symlink to config.toml in a features.d the user owns", stage: atWrite, files: withheld,
			setup: userLink(0o755, true), after: labelsKept,
			want: []string{"could not write node labels", "directory {d}/nfd/features.d is owned by uid 1000, not root"}},
		{name: "labels: features.d reached through a user's directory", stage: atWrite, files: withheld,
			setup: func(t *testing.T, n *node) {
				mkdir(t, filepath.Join(n.dir, "nfd"), 0o755)
				chown(t, filepath.Join(n.dir, "nfd"))
			},
			want: []string{"could not write node labels", "directory {d}/nfd is owned by uid 1000, not root"}},

		// The state directory: state.json, the lock, backups.
		{name: "state dir world-writable", stage: atWrite, code: 1, files: one(runcHandler), setup: stateDir(0o777, false),
			want: []string{"state directory {d}/state", "directory {d}/state is group- or world-writable (mode 0777)"}},
		{name: "state dir owned by a user", stage: atWrite, code: 1, files: one(runcHandler), setup: stateDir(0o700, true),
			want: []string{"state directory {d}/state", "directory {d}/state is owned by uid 1000, not root"}},
		{name: "backups dir a user's symlink", stage: atWrite, code: 1, files: one(runcHandler),
			setup: func(t *testing.T, n *node) {
				mkdir(t, n.state, 0o700)
				evil := filepath.Join(n.dir, "evil")
				mkdir(t, evil, 0o777)
				symlink(t, evil, filepath.Join(n.state, "backups"))
			},
			want: []string{"backups: refusing to use {d}/state/backups", "directory {d}/evil is group- or world-writable (mode 0777)"}},

		// config.toml itself, when it is a symlink.
		{name: "config.toml a symlink into a world-writable directory", stage: atWrite, code: 1, files: one(runcHandler),
			setup: func(t *testing.T, n *node) {
				shared := filepath.Join(n.dir, "shared")
				mkdir(t, shared, 0o777)
				moveBehindLink(t, n, filepath.Join(shared, "config.toml"))
			},
			want: []string{"containerd config: refusing to write {c}", "directory {d}/shared is group- or world-writable (mode 0777)"}},
		{name: "config.toml a symlink through a user's directory", stage: atWrite, code: 1, files: one(runcHandler),
			setup: func(t *testing.T, n *node) {
				user := filepath.Join(n.dir, "user")
				mkdir(t, user, 0o755)
				chown(t, user)
				mkdir(t, filepath.Join(user, "etc"), 0o755)
				moveBehindLink(t, n, filepath.Join(user, "etc", "config.toml"))
			},
			want: []string{"containerd config: refusing to write {c}", "directory {d}/user is owned by uid 1000, not root"}},

		{name: "config.toml owned by a user", stage: atWrite, code: 1, files: one(runcHandler),
			setup: func(t *testing.T, n *node) { chown(t, n.config) },
			want:  []string{"containerd config: {c} is owned by uid 1000, not root"}},

		// Drop-in mode: where the drop-in goes, and what config.toml imports.
		{name: "drop-in: conf.d world-writable", stage: atWrite, major: 2, code: 1, args: dropInMode, files: one(runcHandler),
			setup: func(t *testing.T, n *node) { mkdir(t, filepath.Dir(dropIn(n)), 0o777) }, after: noDropIn,
			want: []string{"mode drop-in refused", "directory {d}/etc/containerd/conf.d is group- or world-writable (mode 0777)"}},
		{name: "drop-in: conf.d owned by a user", stage: atWrite, major: 2, code: 1, args: dropInMode, files: one(runcHandler),
			setup: func(t *testing.T, n *node) {
				mkdir(t, filepath.Dir(dropIn(n)), 0o755)
				chown(t, filepath.Dir(dropIn(n)))
			}, after: noDropIn,
			want: []string{"mode drop-in refused", "directory {d}/etc/containerd/conf.d is owned by uid 1000, not root"}},
		{name: "drop-in: missing conf.d under a world-writable directory", stage: atWrite, major: 2, code: 1, files: one(runcHandler),
			args:  []string{"--mode", "drop-in", "--drop-in", "{d}/shared/conf.d/50-runtimeclassd.toml"},
			setup: func(t *testing.T, n *node) { mkdir(t, filepath.Join(n.dir, "shared"), 0o777) },
			want:  []string{"mode drop-in refused", "refusing to create {d}/shared/conf.d", "directory {d}/shared is group- or world-writable (mode 0777)"}},
		{name: "drop-in: a user's existing drop-in", stage: atWrite, major: 2, code: 1, args: dropInMode, files: one(runcHandler),
			setup: func(t *testing.T, n *node) {
				write(t, dropIn(n), "# Generated by runtimeclassd\nversion = 3\n", 0o644)
				chown(t, dropIn(n))
			},
			want: []string{"mode drop-in refused: drop-in {d}/etc/containerd/conf.d/50-runtimeclassd.toml is owned by uid 1000, not root"}},
		{name: "drop-in: a world-writable existing drop-in", stage: atWrite, major: 2, code: 1, args: dropInMode, files: one(runcHandler),
			setup: func(t *testing.T, n *node) {
				write(t, dropIn(n), "# Generated by runtimeclassd\nversion = 3\n", 0o666)
			},
			want: []string{"mode drop-in refused: drop-in {d}/etc/containerd/conf.d/50-runtimeclassd.toml is group- or world-writable (mode 0666)"}},
		{name: "drop-in: a user's symlink as the drop-in", stage: atWrite, major: 2, code: 1, args: dropInMode, files: one(runcHandler),
			setup: func(t *testing.T, n *node) {
				mkdir(t, filepath.Dir(dropIn(n)), 0o777)
				symlink(t, n.config, dropIn(n))
				chown(t, dropIn(n))
			},
			want: []string{"mode drop-in refused", "directory {d}/etc/containerd/conf.d is group- or world-writable (mode 0777)"}},
		{name: "drop-in: the only handler is another's, nothing to import", stage: atWrite, major: 2, code: 0, args: dropInMode,
			files: one(strings.Replace(runcHandler, "handlers.x", "handlers.runc", 1)), after: noDropIn,
			want: []string{`handler "runc" is already defined at line 64 and not managed by runtimeclassd`, "{c} is up to date; nothing written"}},
	}
}

// moveBehindLink moves config.toml to target and leaves a root-owned
// symlink to it in its place (as some distributions do).
func moveBehindLink(t *testing.T, n *node, target string) {
	t.Helper()
	if err := os.Rename(n.config, target); err != nil {
		t.Fatal(err)
	}
	symlink(t, target, n.config)
}
