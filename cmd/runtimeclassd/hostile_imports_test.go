package main

import (
	"path/filepath"
	"testing"
)

func init() { moreHostileCases = append(moreHostileCases, importsCases) }

// importsCases: a file config.toml imports defines keys of a policy's
// handler (issue 17, defect 9). containerd 2.x merges them into the table
// runtimeclassd would write, 1.x replaces config.toml's CRI section with
// the file's: either way the handler would not run as the policy says, so
// it is someone else's and is not written, in either mode.
func importsCases() []hostileCase {
	binaryName := func(major int) string {
		if major == 2 {
			return "version = 3\n[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.x.options]\nBinaryName = '/opt/eve/runc'\n"
		}
		return "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.x.options]\nBinaryName = \"/opt/eve/runc\"\n"
	}
	imported := func(rel, body string) func(t *testing.T, n *node) {
		return func(t *testing.T, n *node) {
			write(t, filepath.Join(filepath.Dir(n.config), rel), body, 0o644)
		}
	}
	var cases []hostileCase
	for _, major := range []int{1, 2} {
		v := map[int]string{1: " (1.6)", 2: " (2.4.2)"}[major]
		var patch []string
		if major == 2 {
			patch = []string{"--mode", "patch"}
		}
		cases = append(cases,
			hostileCase{name: "an imported file sets the handler's BinaryName" + v, stage: atWrite, major: major, imports: true, args: patch,
				files: one(runcHandler), setup: imported("conf.d/90-other.toml", binaryName(major)),
				want: []string{`handler "x" is defined in {d}/etc/containerd/conf.d/90-other.toml, which config.toml imports`}},
			hostileCase{name: "a file an imported file imports sets the handler's BinaryName" + v, stage: atWrite, major: major, imports: true, args: patch,
				files: one(runcHandler), setup: func(t *testing.T, n *node) {
					imported("conf.d/10-a.toml", "imports = ['../other/b.toml']\n")(t, n)
					imported("other/b.toml", binaryName(major))(t, n)
				},
				want: []string{`handler "x" is defined in {d}/etc/containerd/other/b.toml, which config.toml imports`}},
		)
	}
	cases = append(cases, hostileCase{name: "an imported file sets the handler's BinaryName, drop-in mode (2.4.2)", stage: atWrite, major: 2, imports: true,
		args: []string{"--mode", "drop-in"}, files: one(runcHandler), setup: imported("conf.d/90-other.toml", binaryName(2)),
		want: []string{`handler "x" is defined in {d}/etc/containerd/conf.d/90-other.toml, which config.toml imports`}},
		hostileCase{name: "a file an imported file imports sets the handler's BinaryName, drop-in mode (2.4.2)", stage: atWrite, major: 2, imports: true,
			args: []string{"--mode", "drop-in"}, files: one(runcHandler), setup: func(t *testing.T, n *node) {
				imported("conf.d/10-a.toml", "imports = ['../other/b.toml']\n")(t, n)
				imported("other/b.toml", binaryName(2))(t, n)
			},
			want: []string{`handler "x" is defined in {d}/etc/containerd/other/b.toml, which config.toml imports`}})
	// What config.toml imports must be root's alone, or a user could add
	// or change a handler's binary after runtimeclassd checked it.
	for _, major := range []int{1, 2} {
		v := map[int]string{1: " (1.6)", 2: " (2.4.2)"}[major]
		cases = append(cases,
			hostileCase{name: "an imported file a user owns" + v, stage: atWrite, major: major, imports: true, code: 1,
				files: one(runcHandler), setup: func(t *testing.T, n *node) {
					imported("conf.d/10-user.toml", "")(t, n)
					chown(t, filepath.Join(filepath.Dir(n.config), "conf.d/10-user.toml"))
				},
				want: []string{"imports {d}/etc/containerd/conf.d/10-user.toml, which someone other than root could change", "owned by uid 1000, not root"}},
			hostileCase{name: "an imported glob's directory world-writable" + v, stage: atWrite, major: major, imports: true, code: 1,
				files: one(runcHandler), setup: func(t *testing.T, n *node) { mkdir(t, filepath.Join(filepath.Dir(n.config), "conf.d"), 0o777) },
				want: []string{"imports {d}/etc/containerd/conf.d", "directory {d}/etc/containerd/conf.d is group- or world-writable (mode 0777)"}},
		)
	}
	// A file whose version says one thing and whose tables another:
	// containerd 2.x merges its runtimes all the same.
	cases = append(cases,
		hostileCase{name: "an imported file without a version sets BinaryName under 1.x's plugin name (2.4.2)", stage: atWrite, major: 2, imports: true,
			args: []string{"--mode", "patch"}, files: one(runcHandler),
			setup: imported("conf.d/10-noversion.toml", "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.x.options]\nBinaryName = \"/opt/eve/runc\"\n"),
			want:  []string{`handler "x" is defined in {d}/etc/containerd/conf.d/10-noversion.toml, which config.toml imports`}},
		hostileCase{name: "an imported file of version 2 sets BinaryName under 2.x's plugin name (2.4.2)", stage: atWrite, major: 2, imports: true,
			args: []string{"--mode", "patch"}, files: one(runcHandler),
			setup: imported("conf.d/10-v2.toml", "version = 2\n[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.x.options]\nBinaryName = '/opt/eve/runc'\n"),
			want:  []string{`handler "x" is defined in {d}/etc/containerd/conf.d/10-v2.toml, which config.toml imports`}},
	)
	return cases
}
